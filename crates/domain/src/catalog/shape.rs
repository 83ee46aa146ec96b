//! What a catalog document may contain, as data: the validator walks these
//! tables, and `schema/baton-extension.schema.json` is generated from them.
//!
//! The domain owns the block's structure (waves, health, notify) and the Datadog
//! envelope; each provider's block (`build`, `deploy`, a gate, a notifier, an exporter) is a [`ProviderShape`]
//! declared by the provider's own module and handed to the parser in a [`Registry`],
//! so the domain names no provider.

use serde_json::{Map, Value as Json, json};

pub struct Field {
    pub name: &'static str,
    pub required: bool,
    pub kind: Kind,
    pub doc: &'static str,
    /// Default the model fills in when the field is absent (numbers only, for the schema).
    pub default: Option<u64>,
}

pub enum Kind {
    /// Any string (Datadog's free-text fields).
    AnyText,
    /// A non-empty string.
    Text,
    /// A name usable in keys, file names and environment values ([`NAME`]).
    Name,
    /// One deploy target ([`TARGET`]).
    Target,
    /// A target that one of the block's waves deploys (a placement's `target`).
    WaveTarget,
    /// One of a closed set of strings.
    Enum(&'static [&'static str]),
    /// A list of strings.
    TextList,
    /// A non-empty list of [`Kind::Target`] (a wave's targets).
    Targets,
    /// An http(s) URL.
    Url,
    /// A string a provider checks with its own rule (a project path, a slug).
    Checked(&'static CheckedText),
    /// A mapping whose names a provider checks with its own rule and whose values are
    /// strings, integers or booleans (pipeline parameters).
    CheckedScalars(&'static CheckedText),
    /// A whole number of seconds: `90`, `"90s"`, `"5m"`, `"1h30m"`; from `min` to `max`
    /// ([`Kind::NO_MAX`]: no maximum).
    Duration { min: u64, max: u64 },
    /// A whole number of at least `min` (fits in u32).
    Count { min: u64 },
    /// A whole number from `min` to `max`.
    Between { min: u64, max: u64 },
    /// A program and its arguments, run without a shell; the program must exist where the
    /// catalog is loaded from files.
    Argv,
    /// The directory a command runs in, relative to the catalog file's directory; it must
    /// stay inside the catalog's root.
    WorkingDir,
    /// A file relative to the block's [`Kind::WorkingDir`]; it must stay inside the catalog's root.
    RelativePath,
    /// Environment variables for a command.
    Env,
    /// Names of environment variables ([`Kind::Env`]'s names).
    EnvNames,
    /// One environment variable's name.
    EnvName,
    /// A reference to a secret, never the secret.
    Secret,
    /// An EventBridge Scheduler expression.
    Schedule,
    /// An RFC 3339 time with its offset.
    Timestamp,
    /// An IANA time zone name.
    TimeZone,
    /// A five-field cron expression (a recurring freeze window's start).
    Cron,
    /// A list of [`FREEZE_WINDOW`] with unique names, each one-off or recurring.
    FreezeWindows,
    /// A mapping checked field by field.
    Object(&'static Shape),
    /// A list of mappings of one shape.
    List(&'static Shape),
    /// Any mapping (free-form sections such as `extensions`).
    Mapping,
    /// Baton's deploy waves: a non-empty list of [`WAVE`] with unique names and targets, or a
    /// [`TOPOLOGY_WAVES`] policy computing them from the block's [`Kind::LabeledTargets`].
    Waves,
    /// A non-empty list of targets, each a mapping of its `name` ([`TARGET`]) and its
    /// failure-domain labels ([`LABEL`] to a [`NAME`]).
    LabeledTargets,
    /// A non-empty list of steps: `one`, a label, `rest`, or percentages (`10%`).
    WaveOrder,
    /// A percentage, or a mapping of labels to percentages.
    Shares,
    /// A non-empty list of [`GATE`].
    Gates,
    /// The notifiers: a list of [`NOTIFIER`] blocks, or a mapping from each notifier's
    /// `provider` name to its fields (`slack: {channel: ...}`, the form catalogs used first).
    Notifiers,
    /// A list of HTTP status codes (100-599).
    HttpStatuses,
    /// A non-empty list of ids that are positive whole numbers (Datadog monitors).
    Ids,
    /// `true` or `false`.
    Bool,
    /// A non-empty list of non-empty strings (approvers: Slack user or user group ids, IAM
    /// principal ARNs, local user names).
    Approvers,
}

/// A string rule a provider brings: what it looks like, the check, and its JSON Schema.
pub struct CheckedText {
    /// For "expected ..." messages.
    pub expected: &'static str,
    /// Why a text breaks the rule, if it does.
    pub check: fn(&str) -> Result<(), String>,
    /// The JSON Schema of a valid value.
    pub schema: fn() -> Json,
    /// Whether a positive integer is accepted too (and kept as its text).
    pub integers: bool,
}

pub struct Shape {
    pub fields: &'static [Field],
    /// When set, the mapping's `provider` picks one of the registry's shapes of this slot, whose
    /// fields join `fields`.
    pub providers: Option<Slot>,
    /// At least one of these fields must be present.
    pub at_least_one: &'static [&'static str],
    /// Appended to "unknown field" messages.
    pub unknown_hint: Option<&'static str>,
}

/// Where in the Baton block a provider's block goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `build`.
    Build,
    /// `deploy` (beside `waves`).
    Deploy,
    /// An item of `health.gates` (beside `consecutive` and `failures`).
    Gate,
    /// An item of `telemetry`: where a release's events are exported.
    Export,
    /// An item of `notify`: where the team hears about releases.
    Notify,
}

impl Slot {
    pub fn describe(self) -> &'static str {
        match self {
            Slot::Build => "build",
            Slot::Deploy => "deploy",
            Slot::Gate => "health gate",
            Slot::Export => "telemetry exporter",
            Slot::Notify => "notifier",
        }
    }
}

/// One provider's block: the value of `provider` that picks it and its fields.
pub struct ProviderShape {
    pub slot: Slot,
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
    /// At least one of these fields must be present, and why.
    pub at_least_one: Option<(&'static [&'static str], &'static str)>,
    /// Whether the provider runs only where Baton runs on a machine (a local command): a catalog
    /// pushed for the cloud refuses it, naming the slot's providers that are not local-only.
    pub local_only: bool,
    /// A build provider's word for its run in the block's artifact template (`run-id`,
    /// `pipeline-number`): the placeholder [`ArtifactTemplate`](crate::template::ArtifactTemplate)
    /// fills with the run's id or number.
    pub run_word: Option<&'static str>,
    /// The block read into the provider's typed model and written back (see [`through_model`]):
    /// the parser refuses an entry whose block does not read, so a provider is never built from
    /// one, and a test compares what comes back with the shape, field for field.
    pub through_model: fn(&Json) -> Result<Json, String>,
}

/// A [`ProviderShape::through_model`] for the provider's block type `T`.
pub fn through_model<T: serde::de::DeserializeOwned + serde::Serialize>(block: &Json) -> Result<Json, String> {
    let model: T = serde_json::from_value(block.clone()).map_err(|err| err.to_string())?;
    serde_json::to_value(model).map_err(|err| err.to_string())
}

/// The providers a catalog may name, by slot. The composition root builds it from its
/// provider modules (`baton_providers::registry()`).
pub struct Registry {
    shapes: Vec<&'static ProviderShape>,
}

impl Registry {
    pub fn new(shapes: impl IntoIterator<Item = &'static ProviderShape>) -> Registry {
        Registry { shapes: shapes.into_iter().collect() }
    }

    /// The providers of `slot`, in registration order.
    pub fn providers(&self, slot: Slot) -> impl Iterator<Item = &'static ProviderShape> + '_ {
        self.shapes.iter().copied().filter(move |shape| shape.slot == slot)
    }

    pub fn find(&self, slot: Slot, name: &str) -> Option<&'static ProviderShape> {
        self.providers(slot).find(|shape| shape.name == name)
    }

    pub(crate) fn names(&self, slot: Slot) -> Vec<&'static str> {
        self.providers(slot).map(|shape| shape.name).collect()
    }

    /// What a cloud catalog may name instead of a local-only provider of `slot`: the slot's
    /// providers that run anywhere, as "`a`, `b` or `c`".
    pub fn cloud_alternatives(&self, slot: Slot) -> String {
        let names: Vec<String> = self.providers(slot).filter(|shape| !shape.local_only).map(|shape| format!("`{}`", shape.name)).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            Some((last, _)) => last.clone(),
            None => "nothing yet".into(),
        }
    }
}

pub const PROVIDER: &str = "provider";

/// A grammar for names: an ASCII letter or digit, then letters, digits and `extra` (`-` last).
pub(crate) struct NameRule {
    pub what: &'static str,
    pub extra: &'static [char],
    pub max_chars: usize,
}

/// Service, environment and wave names: they end up in store keys, schedule names,
/// file names and `BATON_*` values, so no `/`, `,`, spaces or leading `-`/`.`.
/// 63 is a DNS label's length, as for most names they travel next to.
pub(crate) const NAME: NameRule = NameRule { what: "a name", extra: &['.', '_', '-'], max_chars: 63 };

/// Deploy targets, as deploy tools name them: ECS service names (up to 255
/// characters), Lambda function names and ARNs (hence `:`), Argo CD applications.
/// No `/`: scripts use the target in paths (`$BATON_WORKSPACE/targets/$BATON_TARGET`);
/// no `,`: `BATON_TARGETS` joins a wave's targets with commas.
pub(crate) const TARGET: NameRule = NameRule { what: "a target name", extra: &['.', '_', ':', '-'], max_chars: 255 };

/// Failure-domain labels of a topology's targets (`region`, `az`, `cell`): they name the waves
/// computed from them (`az-2`), so they stay short and plain.
pub(crate) const LABEL: NameRule = NameRule { what: "a label", extra: &['_', '-'], max_chars: 32 };

/// A percentage as a policy writes it: `10%`, `12.5%` (see `topology::Percent`).
const PERCENT_PATTERN: &str = "^[0-9]{1,3}(\\.[0-9]{1,2})?%$";

impl NameRule {
    /// Why `text` breaks the rule, if it does.
    pub fn check(&self, text: &str) -> Result<(), String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || self.extra.contains(&c);
        match text.chars().next() {
            None => Err("found an empty string".into()),
            Some(first) if !first.is_ascii_alphanumeric() => Err(format!("found `{}` first", first.escape_debug())),
            Some(_) => match text.chars().find(|c| !allowed(*c)) {
                Some(bad) => Err(format!("found `{}`", bad.escape_debug())),
                None if text.chars().count() > self.max_chars => Err(format!("found {} characters", text.chars().count())),
                None => Ok(()),
            },
        }
    }

    pub fn expected(&self) -> String {
        let quoted: Vec<String> = self.extra.iter().map(|c| format!("`{c}`")).collect();
        let (last, rest) = quoted.split_last().expect("a rule allows some punctuation");
        format!(
            "{} of letters, digits, {} and {last}, starting with a letter or digit, at most {} characters",
            self.what,
            rest.join(", "),
            self.max_chars
        )
    }

    /// `extra` ends with `-`, which a regex class then takes literally.
    fn pattern(&self) -> String {
        let extra: String = self.extra.iter().collect();
        format!("^[A-Za-z0-9][A-Za-z0-9{extra}]*$")
    }

    fn schema(&self) -> Json {
        json!({ "type": "string", "pattern": self.pattern(), "maxLength": self.max_chars })
    }
}

pub const fn field(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field { name, required: false, kind, doc, default: None }
}

pub const fn required(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field { name, required: true, kind, doc, default: None }
}

pub const fn defaulted(name: &'static str, kind: Kind, default: u64, doc: &'static str) -> Field {
    Field { name, required: false, kind, doc, default: Some(default) }
}

pub const fn shape(fields: &'static [Field]) -> Shape {
    Shape { fields, providers: None, at_least_one: &[], unknown_hint: None }
}

// ------------------------------------------------------------------ Baton

pub(crate) const WAVE: Shape = shape(&[
    required("name", Kind::Name, "Wave name, unique in the service (`canary`, `one-region`, ...)."),
    required("targets", Kind::Targets, "Targets deployed in this wave; each appears in one wave only."),
    defaulted(
        "bake",
        Kind::Duration { min: 0, max: Kind::NO_MAX },
        0,
        "Time the wave's health gates are watched before the next wave starts.",
    ),
    defaulted(
        "deploy-timeout",
        Kind::Duration { min: 60, max: Kind::NO_MAX },
        3600,
        "How long the wave's targets may take to deploy (or to roll back) before the wave fails.",
    ),
    field("approval", Kind::Object(&APPROVAL), "A person approves the wave before it deploys (Slack buttons or `baton approve`)."),
]);

/// A wave's approval gate (`deploy.waves[].approval`), or the organisation's default
/// (`BATON_APPROVAL_DEFAULT`) for production waves.
pub(crate) const APPROVAL: Shape = shape(&[
    required("required", Kind::Bool, "Whether the wave waits for a person's approval; `false` opts out of the organisation's default."),
    field(
        "approvers",
        Kind::Approvers,
        "Who may approve: Slack user ids (`U...`), Slack user group ids (`S...`), IAM principal ARNs or local user names (for `baton approve`). Required when `required` is true.",
    ),
    defaulted(
        "timeout",
        Kind::Duration { min: 1, max: 31_536_000 },
        14_400,
        "How long the release waits for an answer (at most a year, Step Functions' limit).",
    ),
    field(
        "on-timeout",
        Kind::Enum(&["rollback", "stop"]),
        "Past the timeout: `rollback` (default) undoes the waves that ran; `stop` ends the release before the wave and leaves them.",
    ),
    field("four-eyes", Kind::Bool, "The release's own author may not approve it (default false)."),
]);

/// `waves: {from: topology, ...}`: the waves computed from the block's labeled `targets`
/// (`rules::topology`).
pub(crate) const TOPOLOGY_WAVES: Shape = shape(&[
    required("from", Kind::Enum(&["topology"]), "The waves are computed from `targets` and their labels."),
    required(
        "order",
        Kind::WaveOrder,
        "Growing steps, each a wave or more: `one` target, a label (the rest of one of its domains: `az`, `region`), \
         `rest`; or cumulative shares of the targets (`[1%, 10%, 50%, 100%]`).",
    ),
    field(
        "max-share",
        Kind::Shares,
        "The most of any failure domain one wave may hold: a percentage for every label, or per label (`{region: 50%}`).",
    ),
    defaulted("bake", Kind::Duration { min: 0, max: Kind::NO_MAX }, 0, "Every computed wave's bake."),
    defaulted("deploy-timeout", Kind::Duration { min: 60, max: Kind::NO_MAX }, 3600, "Every computed wave's deploy timeout."),
]);

pub(crate) const BUILD: Shape = Shape { fields: &[], providers: Some(Slot::Build), at_least_one: &[], unknown_hint: None };

pub(crate) const DEPLOY: Shape = Shape {
    fields: &[
        required(
            "waves",
            Kind::Waves,
            "Ordered from the smallest failure domain to the largest; or `{from: topology, ...}` to compute them from `targets`.",
        ),
        field("targets", Kind::LabeledTargets, "Targets with failure-domain labels, for `waves: {from: topology}`."),
    ],
    providers: Some(Slot::Deploy),
    at_least_one: &[],
    unknown_hint: None,
};

pub(crate) const GATE: Shape = Shape {
    fields: &[
        defaulted("consecutive", Kind::Count { min: 1 }, 1, "Healthy samples in a row the gate must show before the wave passes."),
        defaulted("failures", Kind::Count { min: 1 }, 1, "Unhealthy samples in a row that fail the wave."),
    ],
    providers: Some(Slot::Gate),
    at_least_one: &[],
    unknown_hint: None,
};

pub(crate) const HEALTH: Shape = Shape {
    fields: &[
        defaulted("interval", Kind::Duration { min: 1, max: Kind::NO_MAX }, 30, "Time between two samples of the gates."),
        required("gates", Kind::Gates, "Sampled from the end of each wave's deploy to the end of its bake; all must hold."),
    ],
    providers: None,
    at_least_one: &[],
    unknown_hint: Some("each gate is an item of `gates`, e.g. `gates: [{provider: http, url: ...}]`"),
};

/// An item of `notify`: the notifier its `provider` picks, with that notifier's fields.
pub(crate) const NOTIFIER: Shape = Shape { fields: &[], providers: Some(Slot::Notify), at_least_one: &[], unknown_hint: None };

/// An item of `telemetry`: the exporter its `provider` picks, with that exporter's fields.
pub(crate) const EXPORTER: Shape = Shape { fields: &[], providers: Some(Slot::Export), at_least_one: &[], unknown_hint: None };

/// The `extensions.baton` block.
pub(crate) const DELIVERY: Shape = shape(&[
    required("environment", Kind::Name, "Environment this entry releases to (`production`, `staging`)."),
    required("release-branch", Kind::Text, "Merges to this branch start a release."),
    field("feature-branch", Kind::Text, "Released on its schedule or by hand, never by merges."),
    field("schedule", Kind::Schedule, "EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`."),
    field("team", Kind::Text, "Team that owns releases; defaults to the catalog's team/owner."),
    field("on-call", Kind::Text, "On-call rotation paged when a release needs a person."),
    required("build", Kind::Object(&BUILD), "How the artifact is built."),
    defaulted(
        "build-timeout",
        Kind::Duration { min: 60, max: Kind::NO_MAX },
        7200,
        "How long the build may run before the release cancels it and fails.",
    ),
    required("deploy", Kind::Object(&DEPLOY), "How and where it is deployed, wave by wave."),
    required("health", Kind::Object(&HEALTH), "How each wave is judged, through its bake."),
    field(
        "notify",
        Kind::Notifiers,
        "Where the team hears about releases: notifier blocks, each with its `provider`, or a mapping from notifier names to their fields.",
    ),
    field(
        "telemetry",
        Kind::List(&EXPORTER),
        "Where the release's events are exported (Datadog, CloudWatch); an exporter that fails never fails the release.",
    ),
    field("freeze", Kind::Object(&FREEZE), "When the service's waves may not start; the organisation's `freezes.yaml` adds its own."),
    field("events", Kind::Object(&EVENTS), "Whether builds and CloudWatch-gated bakes wait for the providers' events instead of polling."),
]);

pub(crate) const EVENTS: Shape = shape(&[
    field(
        "wait",
        Kind::Bool,
        "Park builds and bakes whose gates are all named CloudWatch alarms until the provider's event (default false).",
    ),
    defaulted(
        "safety-net",
        Kind::Duration { min: 60, max: 86_400 },
        300,
        "While parked, poll this often all the same, so a lost event costs at most this long.",
    ),
]);

pub(crate) const FREEZE_WINDOW: Shape = shape(&[
    required("name", Kind::Name, "Window name, unique in its list; releases held or refused name it."),
    required("reason", Kind::Text, "Why nothing ships then: shown to whoever is held."),
    field("environments", Kind::TextList, "Environments it applies to; all when absent."),
    field("start", Kind::Timestamp, "A one-off window's start (RFC 3339, with an offset)."),
    field("end", Kind::Timestamp, "A one-off window's end (RFC 3339), after its start."),
    field(
        "every",
        Kind::Cron,
        "A recurring window's start: `minute hour day-of-month month day-of-week` on the wall clock of `time-zone`.",
    ),
    field("time-zone", Kind::TimeZone, "A recurring window's IANA time zone (`Europe/Paris`); daylight-saving changes are followed."),
    field(
        "duration",
        Kind::Duration { min: 60, max: super::freeze::MAX_WINDOW_DURATION },
        "A recurring window's length on the wall clock: `64h` from Friday 16:00 ends Monday 08:00 local, whatever the clocks did.",
    ),
]);

pub(crate) const FREEZE: Shape = shape(&[
    field(
        "on-freeze",
        Kind::Enum(&["wait", "refuse"]),
        "A release that would start inside a window waits for its end (`wait`, the default) or is refused (`refuse`); between waves it always waits.",
    ),
    field("windows", Kind::FreezeWindows, "One-off windows (`start`, `end`) and recurring ones (`every`, `time-zone`, `duration`)."),
]);

// ------------------------------------------------------------------ Datadog

const TOP_LEVEL_HINT: &str = "Datadog's schema allows no other top-level keys: Baton's settings go under `extensions.baton`";

const CONTACT: Shape =
    shape(&[field("name", Kind::AnyText, ""), required("type", Kind::AnyText, ""), required("contact", Kind::AnyText, "")]);

const LINK: Shape = shape(&[
    required("name", Kind::AnyText, ""),
    required("type", Kind::AnyText, ""),
    required("url", Kind::AnyText, ""),
    field("provider", Kind::AnyText, ""),
]);

const PAGERDUTY: Shape = shape(&[required("service-url", Kind::AnyText, "")]);
const OPSGENIE: Shape = shape(&[required("service-url", Kind::AnyText, ""), field("region", Kind::Enum(&["US", "EU"]), "")]);
const INTEGRATIONS_V2_2: Shape = shape(&[field("pagerduty", Kind::Object(&PAGERDUTY), ""), field("opsgenie", Kind::Object(&OPSGENIE), "")]);

/// Datadog service definition v2.2 (service-catalog/v2.2/schema.json).
pub(crate) const DATADOG_V2_2: Shape = Shape {
    fields: &[
        required("schema-version", Kind::Enum(&["v2.2"]), ""),
        required("dd-service", Kind::AnyText, ""),
        field("team", Kind::AnyText, ""),
        field("application", Kind::AnyText, ""),
        field("description", Kind::AnyText, ""),
        field("tier", Kind::AnyText, ""),
        field("lifecycle", Kind::AnyText, ""),
        field("type", Kind::Enum(&["web", "db", "cache", "function", "browser", "mobile", "custom"]), ""),
        field("languages", Kind::TextList, ""),
        field("contacts", Kind::List(&CONTACT), ""),
        field("links", Kind::List(&LINK), ""),
        field("tags", Kind::TextList, ""),
        field("integrations", Kind::Object(&INTEGRATIONS_V2_2), ""),
        field("extensions", Kind::Mapping, ""),
        field("ci-pipeline-fingerprints", Kind::TextList, ""),
    ],
    providers: None,
    at_least_one: &[],
    unknown_hint: Some(TOP_LEVEL_HINT),
};

const OWNER: Shape = shape(&[required("name", Kind::AnyText, ""), field("type", Kind::AnyText, "")]);

const METADATA_V3: Shape = shape(&[
    field("id", Kind::Text, ""),
    field("inheritFrom", Kind::AnyText, ""),
    field("managed", Kind::Mapping, ""),
    field("owner", Kind::AnyText, ""),
    field("additionalOwners", Kind::List(&OWNER), ""),
    required("name", Kind::Text, ""),
    field("description", Kind::AnyText, ""),
    field("displayName", Kind::AnyText, ""),
    field("tags", Kind::TextList, ""),
    field("contacts", Kind::List(&CONTACT), ""),
    field("links", Kind::List(&LINK), ""),
]);

/// Datadog v3 entity envelope (service-catalog/v3/entity.schema.json).
pub(crate) const DATADOG_V3: Shape = Shape {
    fields: &[
        required("apiVersion", Kind::Enum(&["v3"]), ""),
        required("kind", Kind::Text, ""),
        required("metadata", Kind::Object(&METADATA_V3), ""),
        field("spec", Kind::Mapping, ""),
        field("integrations", Kind::Mapping, ""),
        field("datadog", Kind::Mapping, ""),
        field("extensions", Kind::Mapping, ""),
    ],
    providers: None,
    at_least_one: &[],
    unknown_hint: Some(TOP_LEVEL_HINT),
};

/// `spec` of a v3 `kind: service` entity (service-catalog/v3/service.schema.json).
pub(crate) const SERVICE_SPEC_V3: Shape = shape(&[
    field("lifecycle", Kind::Text, ""),
    field("tier", Kind::Text, ""),
    field("type", Kind::AnyText, ""),
    field("languages", Kind::TextList, ""),
    field("dependsOn", Kind::TextList, ""),
]);

// ------------------------------------------------------------------ messages

impl Kind {
    /// A [`Kind::Duration`]'s `max` when it has none.
    pub const NO_MAX: u64 = u64::MAX;

    /// What a value of this kind looks like, for "expected ..." messages.
    pub fn expected(&self) -> String {
        match self {
            Kind::AnyText => "a string".into(),
            Kind::Text => "a non-empty string".into(),
            Kind::Name => NAME.expected(),
            Kind::Target => TARGET.expected(),
            Kind::Enum(values) => format!("one of {}", quoted_list(values)),
            Kind::TextList => "a list of strings".into(),
            Kind::Targets => "a non-empty list of target names".into(),
            Kind::Url => "an http:// or https:// URL".into(),
            Kind::WaveTarget => "a target of the block's waves".into(),
            Kind::Checked(rule) => rule.expected.into(),
            Kind::CheckedScalars(rule) => format!("a mapping of names ({}) to strings, integers or booleans", rule.expected),
            Kind::Duration { min: 0, max: Kind::NO_MAX } => "a duration such as 30s, 5m or 1h (or a number of seconds)".into(),
            Kind::Duration { max: Kind::NO_MAX, .. } => "a positive duration such as 30s, 5m or 1h (or a number of seconds)".into(),
            Kind::Duration { min, max } => format!("a duration from {}s to {}s such as 30s, 5m or 1h (or a number of seconds)", min, max),
            Kind::Count { min } => format!("a whole number of at least {min}"),
            Kind::Between { min, max } => format!("a whole number from {min} to {max}"),
            Kind::WorkingDir => "a directory, relative to the catalog file's directory".into(),
            Kind::RelativePath => "a file path, relative to the working directory".into(),
            Kind::Argv => "a command as a list of strings, program first (e.g. [\"sh\", \"build.sh\"])".into(),
            Kind::Env => "a mapping of environment variable names to strings".into(),
            Kind::EnvNames => "a list of environment variable names".into(),
            Kind::EnvName => "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
            Kind::Secret => "a secret reference: `env:NAME`, `ssm:/parameter/name` or `secrets-manager:secret-id`".into(),
            Kind::Schedule => "an EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`".into(),
            Kind::Timestamp => "an RFC 3339 time with its offset, e.g. `2026-12-24T18:00:00+01:00`".into(),
            Kind::TimeZone => "an IANA time zone such as `Europe/Paris` or `UTC`".into(),
            Kind::Cron => "a cron expression `minute hour day-of-month month day-of-week`, e.g. `0 16 * * FRI`".into(),
            Kind::FreezeWindows => {
                "a list of freeze windows, each with `name`, `reason` and `start`/`end` or `every`/`time-zone`/`duration`".into()
            }
            Kind::Object(_) | Kind::Mapping => "a mapping".into(),
            Kind::List(_) => "a list of mappings".into(),
            Kind::Waves => "a non-empty list of waves, each with `name` and `targets`, or `{from: topology, order: [...]}`".into(),
            Kind::LabeledTargets => "a non-empty list of targets, each a mapping of its `name` and its labels (`region: eu-west-1`)".into(),
            Kind::WaveOrder => "a non-empty list of steps (`one`, a label, `rest`) or of percentages (`10%`)".into(),
            Kind::Shares => "a percentage (`50%`) or a mapping of labels to percentages (`{region: 50%}`)".into(),
            Kind::Gates => "a non-empty list of gates, each with a `provider`".into(),
            Kind::Notifiers => "a list of notifiers, each with a `provider`, or a mapping from notifier names to their fields".into(),
            Kind::HttpStatuses => "a list of HTTP status codes (100-599)".into(),
            Kind::Ids => "a non-empty list of ids (positive whole numbers)".into(),
            Kind::Bool => "`true` or `false`".into(),
            Kind::Approvers => "a non-empty list of approvers (Slack user or group ids, IAM principal ARNs, user names)".into(),
        }
    }
}

pub(crate) fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

// ------------------------------------------------------------------ JSON Schema

pub(crate) const SCHEMA_ID: &str = "https://raw.githubusercontent.com/baton-release/baton/main/schema/baton-extension.schema.json";

/// JSON Schema (draft 2020-12) of the `extensions.baton` block, for editors.
pub fn baton_extension_schema(registry: &Registry) -> Json {
    let mut schema = object_schema(&DELIVERY, registry);
    let root = schema.as_object_mut().expect("object schema");
    let mut head = Map::new();
    head.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    head.insert("$id".into(), json!(SCHEMA_ID));
    head.insert("title".into(), json!("Baton delivery block (extensions.baton)"));
    head.insert(
        "description".into(),
        json!(
            "How a service in a Datadog service definition (v2.2 or v3) is built, deployed wave by wave, \
               health-checked and announced. See docs/catalog.md."
        ),
    );
    head.append(root);
    Json::Object(head)
}

fn object_schema(shape: &Shape, registry: &Registry) -> Json {
    let Some(slot) = shape.providers else {
        return closed_object(shape.fields.iter(), &[], shape.at_least_one, registry);
    };
    let variants: Vec<Json> = registry
        .providers(slot)
        .map(|provider| {
            let at_least_one = provider.at_least_one.map_or(shape.at_least_one, |(fields, _)| fields);
            let mut schema = closed_object(
                shape.fields.iter().chain(provider.fields),
                &[(PROVIDER, json!({ "const": provider.name, "description": provider.doc }))],
                at_least_one,
                registry,
            );
            schema["required"].as_array_mut().expect("required list").insert(0, json!(PROVIDER));
            schema
        })
        .collect();
    json!({
        "type": "object",
        "required": [PROVIDER],
        "properties": { PROVIDER: { "enum": registry.names(slot) } },
        "oneOf": variants,
    })
}

fn closed_object<'a>(fields: impl Iterator<Item = &'a Field>, extra: &[(&str, Json)], at_least_one: &[&str], registry: &Registry) -> Json {
    let mut properties = Map::new();
    for (name, schema) in extra {
        properties.insert((*name).into(), schema.clone());
    }
    let mut required = Vec::new();
    for field in fields {
        let mut schema = kind_schema(&field.kind, registry);
        if !field.doc.is_empty() {
            schema["description"] = json!(field.doc);
        }
        if let Some(default) = field.default {
            schema["default"] = json!(default);
        }
        properties.insert(field.name.into(), schema);
        if field.required {
            required.push(json!(field.name));
        }
    }
    let mut schema = json!({ "type": "object", "additionalProperties": false, "required": required, "properties": properties });
    if !at_least_one.is_empty() {
        schema["anyOf"] = at_least_one.iter().map(|name| json!({ "required": [name] })).collect();
    }
    schema
}

/// What [`is_env_name`](super::validate::is_env_name) accepts.
const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

fn kind_schema(kind: &Kind, registry: &Registry) -> Json {
    match kind {
        Kind::AnyText => json!({ "type": "string" }),
        Kind::Text => json!({ "type": "string", "minLength": 1 }),
        Kind::Name => NAME.schema(),
        Kind::Target => TARGET.schema(),
        Kind::Enum(values) => json!({ "enum": values }),
        Kind::TextList => json!({ "type": "array", "items": { "type": "string" } }),
        Kind::Targets => json!({ "type": "array", "minItems": 1, "items": TARGET.schema() }),
        Kind::Url => json!({ "type": "string", "pattern": "^https?://." }),
        Kind::WaveTarget => TARGET.schema(),
        Kind::Checked(rule) if rule.integers => json!({ "oneOf": [{ "type": "integer", "minimum": 1 }, (rule.schema)()] }),
        Kind::Checked(rule) => (rule.schema)(),
        Kind::CheckedScalars(rule) => json!({
            "type": "object",
            "propertyNames": (rule.schema)(),
            "additionalProperties": { "type": ["string", "integer", "boolean"] },
        }),
        Kind::Duration { min, max } => {
            let mut integer = json!({ "type": "integer", "minimum": min });
            if *max != Kind::NO_MAX {
                integer["maximum"] = json!(max);
            }
            json!({ "oneOf": [integer, { "type": "string", "pattern": "^([0-9]+|([0-9]+[smh])+)$" }] })
        }
        Kind::Count { min } => json!({ "type": "integer", "minimum": min, "maximum": u32::MAX }),
        Kind::Between { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Kind::WorkingDir | Kind::RelativePath => json!({ "type": "string", "minLength": 1 }),
        Kind::Argv => json!({ "type": "array", "minItems": 1, "items": { "type": "string" } }),
        Kind::EnvNames => json!({ "type": "array", "items": { "type": "string", "pattern": ENV_NAME_PATTERN } }),
        Kind::Env => json!({
            "type": "object",
            "propertyNames": { "pattern": ENV_NAME_PATTERN },
            "additionalProperties": { "type": "string" },
        }),
        Kind::EnvName => json!({ "type": "string", "pattern": ENV_NAME_PATTERN }),
        Kind::Secret => json!({ "oneOf": [
            { "type": "string", "pattern": "^(env|ssm|secrets-manager):.+$" },
            {
                "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
                "properties": {
                    "env": { "type": "string", "minLength": 1 },
                    "ssm": { "type": "string", "minLength": 1 },
                    "secrets-manager": { "type": "string", "minLength": 1 },
                },
            },
        ] }),
        Kind::Schedule => json!({ "type": "string", "pattern": "^(cron|rate|at)\\(.+\\)$" }),
        Kind::Timestamp => json!({ "type": "string", "format": "date-time" }),
        Kind::TimeZone => json!({ "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$" }),
        Kind::Cron => json!({ "type": "string", "pattern": "^\\S+(\\s+\\S+){4}$" }),
        Kind::FreezeWindows => {
            let mut window = object_schema(&FREEZE_WINDOW, registry);
            window["oneOf"] = json!([
                { "required": ["start", "end"], "not": { "anyOf": [{ "required": ["every"] }, { "required": ["time-zone"] }, { "required": ["duration"] }] } },
                { "required": ["every", "time-zone", "duration"], "not": { "anyOf": [{ "required": ["start"] }, { "required": ["end"] }] } },
            ]);
            json!({ "type": "array", "items": window })
        }
        Kind::Object(shape) => object_schema(shape, registry),
        Kind::List(shape) => json!({ "type": "array", "items": object_schema(shape, registry) }),
        Kind::Mapping => json!({ "type": "object" }),
        Kind::Waves => json!({ "oneOf": [
            { "type": "array", "minItems": 1, "items": object_schema(&WAVE, registry) },
            object_schema(&TOPOLOGY_WAVES, registry),
        ] }),
        Kind::LabeledTargets => json!({
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": { "name": TARGET.schema() },
                "propertyNames": LABEL.schema(),
                "additionalProperties": NAME.schema(),
            },
        }),
        Kind::WaveOrder => json!({
            "type": "array",
            "minItems": 1,
            "items": { "type": "string", "anyOf": [LABEL.schema(), { "pattern": PERCENT_PATTERN }] },
        }),
        Kind::Shares => {
            let percent = json!({ "type": "string", "pattern": PERCENT_PATTERN });
            json!({ "oneOf": [percent, { "type": "object", "propertyNames": LABEL.schema(), "additionalProperties": percent }] })
        }
        Kind::Gates => json!({ "type": "array", "minItems": 1, "items": object_schema(&GATE, registry) }),
        Kind::Notifiers => {
            let keyed: Map<String, Json> = registry
                .providers(Slot::Notify)
                .map(|provider| {
                    let at_least_one = provider.at_least_one.map_or(&[][..], |(fields, _)| fields);
                    let mut schema = closed_object(provider.fields.iter(), &[], at_least_one, registry);
                    schema["description"] = json!(provider.doc);
                    (provider.name.to_owned(), schema)
                })
                .collect();
            // `items` applies to the list form only, `properties` to the keyed form only.
            json!({
                "type": ["array", "object"],
                "items": object_schema(&NOTIFIER, registry),
                "additionalProperties": false,
                "properties": keyed,
            })
        }
        Kind::HttpStatuses => json!({ "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 } }),
        Kind::Ids => json!({ "type": "array", "minItems": 1, "items": { "type": "integer", "minimum": 1 } }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Approvers => json!({ "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 } }),
    }
}

/// A registry for the domain's own tests, which cannot see the provider crates: one `script`
/// provider per slot, taking a command.
#[cfg(test)]
pub(crate) fn test_registry() -> Registry {
    const SCRIPT: &[Field] = &[required("command", Kind::Argv, "")];
    const fn script(slot: Slot) -> ProviderShape {
        ProviderShape {
            slot,
            name: "script",
            doc: "",
            fields: SCRIPT,
            at_least_one: None,
            local_only: false,
            run_word: None,
            through_model: |block| Ok(block.clone()),
        }
    }
    static SCRIPTS: [ProviderShape; 5] =
        [script(Slot::Build), script(Slot::Deploy), script(Slot::Gate), script(Slot::Export), script(Slot::Notify)];
    Registry::new(&SCRIPTS)
}

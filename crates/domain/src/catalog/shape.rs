//! What a catalog document may contain, as data: the validator walks these
//! tables, and `schema/baton-extension.schema.json` is generated from the
//! Baton ones (a test keeps the checked-in file equal to the generated one, and
//! another keeps both equal to the serde model in `mod.rs`).

use serde_json::{Map, Value as Json, json};

pub(crate) struct Field {
    pub name: &'static str,
    pub required: bool,
    pub kind: Kind,
    pub doc: &'static str,
    /// Default the model fills in when the field is absent (numbers only, for the schema).
    pub default: Option<u64>,
}

pub(crate) enum Kind {
    /// Any string (Datadog's free-text fields).
    AnyText,
    /// A non-empty string.
    Text,
    /// A name usable in keys, file names and environment values ([`NAME`]).
    Name,
    /// One deploy target ([`TARGET`]).
    Target,
    /// One of a closed set of strings.
    Enum(&'static [&'static str]),
    /// A list of strings.
    TextList,
    /// A non-empty list of [`Kind::Target`] (a wave's targets).
    Targets,
    /// An http(s) URL.
    Url,
    /// A GitLab project's numeric id or path ([`GitLabProject::check`](super::GitLabProject::check)).
    GitLabProject,
    /// A Buildkite organization or pipeline slug ([`check_slug`](super::check_slug)).
    Slug,
    /// A CircleCI project slug ([`check_circleci_project`](super::check_circleci_project)).
    CircleCiProject,
    /// CircleCI pipeline parameters: names as [`check_pipeline_parameter_name`](super::check_pipeline_parameter_name)
    /// allows, values strings, integers or booleans.
    PipelineParameters,
    /// A whole number of seconds: `90`, `"90s"`, `"5m"`, `"1h30m"`; at least `min`.
    Duration { min: u64 },
    /// A whole number of at least `min` (fits in u32).
    Count { min: u64 },
    /// A program and its arguments, run without a shell.
    Argv,
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
    /// A mapping checked field by field.
    Object(&'static Shape),
    /// A list of mappings of one shape.
    List(&'static Shape),
    /// Any mapping (free-form sections such as `extensions`).
    Mapping,
    /// Baton's deploy waves: a non-empty list of [`WAVE`] with unique names and targets.
    Waves,
    /// A non-empty list of [`GATE`].
    Gates,
    /// A list of HTTP status codes (100-599).
    HttpStatuses,
}

pub(crate) struct Shape {
    pub fields: &'static [Field],
    /// When non-empty, the mapping's `provider` picks one of these and its fields join `fields`.
    pub variants: &'static [Variant],
    /// At least one of these fields must be present.
    pub at_least_one: &'static [&'static str],
    /// Appended to "unknown field" messages.
    pub unknown_hint: Option<&'static str>,
}

pub(crate) struct Variant {
    pub provider: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

pub(crate) const PROVIDER: &str = "provider";

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

const fn field(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field { name, required: false, kind, doc, default: None }
}

const fn required(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field { name, required: true, kind, doc, default: None }
}

const fn defaulted(name: &'static str, kind: Kind, default: u64, doc: &'static str) -> Field {
    Field { name, required: false, kind, doc, default: Some(default) }
}

const fn shape(fields: &'static [Field]) -> Shape {
    Shape { fields, variants: &[], at_least_one: &[], unknown_hint: None }
}

// ------------------------------------------------------------------ Baton

const WORKING_DIR: Field = field("working-dir", Kind::Text, "Directory the command runs in; relative to the catalog file's directory.");
const ENV: Field = field("env", Kind::Env, "Extra environment variables (`BATON_*` are reserved).");
const PASS_ENV: Field = field(
    "pass-env",
    Kind::EnvNames,
    "Variables of Baton's environment the command also gets; otherwise it gets only PATH, HOME, USER, LOGNAME, SHELL, \
     TMPDIR, TERM, TZ and the locale (`LANG`, `LC_*`).",
);
const TIMEOUT: Field = field("timeout", Kind::Duration { min: 1 }, "Kill the command after this long.");

const BUILD_COMMAND: &[Field] = &[
    required("command", Kind::Argv, "Program and arguments, run without a shell."),
    WORKING_DIR,
    field(
        "artifact-file",
        Kind::Text,
        "File the build writes the artifact reference to (relative to the working directory); \
         otherwise the last line of stdout.",
    ),
    ENV,
    PASS_ENV,
    TIMEOUT,
];

const GITHUB_APP: Shape = shape(&[
    required("app-id", Kind::Text, "The app's id or client id."),
    required("installation-id", Kind::Count { min: 1 }, "The app's installation on the repository's owner."),
    required("private-key", Kind::Secret, "The app's private key, PEM (secret reference)."),
]);

const BUILD_GITHUB_ACTIONS: &[Field] = &[
    required("repository", Kind::Text, "`owner/name` of the repository whose workflow builds the service."),
    required("workflow", Kind::Text, "The workflow's file name (`release.yml`) or id; it takes `workflow_dispatch`."),
    field("inputs", Kind::Env, "Workflow inputs, besides `baton_release_id` and `baton_sha` (which the workflow must declare)."),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{run-id}` and `{release-id}` \
         filled from the run (e.g. `ghcr.io/acme/web:{short-sha}`).",
    ),
    field("api-url", Kind::Url, "GitHub Enterprise Server's API, `https://HOST/api/v3`; github.com's by default."),
    field("token", Kind::Secret, "A token with `actions: write` on the repository (secret reference); or `app`."),
    field("app", Kind::Object(&GITHUB_APP), "A GitHub App installed on the repository, instead of `token`."),
];

const BUILD_GITLAB_CI: &[Field] = &[
    required("project", Kind::GitLabProject, "The project's numeric id or its path `group/name`."),
    field(
        "token",
        Kind::Secret,
        "A project or personal access token with the `api` scope (secret reference): creates the pipeline \
         unless `trigger-token` is set, reads and cancels it.",
    ),
    field(
        "trigger-token",
        Kind::Secret,
        "A pipeline trigger token (secret reference): creates the pipeline through the trigger API; \
         without `token`, Baton can follow only pipelines anyone may read, and cannot cancel them.",
    ),
    field("variables", Kind::Env, "Pipeline variables, besides `BATON_RELEASE_ID` and `BATON_SHA`."),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-id}` and `{release-id}` \
         filled from the pipeline (e.g. `registry.gitlab.com/acme/web:{short-sha}`).",
    ),
    field("api-url", Kind::Url, "A self-managed instance's API, `https://HOST/api/v4`; gitlab.com's by default."),
];

const BUILD_BUILDKITE: &[Field] = &[
    required("organization", Kind::Slug, "The organization's slug, as in its Buildkite URL."),
    required("pipeline", Kind::Slug, "The pipeline's slug, as in its Buildkite URL."),
    required("token", Kind::Secret, "An API access token with `read_builds` and `write_builds` (secret reference)."),
    field("env", Kind::Env, "Build environment variables, besides `BATON_RELEASE_ID` and `BATON_SHA`."),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}` and `{release-id}` \
         filled from the build.",
    ),
    field("api-url", Kind::Url, "Buildkite's REST API; `https://api.buildkite.com/v2` by default."),
];

const BUILD_CIRCLECI: &[Field] = &[
    required("project", Kind::CircleCiProject, "The project slug: `gh/acme/web`, `bb/acme/web` or `circleci/<org-id>/<project-id>`."),
    required("token", Kind::Secret, "A personal API token of a user who can trigger the project's pipelines (secret reference)."),
    field(
        "parameters",
        Kind::PipelineParameters,
        "Pipeline parameters, besides `baton-release-id` and `baton-sha` (the config must declare them all).",
    ),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-number}` and `{release-id}` \
         filled from the pipeline.",
    ),
    field("api-url", Kind::Url, "CircleCI's API; `https://circleci.com/api/v2` by default."),
];

const BUILD_CODEBUILD: &[Field] = &[
    required("project", Kind::Text, "The CodeBuild project's name; its build runs the release's commit (else its branch)."),
    field("env", Kind::Env, "Environment overrides, besides `BATON_RELEASE_ID`, `BATON_SHA` and `BATON_BRANCH`."),
    field(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}` and `{release-id}` \
         filled from the build; used when `artifact-variable` is unset or the build did not export it.",
    ),
    field(
        "artifact-variable",
        Kind::EnvName,
        "A variable the buildspec exports (`env.exported-variables`) holding the artifact's reference; \
         wins over `artifact` when the build exports it.",
    ),
    REGION,
    ROLE_ARN,
];

pub(crate) const BUILD: Shape = Shape {
    fields: &[],
    variants: &[
        Variant { provider: "command", doc: "Runs a local command.", fields: BUILD_COMMAND },
        Variant {
            provider: "github-actions",
            doc: "Dispatches a GitHub Actions workflow and polls its run.",
            fields: BUILD_GITHUB_ACTIONS,
        },
        Variant { provider: "gitlab-ci", doc: "Creates a GitLab CI pipeline and polls it.", fields: BUILD_GITLAB_CI },
        Variant { provider: "buildkite", doc: "Creates a Buildkite build and polls it.", fields: BUILD_BUILDKITE },
        Variant { provider: "circleci", doc: "Triggers a CircleCI pipeline and polls its workflows.", fields: BUILD_CIRCLECI },
        Variant { provider: "codebuild", doc: "Starts an AWS CodeBuild build and polls it.", fields: BUILD_CODEBUILD },
    ],
    at_least_one: &[],
    unknown_hint: None,
};

pub(crate) const WAVE: Shape = shape(&[
    required("name", Kind::Name, "Wave name, unique in the service (`canary`, `one-region`, ...)."),
    required("targets", Kind::Targets, "Targets deployed in this wave; each appears in one wave only."),
    defaulted("bake", Kind::Duration { min: 0 }, 0, "Time the wave's health gates are watched before the next wave starts."),
]);

const DEPLOY_COMMAND: &[Field] = &[
    required("command", Kind::Argv, "Program and arguments, run once per target."),
    field("rollback-command", Kind::Argv, "Run instead of `command` on rollback (default: `command` with the previous artifact)."),
    WORKING_DIR,
    ENV,
    PASS_ENV,
    TIMEOUT,
];

const REGION: Field = field("region", Kind::Text, "AWS region of the calls (the process's region by default).");
const ROLE_ARN: Field = field("role-arn", Kind::Text, "IAM role assumed for the calls (another account's, say).");

const PLACEMENT: Shape = shape(&[
    required("target", Kind::Target, "A target of the waves."),
    field("region", Kind::Text, "The target's region, instead of the block's."),
    field("role-arn", Kind::Text, "The role assumed for this target, instead of the block's."),
]);
const PLACEMENTS: Field =
    field("placements", Kind::List(&PLACEMENT), "Targets in other regions or accounts: their own `region` and `role-arn`.");

const DEPLOY_ECS: &[Field] = &[
    required("cluster", Kind::Text, "The ECS cluster of the services (the wave targets)."),
    required("container", Kind::Text, "The container, in each service's task definition, that runs the artifact (an image)."),
    REGION,
    ROLE_ARN,
    PLACEMENTS,
];

const LAMBDA_CANARY: Shape = shape(&[
    required("weight", Kind::Count { min: 1 }, "Percent of the traffic on the new version during `hold` (1-99)."),
    required("hold", Kind::Duration { min: 1 }, "How long the weighted step lasts before all traffic moves."),
]);

const DEPLOY_LAMBDA: &[Field] = &[
    required("alias", Kind::Text, "The alias that serves traffic (`live`); the targets are function names or ARNs."),
    field("canary", Kind::Object(&LAMBDA_CANARY), "Shift `weight` percent first, then all the traffic."),
    REGION,
    ROLE_ARN,
    PLACEMENTS,
];

const DEPLOY_ARGO_CD: &[Field] = &[
    required("server", Kind::Url, "The Argo CD server; the targets are application names."),
    required("token", Kind::Secret, "An Argo CD API token allowed to sync the applications (secret reference)."),
    field("revision", Kind::Text, "Revision to sync to, with `{sha}`, `{short-sha}`, `{branch}`, `{artifact}`; `{sha}` by default."),
];

const DEPLOY_WEBHOOK: &[Field] = &[
    required("url", Kind::Url, "Receives each target's signed deploy and rollback request."),
    required("secret", Kind::Secret, "Key of the HMAC-SHA256 signature over each request (secret reference)."),
];

pub(crate) const DEPLOY: Shape = Shape {
    fields: &[required("waves", Kind::Waves, "Ordered from the smallest failure domain to the largest.")],
    variants: &[
        Variant { provider: "command", doc: "Runs a local command per target.", fields: DEPLOY_COMMAND },
        Variant { provider: "ecs", doc: "Rolls out Amazon ECS services.", fields: DEPLOY_ECS },
        Variant { provider: "lambda", doc: "Shifts AWS Lambda aliases to new versions.", fields: DEPLOY_LAMBDA },
        Variant { provider: "argo-cd", doc: "Syncs Argo CD applications.", fields: DEPLOY_ARGO_CD },
        Variant { provider: "webhook", doc: "Calls the team's endpoint with a signed request.", fields: DEPLOY_WEBHOOK },
    ],
    at_least_one: &[],
    unknown_hint: None,
};

const GATE_CLOUDWATCH: &[Field] = &[
    field("alarms", Kind::TextList, "Alarm names (metric or composite alarms)."),
    field("alarm-prefix", Kind::Text, "Every alarm whose name starts with this."),
    field("insufficient-data", Kind::Enum(&["healthy", "unhealthy"]), "How an alarm in INSUFFICIENT_DATA counts; `healthy` by default."),
    REGION,
    ROLE_ARN,
];

pub(crate) const DATADOG_SITES: &[&str] =
    &["datadoghq.com", "datadoghq.eu", "us3.datadoghq.com", "us5.datadoghq.com", "ap1.datadoghq.com", "ddog-gov.com"];

const GATE_DATADOG: &[Field] = &[
    field("tags", Kind::TextList, "Tags the monitors carry besides `service:<name>` and `env:<environment>`."),
    field("site", Kind::Enum(DATADOG_SITES), "The Datadog site; `datadoghq.com` by default."),
    field("api-url", Kind::Url, "The API's base URL instead of the site's (a proxy)."),
    required("api-key", Kind::Secret, "A Datadog API key (secret reference)."),
    required("app-key", Kind::Secret, "A Datadog application key with monitors_read (secret reference)."),
    field("unhealthy", Kind::TextList, "Monitor states that fail the gate (`Alert`, `Warn`, `No Data`); `[Alert]` by default."),
];

const GATE_HTTP: &[Field] = &[
    required("url", Kind::Url, "The endpoint sampled."),
    field("expect-status", Kind::HttpStatuses, "Statuses that are healthy; any 2xx by default."),
    field("body-contains", Kind::Text, "Text a healthy answer's body contains."),
];

const GATE_COMMAND: &[Field] =
    &[required("command", Kind::Argv, "Program and arguments; healthy when it exits 0."), WORKING_DIR, ENV, PASS_ENV, TIMEOUT];

pub(crate) const GATE: Shape = Shape {
    fields: &[
        defaulted("consecutive", Kind::Count { min: 1 }, 1, "Healthy samples in a row the gate must show before the wave passes."),
        defaulted("failures", Kind::Count { min: 1 }, 1, "Unhealthy samples in a row that fail the wave."),
    ],
    variants: &[
        Variant { provider: "cloudwatch", doc: "CloudWatch alarms: any in ALARM is unhealthy.", fields: GATE_CLOUDWATCH },
        Variant { provider: "datadog", doc: "Datadog monitors found by tags.", fields: GATE_DATADOG },
        Variant { provider: "http", doc: "An HTTP endpoint's answer.", fields: GATE_HTTP },
        Variant { provider: "command", doc: "A local command: healthy when it exits 0.", fields: GATE_COMMAND },
    ],
    at_least_one: &[],
    unknown_hint: None,
};

pub(crate) const HEALTH: Shape = Shape {
    fields: &[
        defaulted("interval", Kind::Duration { min: 1 }, 30, "Time between two samples of the gates."),
        required("gates", Kind::Gates, "Sampled from the end of each wave's deploy to the end of its bake; all must hold."),
    ],
    variants: &[],
    at_least_one: &[],
    unknown_hint: Some("each gate is an item of `gates`, e.g. `gates: [{provider: http, url: ...}]`"),
};

pub(crate) const SLACK: Shape = Shape {
    fields: &[
        required("channel", Kind::Text, "Channel the release message goes to."),
        field("webhook", Kind::Secret, "Incoming webhook URL (secret reference): posts only."),
        field("token", Kind::Secret, "Bot token (secret reference): one message per release, updated in place."),
    ],
    variants: &[],
    at_least_one: &["webhook", "token"],
    unknown_hint: None,
};

const PAGE_PAGERDUTY: Shape =
    shape(&[required("routing-key", Kind::Secret, "The integration key of the service's Events API v2 integration (secret reference).")]);

const PAGE_OPSGENIE: Shape = shape(&[
    required("api-key", Kind::Secret, "The key of an Opsgenie API integration (secret reference)."),
    field("region", Kind::Enum(&["US", "EU"]), "The account's region; `US` by default."),
]);

pub(crate) const NOTIFY: Shape = shape(&[
    field("slack", Kind::Object(&SLACK), "Slack notifications."),
    field("pagerduty", Kind::Object(&PAGE_PAGERDUTY), "Pages the on-call through PagerDuty when a release needs a person."),
    field("opsgenie", Kind::Object(&PAGE_OPSGENIE), "Pages the on-call through Opsgenie when a release needs a person."),
]);

/// The `extensions.baton` block.
pub(crate) const DELIVERY: Shape = shape(&[
    required("environment", Kind::Name, "Environment this entry releases to (`production`, `staging`)."),
    required("release-branch", Kind::Text, "Merges to this branch start a release."),
    field("feature-branch", Kind::Text, "Released on its schedule or by hand, never by merges."),
    field("schedule", Kind::Schedule, "EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`."),
    field("team", Kind::Text, "Team that owns releases; defaults to the catalog's team/owner."),
    field("on-call", Kind::Text, "On-call rotation paged when a release needs a person."),
    required("build", Kind::Object(&BUILD), "How the artifact is built."),
    required("deploy", Kind::Object(&DEPLOY), "How and where it is deployed, wave by wave."),
    required("health", Kind::Object(&HEALTH), "How each wave is judged, through its bake."),
    field("notify", Kind::Object(&NOTIFY), "Where the team hears about releases."),
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
    variants: &[],
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
    variants: &[],
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
            Kind::GitLabProject => super::GitLabProject::EXPECTED.into(),
            Kind::Slug => "a slug of lowercase letters, digits, `-` and `_`, as in the Buildkite URL".into(),
            Kind::CircleCiProject => format!(
                "a CircleCI project slug `<vcs>/<org>/<project>` (as in Project Settings), <vcs> one of {}",
                quoted_list(super::CIRCLECI_VCS)
            ),
            Kind::PipelineParameters => "a mapping of pipeline parameter names to strings, integers or booleans".into(),
            Kind::Duration { min: 0 } => "a duration such as 30s, 5m or 1h (or a number of seconds)".into(),
            Kind::Duration { .. } => "a positive duration such as 30s, 5m or 1h (or a number of seconds)".into(),
            Kind::Count { min } => format!("a whole number of at least {min}"),
            Kind::Argv => "a command as a list of strings, program first (e.g. [\"sh\", \"build.sh\"])".into(),
            Kind::Env => "a mapping of environment variable names to strings".into(),
            Kind::EnvNames => "a list of environment variable names".into(),
            Kind::EnvName => "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
            Kind::Secret => "a secret reference: `env:NAME`, `ssm:/parameter/name` or `secrets-manager:secret-id`".into(),
            Kind::Schedule => "an EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`".into(),
            Kind::Object(_) | Kind::Mapping => "a mapping".into(),
            Kind::List(_) => "a list of mappings".into(),
            Kind::Waves => "a non-empty list of waves, each with `name` and `targets`".into(),
            Kind::Gates => "a non-empty list of gates, each with a `provider`".into(),
            Kind::HttpStatuses => "a list of HTTP status codes (100-599)".into(),
        }
    }
}

pub(crate) fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

// ------------------------------------------------------------------ JSON Schema

pub(crate) const SCHEMA_ID: &str = "https://raw.githubusercontent.com/baton-release/baton/main/schema/baton-extension.schema.json";

/// JSON Schema (draft 2020-12) of the `extensions.baton` block, for editors.
pub fn baton_extension_schema() -> Json {
    let mut schema = object_schema(&DELIVERY);
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

fn object_schema(shape: &Shape) -> Json {
    if shape.variants.is_empty() {
        return closed_object(shape.fields.iter(), &[], shape.at_least_one);
    }
    let variants: Vec<Json> = shape
        .variants
        .iter()
        .map(|variant| {
            let mut schema = closed_object(
                shape.fields.iter().chain(variant.fields),
                &[(PROVIDER, json!({ "const": variant.provider, "description": variant.doc }))],
                shape.at_least_one,
            );
            schema["required"].as_array_mut().expect("required list").insert(0, json!(PROVIDER));
            schema
        })
        .collect();
    let providers: Vec<&str> = shape.variants.iter().map(|v| v.provider).collect();
    json!({
        "type": "object",
        "required": [PROVIDER],
        "properties": { PROVIDER: { "enum": providers } },
        "oneOf": variants,
    })
}

fn closed_object<'a>(fields: impl Iterator<Item = &'a Field>, extra: &[(&str, Json)], at_least_one: &[&str]) -> Json {
    let mut properties = Map::new();
    for (name, schema) in extra {
        properties.insert((*name).into(), schema.clone());
    }
    let mut required = Vec::new();
    for field in fields {
        let mut schema = kind_schema(&field.kind);
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

fn kind_schema(kind: &Kind) -> Json {
    match kind {
        Kind::AnyText => json!({ "type": "string" }),
        Kind::Text => json!({ "type": "string", "minLength": 1 }),
        Kind::Name => NAME.schema(),
        Kind::Target => TARGET.schema(),
        Kind::Enum(values) => json!({ "enum": values }),
        Kind::TextList => json!({ "type": "array", "items": { "type": "string" } }),
        Kind::Targets => json!({ "type": "array", "minItems": 1, "items": TARGET.schema() }),
        Kind::Url => json!({ "type": "string", "pattern": "^https?://." }),
        Kind::GitLabProject => json!({ "oneOf": [
            { "type": "integer", "minimum": 1 },
            { "type": "string", "pattern": "^([0-9]+|[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+)$" },
        ] }),
        Kind::Slug => json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$" }),
        Kind::CircleCiProject => {
            json!({ "type": "string", "pattern": format!("^({})/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", super::CIRCLECI_VCS.join("|")) })
        }
        Kind::PipelineParameters => json!({
            "type": "object",
            "propertyNames": {
                "pattern": "^[a-z][a-z0-9_-]*$",
                "not": { "enum": [super::CIRCLECI_RELEASE_ID_PARAMETER, super::CIRCLECI_SHA_PARAMETER] },
            },
            "additionalProperties": { "type": ["string", "integer", "boolean"] },
        }),
        Kind::Duration { min } => json!({ "oneOf": [
            { "type": "integer", "minimum": min },
            { "type": "string", "pattern": "^([0-9]+|([0-9]+[smh])+)$" },
        ] }),
        Kind::Count { min } => json!({ "type": "integer", "minimum": min, "maximum": u32::MAX }),
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
        Kind::Object(shape) => object_schema(shape),
        Kind::List(shape) => json!({ "type": "array", "items": object_schema(shape) }),
        Kind::Mapping => json!({ "type": "object" }),
        Kind::Waves => json!({ "type": "array", "minItems": 1, "items": object_schema(&WAVE) }),
        Kind::Gates => json!({ "type": "array", "minItems": 1, "items": object_schema(&GATE) }),
        Kind::HttpStatuses => json!({ "type": "array", "items": { "type": "integer", "minimum": 100, "maximum": 599 } }),
    }
}

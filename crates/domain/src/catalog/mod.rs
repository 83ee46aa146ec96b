//! The service catalog model: a Datadog service definition (v2.2 or v3) whose
//! `extensions.baton` block says how the service ships.
//!
//! Parsing and validation (files, line numbers, "did you mean") live in the
//! submodules; the types here are what every handler and provider consumes and
//! what travels in the execution state.

mod files;
mod freeze;
mod fs;
mod index;
mod parse;
mod schedule;
pub mod shape;
pub mod topology;
mod tree;
pub mod validate;

pub use files::CATALOG_ROOT_ENV;
pub use freeze::{FREEZES_FILE, FreezeSpec, FreezeWindow, MAX_WINDOW_DURATION, OnFreeze, parse_freezes};
pub use fs::FsCatalog;
pub use index::{REPORT_INDEX_FILE, ServiceSummary};
pub use parse::{CatalogLoader, LoadedCatalog, Lookup};
pub use schedule::check_schedule;
pub(crate) use schedule::not_a_value;
pub use shape::{ProviderShape, Registry, Slot, baton_extension_schema};
pub use tree::MAX_TEXT_BYTES;

use serde::{Deserialize, Serialize};
use std::fmt;

/// One service as the catalog declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceEntry {
    /// `dd-service` (v2.2) or `metadata.name` (v3).
    pub name: String,
    /// Which Datadog schema the definition used.
    pub schema: SchemaVersion,
    /// `team` (v2.2) or `metadata.owner` (v3); the delivery block's `team` overrides it.
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Where the definition was read from, for error messages and `baton show`.
    pub source: String,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchemaVersion {
    #[serde(rename = "v2.2")]
    V2_2,
    #[serde(rename = "v3")]
    V3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub url: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A build block's field naming the repository it builds (`owner/name`).
pub const BUILD_REPOSITORY_FIELD: &str = "repository";

/// Datadog's link type for a source repository.
pub const REPOSITORY_LINK_TYPE: &str = "repo";

impl ServiceEntry {
    /// The repositories the entry declares as `owner/name`: its links of type `repo` (their URL's
    /// path, on any host, so GitHub Enterprise links count) and its build's `repository`, for
    /// providers that build a repository they name (GitHub Actions).
    pub fn repositories(&self) -> Vec<&str> {
        let links = self.links.iter().filter(|link| link.kind.as_deref() == Some(REPOSITORY_LINK_TYPE)).filter_map(|link| {
            let path = link.url.split_once("://").map_or(link.url.as_str(), |(_, rest)| rest.split_once('/').map_or("", |(_, path)| path));
            let path = path.trim_end_matches('/');
            Some(path.strip_suffix(".git").unwrap_or(path)).filter(|path| !path.is_empty())
        });
        links.chain(self.delivery.build.text(BUILD_REPOSITORY_FIELD)).collect()
    }

    /// Whether `full_name` (`owner/name`) is one of [`ServiceEntry::repositories`]; GitHub compares
    /// owners and names without regard to case, and so does this.
    pub fn declares_repository(&self, full_name: &str) -> bool {
        names_repository(self.repositories(), full_name)
    }
}

/// Whether `full_name` is one of the `declared` repositories, without regard to case.
fn names_repository<'a>(declared: impl IntoIterator<Item = &'a str>, full_name: &str) -> bool {
    declared.into_iter().any(|declared| declared.eq_ignore_ascii_case(full_name))
}

/// The `extensions.baton` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Delivery {
    /// The environment this catalog entry releases to (`production`, `staging`, ...).
    pub environment: String,
    /// Merges to this branch start a release.
    pub release_branch: String,
    /// A branch released on its own schedule or by hand, never by merges to the release branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_branch: Option<String>,
    /// EventBridge Scheduler expression: `cron(...)`, `rate(...)` or `at(...)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Team that owns releases; falls back to the catalog's team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// On-call rotation paged when a release needs a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call: Option<String>,
    pub build: ProviderBlock,
    /// How long the build may run before the release stops following it, cancels it and fails:
    /// elapsed time from the build's request, however many polls that takes.
    #[serde(default = "Delivery::default_build_timeout")]
    pub build_timeout: Seconds,
    pub deploy: DeploySpec,
    pub health: HealthSpec,
    /// Where the team hears about releases, one provider block per notifier.
    #[serde(default, deserialize_with = "notifier_blocks", skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<ProviderBlock>,
    /// Where the release's events are exported, one provider block per exporter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telemetry: Vec<ProviderBlock>,
    /// When its waves may not start: its own windows and, once loaded, the organisation's.
    #[serde(default, skip_serializing_if = "FreezeSpec::is_empty")]
    pub freeze: FreezeSpec,
    /// Whether its builds and bakes wait for the providers' events, and how often they poll
    /// meanwhile.
    #[serde(default, skip_serializing_if = "EventsSpec::is_default")]
    pub events: EventsSpec,
}

/// Event-driven waits (`events:`): with `wait`, a build and a bake whose gates are all named
/// CloudWatch alarms park on a task token that the provider's event answers, and poll only
/// every `safety-net` (so a lost event costs at most that long). Without it they poll as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EventsSpec {
    #[serde(default)]
    pub wait: bool,
    #[serde(default = "EventsSpec::default_safety_net")]
    pub safety_net: Seconds,
}

impl EventsSpec {
    pub const DEFAULT_SAFETY_NET: Seconds = Seconds(300);

    fn default_safety_net() -> Seconds {
        EventsSpec::DEFAULT_SAFETY_NET
    }

    fn is_default(&self) -> bool {
        *self == EventsSpec::default()
    }

    /// How long a wait parks before its safety-net poll; `None` when the entry does not wait for events.
    pub fn park_seconds(&self) -> Option<u64> {
        self.wait.then_some(self.safety_net.0)
    }
}

impl Default for EventsSpec {
    fn default() -> EventsSpec {
        EventsSpec { wait: false, safety_net: EventsSpec::DEFAULT_SAFETY_NET }
    }
}

impl Delivery {
    pub const DEFAULT_BUILD_TIMEOUT: Seconds = Seconds(2 * 60 * 60);

    fn default_build_timeout() -> Seconds {
        Delivery::DEFAULT_BUILD_TIMEOUT
    }

    /// Every provider block: its slot, its path under `extensions.baton`, the block.
    pub fn provider_blocks(&self) -> Vec<(Slot, String, &ProviderBlock)> {
        let gates = self.health.gates.iter().enumerate().map(|(i, gate)| (Slot::Gate, format!("health.gates[{i}]"), &gate.gate));
        let exporters = self.telemetry.iter().enumerate().map(|(i, block)| (Slot::Export, format!("telemetry[{i}]"), block));
        let notifiers = self.notify.iter().enumerate().map(|(i, block)| (Slot::Notify, format!("notify[{i}]"), block));
        [(Slot::Build, "build".to_owned(), &self.build), (Slot::Deploy, "deploy".to_owned(), &self.deploy.target)]
            .into_iter()
            .chain(gates)
            .chain(exporters)
            .chain(notifiers)
            .collect()
    }

    /// The entry's notifier block of provider `name`, if it has one.
    pub fn notifier(&self, name: &str) -> Option<&ProviderBlock> {
        self.notify.iter().find(|block| block.provider == name)
    }
}

/// `notify` as a list of provider blocks, or keyed by provider (`slack: {channel: ...}`), the
/// form catalogs (and the records of releases begun before notifiers were providers) use.
fn notifier_blocks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ProviderBlock>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Notify {
        Blocks(Vec<ProviderBlock>),
        Keyed(serde_json::Map<String, serde_json::Value>),
    }
    Ok(match Notify::deserialize(d)? {
        Notify::Blocks(blocks) => blocks,
        Notify::Keyed(keyed) => keyed.into_iter().map(|(provider, settings)| ProviderBlock::new(&provider, settings)).collect(),
    })
}

/// One provider's block (`build`, `deploy` or a gate): the provider's name and its own fields,
/// which the provider's module reads into its typed block ([`ProviderBlock::decode`]) after
/// the parser checked them against the provider's [`ProviderShape`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderBlock {
    pub provider: String,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ProviderBlock {
    pub fn new(provider: &str, settings: serde_json::Value) -> ProviderBlock {
        let settings = match settings {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        ProviderBlock { provider: provider.to_owned(), settings }
    }

    /// The block of a provider's typed model (blocks made in code: tests, tools).
    pub fn of(provider: &str, model: &impl Serialize) -> ProviderBlock {
        ProviderBlock::new(provider, serde_json::to_value(model).expect("catalog blocks serialise to JSON objects"))
    }

    /// The block's own fields as one JSON object.
    pub fn settings_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.settings.clone())
    }

    /// The block as the provider's typed model `T`. The parser refuses a catalog entry whose
    /// blocks do not decode, so this fails only for a block made some other way; serde's
    /// message is left out, as it can quote a value.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ports::ProviderError> {
        serde_json::from_value(self.settings_json()).map_err(|_| {
            crate::ports::ProviderError::rejected(format!(
                "the `{}` block does not fit the provider's model: check it with `baton catalog validate`",
                self.provider
            ))
        })
    }

    /// A text field of the block.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.settings.get(field).and_then(serde_json::Value::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeploySpec {
    #[serde(flatten)]
    pub target: ProviderBlock,
    /// Ordered from the smallest failure domain to the largest: as the catalog lists them, or
    /// computed from `topology` when the entry was read, and kept so with the release.
    pub waves: Vec<WaveSpec>,
    /// The labeled targets and the policy the waves were computed from, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<topology::Topology>,
}

/// Reads the catalog's form (`waves` a list, or `waves: {from: topology, ...}` with `targets`,
/// computed here) and the model's own (`waves` a list, with the `topology` they came from, never
/// computed again: a kept entry keeps its waves whatever the rules become).
impl<'de> Deserialize<'de> for DeploySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(flatten)]
            target: ProviderBlock,
            waves: RawWaves,
            #[serde(default)]
            targets: Option<Vec<topology::LabeledTarget>>,
            #[serde(default)]
            topology: Option<topology::Topology>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum RawWaves {
            Listed(Vec<WaveSpec>),
            Computed(topology::WavePolicy),
        }
        use serde::de::Error;
        let Raw { target, waves, targets, topology } = Raw::deserialize(d)?;
        match (waves, targets) {
            (RawWaves::Listed(waves), None) => Ok(DeploySpec { target, waves, topology }),
            (RawWaves::Computed(policy), Some(targets)) => {
                let topology = topology::Topology { targets, policy };
                let waves = crate::rules::topology::compute(&topology)
                    .map_err(|refusal| D::Error::custom(format!("deploy.{}: {}", refusal.path, refusal.message)))?;
                Ok(DeploySpec { target, waves, topology: Some(topology) })
            }
            (RawWaves::Computed(_), None) => {
                Err(D::Error::custom("`waves: {from: topology}` computes the waves from `targets`: none given"))
            }
            (RawWaves::Listed(_), Some(_)) => {
                Err(D::Error::custom("`targets` go with `waves: {from: topology}`; listed waves name their own"))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WaveSpec {
    pub name: String,
    pub targets: Vec<String>,
    /// Time the wave runs before its health check.
    #[serde(default)]
    pub bake: Seconds,
    /// How long the wave's targets may take to deploy (or to roll back) before the wave fails.
    #[serde(default = "WaveSpec::default_deploy_timeout")]
    pub deploy_timeout: Seconds,
    /// A person approves the wave before it deploys; `None` when the catalog says nothing (the
    /// organisation's default may then apply, see [`ApprovalSpec::apply_default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
}

/// A wave's approval gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ApprovalSpec {
    pub required: bool,
    /// Slack user ids, Slack user group ids, IAM principal ARNs or local user names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    #[serde(default = "ApprovalSpec::default_timeout")]
    pub timeout: Seconds,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// The release's own author may not approve it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub four_eyes: bool,
}

/// What an approval that nobody gave in time does to the release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTimeout {
    /// Undo the waves that ran, as for any failed wave.
    #[default]
    Rollback,
    /// End the release before the wave, leaving the waves that ran in place.
    Stop,
}

/// The environment an organisation's default approval applies to.
pub const PRODUCTION: &str = "production";

/// The environment variable holding the organisation's default approval block (JSON), which
/// every wave of a production entry gets unless its own `approval` says otherwise.
pub const APPROVAL_DEFAULT_ENV: &str = "BATON_APPROVAL_DEFAULT";

impl ApprovalSpec {
    pub const DEFAULT_TIMEOUT: Seconds = Seconds(4 * 60 * 60);

    fn default_timeout() -> Seconds {
        ApprovalSpec::DEFAULT_TIMEOUT
    }

    /// Reads the organisation's default from `text` (the value of `variable`), naming the
    /// variable and what was expected when it does not read.
    pub fn parse_default(text: &str, variable: &str) -> Result<ApprovalSpec, String> {
        let spec: ApprovalSpec = serde_json::from_str(text).map_err(|err| {
            format!("{variable}: expected a JSON approval block such as {{\"required\": true, \"approvers\": [\"S0RELEASERS\"], \"timeout\": \"4h\"}}: {err}")
        })?;
        if spec.required && spec.approvers.is_empty() {
            return Err(format!("{variable}: approvers: expected a non-empty list when `required` is true"));
        }
        Ok(spec)
    }

    /// The organisation's default from [`APPROVAL_DEFAULT_ENV`], when it is set.
    pub fn organisation_default() -> Result<Option<ApprovalSpec>, String> {
        match std::env::var(APPROVAL_DEFAULT_ENV) {
            Ok(text) if !text.trim().is_empty() => ApprovalSpec::parse_default(&text, APPROVAL_DEFAULT_ENV).map(Some),
            _ => Ok(None),
        }
    }

    /// Gives every wave of a production `delivery` that says nothing of approval the
    /// organisation's `default`; a wave's own block (even `required: false`) wins.
    pub fn apply_default(delivery: &mut Delivery, default: Option<&ApprovalSpec>) {
        let Some(default) = default else { return };
        if delivery.environment != PRODUCTION {
            return;
        }
        for wave in delivery.deploy.waves.iter_mut().filter(|wave| wave.approval.is_none()) {
            wave.approval = Some(default.clone());
        }
    }

    /// The approval the wave waits for, if it waits for one.
    pub fn required(spec: Option<&ApprovalSpec>) -> Option<&ApprovalSpec> {
        spec.filter(|spec| spec.required)
    }
}

impl WaveSpec {
    pub const DEFAULT_DEPLOY_TIMEOUT: Seconds = Seconds(60 * 60);

    fn default_deploy_timeout() -> Seconds {
        WaveSpec::DEFAULT_DEPLOY_TIMEOUT
    }
}

/// How each wave is judged: its gates, sampled from the end of its deploy to the end of its bake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HealthSpec {
    /// Time between two samples of the gates.
    #[serde(default = "HealthSpec::default_interval")]
    pub interval: Seconds,
    pub gates: Vec<GateSpec>,
}

impl HealthSpec {
    pub(crate) fn default_interval() -> Seconds {
        Seconds(30)
    }

    /// One gate decided by one sample, sampled at the default interval.
    pub fn single(gate: ProviderBlock) -> HealthSpec {
        HealthSpec { interval: HealthSpec::default_interval(), gates: vec![GateSpec { gate, consecutive: 1, failures: 1 }] }
    }
}

/// One health gate and how many samples decide it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateSpec {
    #[serde(flatten)]
    pub gate: ProviderBlock,
    /// Healthy samples in a row the gate must show before the wave may pass.
    #[serde(default = "GateSpec::one")]
    pub consecutive: u32,
    /// Unhealthy samples in a row that fail the wave.
    #[serde(default = "GateSpec::one")]
    pub failures: u32,
}

impl GateSpec {
    fn one() -> u32 {
        1
    }
}

/// A secret is named, never written in the catalog. The catalog writes it as
/// `env:NAME`, `ssm:/name` or `secrets-manager:id` (or `{env: NAME}`); it serialises
/// as `{"env": "NAME"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretRef {
    /// An environment variable of the process that resolves it.
    Env(String),
    /// An SSM Parameter Store SecureString name.
    Ssm(String),
    /// A Secrets Manager secret id or ARN.
    SecretsManager(String),
}

impl SecretRef {
    /// Parses `env:NAME`, `ssm:/parameter/name` or `secrets-manager:secret-id`. The error
    /// says what is wrong without repeating `text`, which may be the secret itself.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        let (scheme, name) = text.split_once(':').ok_or_else(|| "no `env:`, `ssm:` or `secrets-manager:` prefix".to_string())?;
        if name.trim().is_empty() {
            return Err(format!("nothing after `{scheme}:`"));
        }
        match scheme {
            "env" if validate::is_env_name(name) => Ok(SecretRef::Env(name.to_string())),
            "env" => Err("`env:` takes a variable name ([A-Za-z_][A-Za-z0-9_]*)".into()),
            "ssm" => Ok(SecretRef::Ssm(name.to_string())),
            "secrets-manager" => Ok(SecretRef::SecretsManager(name.to_string())),
            _ => Err("no `env:`, `ssm:` or `secrets-manager:` prefix".into()),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case")]
        enum Tagged {
            Env(String),
            Ssm(String),
            SecretsManager(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Tagged(Tagged),
        }
        let raw = Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a secret reference such as `env:NAME` (value not shown)"))?;
        // Both spellings go through `parse`, so they obey the same rules.
        let text = match raw {
            Raw::Text(text) => text,
            Raw::Tagged(Tagged::Env(name)) => SecretRef::Env(name).to_string(),
            Raw::Tagged(Tagged::Ssm(name)) => SecretRef::Ssm(name).to_string(),
            Raw::Tagged(Tagged::SecretsManager(id)) => SecretRef::SecretsManager(id).to_string(),
        };
        SecretRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::Ssm(name) => write!(f, "ssm:{name}"),
            SecretRef::SecretsManager(id) => write!(f, "secrets-manager:{id}"),
        }
    }
}

/// A whole number of seconds; the catalog writes `90`, `"90s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(pub u64);

impl Seconds {
    /// Parses `90`, `90s`, `5m`, `1h`, `1h30m`. The error reads after "expected": what is
    /// accepted, what was given, and why it is not.
    pub fn parse(text: &str) -> Result<Seconds, String> {
        const ACCEPTED: &str = "a duration such as 30s, 5m, 1h or 1h30m";
        let text = text.trim();
        let given = |why: &str| format!("{ACCEPTED}, found '{}' ({why})", text.escape_debug());
        if text.is_empty() {
            return Err(format!("{ACCEPTED}, found an empty text"));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Seconds(n));
        }
        if text.starts_with('-') {
            return Err(given("a duration cannot be negative"));
        }
        if text.ends_with("ms") && text[..text.len() - 2].chars().all(|c| c.is_ascii_digit()) {
            return Err(given("Baton counts whole seconds: write 1s or more"));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for ch in text.chars() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            let unit = match ch {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return Err(given(&format!("unknown unit '{ch}': s, m or h"))),
            };
            let n: u64 = digits.parse().map_err(|_| given("a number before each unit"))?;
            total = total.saturating_add(n.saturating_mul(unit));
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(given("a unit after the last number: s, m or h"));
        }
        Ok(Seconds(total))
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(n)),
            Raw::Text(t) => Seconds::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// One problem found in a catalog file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Field path inside the document, e.g. `extensions.baton.deploy.waves[1].bake`.
    pub path: String,
    /// What was expected (and a "did you mean" where one is close).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}: {}", self.file, line, self.path, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_numbers_and_units() {
        assert_eq!(Seconds::parse("90").unwrap(), Seconds(90));
        assert_eq!(Seconds::parse("90s").unwrap(), Seconds(90));
        assert_eq!(Seconds::parse("5m").unwrap(), Seconds(300));
        assert_eq!(Seconds::parse("1h30m").unwrap(), Seconds(5400));
        assert!(Seconds::parse("5d").unwrap_err().contains("unknown unit 'd'"));
        assert!(Seconds::parse("5m3").is_err());
        assert!(Seconds::parse("").is_err());
        let said = |text: &str| Seconds::parse(text).unwrap_err();
        assert_eq!(said("500ms"), "a duration such as 30s, 5m, 1h or 1h30m, found '500ms' (Baton counts whole seconds: write 1s or more)");
        assert_eq!(said("-30s"), "a duration such as 30s, 5m, 1h or 1h30m, found '-30s' (a duration cannot be negative)");
        assert_eq!(said("5m3"), "a duration such as 30s, 5m, 1h or 1h30m, found '5m3' (a unit after the last number: s, m or h)");
    }
}

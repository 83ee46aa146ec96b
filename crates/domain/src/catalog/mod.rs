//! The service catalog model: a Datadog service definition (v2.2 or v3) whose
//! `extensions.baton` block says how the service ships.
//!
//! Parsing and validation (files, line numbers, "did you mean") live in the
//! submodules; the types here are what every handler and provider consumes and
//! what travels in the execution state.

mod files;
mod fs;
mod parse;
mod schedule;
mod shape;
mod tree;
mod validate;

#[cfg(test)]
mod validation_tests;

pub use files::CATALOG_ROOT_ENV;
pub use fs::FsCatalog;
pub use parse::{CatalogLoader, LoadedCatalog, load_catalog, parse_catalog_documents};
pub use schedule::check_schedule;
pub use shape::baton_extension_schema;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// Datadog's link type for a source repository.
pub const REPOSITORY_LINK_TYPE: &str = "repo";

impl ServiceEntry {
    /// The repositories the entry declares as `owner/name`: its links of type `repo` (their URL's
    /// path, on any host, so GitHub Enterprise links count) and a GitHub Actions build's repository.
    pub fn repositories(&self) -> Vec<&str> {
        let links = self.links.iter().filter(|link| link.kind.as_deref() == Some(REPOSITORY_LINK_TYPE)).filter_map(|link| {
            let path = link.url.split_once("://").map_or(link.url.as_str(), |(_, rest)| rest.split_once('/').map_or("", |(_, path)| path));
            let path = path.trim_end_matches('/');
            Some(path.strip_suffix(".git").unwrap_or(path)).filter(|path| !path.is_empty())
        });
        let build = match &self.delivery.build {
            BuildSpec::GithubActions(build) => Some(build.repository.as_str()),
            _ => None,
        };
        links.chain(build).collect()
    }

    /// Whether `full_name` (`owner/name`) is one of [`ServiceEntry::repositories`]; GitHub compares
    /// owners and names without regard to case, and so does this.
    pub fn declares_repository(&self, full_name: &str) -> bool {
        self.repositories().iter().any(|declared| declared.eq_ignore_ascii_case(full_name))
    }
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
    pub build: BuildSpec,
    pub deploy: DeploySpec,
    pub health: HealthSpec,
    #[serde(default)]
    pub notify: NotifySpec,
}

/// How the CI build is started and where its artifact comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "kebab-case")]
pub enum BuildSpec {
    /// Runs an argv locally (no shell).
    Command(CommandBuild),
    /// Dispatches a GitHub Actions workflow, then polls its run.
    GithubActions(GitHubActionsBuild),
    /// Creates a GitLab CI pipeline, then polls it.
    GitlabCi(GitLabCiBuild),
    /// Creates a Buildkite build, then polls it.
    Buildkite(BuildkiteBuild),
    /// Triggers a CircleCI pipeline, then polls its workflows.
    #[serde(rename = "circleci")]
    CircleCi(CircleCiBuild),
    /// Starts an AWS CodeBuild build, then polls it.
    Codebuild(CodeBuildBuild),
}

/// A `workflow_dispatch` of a GitHub Actions workflow; the run gets `baton_release_id` and
/// `baton_sha` as inputs besides `inputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GitHubActionsBuild {
    /// `owner/name`.
    pub repository: String,
    /// The workflow's file name (`release.yml`) or id.
    pub workflow: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{run-id}`, `{release-id}`.
    pub artifact: String,
    /// GitHub Enterprise Server's API (`https://HOST/api/v3`); github.com's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// A token with `actions: write` on the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// A GitHub App installed on the repository, instead of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<GitHubApp>,
}

/// A GitLab CI pipeline on the release branch; it gets the variables `BATON_RELEASE_ID` and
/// `BATON_SHA` besides `variables`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GitLabCiBuild {
    pub project: GitLabProject,
    /// A project or personal access token (`api` scope), sent as `PRIVATE-TOKEN`: creates the
    /// pipeline unless `trigger_token` is set, and reads and cancels it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// A pipeline trigger token: creates the pipeline through the trigger API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_token: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-id}`, `{release-id}`.
    pub artifact: String,
    /// A self-managed instance's API (`https://HOST/api/v4`); gitlab.com's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// A GitLab project as the API names it: its numeric id, or its full path (`group/sub/name`).
/// The catalog may write an id as a number; it is kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GitLabProject(pub String);

impl GitLabProject {
    /// What a project looks like, for "expected ..." messages.
    pub const EXPECTED: &'static str = "a GitLab project: its numeric id, or its path `group/name` (subgroups allowed)";

    /// Why `text` names no project, if it does not: an id is digits, a path is at least two
    /// `/`-separated parts of letters, digits, `_`, `-` and `.` (GitLab's path rules), written
    /// as is: Baton encodes it in URLs itself.
    pub fn check(text: &str) -> Result<(), String> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return if text.bytes().all(|b| b == b'0') { Err("found the id 0".into()) } else { Ok(()) };
        }
        if text.contains('%') {
            return Err("found `%`: write the path as `group/name`, Baton encodes it".into());
        }
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() < 2 {
            return Err(format!("found `{text}`, neither a number nor a path with a `/`"));
        }
        for part in parts {
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
            match part.chars().next() {
                None => return Err("found an empty part between `/`s".into()),
                Some(first @ ('-' | '.')) => return Err(format!("found a part starting with `{first}`")),
                Some(_) => {}
            }
            if let Some(bad) = part.chars().find(|c| !allowed(*c)) {
                return Err(format!("found `{}`", bad.escape_debug()));
            }
        }
        Ok(())
    }
}

impl fmt::Display for GitLabProject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GitLabProject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(u64),
            Text(String),
        }
        Ok(GitLabProject(match Raw::deserialize(deserializer)? {
            Raw::Id(id) => id.to_string(),
            Raw::Text(text) => text,
        }))
    }
}

/// A build of a Buildkite pipeline; it gets `BATON_RELEASE_ID` and `BATON_SHA` in its
/// environment besides `env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildkiteBuild {
    /// The organization's slug.
    pub organization: String,
    /// The pipeline's slug.
    pub pipeline: String,
    /// An API access token with `read_builds` and `write_builds`, sent as a bearer token.
    pub token: SecretRef,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}`, `{release-id}`.
    pub artifact: String,
    /// Buildkite's REST API; `https://api.buildkite.com/v2` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// A build of an AWS CodeBuild project at the release's commit; it gets `BATON_RELEASE_ID`,
/// `BATON_SHA` and `BATON_BRANCH` in its environment besides `env`. The artifact is the
/// variable `artifact_variable` the build exports when it does, else `artifact` filled in (the
/// validator asks for at least one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodeBuildBuild {
    /// The project's name.
    pub project: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}`, `{release-id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// An environment variable the buildspec exports (`env.exported-variables`) holding the
    /// artifact's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_variable: Option<String>,
    #[serde(flatten)]
    pub access: AwsAccess,
}

/// Why `text` is no Buildkite slug (as in the pipeline's URL), if it is not one.
pub fn check_slug(text: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_');
    match text.chars().next() {
        None => Err("found an empty string".into()),
        Some(first) if !first.is_ascii_lowercase() && !first.is_ascii_digit() => Err(format!("found `{}` first", first.escape_debug())),
        Some(_) => match text.chars().find(|c| !allowed(*c)) {
            Some(bad) => Err(format!("found `{}`", bad.escape_debug())),
            None => Ok(()),
        },
    }
}

/// A pipeline of a CircleCI project on the release branch. It gets the pipeline parameters
/// [`CIRCLECI_RELEASE_ID_PARAMETER`] and [`CIRCLECI_SHA_PARAMETER`] besides `parameters`; the
/// project's config must declare all of them, since CircleCI refuses undeclared parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CircleCiBuild {
    /// The project slug: `gh/acme/web`, `bb/acme/web` or `circleci/<org-id>/<project-id>`.
    pub project: String,
    /// A personal API token, sent as `Circle-Token`.
    pub token: SecretRef,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, PipelineParameter>,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-number}`, `{release-id}`.
    pub artifact: String,
    /// CircleCI's API; `https://circleci.com/api/v2` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// The pipeline parameter that carries the release id; the config declares it as a string.
pub const CIRCLECI_RELEASE_ID_PARAMETER: &str = "baton-release-id";
/// The pipeline parameter that carries the release's commit (empty when it names none).
pub const CIRCLECI_SHA_PARAMETER: &str = "baton-sha";

/// A pipeline parameter's value, of the type the config declares the parameter with: CircleCI
/// refuses `"true"` for a boolean and `"3"` for an integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PipelineParameter {
    Boolean(bool),
    Integer(i64),
    String(String),
}

/// The version control prefixes of a CircleCI project slug: GitHub and Bitbucket through
/// CircleCI's OAuth apps (short and long forms), and `circleci` for the GitHub App and GitLab
/// integrations, whose slugs name the organization and project by id.
pub const CIRCLECI_VCS: &[&str] = &["gh", "github", "bb", "bitbucket", "circleci"];

/// Why `text` is no CircleCI project slug (`<vcs>/<org>/<project>`), if it is not one. The parts
/// become path segments of API URLs, so none may be empty or only dots.
pub fn check_circleci_project(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split('/').collect();
    let [vcs, org, project] = parts[..] else {
        return Err(format!("found {} part(s) separated by `/`, not 3", parts.len()));
    };
    if !CIRCLECI_VCS.contains(&vcs) {
        return Err(format!("found `{vcs}` first, not one of {}", CIRCLECI_VCS.join(", ")));
    }
    for part in [org, project] {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if part.is_empty() {
            return Err("found an empty part between `/`s".into());
        }
        if part.chars().all(|c| c == '.') {
            return Err(format!("found the part `{part}`"));
        }
        if let Some(bad) = part.chars().find(|c| !allowed(*c)) {
            return Err(format!("found `{}`", bad.escape_debug()));
        }
    }
    Ok(())
}

/// Why `name` cannot be a pipeline parameter of Baton's block, if it cannot: CircleCI's rule
/// for parameter names, and not one of the two Baton sets.
pub fn check_pipeline_parameter_name(name: &str) -> Result<(), String> {
    if [CIRCLECI_RELEASE_ID_PARAMETER, CIRCLECI_SHA_PARAMETER].contains(&name) {
        return Err(format!("`{name}` is set by Baton; choose another name"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    match name.chars().next() {
        Some(first) if first.is_ascii_lowercase() && name.chars().all(allowed) => Ok(()),
        _ => Err("expected a parameter name: a lowercase letter, then lowercase letters, digits, `_` and `-`".into()),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GitHubApp {
    /// The app's id or client id.
    pub app_id: String,
    pub installation_id: u64,
    /// The app's private key (PEM).
    pub private_key: SecretRef,
}

/// An argv run without a shell: what every `command` provider takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommandRun {
    pub command: Vec<String>,
    /// Relative paths are resolved against the catalog file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables of Baton's own environment the command gets besides the few every command gets
    /// (`PATH`, `HOME`, the locale...): credentials reach a command only when named here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
}

impl CommandRun {
    /// Just an argv: default directory, environment and timeout.
    pub fn new(command: Vec<String>) -> CommandRun {
        CommandRun { command, working_dir: None, env: BTreeMap::new(), pass_env: Vec::new(), timeout: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommandBuild {
    #[serde(flatten)]
    pub run: CommandRun,
    /// File the build writes the artifact reference to; otherwise its last line of stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeploySpec {
    #[serde(flatten)]
    pub target: DeployTarget,
    /// Ordered from the smallest failure domain to the largest.
    pub waves: Vec<WaveSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "kebab-case")]
pub enum DeployTarget {
    /// Runs an argv once per target with `BATON_*` variables; rollback runs it with the previous artifact.
    Command(CommandDeploy),
    /// Amazon ECS services (the targets): a new task definition revision with the artifact as one
    /// container's image, rolled out by `UpdateService`.
    Ecs(EcsDeploy),
    /// AWS Lambda functions (the targets): new code, a published version, the alias shifted to it.
    Lambda(LambdaDeploy),
    /// Argo CD applications (the targets), synced to the artifact's revision.
    ArgoCd(ArgoCdDeploy),
    /// A team's own endpoint, called with a signed payload and polled at the status URL it answers.
    Webhook(WebhookDeploy),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommandDeploy {
    #[serde(flatten)]
    pub run: CommandRun,
    /// Run instead of `command` on rollback; `command` with the previous artifact otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<Vec<String>>,
}

/// Where AWS calls go: a region and an IAM role to assume, both optional (the process's own
/// region and credentials otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AwsAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// One target's own region and role, for waves that cross regions and accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Placement {
    pub target: String,
    #[serde(flatten)]
    pub access: AwsAccess,
}

/// The AWS access of `target`: its placement's fields, else the block's.
pub fn access_for(target: &str, default: &AwsAccess, placements: &[Placement]) -> AwsAccess {
    let placed = placements.iter().find(|p| p.target == target).map(|p| &p.access);
    AwsAccess {
        region: placed.and_then(|a| a.region.clone()).or_else(|| default.region.clone()),
        role_arn: placed.and_then(|a| a.role_arn.clone()).or_else(|| default.role_arn.clone()),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EcsDeploy {
    /// The cluster holding the services.
    pub cluster: String,
    /// The container, in the service's task definition, whose image becomes the artifact.
    pub container: String,
    #[serde(flatten)]
    pub access: AwsAccess,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LambdaDeploy {
    /// The alias that serves traffic (`live`).
    pub alias: String,
    /// Shift part of the traffic first, then all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<LambdaCanary>,
    #[serde(flatten)]
    pub access: AwsAccess,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
}

/// The weighted step of a Lambda deploy: `weight` percent on the new version for `hold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LambdaCanary {
    pub weight: u32,
    pub hold: Seconds,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArgoCdDeploy {
    /// The Argo CD server (`https://argocd.example.com`).
    pub server: String,
    /// An Argo CD API token allowed to sync the applications.
    pub token: SecretRef,
    /// The revision to sync to, with `{sha}`, `{short-sha}`, `{branch}`, `{artifact}` filled.
    #[serde(default = "ArgoCdDeploy::default_revision")]
    pub revision: String,
}

impl ArgoCdDeploy {
    fn default_revision() -> String {
        "{sha}".into()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WebhookDeploy {
    /// Receives the signed deploy (and rollback) requests.
    pub url: String,
    /// The HMAC-SHA256 key that signs each request.
    pub secret: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WaveSpec {
    pub name: String,
    pub targets: Vec<String>,
    /// Time the wave runs before its health check.
    #[serde(default)]
    pub bake: Seconds,
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
    pub fn single(gate: Gate) -> HealthSpec {
        HealthSpec { interval: HealthSpec::default_interval(), gates: vec![GateSpec { gate, consecutive: 1, failures: 1 }] }
    }
}

/// One health gate and how many samples decide it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GateSpec {
    #[serde(flatten)]
    pub gate: Gate,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "kebab-case")]
pub enum Gate {
    /// CloudWatch alarms, by name and/or name prefix, composite alarms included.
    Cloudwatch(CloudWatchGate),
    /// Datadog monitors found by tags.
    Datadog(DatadogGate),
    /// An HTTP endpoint's answer.
    Http(HttpGate),
    /// Healthy when the argv exits 0.
    Command(CommandRun),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CloudWatchGate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_prefix: Option<String>,
    /// How an alarm in INSUFFICIENT_DATA counts.
    #[serde(default)]
    pub insufficient_data: InsufficientData,
    #[serde(flatten)]
    pub access: AwsAccess,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InsufficientData {
    #[default]
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DatadogGate {
    /// Tags every monitor must carry besides `service:<name>` and `env:<environment>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The Datadog site: `datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, ...
    #[serde(default = "DatadogGate::default_site")]
    pub site: String,
    /// The API's base URL, instead of the site's (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    pub api_key: SecretRef,
    pub app_key: SecretRef,
    /// Monitor states that are unhealthy.
    #[serde(default = "DatadogGate::default_unhealthy")]
    pub unhealthy: Vec<String>,
}

impl DatadogGate {
    fn default_site() -> String {
        "datadoghq.com".into()
    }
    fn default_unhealthy() -> Vec<String> {
        vec!["Alert".into()]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HttpGate {
    pub url: String,
    /// The statuses that are healthy; any 2xx when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

/// Where the team hears about releases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct NotifySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSpec>,
    /// Pages the service's on-call through PagerDuty when a release needs a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDutySpec>,
    /// Pages the service's on-call through Opsgenie when a release needs a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opsgenie: Option<OpsgenieSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PagerDutySpec {
    /// The integration key of the service's Events API v2 integration (a secret).
    pub routing_key: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OpsgenieSpec {
    /// The key of an Opsgenie API integration (a secret).
    pub api_key: SecretRef,
    /// Where the Opsgenie account lives, as Datadog's `integrations.opsgenie.region` says it.
    #[serde(default)]
    pub region: OpsgenieRegion,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpsgenieRegion {
    #[default]
    #[serde(rename = "US")]
    Us,
    #[serde(rename = "EU")]
    Eu,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SlackSpec {
    pub channel: String,
    /// Incoming webhook URL (a secret): posts only, cannot update a message in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<SecretRef>,
    /// Bot token (a secret): one message per release, updated in place, with thread replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
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
    /// Parses `90`, `90s`, `5m`, `1h`, `1h30m`.
    pub fn parse(text: &str) -> Result<Seconds, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a duration such as 30s, 5m or 1h".into());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Seconds(n));
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
                _ => return Err(format!("a duration such as 30s, 5m or 1h (unknown unit '{ch}')")),
            };
            let n: u64 = digits.parse().map_err(|_| "a number before each unit (e.g. 1h30m)".to_string())?;
            total = total.saturating_add(n.saturating_mul(unit));
            digits.clear();
        }
        if !digits.is_empty() {
            return Err("a unit after the last number (s, m or h)".into());
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
    }
}

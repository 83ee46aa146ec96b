//! The `buildkite` build provider: creates a build of a pipeline on the release branch and
//! follows it until it finishes.
//!
//! - **Start.** `POST /organizations/{org}/pipelines/{pipeline}/builds` with a bearer token:
//!   `{commit, branch, message: "Baton release <id>", env, meta_data}`. `commit` is the release's
//!   sha, or `HEAD` (the branch's head) when it names none; `env` gets `BATON_RELEASE_ID`,
//!   `BATON_SHA` and `TRACEPARENT` (the build's span of the release's trace) last, so the
//!   catalog cannot override them; `meta_data` gets
//!   `baton-release-id`, by which `find` lists the build a lost answer created
//!   (`?meta_data[baton-release-id]=<id>`). The request may take [`CREATE_TIMEOUT`](crate::http::CREATE_TIMEOUT).
//!   The artifact's sha is the build's `commit` when Buildkite resolved it to a commit id,
//!   else the release's: a `commit` still `HEAD` names nothing, and a template with `{sha}`
//!   or `{short-sha}` then fails the build rather than name an artifact `…:HEAD`.
//! - **States.** `passed` is the only success. `failed`, `canceled`, `canceling` (it ends
//!   `canceled`), `skipped` (superseded by a newer build of the branch), `not_run` and
//!   `waiting_failed` (a step it waited on failed) fail the build, naming the state and the
//!   build's page. `creating`, `scheduled`, `running`, `waiting`, `failing` (a job failed, others
//!   still run: it will end `failed`, with every log) and any state Buildkite adds later are
//!   still running.
//! - **Blocked.** A build at a block step waits for a person to unblock it, and never goes on
//!   by itself. Meanwhile it shows the step's `blocked_state`: `passed` by default, so
//!   `passed` with `blocked: true` has not finished. The state `blocked`, and `passed`,
//!   `failed` or `running` with `blocked: true`, stay `Running` (logged with the page to
//!   unblock it from): a block step is how teams put an approval before a build's release
//!   steps, and the definition's build polls (`Baton.BuildPending` retries, about 73 minutes of
//!   them) bound the wait. A cancelled or skipped build is over, blocked or not.
//! - **Handles.** A build's id is `organization/pipeline/number` (build numbers count per
//!   pipeline): the key its `build.finished` event is read into.
//! - **Cancel.** `PUT .../builds/{number}/cancel`; Buildkite refuses (422) builds that are not
//!   scheduled, running or failing, that is builds already finished: not an error.
//! - A 2xx to the create request whose body does not read is `Rejected`, not retried: the build
//!   may exist, and a retry would start a second. The build `find` lists for the release is
//!   cancelled: Baton cannot follow a build whose creation it could not read.
//! - Errors: 401/403 name the token's reference (never its value), 404 the pipeline; 429 waits
//!   out a short `Retry-After` (else `RateLimit-Reset`, seconds until the limit resets) once,
//!   else is `Unavailable` saying when to retry; 5xx and timeouts are `Unavailable`.

use super::rest::{Body, Call, Credential, RestApi};
use super::{ArtifactTemplate, RunFacts, Started, Verdict, created_from, handle_state, unfollowable};
use crate::http::{decode, header_u64, retry_after};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle, SecretResolver};
use baton_domain::trace::{TRACEPARENT, build_traceparent};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of the handles this provider returns.
pub(crate) const PROVIDER: &str = "buildkite";
pub const DEFAULT_BUILDKITE_API_URL: &str = "https://api.buildkite.com/v2";
const SERVICE: &str = "Buildkite";
/// The build meta-data key holding the release id.
const RELEASE_ID_KEY: &str = "baton-release-id";

/// Creates a build for each release and polls it; see the module docs.
pub struct BuildkiteBuildProvider {
    api: RestApi,
    organization: String,
    pipeline: String,
    token: LazySecret,
    env: BTreeMap<String, String>,
    artifact: ArtifactTemplate,
}

/// The fields of a build (as the create, get and cancel endpoints answer) Baton reads.
#[derive(Debug, Deserialize)]
struct Build {
    number: u64,
    web_url: String,
    state: String,
    commit: String,
    /// Whether a block step holds the build.
    #[serde(default)]
    blocked: bool,
    /// When an agent began its first job; null while it is scheduled.
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    env: BTreeMap<String, serde_json::Value>,
}

/// How long Buildkite asks to wait: `Retry-After`, else the seconds until `RateLimit-Reset`.
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    retry_after(headers).or_else(|| header_u64(headers, "ratelimit-reset").map(Duration::from_secs))
}

impl BuildkiteBuildProvider {
    /// `source` is the catalog file, for error messages. Refuses bad slugs, API URL or artifact
    /// template before any secret is read.
    pub fn new(
        spec: &BuildkiteBuild,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<BuildkiteBuildProvider, ProviderError> {
        let rejected = |why: String| ProviderError::rejected(format!("{source}: extensions.baton.build: buildkite {why}"));
        for (field, slug) in [("organization", &spec.organization), ("pipeline", &spec.pipeline)] {
            check_slug(slug).map_err(|why| rejected(format!("{field}: expected a slug as in the Buildkite URL; {why}")))?;
        }
        let api_url = spec.api_url.as_deref().unwrap_or(DEFAULT_BUILDKITE_API_URL);
        let api = RestApi::new(SERVICE, api_url, http, rate_limit_wait).map_err(rejected)?;
        Ok(BuildkiteBuildProvider {
            api,
            organization: spec.organization.clone(),
            pipeline: spec.pipeline.clone(),
            token: LazySecret::new(spec.token.clone(), secrets),
            env: spec.env.clone(),
            artifact: ArtifactTemplate::parse(&spec.artifact, BUILDKITE.run_word).map_err(rejected)?,
        })
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> BuildkiteBuildProvider {
        self.api.set_timeout(timeout);
        self
    }

    /// How long the request creating a build may take ([`CREATE_TIMEOUT`](crate::http::CREATE_TIMEOUT) unless set).
    pub fn with_create_timeout(mut self, timeout: Duration) -> BuildkiteBuildProvider {
        self.api.set_create_timeout(timeout);
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`](crate::RateLimits::shared).
    pub fn with_rate_limits(mut self, limits: std::sync::Arc<crate::RateLimits>) -> BuildkiteBuildProvider {
        self.api.set_rate_limits(limits);
        self
    }

    fn handle(&self, request: &BuildRequest, build: &Build) -> RunHandle {
        let started = Started::of(request).handle(PROVIDER, build.number, &build.web_url);
        RunHandle { id: run_id(&self.organization, &self.pipeline, build.number), ..started }
    }

    /// "pipeline acme/web"
    fn label(&self) -> String {
        format!("pipeline {}/{}", self.organization, self.pipeline)
    }

    fn builds(&self, tail: &[&str]) -> reqwest::Url {
        let head = ["organizations", self.organization.as_str(), "pipelines", self.pipeline.as_str(), "builds"];
        self.api.endpoint(head.into_iter().chain(tail.iter().copied()))
    }

    /// Sends an authenticated request about the pipeline's builds; the answer's status and body.
    async fn send(
        &self,
        method: Method,
        tail: &[&str],
        body: Body<'_>,
        context: &str,
        also_ok: Option<StatusCode>,
    ) -> Result<(StatusCode, Vec<u8>), ProviderError> {
        let token = self.token.get().await?;
        let secrets = [token];
        let call = self.call(context, &secrets, also_ok);
        self.api.call(method, self.builds(tail), Credential::Bearer(token), body, &call).await
    }

    /// What a request about the pipeline's builds is, for its errors.
    fn call<'a>(&self, context: &str, secrets: &'a [&'a Secret], also_ok: Option<StatusCode>) -> Call<'a> {
        Call {
            context: context.to_owned(),
            credentials: format!(
                "check the token {}: it must be a current API access token of organization {} with read_builds and write_builds",
                self.token.reference(),
                self.organization
            ),
            missing: format!(
                "Buildkite has no {} that this token can see, or no such build: check `organization` and `pipeline`",
                self.label()
            ),
            secrets,
            also_ok,
        }
    }

    /// Creates the build; `Err` when no answer came, or an error one.
    async fn create(&self, request: &BuildRequest) -> Result<(Vec<u8>, String), ProviderError> {
        let mut env = self.env.clone();
        env.insert("BATON_RELEASE_ID".into(), request.release_id.0.clone());
        env.insert("BATON_SHA".into(), request.sha.clone().unwrap_or_default());
        env.insert(TRACEPARENT.into(), build_traceparent(&request.release_id));
        let body = serde_json::json!({
            "commit": request.sha.as_deref().unwrap_or("HEAD"),
            "branch": request.branch,
            "message": format!("Baton release {}", request.release_id),
            "env": env,
            "meta_data": { RELEASE_ID_KEY: request.release_id.0 },
        });
        let context = format!("creating a build of {} on {}", self.label(), request.branch);
        let token = self.token.get().await?;
        let secrets = [token];
        let call = self.call(&context, &secrets, None);
        let answer = self.api.create(self.builds(&[]), Credential::Bearer(token), Body::Json(&body), &call).await?;
        Ok((answer, context))
    }

    fn progress(&self, build: &Build, started: &Started) -> BuildProgress {
        match verdict(&build.state, build.blocked) {
            Verdict::Passed => {
                let number = build.number.to_string();
                let facts = RunFacts { sha: &build.commit, branch: &started.branch, run_id: &number, release_id: &started.release_id.0 };
                self.artifact.built(&facts, started.sha.as_deref(), &build.web_url)
            }
            Verdict::Failed(what) => BuildProgress::Failed {
                reason: format!("Buildkite build {} of {} is '{}': {what}; see {}", build.number, self.label(), build.state, build.web_url),
            },
            Verdict::Running => {
                if build.blocked || build.state == "blocked" {
                    tracing::info!(target: "baton::buildkite", build = build.number, url = %build.web_url,
                        "Buildkite build of {} waits at a block step: unblock it to go on", self.label());
                }
                BuildProgress::Running
            }
        }
    }
}

/// A build's id, in its handle and in its events' keys: `organization/pipeline/number`. Build
/// numbers count per pipeline, so the number alone could name another pipeline's build.
pub(crate) fn run_id(organization: &str, pipeline: &str, number: u64) -> String {
    format!("{organization}/{pipeline}/{number}")
}

/// The build number a handle's id ends with (a bare number in handles made before the id named
/// its pipeline).
fn build_number(run: &RunHandle) -> Result<u64, ProviderError> {
    let number = run.id.rsplit('/').next().unwrap_or_default();
    number.parse().map_err(|_| ProviderError::rejected(format!("{SERVICE} run handle {}: the id does not end with a build number", run.id)))
}

/// What a build's state says about it, `blocked` when a block step holds it (the polls' and the
/// `build.finished` receiver's reading).
pub(crate) fn verdict(state: &str, blocked: bool) -> Verdict {
    match (state, blocked) {
        ("blocked", _) | ("passed" | "failed" | "running", true) => Verdict::Running,
        ("passed", false) => Verdict::Passed,
        ("failed", false) => Verdict::Failed("a job failed"),
        ("canceled", _) => Verdict::Failed("someone or something cancelled it"),
        ("canceling", _) => Verdict::Failed("it is being cancelled"),
        ("skipped", _) => Verdict::Failed("Buildkite skipped it, most often for a newer build of the branch"),
        ("not_run", _) => Verdict::Failed("it was not run"),
        ("waiting_failed", _) => Verdict::Failed("a step it waited on failed"),
        // creating, scheduled, running, waiting, failing, and any state Buildkite adds later.
        _ => Verdict::Running,
    }
}

#[async_trait]
impl BuildProvider for BuildkiteBuildProvider {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        let asked_at = Utc::now();
        let (answer, context) = self.create(request).await?;
        let build: Build = match decode(&answer, &context) {
            Ok(build) => build,
            Err(unreadable) => return Err(unfollowable(self, request, asked_at, unreadable, SERVICE).await),
        };
        tracing::info!(target: "baton::buildkite", build = build.number, url = %build.web_url, state = %build.state,
            "created a build of {} on {}", self.label(), request.branch);
        Ok(self.handle(request, &build))
    }

    /// Lists the pipeline's builds on the branch with the release's meta-data, created since
    /// just before `since`; the oldest is the one the first request created.
    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        let mut url = self.builds(&[]);
        url.query_pairs_mut()
            .append_pair("branch", &request.branch)
            .append_pair(&format!("meta_data[{RELEASE_ID_KEY}]"), &request.release_id.0)
            .append_pair("created_from", &created_from(since).to_rfc3339_opts(SecondsFormat::Secs, true))
            .append_pair("per_page", "100");
        let context = format!("looking for the build of release {} on {}", request.release_id, self.label());
        let token = self.token.get().await?;
        let secrets = [token];
        let call = self.call(&context, &secrets, None);
        let (_, answer) = self.api.call(Method::GET, url, Credential::Bearer(token), Body::Empty, &call).await?;
        let builds: Vec<Build> = decode(&answer, &context)?;
        // The filter is the service's; the release id in the build's own env is the proof.
        let ours =
            |build: &&Build| build.env.get("BATON_RELEASE_ID").and_then(serde_json::Value::as_str) == Some(request.release_id.0.as_str());
        let oldest = builds.iter().filter(ours).min_by_key(|build| build.number);
        Ok(oldest.map(|build| {
            tracing::info!(target: "baton::buildkite", build = build.number, url = %build.web_url,
                "found the build release {} started on {}", request.release_id, self.label());
            self.handle(request, build)
        }))
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let started: Started = handle_state(run, PROVIDER, SERVICE)?;
        let number = build_number(run)?.to_string();
        let context = format!("reading Buildkite build {number} of {}", self.label());
        let (_, answer) = self.send(Method::GET, &[&number], Body::Empty, &context, None).await?;
        let build: Build = decode(&answer, &context)?;
        Ok(BuildPoll { progress: self.progress(&build, &started), started_at: build.started_at, run: None })
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        let _: Started = handle_state(run, PROVIDER, SERVICE)?;
        let number = build_number(run)?.to_string();
        let context = format!("cancelling Buildkite build {number} of {}", self.label());
        // 422: the build is no longer scheduled, running or failing, so there is nothing to stop.
        let (status, _) =
            self.send(Method::PUT, &[&number, "cancel"], Body::Empty, &context, Some(StatusCode::UNPROCESSABLE_ENTITY)).await?;
        tracing::info!(target: "baton::buildkite", build = %number, status = status.as_u16(), "cancelled a build of {}", self.label());
        Ok(())
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{CheckedText, Field, Kind, ProviderShape, Slot, field, required, through_model};

/// A build of a Buildkite pipeline; it gets `BATON_RELEASE_ID` and `BATON_SHA` in its
/// environment besides `env`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Authenticates the provider's callbacks to Baton: the webhook's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_secret: Option<SecretRef>,
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

const SLUG: CheckedText = CheckedText {
    expected: "a slug of lowercase letters, digits, `-` and `_`, as in the Buildkite URL",
    check: check_slug,
    schema: || serde_json::json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$" }),
    integers: false,
};

const BUILD_BUILDKITE: &[Field] = &[
    required("organization", Kind::Checked(&SLUG), "The organization's slug, as in its Buildkite URL."),
    required("pipeline", Kind::Checked(&SLUG), "The pipeline's slug, as in its Buildkite URL."),
    required("token", Kind::Secret, "An API access token with `read_builds` and `write_builds` (secret reference)."),
    field("env", Kind::Env, "Build environment variables, besides `BATON_RELEASE_ID`, `BATON_SHA` and `TRACEPARENT`."),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}` and `{release-id}` \
         filled from the build.",
    ),
    field("api-url", Kind::Url, "Buildkite's REST API; `https://api.buildkite.com/v2` by default."),
    field(
        "events-secret",
        Kind::Secret,
        "The token of the webhook that sends build events to Baton, signed or plain (secret reference); without it, Baton polls.",
    ),
];

pub const BUILDKITE: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "buildkite",
    doc: "Creates a Buildkite build and polls it.",
    fields: BUILD_BUILDKITE,
    at_least_one: None,
    local_only: false,
    run_word: Some("build-number"),
    through_model: through_model::<BuildkiteBuild>,
};

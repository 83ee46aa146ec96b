//! The `gitlab-ci` build provider: creates a pipeline on the release branch and follows it until
//! it finishes.
//!
//! - **Start.** With `token` alone, `POST /projects/:id/pipeline` (`PRIVATE-TOKEN` header, JSON
//!   `{ref, variables: [{key, value}]}`). With `trigger-token`, the trigger API
//!   `POST /projects/:id/trigger/pipeline` (form `token`, `ref`, `variables[KEY]`): the trigger
//!   token travels in the body, never in the URL. Both add `BATON_RELEASE_ID` and `BATON_SHA`
//!   (empty when the release names no commit) and `TRACEPARENT` (the build's span of the
//!   release's trace, for a job that traces) to the configured variables, last, so the
//!   catalog cannot override them. A pipeline runs at the branch's head; the artifact's sha is
//!   the pipeline's. The request may take [`CREATE_TIMEOUT`](crate::http::CREATE_TIMEOUT).
//! - **Find.** A create whose answer was lost may have made the pipeline: `find` lists the
//!   branch's pipelines updated since just before the request (`GET /projects/:id/pipelines`,
//!   oldest first) and reads each one's variables (`GET .../pipelines/:id/variables`) for the
//!   release's `BATON_RELEASE_ID`. It needs `token`: with a trigger token alone it is refused
//!   rather than risk a second pipeline.
//! - **Poll and cancel** use `token`. A trigger token cannot read pipelines: without `token`,
//!   polls go unauthenticated, which works for public projects only, and cancel is refused.
//! - **Statuses.** `success` is the only success. `failed`, `canceled`, `canceling` (it ends
//!   `canceled`) and `skipped` (no job ran, so nothing was built) fail the build, naming the
//!   status and the pipeline's page. `created`, `waiting_for_resource`, `preparing`, `pending`,
//!   `running`, `scheduled` (a delayed job waits for its time), `waiting_for_callback` and any
//!   status GitLab adds later are still running.
//! - **`manual`** means the pipeline reached a blocking manual job (`when: manual` with
//!   `allow_failure: false`, the default under `rules`) and waits for a person to play it; it
//!   never finishes by itself. It stays `Running` (logged with the page to play it from): a
//!   manual job is how teams gate a build on an approval, and the definition's build polls
//!   (`Baton.BuildPending` retries, about 73 minutes of them) bound the wait. Non-blocking
//!   manual jobs do not hold a pipeline in `manual`.
//! - A 2xx to the create request whose body does not read is `Rejected`, not retried: the
//!   pipeline may exist, and a retry would start a second. The pipeline `find` finds is
//!   cancelled: Baton cannot follow a pipeline whose creation it could not read.
//! - Errors: 401/403 name the token's reference (never its value), 404 the project; 429 holds
//!   the token back (`Retry-After`, else until `RateLimit-Reset`; see [`crate::RateLimits`]),
//!   waited out at once when short, else `Unavailable` saying until when; 5xx and timeouts are
//!   `Unavailable`.

use super::rest::{Body, Call, Credential, RestApi};
use super::{ArtifactTemplate, RunFacts, Started, Verdict, created_from, handle_number, handle_state, unfollowable};
use crate::http::{decode, header_u64, retry_after, shown};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle, SecretResolver};
use baton_domain::trace::{TRACEPARENT, build_traceparent};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of the handles this provider returns.
pub(crate) const PROVIDER: &str = "gitlab-ci";
pub const DEFAULT_GITLAB_API_URL: &str = "https://gitlab.com/api/v4";
const SERVICE: &str = "GitLab";
const TOKEN_HEADER: &str = "PRIVATE-TOKEN";

/// Creates a pipeline for each build and polls it; see the module docs.
pub struct GitLabCiBuildProvider {
    api: RestApi,
    project: String,
    token: Option<LazySecret>,
    trigger_token: Option<LazySecret>,
    variables: BTreeMap<String, String>,
    artifact: ArtifactTemplate,
}

/// The fields of a pipeline (as the create, trigger, get and cancel endpoints answer) Baton reads.
#[derive(Debug, Deserialize)]
struct Pipeline {
    id: u64,
    sha: String,
    web_url: String,
    status: String,
    /// When its first job began; null while it is created or pending.
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
}

/// A pipeline variable, as `GET .../pipelines/:id/variables` lists them.
#[derive(Debug, Deserialize)]
struct Variable {
    key: String,
    #[serde(default)]
    value: String,
}

/// How long GitLab asks to wait: `Retry-After`, else until `RateLimit-Reset` (Unix time).
fn rate_limit_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after(headers).or_else(|| {
        let reset = header_u64(headers, "ratelimit-reset")?;
        Some(Duration::from_secs(reset.saturating_sub(u64::try_from(Utc::now().timestamp()).unwrap_or(0))))
    })
}

/// A refusal of the `gitlab-ci` block of catalog file `source`, saying `why`.
fn block_error(source: &str, why: String) -> ProviderError {
    ProviderError::rejected(format!("{source}: extensions.baton.build: gitlab-ci {why}"))
}

/// The API of the block's GitLab (its `api-url`, else gitlab.com's), once its `project` is one.
pub(crate) fn project_api(spec: &GitLabCiBuild, source: &str, http: reqwest::Client) -> Result<RestApi, ProviderError> {
    GitLabProject::check(&spec.project.0)
        .map_err(|why| block_error(source, format!("project: expected {}; {why}", GitLabProject::EXPECTED)))?;
    let api_url = spec.api_url.as_deref().unwrap_or(DEFAULT_GITLAB_API_URL);
    RestApi::new(SERVICE, api_url, http, rate_limit_wait).map_err(|why| block_error(source, why))
}

/// How many of the branch's pipelines since the request `find` reads the variables of.
const FIND_CANDIDATES: usize = 20;

impl GitLabCiBuildProvider {
    /// `source` is the catalog file, for error messages. Refuses a bad project, API URL or
    /// artifact template, and a block with neither token, before any secret is read.
    pub fn new(
        spec: &GitLabCiBuild,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<GitLabCiBuildProvider, ProviderError> {
        let rejected = |why: String| block_error(source, why);
        let api = project_api(spec, source, http)?;
        if spec.token.is_none() && spec.trigger_token.is_none() {
            return Err(rejected("needs `token`, `trigger-token` or both".into()));
        }
        let artifact = ArtifactTemplate::parse(&spec.artifact, GITLAB_CI.run_word).map_err(rejected)?;
        let lazy = |reference: &Option<_>| reference.clone().map(|reference| LazySecret::new(reference, Arc::clone(&secrets)));
        Ok(GitLabCiBuildProvider {
            api,
            project: spec.project.0.clone(),
            token: lazy(&spec.token),
            trigger_token: lazy(&spec.trigger_token),
            variables: spec.variables.clone(),
            artifact,
        })
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> GitLabCiBuildProvider {
        self.api.set_timeout(timeout);
        self
    }

    /// How long the request creating a pipeline may take ([`CREATE_TIMEOUT`](crate::http::CREATE_TIMEOUT) unless set).
    pub fn with_create_timeout(mut self, timeout: Duration) -> GitLabCiBuildProvider {
        self.api.set_create_timeout(timeout);
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`](crate::RateLimits::shared).
    pub fn with_rate_limits(mut self, limits: std::sync::Arc<crate::RateLimits>) -> GitLabCiBuildProvider {
        self.api.set_rate_limits(limits);
        self
    }

    /// `{api}/projects/{project}/...`, the project encoded as one segment (`acme%2Fweb`).
    fn endpoint(&self, tail: &[&str]) -> reqwest::Url {
        self.api.endpoint(["projects", self.project.as_str()].into_iter().chain(tail.iter().copied()))
    }

    fn call<'a>(&self, context: String, secrets: &'a [&'a Secret], credential: Option<&LazySecret>) -> Call<'a> {
        let credentials = match credential {
            Some(token) => format!(
                "check the token {}: it must be current and allowed to run pipelines of project {} (an access token \
                 needs the `api` scope and the Developer role or more)",
                token.reference(),
                self.project
            ),
            None => format!(
                "reading pipelines of project {} needs `token`: a trigger token only starts them, and the project is not public",
                self.project
            ),
        };
        let missing = format!(
            "GitLab has no project {} on {} that these credentials can see, or no such pipeline: check `project` and `api-url`",
            self.project,
            shown(&self.api.endpoint([]))
        );
        Call { context, credentials, missing, secrets, also_ok: None }
    }

    /// Every token the block names, resolved: blanked out of anything quoted from any answer,
    /// whichever one the request carried.
    async fn secrets(&self) -> Result<Vec<&Secret>, ProviderError> {
        let mut secrets = Vec::new();
        for token in [&self.token, &self.trigger_token].into_iter().flatten() {
            secrets.push(token.get().await?);
        }
        Ok(secrets)
    }

    fn variables(&self, request: &BuildRequest) -> BTreeMap<String, String> {
        let mut variables = self.variables.clone();
        variables.insert("BATON_RELEASE_ID".into(), request.release_id.0.clone());
        variables.insert("BATON_SHA".into(), request.sha.clone().unwrap_or_default());
        variables.insert(TRACEPARENT.into(), build_traceparent(&request.release_id));
        variables
    }

    /// Creates the pipeline: the answer's body, and what the call was about for reading it.
    async fn create(&self, request: &BuildRequest) -> Result<(Vec<u8>, String), ProviderError> {
        let context = format!("creating a pipeline of GitLab project {} on {}", self.project, request.branch);
        let variables = self.variables(request);
        let secrets = self.secrets().await?;
        let answer = if let Some(trigger) = &self.trigger_token {
            let secret = trigger.get().await?;
            let mut form = vec![("token".to_owned(), secret.expose().to_owned()), ("ref".to_owned(), request.branch.clone())];
            form.extend(variables.into_iter().map(|(key, value)| (format!("variables[{key}]"), value)));
            let call = self.call(context.clone(), &secrets, Some(trigger));
            self.api.create(self.endpoint(&["trigger", "pipeline"]), Credential::None, Body::Form(&form), &call).await?
        } else {
            let token = self.token.as_ref().expect("new() requires token or trigger-token");
            let secret = token.get().await?;
            let variables: Vec<_> = variables.into_iter().map(|(key, value)| serde_json::json!({ "key": key, "value": value })).collect();
            let body = serde_json::json!({ "ref": request.branch, "variables": variables });
            let call = self.call(context.clone(), &secrets, Some(token));
            let credential = Credential::Header(TOKEN_HEADER, secret);
            self.api.create(self.endpoint(&["pipeline"]), credential, Body::Json(&body), &call).await?
        };
        Ok((answer, context))
    }

    /// Reads `tail` of the project with `token`: the answer, decoded.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        token: &LazySecret,
        url: reqwest::Url,
        context: String,
    ) -> Result<T, ProviderError> {
        let secrets = self.secrets().await?;
        let secret = token.get().await?;
        let call = self.call(context.clone(), &secrets, Some(token));
        let (_, answer) = self.api.call(Method::GET, url, Credential::Header(TOKEN_HEADER, secret), Body::Empty, &call).await?;
        decode(&answer, &context)
    }

    /// Reads or cancels (`tail` `cancel`) pipeline `id`, with `token` when there is one: the
    /// answer's body, and what the call was about for the errors reading it.
    async fn pipeline(&self, method: Method, id: u64, tail: Option<&str>, doing: &str) -> Result<(Vec<u8>, String), ProviderError> {
        let secrets = self.secrets().await?;
        let secret = match &self.token {
            Some(token) => Some(token.get().await?),
            None => None,
        };
        let context = format!("{doing} GitLab pipeline {id} of project {}", self.project);
        let call = self.call(context.clone(), &secrets, self.token.as_ref());
        let credential = secret.map_or(Credential::None, |secret| Credential::Header(TOKEN_HEADER, secret));
        let id = id.to_string();
        let path: Vec<&str> = ["pipelines", id.as_str()].into_iter().chain(tail).collect();
        let (_, answer) = self.api.call(method, self.endpoint(&path), credential, Body::Empty, &call).await?;
        Ok((answer, context))
    }

    fn progress(&self, pipeline: &Pipeline, started: &Started) -> BuildProgress {
        match verdict(&pipeline.status) {
            Verdict::Passed => {
                let run_id = pipeline.id.to_string();
                let facts = RunFacts { sha: &pipeline.sha, branch: &started.branch, run_id: &run_id, release_id: &started.release_id.0 };
                self.artifact.built(&facts, started.sha.as_deref(), &pipeline.web_url)
            }
            Verdict::Failed(what) => BuildProgress::Failed {
                reason: format!(
                    "GitLab pipeline {} of project {} is '{}': {what}; see {}",
                    pipeline.id, self.project, pipeline.status, pipeline.web_url
                ),
            },
            Verdict::Running => {
                if pipeline.status == "manual" {
                    tracing::info!(target: "baton::gitlab", pipeline = pipeline.id, url = %pipeline.web_url,
                        "GitLab pipeline of {} waits for a manual job: play it to go on", self.project);
                }
                BuildProgress::Running
            }
        }
    }
}

/// What a pipeline's status says about the build (the polls' and the pipeline-event receiver's
/// reading).
pub(crate) fn verdict(status: &str) -> Verdict {
    match status {
        "success" => Verdict::Passed,
        "failed" => Verdict::Failed("a job failed"),
        "canceled" => Verdict::Failed("someone or something cancelled it"),
        "canceling" => Verdict::Failed("it is being cancelled"),
        "skipped" => Verdict::Failed("no job ran (their rules excluded them all), so nothing was built"),
        // manual (a blocking manual job waits for a person), created, waiting_for_resource,
        // preparing, pending, running, scheduled, waiting_for_callback, and any status GitLab
        // adds later: no outcome yet.
        _ => Verdict::Running,
    }
}

#[async_trait]
impl BuildProvider for GitLabCiBuildProvider {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        let asked_at = Utc::now();
        let (answer, context) = self.create(request).await?;
        let pipeline: Pipeline = match decode(&answer, &context) {
            Ok(pipeline) => pipeline,
            Err(unreadable) => return Err(unfollowable(self, request, asked_at, unreadable, SERVICE).await),
        };
        tracing::info!(target: "baton::gitlab", pipeline = pipeline.id, url = %pipeline.web_url, status = %pipeline.status,
            "created a pipeline of {} on {}", self.project, request.branch);
        Ok(Started::of(request).handle(PROVIDER, pipeline.id, &pipeline.web_url))
    }

    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        let Some(token) = &self.token else {
            return Err(ProviderError::rejected(format!(
                "the request for a pipeline of GitLab project {} got no answer, and looking for the pipeline it may have \
                 started needs `token` (a trigger token cannot list pipelines): not asking again, to start no second one",
                self.project
            )));
        };
        let mut url = self.endpoint(&["pipelines"]);
        url.query_pairs_mut()
            .append_pair("ref", &request.branch)
            .append_pair("updated_after", &created_from(since).to_rfc3339_opts(SecondsFormat::Secs, true))
            .append_pair("order_by", "id")
            .append_pair("sort", "asc")
            .append_pair("per_page", &FIND_CANDIDATES.to_string());
        let context = format!("looking for the pipeline of release {} in GitLab project {}", request.release_id, self.project);
        let pipelines: Vec<Pipeline> = self.read(token, url, context.clone()).await?;
        for pipeline in pipelines {
            let id = pipeline.id.to_string();
            let variables: Vec<Variable> = self.read(token, self.endpoint(&["pipelines", &id, "variables"]), context.clone()).await?;
            if variables.iter().any(|variable| variable.key == "BATON_RELEASE_ID" && variable.value == request.release_id.0) {
                tracing::info!(target: "baton::gitlab", pipeline = pipeline.id, url = %pipeline.web_url,
                    "found the pipeline release {} started in {}", request.release_id, self.project);
                return Ok(Some(Started::of(request).handle(PROVIDER, pipeline.id, &pipeline.web_url)));
            }
        }
        Ok(None)
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let started: Started = handle_state(run, PROVIDER, SERVICE)?;
        let id = handle_number(run, SERVICE)?;
        let (answer, context) = self.pipeline(Method::GET, id, None, "reading").await?;
        let pipeline: Pipeline = decode(&answer, &context)?;
        Ok(BuildPoll { progress: self.progress(&pipeline, &started), started_at: pipeline.started_at, run: None })
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        let _: Started = handle_state(run, PROVIDER, SERVICE)?;
        let id = handle_number(run, SERVICE)?;
        if self.token.is_none() {
            let page = run.url.as_deref().unwrap_or("its page on GitLab");
            return Err(ProviderError::rejected(format!(
                "cancelling GitLab pipeline {id} of project {} needs `token` (a trigger token cannot cancel): cancel it at {page}",
                self.project
            )));
        }
        // Any 2xx will do, whatever it says: the pipeline stops, or had already finished.
        self.pipeline(Method::POST, id, Some("cancel"), "cancelling").await?;
        tracing::info!(target: "baton::gitlab", pipeline = id, "cancelled a pipeline of {}", self.project);
        Ok(())
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{CheckedText, Field, Kind, ProviderShape, Slot, field, required, through_model};
use std::fmt;

/// A GitLab CI pipeline on the release branch; it gets the variables `BATON_RELEASE_ID` and
/// `BATON_SHA` besides `variables`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Authenticates the provider's callbacks to Baton: the webhook's secret token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_secret: Option<SecretRef>,
}

/// A GitLab project as the API names it: its numeric id, or its full path (`group/sub/name`).
/// The catalog may write an id as a number; it is kept as text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

impl<'de> serde::Deserialize<'de> for GitLabProject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(u64),
            Text(String),
        }
        Ok(GitLabProject(match <Raw as serde::Deserialize>::deserialize(deserializer)? {
            Raw::Id(id) => id.to_string(),
            Raw::Text(text) => text,
        }))
    }
}

const GITLAB_PROJECT: CheckedText = CheckedText {
    expected: GitLabProject::EXPECTED,
    check: GitLabProject::check,
    schema: || serde_json::json!({ "type": "string", "pattern": "^([0-9]+|[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+)$" }),
    integers: true,
};

const BUILD_GITLAB_CI: &[Field] = &[
    required("project", Kind::Checked(&GITLAB_PROJECT), "The project's numeric id or its path `group/name`."),
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
    field("variables", Kind::Env, "Pipeline variables, besides `BATON_RELEASE_ID`, `BATON_SHA` and `TRACEPARENT`."),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-id}` and `{release-id}` \
         filled from the pipeline (e.g. `registry.gitlab.com/acme/web:{short-sha}`).",
    ),
    field("api-url", Kind::Url, "A self-managed instance's API, `https://HOST/api/v4`; gitlab.com's by default."),
    field(
        "events-secret",
        Kind::Secret,
        "The secret token of the project webhook that sends pipeline events to Baton (secret reference); without it, Baton polls.",
    ),
];

pub const GITLAB_CI: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "gitlab-ci",
    doc: "Creates a GitLab CI pipeline and polls it.",
    fields: BUILD_GITLAB_CI,
    at_least_one: Some((&["token", "trigger-token"], "Baton needs one to create the pipeline")),
    local_only: false,
    run_word: Some("pipeline-id"),
    through_model: through_model::<GitLabCiBuild>,
};

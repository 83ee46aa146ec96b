//! The `github-actions` build provider: dispatches a workflow on the release branch and
//! follows the run it started until it completes.
//!
//! The workflow must have a `workflow_dispatch` trigger that declares the inputs
//! `baton_release_id` and `baton_sha` (GitHub refuses undeclared inputs) besides those of the
//! config, and `baton_traceparent` (the build's span of the release's trace) when the config
//! asks for it: off by default, as a workflow that does not declare it refuses the dispatch (a
//! refusal naming it is dispatched again without it, so it never fails a build). A dispatch runs the workflow at the branch's head: a workflow that must build exactly
//! the release's commit checks out `inputs.baton_sha` (empty when the release names none). The
//! artifact's sha is the run's `head_sha`, the branch head at dispatch, which differs from
//! `baton_sha` only if the branch moved after the release was cut.
//!
//! Decisions worth knowing:
//! - Only `success` is a successful build. `neutral` and `skipped` count as passing for a
//!   required status check (GitHub's "about status checks"), since they block nothing; but a
//!   deploy needs something built, and neither says anything was: a skipped run never started
//!   its jobs (their `if:` was false), and a neutral one reports neither success nor failure. Both fail
//!   the build with a reason that names the conclusion.
//! - A 200 whose body does not parse is `Unavailable` (see [`decode`]), except the dispatch's:
//!   GitHub accepted it and a run exists, so retrying would start a second build, and Baton
//!   cannot follow a run whose dispatch it could not read: the run `find` locates is cancelled
//!   and the start is `Rejected`, saying so.
//! - **Find.** A dispatch whose answer never came (it may take [`CREATE_TIMEOUT`]) may have
//!   started a run: `find` locates it as for a 204, from just before the first dispatch.
//! - When the dispatch answers 204 (GitHub Enterprise Server versions without
//!   `return_run_details`), the run is found by listing the workflow's `workflow_dispatch` runs
//!   on the branch (at the release's sha when known) created since just before the dispatch.
//!   Only a run Baton can tie to the release is taken: one whose title names the release
//!   (`run-name: ${{ inputs.baton_release_id }}`), or, when the release names its commit, the
//!   only run listed at that commit. Anything else (several untitled runs, or an untitled run
//!   of a release that names no commit) could be another release's or a person's: the build
//!   fails saying Baton cannot tell which run is its own, and how to make it tell (a run
//!   GitHub lists later cannot make an ambiguous listing less so). Until a run shows up the
//!   build is `Running`, for at most [`LOCATE_WINDOW`].
//! - Rate limits (429, or 403 with `x-ratelimit-remaining: 0` or `retry-after`) are
//!   `Unavailable` with "retry after N s" in the text: `retry-after`, else the time left until
//!   `x-ratelimit-reset`, else the minute GitHub asks for.

use super::github_app::{AppAuth, GitHubAppTokens, InstallationToken};
use super::{ArtifactTemplate, RunFacts, created_from, handle_number, handle_state, unfollowable};
use crate::http::{
    CREATE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, RateLimits, SHORT_WAIT, after, decode, endpoint, header_u64, quote, rate_limited, retry_after,
    unanswered,
};
use crate::secrets::Secret;
use async_trait::async_trait;
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle};
use baton_domain::release::ReleaseId;
use baton_domain::trace::build_traceparent;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The `provider` of the handles this provider returns.
pub(crate) const PROVIDER: &str = "github-actions";
/// Who answers, in rate-limit errors.
const SERVICE: &str = "GitHub";
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
/// The version whose dispatch answers with the run when asked to (`return_run_details`).
const API_VERSION: &str = "2022-11-28";
const GITHUB_JSON: &str = "application/vnd.github+json";
/// The inputs Baton adds to every dispatch; a config cannot set them.
const RELEASE_ID_INPUT: &str = "baton_release_id";
const SHA_INPUT: &str = "baton_sha";
/// The input that carries the build's `traceparent`, with [`GitHubActionsConfig::traceparent`].
const TRACEPARENT_INPUT: &str = "baton_traceparent";
/// How long a dispatched run may take to show up in the listing before the build fails.
const LOCATE_WINDOW: chrono::Duration = chrono::Duration::minutes(10);
/// GitHub's advice for a secondary rate limit that says nothing about when it ends.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A GitHub Actions build: which workflow, how to authenticate, and how its artifact is named.
#[derive(Debug, Clone)]
pub struct GitHubActionsConfig {
    pub owner: String,
    pub repo: String,
    /// The workflow's file name (`release.yml`) or numeric id.
    pub workflow: String,
    /// Passed to the workflow as they are, besides `baton_release_id` and `baton_sha`.
    pub inputs: BTreeMap<String, String>,
    /// Also pass the build's span of the release's trace as `baton_traceparent`, which the
    /// workflow then declares (GitHub refuses a dispatch with an undeclared input).
    pub traceparent: bool,
    /// [`DEFAULT_GITHUB_API_URL`], or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    pub auth: GitHubAuth,
    /// The artifact's reference, with `{sha}`, `{short-sha}` (7 characters), `{branch}`,
    /// `{run-id}` and `{release-id}` filled from the run, e.g. `ghcr.io/acme/web:{short-sha}`.
    pub artifact: String,
    /// How long one API request may take: [`DEFAULT_REQUEST_TIMEOUT`] unless set.
    pub request_timeout: Duration,
    /// How long the dispatch may take: [`CREATE_TIMEOUT`] unless set.
    pub create_timeout: Duration,
    /// The rate-limit holds to mind: [`RateLimits::shared`] unless set.
    pub rate_limits: std::sync::Arc<RateLimits>,
}

impl GitHubActionsConfig {
    /// A config with no extra inputs, on github.com, with the default request timeout.
    pub fn new(owner: &str, repo: &str, workflow: &str, auth: GitHubAuth, artifact: &str) -> GitHubActionsConfig {
        GitHubActionsConfig {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            workflow: workflow.to_owned(),
            inputs: BTreeMap::new(),
            traceparent: false,
            api_url: DEFAULT_GITHUB_API_URL.to_owned(),
            auth,
            artifact: artifact.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            create_timeout: CREATE_TIMEOUT,
            rate_limits: RateLimits::shared(),
        }
    }
}

/// How the provider authenticates. Values are resolved secrets; they print as `***`.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A personal access token or any other bearer token with `actions: write` on the repository.
    Token(Secret),
    /// A GitHub App installed on the repository with `actions: write`. `app_id` is the app's id
    /// or its client id; `private_key_pem` the key GitHub generated for it (PKCS#1 or PKCS#8 PEM).
    App { app_id: String, installation_id: u64, private_key_pem: Secret },
}

enum Auth {
    Token(Secret),
    App(AppAuth),
}

/// Dispatches `workflow` on the request's branch and polls the run; see the module docs.
pub struct GitHubActionsBuildProvider {
    api: Url,
    owner: String,
    repo: String,
    workflow: String,
    inputs: BTreeMap<String, String>,
    traceparent: bool,
    auth: Auth,
    artifact: ArtifactTemplate,
    timeout: Duration,
    create_timeout: Duration,
    limits: std::sync::Arc<RateLimits>,
    http: reqwest::Client,
}

/// What a handle carries besides the run id: what the artifact template and a later locating
/// poll need, since `poll` sees nothing but the handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunState {
    release_id: ReleaseId,
    /// The dispatched branch, for the artifact when the run reports none.
    branch: String,
    /// The commit the release asked for, for the artifact should the run report none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha: Option<String>,
    /// Set while the run is not located yet (the dispatch answered without its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locate: Option<Dispatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Dispatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha: Option<String>,
    /// Runs created before this are not ours: the dispatch time minus [`super::CLOCK_SLACK`].
    since: DateTime<Utc>,
}

/// The fields of a workflow run that Baton reads.
#[derive(Debug, Deserialize)]
struct Run {
    id: u64,
    status: Option<String>,
    conclusion: Option<String>,
    head_sha: String,
    head_branch: Option<String>,
    html_url: String,
    #[serde(default)]
    display_title: String,
    /// When the run (its latest attempt) began.
    #[serde(default)]
    run_started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct RunList {
    workflow_runs: Vec<Run>,
}

/// The dispatch's answer with `return_run_details`.
#[derive(Debug, Deserialize)]
struct Dispatched {
    workflow_run_id: u64,
    html_url: String,
}

#[derive(Debug, Deserialize)]
struct AccessToken {
    token: String,
    expires_at: DateTime<Utc>,
}

/// What a request is about, for its errors.
struct Call {
    /// "dispatching workflow release.yml of acme/web on main"
    context: String,
    /// What a 403 or 404 most likely means for this request.
    missing: String,
    /// A non-2xx status that is an answer rather than an error (409 to a cancel).
    also_ok: Option<StatusCode>,
}

/// The run a handle is about.
enum Target {
    Run(u64),
    /// Dispatched, but not located yet.
    Pending(Dispatch),
}

/// A run found (or not) for a handle whose dispatch answered without the run's id.
enum Located {
    Run(Run),
    NotYet,
    /// Nothing appeared within [`LOCATE_WINDOW`].
    Never,
    /// Runs are listed, but none can be tied to the release (why).
    Unidentifiable(String),
}

/// Which of the listed runs is the release's (see the module docs).
enum Identified {
    Run(Run),
    NotListed,
    /// Why none of the listed runs can be taken for the release's.
    Unidentifiable(String),
}

impl GitHubActionsBuildProvider {
    /// Checks the config (names, URL, artifact template, the App's key) so a bad one fails
    /// before anything is dispatched. `tokens` caches GitHub App installation tokens: pass the
    /// process's one (see [`GitHubAppTokens`]); token auth ignores it.
    pub fn new(
        config: GitHubActionsConfig,
        http: reqwest::Client,
        tokens: &GitHubAppTokens,
    ) -> Result<GitHubActionsBuildProvider, ProviderError> {
        let GitHubActionsConfig {
            owner,
            repo,
            workflow,
            inputs,
            traceparent,
            api_url,
            auth,
            artifact,
            request_timeout,
            create_timeout,
            rate_limits,
        } = config;
        let rejected = |why: String| ProviderError::rejected(format!("GitHub Actions build of {owner}/{repo}: {why}"));
        for (field, value) in [("owner", &owner), ("repo", &repo), ("workflow", &workflow)] {
            if value.is_empty() || value.contains('/') || value.contains(char::is_whitespace) {
                return Err(rejected(format!("{field} '{value}' must be a single name, without '/' or spaces")));
            }
        }
        let api = match Url::parse(&api_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(_) => return Err(rejected(format!("the API URL '{api_url}' is not an http(s) URL"))),
            Err(e) => return Err(rejected(format!("the API URL '{api_url}' is not a URL: {e}"))),
        };
        if let Some(reserved) = [RELEASE_ID_INPUT, SHA_INPUT, TRACEPARENT_INPUT].into_iter().find(|name| inputs.contains_key(*name)) {
            return Err(rejected(format!("the input {reserved} is set by Baton and cannot be configured")));
        }
        if request_timeout.is_zero() || create_timeout.is_zero() {
            return Err(rejected("a request timeout is 0".into()));
        }
        let artifact = ArtifactTemplate::parse(&artifact, crate::ci::from_catalog::GITHUB_ACTIONS.run_word).map_err(rejected)?;
        let auth = match auth {
            GitHubAuth::Token(token) if token.expose().trim().is_empty() => return Err(rejected("the token is empty".into())),
            GitHubAuth::Token(token) => Auth::Token(token),
            GitHubAuth::App { app_id, installation_id, private_key_pem } => {
                Auth::App(AppAuth::new(api.as_str(), &app_id, installation_id, &private_key_pem, tokens).map_err(rejected)?)
            }
        };
        Ok(GitHubActionsBuildProvider {
            api,
            owner,
            repo,
            workflow,
            inputs,
            traceparent,
            auth,
            artifact,
            timeout: request_timeout,
            create_timeout,
            limits: rate_limits,
            http,
        })
    }

    /// GETs `tail` under the repository (`/repos/{owner}/{repo}/...`) with `query`, with this
    /// provider's credentials and minding the same rate limits: a 2xx answer's body, `None` for a
    /// 404 or 422 (no such commit or range), any other answer the error it means.
    pub(crate) async fn read_repository(
        &self,
        tail: &[&str],
        query: &[(&str, String)],
        doing: &str,
    ) -> Result<Option<Vec<u8>>, ProviderError> {
        let mut url = self.endpoint(["repos", self.owner.as_str(), self.repo.as_str()].into_iter().chain(tail.iter().copied()));
        url.query_pairs_mut().extend_pairs(query);
        let call = Call {
            context: format!("{doing} of {}/{}", self.owner, self.repo),
            missing: format!(
                "the repository {}/{} cannot be seen with these credentials (reading commits needs `contents: read`)",
                self.owner, self.repo
            ),
            also_ok: Some(StatusCode::NOT_FOUND),
        };
        let (status, body) = match self.call(Method::GET, url, None, &call).await {
            Err(ProviderError::Rejected { message, .. }) if message.contains("(HTTP 422)") => return Ok(None),
            other => other?,
        };
        Ok((status.is_success()).then_some(body))
    }

    /// "workflow release.yml of acme/web"
    fn label(&self) -> String {
        format!("workflow {} of {}/{}", self.workflow, self.owner, self.repo)
    }

    /// The API URL with `segments` appended, each percent-encoded.
    fn endpoint<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        endpoint(&self.api, segments)
    }

    fn workflow_endpoint(&self, tail: &str) -> Url {
        self.endpoint(["repos", &self.owner, &self.repo, "actions", "workflows", &self.workflow, tail])
    }

    fn run_endpoint(&self, id: u64, tail: Option<&str>) -> Url {
        let id = id.to_string();
        self.endpoint(["repos", &self.owner, &self.repo, "actions", "runs", &id].into_iter().chain(tail))
    }

    fn run_call(&self, id: u64, doing: &str) -> Call {
        Call {
            context: format!("{doing} GitHub Actions run {id} of {}/{}", self.owner, self.repo),
            missing: format!("the run or the repository {}/{} cannot be seen with these credentials", self.owner, self.repo),
            also_ok: None,
        }
    }

    fn workflow_call(&self, context: String) -> Call {
        Call {
            context,
            missing: format!(
                "the repository {}/{} or its workflow {} does not exist or cannot be seen with these credentials \
                 (GitHub answers 404 for private repositories it does not show)",
                self.owner, self.repo, self.workflow
            ),
            also_ok: None,
        }
    }

    /// Sends one request with GitHub's headers and `credential`; `Err` only when no answer came.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        credential: &Secret,
        context: &str,
    ) -> Result<reqwest::Response, ProviderError> {
        // The dispatch (the one POST with a body) creates a run: it gets the longer timeout.
        let timeout = if body.is_some() { self.create_timeout } else { self.timeout };
        let mut request = self
            .http
            .request(method, url)
            .timeout(timeout)
            .header(ACCEPT, GITHUB_JSON)
            .header("x-github-api-version", API_VERSION)
            .bearer_auth(credential.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| unanswered(e, context, timeout))
    }

    /// Sends an authenticated request and returns the status and body of a 2xx (or of
    /// `call.also_ok`); any other answer becomes the error it means.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        call: &Call,
    ) -> Result<(StatusCode, Vec<u8>), ProviderError> {
        let token = self.token().await?;
        let (method, target, credential) = (&method, &url, &token);
        self.limited(&url, &token, &call.context, move || async move {
            let response = self.send(method.clone(), target.clone(), body, credential, &call.context).await?;
            if let (StatusCode::UNAUTHORIZED, Auth::App(app)) = (response.status(), &self.auth) {
                app.forget(credential).await;
            }
            self.read(response, call, credential).await
        })
        .await
    }

    /// Runs `exchange` (one request to `url` with `credential`) minding GitHub's rate limits:
    /// nothing is sent while a limit holds the credential back; a limit of at most
    /// [`SHORT_WAIT`] is waited out and the request sent once more.
    async fn limited<T, F: std::future::Future<Output = Result<T, ProviderError>>>(
        &self,
        url: &Url,
        credential: &Secret,
        context: &str,
        exchange: impl Fn() -> F,
    ) -> Result<T, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = format!("Bearer {}", credential.expose()).parse() {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let key = RateLimits::key(url, &headers);
        let mut waited = false;
        loop {
            self.limits.wait_for(key, SERVICE, context).await?;
            let result = exchange().await;
            let Some(until) = result.as_ref().err().and_then(ProviderError::rate_limit).map(|limit| limit.until) else { return result };
            self.limits.hold_until(key, until);
            let short = (until - self.limits.now()).to_std().unwrap_or_default() <= SHORT_WAIT;
            if waited || !short {
                return result;
            }
            waited = true;
        }
    }

    /// An answer's status and body when it is a 2xx (or `call.also_ok`), else the error it means.
    async fn read(&self, response: reqwest::Response, call: &Call, credential: &Secret) -> Result<(StatusCode, Vec<u8>), ProviderError> {
        let status = response.status();
        let headers = response.headers().clone();
        let answer = response.bytes().await.map_err(|e| unanswered(e, &call.context, self.timeout))?;
        if status.is_success() || call.also_ok == Some(status) {
            return Ok((status, answer.to_vec()));
        }
        Err(refusal(status, &headers, &String::from_utf8_lossy(&answer), call, credential, self.limits.now()))
    }

    /// The bearer token for API calls: the configured one, or the App installation's.
    async fn token(&self) -> Result<Secret, ProviderError> {
        match &self.auth {
            Auth::Token(token) => Ok(token.clone()),
            Auth::App(app) => app.token(|| self.exchange(app)).await,
        }
    }

    /// Trades the App's JWT for an installation token.
    async fn exchange(&self, app: &AppAuth) -> Result<InstallationToken, ProviderError> {
        let jwt = app.jwt(Utc::now())?;
        let installation = app.installation_id.to_string();
        let url = self.endpoint(["app", "installations", &installation, "access_tokens"]);
        let call = Call {
            context: format!("getting a token for installation {} of GitHub App {}", app.installation_id, app.app_id),
            missing: format!("the app has no installation {} (or it is suspended): check the installation id", app.installation_id),
            also_ok: None,
        };
        let response = self.send(Method::POST, url, None, &jwt, &call.context).await?;
        let (_, answer) = self.read(response, &call, &jwt).await?;
        let AccessToken { token, expires_at } = decode(&answer, &call.context)?;
        Ok(InstallationToken { token: Secret::new(token), expires_at })
    }

    async fn run(&self, id: u64) -> Result<Run, ProviderError> {
        let call = self.run_call(id, "reading");
        let (_, answer) = self.call(Method::GET, self.run_endpoint(id, None), None, &call).await?;
        decode(&answer, &call.context)
    }

    /// The dispatched run, if GitHub lists it yet (see the module docs for which one is taken).
    async fn locate(&self, state: &RunState, dispatch: &Dispatch) -> Result<Identified, ProviderError> {
        let mut url = self.workflow_endpoint("runs");
        url.query_pairs_mut()
            .append_pair("event", "workflow_dispatch")
            .append_pair("branch", &state.branch)
            .append_pair("created", &format!(">={}", dispatch.since.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .append_pair("per_page", "100");
        if let Some(sha) = &dispatch.sha {
            url.query_pairs_mut().append_pair("head_sha", sha);
        }
        let call = self.workflow_call(format!("listing the dispatched runs of {}", self.label()));
        let (_, answer) = self.call(Method::GET, url, None, &call).await?;
        let runs = decode::<RunList>(&answer, &call.context)?.workflow_runs;
        Ok(self.identify(runs, state, dispatch))
    }

    /// The run of `runs` (listed for `dispatch`) that is certainly the release's.
    fn identify(&self, mut runs: Vec<Run>, state: &RunState, dispatch: &Dispatch) -> Identified {
        if let Some(named) = runs.iter().position(|run| run.display_title.contains(state.release_id.0.as_str())) {
            return Identified::Run(runs.swap_remove(named));
        }
        // GitHub filters by head_sha, but what is taken is checked here all the same (the
        // release may name its commit by a prefix).
        let at_commit = |run: &Run| dispatch.sha.as_deref().is_some_and(|sha| !sha.is_empty() && run.head_sha.starts_with(sha));
        match runs.as_slice() {
            [] => Identified::NotListed,
            [only] if at_commit(only) => Identified::Run(runs.remove(0)),
            listed => {
                let ids: Vec<String> = listed.iter().map(|run| run.id.to_string()).collect();
                let commit = match &dispatch.sha {
                    Some(sha) => format!("at {sha}"),
                    None => "(the release names no commit)".to_owned(),
                };
                Identified::Unidentifiable(format!(
                    "GitHub lists dispatched runs {} of {} on {} {commit}, and none is titled with the release id {}:                      Baton cannot tell which one this release started, so it follows none. Give the workflow                      `run-name: ${{{{ inputs.{RELEASE_ID_INPUT} }}}}` (or upgrade GitHub Enterprise Server to a version                      whose dispatch answers with the run)",
                    ids.join(", "),
                    self.label(),
                    state.branch,
                    state.release_id
                ))
            }
        }
    }

    /// [`Self::locate`], and whether it is still worth waiting when nothing is listed.
    async fn located(&self, state: &RunState, dispatch: &Dispatch) -> Result<Located, ProviderError> {
        Ok(match self.locate(state, dispatch).await? {
            Identified::Run(run) => Located::Run(run),
            Identified::Unidentifiable(why) => Located::Unidentifiable(why),
            Identified::NotListed if Utc::now() < dispatch.since + LOCATE_WINDOW => Located::NotYet,
            Identified::NotListed => Located::Never,
        })
    }

    fn handle(&self, id: u64, url: String, state: RunState) -> RunHandle {
        RunHandle { provider: PROVIDER.into(), id: id.to_string(), url: Some(url), state: state_json(&state) }
    }

    /// The handle's state (without `locate`) and the run it is about.
    fn read_handle(&self, run: &RunHandle) -> Result<(RunState, Target), ProviderError> {
        let mut state: RunState = handle_state(run, PROVIDER, "GitHub Actions")?;
        let target = match state.locate.take() {
            Some(dispatch) => Target::Pending(dispatch),
            None => Target::Run(handle_number(run, "GitHub Actions")?),
        };
        Ok((state, target))
    }

    fn progress(&self, run: &Run, state: &RunState) -> BuildProgress {
        match (run.status.as_deref(), run.conclusion.as_deref()) {
            (Some("completed"), Some("success")) => {
                let branch = run.head_branch.as_deref().unwrap_or(&state.branch);
                let run_id = run.id.to_string();
                let facts = RunFacts { sha: &run.head_sha, branch, run_id: &run_id, release_id: &state.release_id.0 };
                self.artifact.built(&facts, state.sha.as_deref(), &run.html_url)
            }
            (Some("completed"), Some(conclusion)) => BuildProgress::Failed {
                reason: format!(
                    "GitHub Actions run {} of {} ended with conclusion '{conclusion}': {}; see {}",
                    run.id,
                    self.label(),
                    what_it_means(conclusion),
                    run.html_url
                ),
            },
            // queued, requested, waiting, pending, in_progress, a status GitHub adds later, and
            // "completed" before its conclusion is visible: none of them is an outcome yet.
            _ => BuildProgress::Running,
        }
    }
}

impl RunState {
    fn of(request: &BuildRequest) -> RunState {
        RunState { release_id: request.release_id.clone(), branch: request.branch.clone(), sha: request.sha.clone(), locate: None }
    }
}

fn state_json(state: &RunState) -> serde_json::Value {
    serde_json::to_value(state).expect("run state serialises to JSON")
}

/// Why a completed run without `success` built nothing Baton can deploy.
pub(crate) fn what_it_means(conclusion: &str) -> &'static str {
    match conclusion {
        "failure" => "a job failed",
        "cancelled" => "someone or something cancelled it",
        "timed_out" => "a job ran out of time",
        "startup_failure" => "it could not start, most often because the workflow file is invalid",
        "action_required" => "it needs someone to approve it on GitHub",
        "stale" => "GitHub marked it stale",
        "skipped" => "its jobs were skipped (their conditions were false), so nothing was built",
        "neutral" => "GitHub counts neutral as passing a required check, but it does not say anything was built",
        _ => "only 'success' means the build produced its artifact",
    }
}

/// The error a non-2xx answer to `call` means (a rate limit's names until when, from `now`);
/// `credential` is blanked out of anything quoted.
fn refusal(status: StatusCode, headers: &HeaderMap, body: &str, call: &Call, credential: &Secret, now: DateTime<Utc>) -> ProviderError {
    #[derive(Deserialize)]
    struct GitHubError {
        message: String,
    }
    let Call { context, missing, .. } = call;
    let said = serde_json::from_str::<GitHubError>(body).map(|e| e.message).unwrap_or_else(|_| body.to_owned());
    let said = quote(&said, &[credential]);
    let said = if said.is_empty() { said } else { format!(": {said}") };
    let code = status.as_u16();
    if let Some(wait) = rate_limit_wait(status, headers, &said, now) {
        let until = after(now, wait);
        return rate_limited(SERVICE, &format!("{context}: GitHub's rate limit is exhausted (HTTP {code}{said})"), until, true);
    }
    match status {
        StatusCode::UNAUTHORIZED => ProviderError::rejected(format!("{context}: bad credentials (HTTP 401){said}")),
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => ProviderError::rejected(format!("{context}: HTTP {code}, {missing}{said}")),
        StatusCode::UNPROCESSABLE_ENTITY => ProviderError::rejected(format!("{context}: GitHub refused it (HTTP 422){said}")),
        _ if status.is_server_error() => ProviderError::unavailable(format!("{context}: GitHub answered HTTP {code}{said}")),
        _ => ProviderError::rejected(format!("{context}: GitHub answered HTTP {code}{said}")),
    }
}

/// How long to wait when the answer is a rate limit: 429 always; 403 when the primary limit is
/// used up (`x-ratelimit-remaining: 0`) or a secondary limit hit (`retry-after`, or a message
/// saying so). `None` for any other answer.
fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, message: &str, now: DateTime<Utc>) -> Option<Duration> {
    let retry = retry_after(headers);
    let exhausted = header_u64(headers, "x-ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (retry.is_some() || exhausted || message.to_ascii_lowercase().contains("rate limit")));
    if !limited {
        return None;
    }
    // To the reset's very second: the hold ends at the time GitHub named, not a fraction after.
    let until_reset = || {
        let reset = DateTime::from_timestamp(i64::try_from(header_u64(headers, "x-ratelimit-reset")?).ok()?, 0)?;
        Some((reset - now).to_std().unwrap_or_default())
    };
    Some(retry.or_else(|| exhausted.then(until_reset).flatten()).unwrap_or(RATE_LIMIT_WAIT))
}

#[async_trait]
impl BuildProvider for GitHubActionsBuildProvider {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        let mut inputs = self.inputs.clone();
        inputs.insert(RELEASE_ID_INPUT.into(), request.release_id.0.clone());
        inputs.insert(SHA_INPUT.into(), request.sha.clone().unwrap_or_default());
        if self.traceparent {
            inputs.insert(TRACEPARENT_INPUT.into(), build_traceparent(&request.release_id));
        }
        let body =
            |inputs: &BTreeMap<String, String>| serde_json::json!({ "ref": request.branch, "inputs": inputs, "return_run_details": true });
        let asked_at = Utc::now();
        let call = self.workflow_call(format!("dispatching {} on {}", self.label(), request.branch));
        let (status, answer) = match self.call(Method::POST, self.workflow_endpoint("dispatches"), Some(&body(&inputs)), &call).await {
            // A workflow that does not declare the input refuses the dispatch (422, "Unexpected
            // inputs provided") and runs nothing: the build goes on without its trace context.
            Err(refused @ ProviderError::Rejected { .. }) if self.traceparent && refused.message().contains(TRACEPARENT_INPUT) => {
                tracing::warn!(target: "baton::github", "{} does not declare the input {TRACEPARENT_INPUT}: dispatched without it", self.label());
                inputs.remove(TRACEPARENT_INPUT);
                self.call(Method::POST, self.workflow_endpoint("dispatches"), Some(&body(&inputs)), &call).await?
            }
            dispatched => dispatched?,
        };
        let mut state = RunState::of(request);
        if status == StatusCode::OK {
            return match decode::<Dispatched>(&answer, &call.context) {
                Ok(run) => {
                    tracing::info!(target: "baton::github", run = run.workflow_run_id, url = %run.html_url, "dispatched {}", self.label());
                    Ok(self.handle(run.workflow_run_id, run.html_url, state))
                }
                Err(unreadable) => Err(unfollowable(self, request, asked_at, unreadable, "GitHub Actions run").await),
            };
        }
        // A 204: the run exists or soon will. Look for it now, and let `poll` keep looking. A
        // failed listing must not fail `start`, whose retry would dispatch a second build.
        let dispatch = Dispatch { sha: request.sha.clone(), since: created_from(asked_at) };
        match self.locate(&state, &dispatch).await {
            Ok(Identified::Run(run)) => return Ok(self.handle(run.id, run.html_url, state)),
            Ok(Identified::Unidentifiable(why)) => return Err(ProviderError::rejected(why)),
            Ok(Identified::NotListed) => {}
            Err(e) => {
                tracing::warn!(target: "baton::github", "cannot list the dispatched runs yet: {}", baton_domain::error::chain_text(&e))
            }
        }
        state.locate = Some(dispatch);
        Ok(RunHandle { provider: PROVIDER.into(), id: RunHandle::UNLOCATED.into(), url: None, state: state_json(&state) })
    }

    /// The run a dispatch sent at or after `since` started, located as for a 204. Runs listed
    /// that cannot be tied to the release are an error, not `None`: dispatching again could
    /// start a second build.
    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        let state = RunState::of(request);
        let dispatch = Dispatch { sha: request.sha.clone(), since: created_from(since) };
        match self.locate(&state, &dispatch).await? {
            Identified::Run(run) => {
                tracing::info!(target: "baton::github", run = run.id, url = %run.html_url, "found the run release {} dispatched", request.release_id);
                Ok(Some(self.handle(run.id, run.html_url, state)))
            }
            Identified::NotListed => Ok(None),
            Identified::Unidentifiable(why) => Err(ProviderError::rejected(why)),
        }
    }

    async fn poll(&self, handle: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let (state, target) = self.read_handle(handle)?;
        let (run, located) = match target {
            Target::Pending(dispatch) => match self.located(&state, &dispatch).await? {
                Located::Run(run) => {
                    let located = self.handle(run.id, run.html_url.clone(), state.clone());
                    (run, Some(located))
                }
                Located::NotYet => return Ok(BuildProgress::Running.into()),
                Located::Never => {
                    return Ok(BuildProgress::Failed {
                        reason: format!(
                            "GitHub accepted the dispatch of {} on {} but no run of it appeared within {} minutes",
                            self.label(),
                            state.branch,
                            LOCATE_WINDOW.num_minutes()
                        ),
                    }
                    .into());
                }
                Located::Unidentifiable(reason) => return Ok(BuildProgress::Failed { reason }.into()),
            },
            Target::Run(id) => (self.run(id).await?, None),
        };
        Ok(BuildPoll { progress: self.progress(&run, &state), started_at: run.run_started_at, run: located })
    }

    async fn cancel(&self, handle: &RunHandle) -> Result<(), ProviderError> {
        let (state, target) = self.read_handle(handle)?;
        let id = match target {
            Target::Pending(dispatch) => match self.located(&state, &dispatch).await? {
                Located::Run(run) => run.id,
                Located::NotYet => {
                    return Err(ProviderError::unavailable(format!(
                        "the run dispatched for {} is not listed yet: nothing to cancel until it is",
                        self.label()
                    )));
                }
                Located::Never => return Ok(()),
                Located::Unidentifiable(why) => return Err(ProviderError::rejected(why)),
            },
            Target::Run(id) => id,
        };
        // 409: the run already completed, which is all a cancel asks for.
        let call = Call { also_ok: Some(StatusCode::CONFLICT), ..self.run_call(id, "cancelling") };
        self.call(Method::POST, self.run_endpoint(id, Some("cancel")), None, &call).await?;
        tracing::info!(target: "baton::github", run = id, "cancelled {}", self.label());
        Ok(())
    }
}

//! The `circleci` build provider: triggers a pipeline of a project on the release branch and
//! follows its workflows until every one has finished.
//!
//! - **Start.** `POST /project/{vcs}/{org}/{project}/pipeline` with the `Circle-Token` header and
//!   `{branch, parameters}`. `parameters` are the block's plus `baton-release-id` and `baton-sha`
//!   (empty when the release names no commit), set last. CircleCI refuses a pipeline given a
//!   parameter its config does not declare, so the config declares both, as strings, as a GitHub
//!   Actions workflow declares `baton_release_id` and `baton_sha`.
//! - **Which commit.** CircleCI builds the branch's head, not a given commit. As with GitHub
//!   Actions, the artifact's sha is the commit CircleCI built (the pipeline's `vcs.revision`);
//!   it differs from `baton-sha` only if the branch moved after the release was cut, which is
//!   logged as a warning. A config that must build exactly the release's commit checks out
//!   `<< pipeline.parameters.baton-sha >>`.
//! - **Poll.** `GET /pipeline/{id}`, then every page of `GET /pipeline/{id}/workflow`
//!   (`next_page_token`). The build is done when every workflow is, and succeeds when every one
//!   ended `success`. `failed`, `error`, `canceled`, `unauthorized` (a job uses a restricted
//!   context its user may not) and `not_run` fail it, naming each such workflow, its status and
//!   the pipeline's page; a failed workflow does not end the build while another still runs, so
//!   every log is complete, as with Buildkite's `failing`. `running`, `failing` (a job failed,
//!   others still run) and any status CircleCI adds later are still running, and so is
//!   `on_hold`: the workflow waits at an approval job for a person (logged with the page to
//!   approve it from), which is how teams put an approval before a build, as GitLab's manual
//!   jobs and Buildkite's block steps; the definition's build polls (about 73 minutes of
//!   `Baton.BuildPending` retries) bound the wait.
//! - **No workflow.** An `errored` pipeline (its config did not compile, could not be fetched,
//!   ...) fails with its errors' messages. Any other pipeline without workflows is still being
//!   set up, for at most [`WORKFLOW_WINDOW`] after the trigger; then the build fails, saying no
//!   workflow ran: a pipeline whose config runs no workflow on the branch (filters, `when`
//!   conditions) stays `created` with none for ever, and polling on would only wait out the
//!   definition's polls in silence.
//! - **Cancel.** `POST /workflow/{id}/cancel` for each workflow still running (`on_hold` and
//!   `failing` included); a finished workflow is left alone, so cancelling a finished pipeline
//!   is not an error. A pipeline that has no workflow yet cannot be cancelled: `Unavailable`
//!   (retried) within [`WORKFLOW_WINDOW`], after which no workflow will start.
//! - **Find.** A trigger whose answer was lost may have made the pipeline: `find` lists the
//!   branch's pipelines (`GET /project/{slug}/pipeline?branch=`, newest first, one page) and
//!   takes the oldest created since just before the request whose `trigger_parameters` carry the
//!   release's `baton-release-id`. The trigger may take [`CREATE_TIMEOUT`](crate::http::CREATE_TIMEOUT).
//! - A 2xx to the trigger whose body does not read is `Rejected`, not retried: the pipeline may
//!   exist, and a retry would start a second. The pipeline `find` finds is cancelled: Baton
//!   cannot follow a pipeline whose creation it could not read.
//! - Errors: 401/403 name the token's reference (never its value), 404 the project; 429 waits out
//!   a short `Retry-After` (else `X-RateLimit-Reset`) once, else is `Unavailable` saying when to
//!   retry, and nothing is sent with the token to that host before then; 5xx and timeouts are
//!   `Unavailable`; any other refusal (400, 422: an undeclared parameter, an unknown branch) is
//!   `Rejected` with what CircleCI said.

use super::rest::{Body, Call, Credential, RestApi};
use super::{ArtifactTemplate, RunFacts, Started, Verdict, created_from, handle_state, unfollowable};
use crate::http::{decode, x_rate_limit_wait};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle, SecretResolver};
use baton_domain::trace::build_traceparent;
use chrono::{DateTime, Utc};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of the handles this provider returns.
pub(crate) const PROVIDER: &str = "circleci";
pub const DEFAULT_CIRCLECI_API_URL: &str = "https://circleci.com/api/v2";
const SERVICE: &str = "CircleCI";
const TOKEN_HEADER: &str = "Circle-Token";
/// Where a pipeline's page is: `{APP_URL}/{project slug}/{number}`. The API's answers carry no
/// page URL.
const APP_URL: &str = "https://app.circleci.com/pipelines";
/// How long a triggered pipeline may show no workflow before the build fails. Setting up a
/// pipeline (fetching and compiling its config) takes seconds; minutes mean none will start.
const WORKFLOW_WINDOW: chrono::Duration = chrono::Duration::minutes(10);
/// A pipeline with more pages of workflows than this (20 a page) is an API that keeps answering
/// a next page, not a pipeline.
const MAX_WORKFLOW_PAGES: usize = 50;

/// Triggers a pipeline for each release and polls its workflows; see the module docs.
pub struct CircleCiBuildProvider {
    api: RestApi,
    project: String,
    token: LazySecret,
    parameters: BTreeMap<String, PipelineParameter>,
    traceparent: bool,
    artifact: ArtifactTemplate,
}

/// What a handle carries besides the pipeline's id, since `poll` sees nothing but the handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunState {
    #[serde(flatten)]
    started: Started,
    /// The pipeline's number in its project: the artifact's `{pipeline-number}` and its page.
    number: u64,
    /// When Baton triggered the pipeline: its workflows must start within [`WORKFLOW_WINDOW`].
    triggered_at: DateTime<Utc>,
}

/// The trigger's answer (201).
#[derive(Debug, Deserialize)]
struct Triggered {
    id: String,
    number: u64,
    state: String,
}

/// A pipeline as the project's listing shows it.
#[derive(Debug, Deserialize)]
struct Listed {
    id: String,
    number: u64,
    created_at: DateTime<Utc>,
    /// The parameters the trigger passed.
    #[serde(default)]
    trigger_parameters: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct PipelineList {
    items: Vec<Listed>,
}

/// The fields of a pipeline Baton reads.
#[derive(Debug, Deserialize)]
struct Pipeline {
    /// `created`, `errored`, `setup-pending`, `setup` or `pending`.
    state: String,
    #[serde(default)]
    errors: Vec<PipelineError>,
    /// Absent while the pipeline is set up.
    #[serde(default)]
    vcs: Option<Vcs>,
}

#[derive(Debug, Deserialize)]
struct PipelineError {
    /// `config`, `config-fetch`, `timeout`, `permission`, `other`, `plan`.
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Vcs {
    /// The commit the pipeline built.
    revision: String,
    #[serde(default)]
    branch: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WorkflowPage {
    items: Vec<Workflow>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Workflow {
    id: String,
    name: String,
    status: String,
    /// Workflows have no start time of their own: the first one's creation is when the
    /// pipeline's work began.
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

/// What one workflow's status says about the build (the polls' and the `workflow-completed`
/// receiver's reading).
pub(crate) fn verdict(status: &str) -> Verdict {
    match status {
        "success" => Verdict::Passed,
        "failed" => Verdict::Failed("a job failed"),
        "error" => Verdict::Failed("CircleCI could not run it, most often for an error in the config or in its infrastructure"),
        "canceled" => Verdict::Failed("someone or something cancelled it"),
        "unauthorized" => Verdict::Failed("a job uses a restricted context that the pipeline's user may not use"),
        "not_run" => Verdict::Failed("CircleCI did not run it, so nothing was built"),
        // running; failing (a job failed, others still run: it ends failed, with every log);
        // on_hold (waiting at an approval job); and any status CircleCI adds later.
        _ => Verdict::Running,
    }
}

impl CircleCiBuildProvider {
    /// `source` is the catalog file, for error messages. Refuses a bad project slug, parameter
    /// name, API URL or artifact template before any secret is read.
    pub fn new(
        spec: &CircleCiBuild,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<CircleCiBuildProvider, ProviderError> {
        let rejected = |why: String| ProviderError::rejected(format!("{source}: extensions.baton.build: circleci {why}"));
        check_circleci_project(&spec.project)
            .map_err(|why| rejected(format!("project: expected a project slug `<vcs>/<org>/<project>`; {why}")))?;
        for name in spec.parameters.keys() {
            check_pipeline_parameter_name(name).map_err(|why| rejected(format!("parameters.{name}: {why}")))?;
        }
        let api_url = spec.api_url.as_deref().unwrap_or(DEFAULT_CIRCLECI_API_URL);
        let api = RestApi::new(SERVICE, api_url, http, x_rate_limit_wait).map_err(rejected)?;
        Ok(CircleCiBuildProvider {
            api,
            project: spec.project.clone(),
            token: LazySecret::new(spec.token.clone(), secrets),
            parameters: spec.parameters.clone(),
            traceparent: spec.traceparent,
            artifact: ArtifactTemplate::parse(&spec.artifact, CIRCLECI.run_word).map_err(rejected)?,
        })
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> CircleCiBuildProvider {
        self.api.set_timeout(timeout);
        self
    }

    /// How long the trigger may take ([`CREATE_TIMEOUT`](crate::http::CREATE_TIMEOUT) unless set).
    pub fn with_create_timeout(mut self, timeout: Duration) -> CircleCiBuildProvider {
        self.api.set_create_timeout(timeout);
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`](crate::RateLimits::shared).
    pub fn with_rate_limits(mut self, limits: std::sync::Arc<crate::RateLimits>) -> CircleCiBuildProvider {
        self.api.set_rate_limits(limits);
        self
    }

    /// "CircleCI pipeline 42 of project gh/acme/web"
    fn label(&self, number: u64) -> String {
        format!("CircleCI pipeline {number} of project {}", self.project)
    }

    fn page(&self, number: u64) -> String {
        format!("{APP_URL}/{}/{number}", self.project)
    }

    /// Sends an authenticated request; the answer's body.
    async fn send(&self, method: Method, url: Url, body: Body<'_>, context: &str) -> Result<Vec<u8>, ProviderError> {
        let token = self.token.get().await?;
        let secrets = [token];
        let call = self.call(context, &secrets);
        let (_, answer) = self.api.call(method, url, Credential::Header(TOKEN_HEADER, token), body, &call).await?;
        Ok(answer)
    }

    /// What a request is, for its errors.
    fn call<'a>(&self, context: &str, secrets: &'a [&'a Secret]) -> Call<'a> {
        Call {
            context: context.to_owned(),
            credentials: format!(
                "check the token {}: it must be a current personal API token of a user who can trigger pipelines of \
                 project {} (API v2 takes no project tokens)",
                self.token.reference(),
                self.project
            ),
            missing: format!(
                "CircleCI has no project {} that this token can see, or no such pipeline or workflow: check `project` \
                 (the slug in the project's settings)",
                self.project
            ),
            secrets,
            also_ok: None,
        }
    }

    fn pipelines_endpoint(&self) -> Url {
        self.api.endpoint(["project"].into_iter().chain(self.project.split('/')).chain(["pipeline"]))
    }

    fn handle(&self, request: &BuildRequest, id: String, number: u64, triggered_at: DateTime<Utc>) -> RunHandle {
        let state = RunState { started: Started::of(request), number, triggered_at };
        RunHandle {
            provider: PROVIDER.into(),
            id,
            url: Some(self.page(number)),
            state: serde_json::to_value(&state).expect("run state serialises to JSON"),
        }
    }

    async fn pipeline(&self, id: &str, number: u64) -> Result<Pipeline, ProviderError> {
        let context = format!("reading {}", self.label(number));
        decode(&self.send(Method::GET, self.api.endpoint(["pipeline", id]), Body::Empty, &context).await?, &context)
    }

    /// Every workflow of the pipeline, page after page.
    async fn workflows(&self, id: &str, number: u64) -> Result<Vec<Workflow>, ProviderError> {
        let context = format!("listing the workflows of {}", self.label(number));
        let mut workflows = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_WORKFLOW_PAGES {
            let mut url = self.api.endpoint(["pipeline", id, "workflow"]);
            if let Some(page_token) = &page_token {
                url.query_pairs_mut().append_pair("page-token", page_token);
            }
            let page: WorkflowPage = decode(&self.send(Method::GET, url, Body::Empty, &context).await?, &context)?;
            workflows.extend(page.items);
            match page.next_page_token {
                Some(next) if !next.is_empty() => page_token = Some(next),
                _ => return Ok(workflows),
            }
        }
        Err(ProviderError::rejected(format!("{context}: CircleCI still answers a next page after {MAX_WORKFLOW_PAGES} pages of workflows")))
    }

    /// Whether a pipeline without workflows may still get some.
    fn may_start(&self, pipeline: &Pipeline, state: &RunState) -> bool {
        pipeline.state != "errored" && Utc::now() < state.triggered_at + WORKFLOW_WINDOW
    }

    fn progress(&self, pipeline: &Pipeline, workflows: &[Workflow], state: &RunState) -> BuildProgress {
        let (label, page) = (self.label(state.number), self.page(state.number));
        if pipeline.state == "errored" {
            let errors: Vec<String> = pipeline.errors.iter().map(|e| format!("{}: {}", e.kind, e.message)).collect();
            let errors = if errors.is_empty() { "CircleCI gave no reason".to_owned() } else { errors.join("; ") };
            return BuildProgress::Failed { reason: format!("{label} errored: {errors}; see {page}") };
        }
        if workflows.is_empty() {
            if self.may_start(pipeline, state) {
                return BuildProgress::Running;
            }
            return BuildProgress::Failed {
                reason: format!(
                    "{label} is '{}' and started no workflow within {} minutes: no workflow of its config runs on \
                     branch {} (check the workflows' filters and `when` conditions); see {page}",
                    pipeline.state,
                    WORKFLOW_WINDOW.num_minutes(),
                    state.started.branch
                ),
            };
        }
        let mut running = false;
        let mut failed = Vec::new();
        for workflow in workflows {
            match verdict(&workflow.status) {
                Verdict::Passed => {}
                Verdict::Running => {
                    if workflow.status == "on_hold" {
                        tracing::info!(target: "baton::circleci", workflow = %workflow.name, url = %page,
                            "{label}: workflow {} waits at an approval job: approve it to go on", workflow.name);
                    }
                    running = true;
                }
                Verdict::Failed(why) => failed.push(format!("workflow '{}' is '{}': {why}", workflow.name, workflow.status)),
            }
        }
        if running {
            return BuildProgress::Running;
        }
        if !failed.is_empty() {
            return BuildProgress::Failed { reason: format!("{label} failed: {}; see {page}", failed.join("; ")) };
        }
        let Some(vcs) = &pipeline.vcs else {
            return BuildProgress::Failed {
                reason: format!("{label} succeeded but names no commit (no `vcs.revision`): the artifact cannot be named; see {page}"),
            };
        };
        if let Some(sha) = state.started.sha.as_deref().filter(|sha| *sha != vcs.revision) {
            tracing::warn!(target: "baton::circleci", built = %vcs.revision, release = %sha,
                "{label} built {}, not the release's commit {sha}: the branch moved after the release was cut", vcs.revision);
        }
        let number = state.number.to_string();
        let branch = vcs.branch.as_deref().unwrap_or(&state.started.branch);
        let facts = RunFacts { sha: &vcs.revision, branch, run_id: &number, release_id: &state.started.release_id.0 };
        self.artifact.built(&facts, state.started.sha.as_deref(), &page)
    }
}

#[async_trait]
impl BuildProvider for CircleCiBuildProvider {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        let mut parameters = serde_json::to_value(&self.parameters).expect("parameters serialise to a JSON object");
        parameters[CIRCLECI_RELEASE_ID_PARAMETER] = request.release_id.0.clone().into();
        parameters[CIRCLECI_SHA_PARAMETER] = request.sha.clone().unwrap_or_default().into();
        let mut names = vec![CIRCLECI_RELEASE_ID_PARAMETER, CIRCLECI_SHA_PARAMETER];
        // Only when asked: CircleCI fails a pipeline given a parameter its config does not declare.
        if self.traceparent {
            parameters[CIRCLECI_TRACEPARENT_PARAMETER] = build_traceparent(&request.release_id).into();
            names.push(CIRCLECI_TRACEPARENT_PARAMETER);
        }
        names.extend(self.parameters.keys().map(String::as_str));
        let context = format!(
            "triggering a pipeline of CircleCI project {} on {} with the parameters {} (its config must declare each)",
            self.project,
            request.branch,
            names.join(", ")
        );
        let body = serde_json::json!({ "branch": request.branch, "parameters": parameters });
        let triggered_at = Utc::now();
        let token = self.token.get().await?;
        let secrets = [token];
        let call = self.call(&context, &secrets);
        let answer = self.api.create(self.pipelines_endpoint(), Credential::Header(TOKEN_HEADER, token), Body::Json(&body), &call).await?;
        let pipeline: Triggered = match decode(&answer, &context) {
            Ok(pipeline) => pipeline,
            Err(unreadable) => return Err(unfollowable(self, request, triggered_at, unreadable, SERVICE).await),
        };
        tracing::info!(target: "baton::circleci", pipeline = pipeline.number, url = %self.page(pipeline.number), state = %pipeline.state,
            "triggered {} on {}", self.label(pipeline.number), request.branch);
        Ok(self.handle(request, pipeline.id, pipeline.number, triggered_at))
    }

    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        let mut url = self.pipelines_endpoint();
        url.query_pairs_mut().append_pair("branch", &request.branch);
        let context = format!("looking for the pipeline of release {} in CircleCI project {}", request.release_id, self.project);
        let listed: PipelineList = decode(&self.send(Method::GET, url, Body::Empty, &context).await?, &context)?;
        let ours = |pipeline: &&Listed| {
            pipeline.created_at >= created_from(since)
                && pipeline.trigger_parameters.get(CIRCLECI_RELEASE_ID_PARAMETER).and_then(serde_json::Value::as_str)
                    == Some(request.release_id.0.as_str())
        };
        let oldest = listed.items.iter().filter(ours).min_by_key(|pipeline| pipeline.number);
        Ok(oldest.map(|pipeline| {
            tracing::info!(target: "baton::circleci", pipeline = pipeline.number,
                "found the pipeline release {} triggered in {}", request.release_id, self.project);
            self.handle(request, pipeline.id.clone(), pipeline.number, since)
        }))
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let state: RunState = handle_state(run, PROVIDER, SERVICE)?;
        let pipeline = self.pipeline(&run.id, state.number).await?;
        // An errored pipeline has no workflows to list.
        let workflows = if pipeline.state == "errored" { Vec::new() } else { self.workflows(&run.id, state.number).await? };
        let started_at = workflows.iter().filter_map(|workflow| workflow.created_at).min();
        Ok(BuildPoll { progress: self.progress(&pipeline, &workflows, &state), started_at, run: None })
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        let state: RunState = handle_state(run, PROVIDER, SERVICE)?;
        let pipeline = self.pipeline(&run.id, state.number).await?;
        let workflows = self.workflows(&run.id, state.number).await?;
        if workflows.is_empty() && self.may_start(&pipeline, &state) {
            return Err(ProviderError::unavailable(format!(
                "{} has no workflow yet: nothing to cancel until one starts",
                self.label(state.number)
            )));
        }
        for workflow in workflows.iter().filter(|workflow| verdict(&workflow.status) == Verdict::Running) {
            let context = format!("cancelling workflow {} of {}", workflow.name, self.label(state.number));
            self.send(Method::POST, self.api.endpoint(["workflow", workflow.id.as_str(), "cancel"]), Body::Empty, &context).await?;
            tracing::info!(target: "baton::circleci", workflow = %workflow.name, status = %workflow.status,
                "cancelled workflow {} of {}", workflow.name, self.label(state.number));
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{CheckedText, Field, Kind, ProviderShape, Slot, field, required, through_model};

/// A pipeline of a CircleCI project on the release branch. It gets the pipeline parameters
/// [`CIRCLECI_RELEASE_ID_PARAMETER`] and [`CIRCLECI_SHA_PARAMETER`] besides `parameters`; the
/// project's config must declare all of them, since CircleCI refuses undeclared parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CircleCiBuild {
    /// The project slug: `gh/acme/web`, `bb/acme/web` or `circleci/<org-id>/<project-id>`.
    pub project: String,
    /// A personal API token, sent as `Circle-Token`.
    pub token: SecretRef,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, PipelineParameter>,
    /// Hand the build its span of the release's trace as [`CIRCLECI_TRACEPARENT_PARAMETER`],
    /// which the config then declares.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub traceparent: bool,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-number}`, `{release-id}`.
    pub artifact: String,
    /// CircleCI's API; `https://circleci.com/api/v2` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Authenticates the provider's callbacks to Baton: the webhook's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_secret: Option<SecretRef>,
}

/// The pipeline parameter that carries the release id; the config declares it as a string.
pub const CIRCLECI_RELEASE_ID_PARAMETER: &str = "baton-release-id";
/// The pipeline parameter that carries the build's `traceparent`, with `traceparent: true`.
pub const CIRCLECI_TRACEPARENT_PARAMETER: &str = "baton-traceparent";
/// The pipeline parameter that carries the release's commit (empty when it names none).
pub const CIRCLECI_SHA_PARAMETER: &str = "baton-sha";

/// A pipeline parameter's value, of the type the config declares the parameter with: CircleCI
/// refuses `"true"` for a boolean and `"3"` for an integer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    if [CIRCLECI_RELEASE_ID_PARAMETER, CIRCLECI_SHA_PARAMETER, CIRCLECI_TRACEPARENT_PARAMETER].contains(&name) {
        return Err(format!("`{name}` is set by Baton; choose another name"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    match name.chars().next() {
        Some(first) if first.is_ascii_lowercase() && name.chars().all(allowed) => Ok(()),
        _ => Err(format!("found `{name}`")),
    }
}

const CIRCLECI_PROJECT: CheckedText = CheckedText {
    expected: "a CircleCI project slug `<vcs>/<org>/<project>` (as in Project Settings), <vcs> one of `gh`, `github`, `bb`, `bitbucket`, `circleci`",
    check: check_circleci_project,
    schema: || serde_json::json!({ "type": "string", "pattern": format!("^({})/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", CIRCLECI_VCS.join("|")) }),
    integers: false,
};

const PIPELINE_PARAMETER_NAME: CheckedText = CheckedText {
    expected: "pipeline parameter names: a lowercase letter, then lowercase letters, digits, `_` and `-`",
    check: check_pipeline_parameter_name,
    schema: || {
        serde_json::json!({
            "pattern": "^[a-z][a-z0-9_-]*$",
            "not": { "enum": [CIRCLECI_RELEASE_ID_PARAMETER, CIRCLECI_SHA_PARAMETER] },
        })
    },
    integers: false,
};

const BUILD_CIRCLECI: &[Field] = &[
    required(
        "project",
        Kind::Checked(&CIRCLECI_PROJECT),
        "The project slug: `gh/acme/web`, `bb/acme/web` or `circleci/<org-id>/<project-id>`.",
    ),
    required("token", Kind::Secret, "A personal API token of a user who can trigger the project's pipelines (secret reference)."),
    field(
        "parameters",
        Kind::CheckedScalars(&PIPELINE_PARAMETER_NAME),
        "Pipeline parameters, besides `baton-release-id` and `baton-sha` (the config must declare them all).",
    ),
    field(
        "traceparent",
        Kind::Bool,
        "Pass the build's span of the release's trace as the parameter `baton-traceparent` (the config must declare it, \
         as a string); off by default, since CircleCI fails a pipeline given an undeclared parameter.",
    ),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{pipeline-number}` and `{release-id}` \
         filled from the pipeline.",
    ),
    field("api-url", Kind::Url, "CircleCI's API; `https://circleci.com/api/v2` by default."),
    field(
        "events-secret",
        Kind::Secret,
        "The secret of the project webhook that sends workflow-completed events to Baton (secret reference); without it, Baton polls.",
    ),
];

pub const CIRCLECI: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "circleci",
    doc: "Triggers a CircleCI pipeline and polls its workflows.",
    fields: BUILD_CIRCLECI,
    at_least_one: None,
    local_only: false,
    run_word: Some("pipeline-number"),
    through_model: through_model::<CircleCiBuild>,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FixedSecrets, release_id};
    use baton_domain::catalog::SecretRef;

    fn provider() -> CircleCiBuildProvider {
        let token = SecretRef::Env("CIRCLE_TOKEN".into());
        let spec = CircleCiBuild {
            project: "gh/acme/web".into(),
            token: token.clone(),
            parameters: BTreeMap::new(),
            traceparent: false,
            artifact: "web:{short-sha}-{pipeline-number}".into(),
            api_url: None,
            events_secret: None,
        };
        CircleCiBuildProvider::new(&spec, "web.yaml", Arc::new(FixedSecrets::one(token, "t")), crate::http_client().unwrap()).unwrap()
    }

    fn state(triggered_at: DateTime<Utc>) -> RunState {
        RunState { started: Started { release_id: release_id(), branch: "main".into(), sha: None }, number: 42, triggered_at }
    }

    fn pipeline(state: &str) -> Pipeline {
        Pipeline {
            state: state.into(),
            errors: Vec::new(),
            vcs: Some(Vcs { revision: "0123456789abcdef0123456789abcdef01234567".into(), branch: None }),
        }
    }

    fn workflows(statuses: &[&str]) -> Vec<Workflow> {
        let workflow = |(i, status): (usize, &&str)| Workflow {
            id: format!("w{i}"),
            name: format!("build-{i}"),
            status: (*status).into(),
            created_at: None,
        };
        statuses.iter().enumerate().map(workflow).collect()
    }

    #[test]
    fn every_workflow_status_has_its_verdict() {
        let running = ["running", "failing", "on_hold", "a-status-added-later"];
        let failed = ["failed", "error", "canceled", "unauthorized", "not_run"];
        assert_eq!(verdict("success"), Verdict::Passed);
        for status in running {
            assert_eq!(verdict(status), Verdict::Running, "{status}");
        }
        for status in failed {
            assert!(matches!(verdict(status), Verdict::Failed(why) if !why.is_empty()), "{status}");
        }
    }

    #[test]
    fn the_build_is_done_when_every_workflow_is() {
        let circleci = provider();
        let now = state(Utc::now());
        let progress = |statuses: &[&str]| circleci.progress(&pipeline("created"), &workflows(statuses), &now);
        assert!(
            matches!(progress(&["success", "success"]), BuildProgress::Succeeded { artifact } if artifact.reference == "web:0123456-42")
        );
        // A failed workflow waits for the others, so every log is complete.
        assert_eq!(progress(&["failed", "running"]), BuildProgress::Running);
        assert_eq!(progress(&["success", "on_hold"]), BuildProgress::Running);
        let BuildProgress::Failed { reason } = progress(&["failed", "success", "canceled"]) else { panic!("failed") };
        assert_eq!(
            reason,
            "CircleCI pipeline 42 of project gh/acme/web failed: workflow 'build-0' is 'failed': a job failed; workflow 'build-2' is \
             'canceled': someone or something cancelled it; see https://app.circleci.com/pipelines/gh/acme/web/42"
        );
    }

    #[test]
    fn a_pipeline_without_workflows_starts_for_a_while_then_fails() {
        let circleci = provider();
        assert_eq!(circleci.progress(&pipeline("setup"), &[], &state(Utc::now())), BuildProgress::Running);
        let long_ago = state(Utc::now() - WORKFLOW_WINDOW - chrono::Duration::seconds(1));
        let BuildProgress::Failed { reason } = circleci.progress(&pipeline("created"), &[], &long_ago) else { panic!("failed") };
        assert!(reason.contains("is 'created' and started no workflow within 10 minutes") && reason.contains("branch main"), "{reason}");
    }
}

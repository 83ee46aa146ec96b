//! The `argo-cd` deployer: each target is an Argo CD application, synced to the release's
//! revision through Argo CD's REST API (`/api/v1/applications`) with a bearer token.
//!
//! - `start` reads the application (its synced revision becomes the handle's
//!   `previous_revision`, what a rollback syncs back to) and asks for a sync to the rendered
//!   `revision` with `prune: false`: Baton never deletes what the new revision no longer names.
//!   A target `namespace/name` is an application outside Argo CD's own namespace.
//! - An application shows its last operation until the new one starts, so `poll` trusts only an
//!   operation for our revision that started after the one `start` saw.
//! - Succeeded: that operation succeeded, and the application is `Synced` and `Healthy`. Failed:
//!   the operation ended `Failed` or `Error`, or the application is `Degraded` once it has been
//!   applied (before that, the health is the old revision's). Anything else is still running,
//!   `Terminating` included (it ends `Failed`).
//! - `Synced` compares with the application's `targetRevision`: syncing to a commit other than
//!   the one it tracks leaves it `OutOfSync`, and the wave waits until its deploy times out. Track
//!   the release branch (`revision: "{branch}"`), or let the pipeline move `targetRevision`.
//! - Refusals change nothing, and are `Rejected` so the wave fails at once and its rollback leaves
//!   the target alone: a sync window (403, "Cannot sync: Blocked by sync window"), named with
//!   the windows active now (`GET .../syncwindows`: their schedule and duration say when they
//!   close); 401 and 403; another operation in progress (400, "another operation is already in
//!   progress"), once it is still running after [`OPERATION_WAIT`] of polling the application
//!   (unless it is our own sync from a retried `start`); and a sync request whose answer never
//!   came or does not read, when the application shows no sync to our revision in the
//!   [`LOST_SYNC_WAIT`] after it. A server still working on a sync Baton stopped waiting for
//!   shows it only on a later read: the first read that shows it makes the target changed, and
//!   its sync is followed (and rolled back with the wave).
//! - A revision template with `{sha}` or `{short-sha}` never syncs an unknown commit: the start
//!   is refused before any request (the release is refused before its first wave already, see
//!   `rules::revision`), and so is a rollback to one.
//! - Multi-source applications (`spec.sources`) are not supported: their sync takes
//!   `revisions` and `sourcePositions`.

use crate::http::{Answer, DEFAULT_REQUEST_TIMEOUT, RateLimits, Refused, decode, exchange, http_url, quote, retry_after, shown};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle, SecretResolver};
use baton_domain::release::{Artifact, UNKNOWN_SHA};
use baton_domain::template::{Template, short_sha};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of the handles this deployer returns.
pub(crate) const PROVIDER: &str = "argo-cd";
const PLACEHOLDERS: &[&str] = &["sha", "short-sha", "branch", "artifact"];
/// How long a sync refused for another operation in progress waits for that one to end before
/// the target is refused.
pub const OPERATION_WAIT: Duration = Duration::from_secs(60);
/// How long a sync whose answer was lost is looked for before the target is taken as
/// unchanged: a server still at work on the request shows the sync within about a request's
/// time. With [`OPERATION_WAIT`], within deploy-wave's two minutes.
pub const LOST_SYNC_WAIT: Duration = Duration::from_secs(15);
/// How often the application is read while another operation runs.
const OPERATION_CHECK: Duration = Duration::from_secs(3);

/// Syncs each target application to the release's revision; see the module docs.
pub struct ArgoCdDeployer {
    server: Url,
    revision: Template,
    token: LazySecret,
    timeout: Duration,
    operation_wait: Duration,
    lost_sync_wait: Duration,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

/// What a handle carries, since `poll` sees nothing else.
#[derive(Debug, Serialize, Deserialize)]
struct RunState {
    /// The revision this run syncs to.
    revision: String,
    /// The revision the application was synced to before: what a rollback puts back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_revision: Option<String>,
    /// When the operation the application showed before the sync started: that one is not ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
}

/// The parts of an Application (`v1alpha1Application`) Baton reads.
#[derive(Debug, Deserialize)]
struct Application {
    status: AppStatus,
    /// An operation requested and not yet picked up by the controller.
    #[serde(default)]
    operation: Option<Operation>,
}

/// A sync window, as `GET .../syncwindows` lists the active ones.
#[derive(Debug, Deserialize)]
struct SyncWindow {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    duration: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SyncWindows {
    #[serde(default)]
    active_windows: Vec<SyncWindow>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppStatus {
    sync: SyncStatus,
    health: HealthStatus,
    #[serde(default)]
    operation_state: Option<OperationState>,
}

#[derive(Debug, Deserialize)]
struct SyncStatus {
    status: String,
    #[serde(default)]
    revision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HealthStatus {
    status: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationState {
    operation: Operation,
    phase: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Operation {
    #[serde(default)]
    sync: Option<SyncOperation>,
}

#[derive(Debug, Deserialize)]
struct SyncOperation {
    #[serde(default)]
    revision: Option<String>,
}

impl OperationState {
    /// Whether this is the sync a run asked for: to its revision, and not the one seen before.
    fn is_for(&self, run: &RunState) -> bool {
        let revision = self.operation.sync.as_ref().and_then(|sync| sync.revision.as_deref());
        revision == Some(run.revision.as_str()) && (run.since.is_none() || self.started_at != run.since)
    }
}

/// An application, as a target names it.
struct App<'a> {
    name: &'a str,
    namespace: Option<&'a str>,
}

impl<'a> App<'a> {
    fn of(target: &'a str) -> App<'a> {
        match target.split_once('/') {
            Some((namespace, name)) => App { name, namespace: Some(namespace) },
            None => App { name: target, namespace: None },
        }
    }
}

impl ArgoCdDeployer {
    /// `source` is the catalog file, for error messages. Refuses a server that is not an
    /// http(s) URL and a revision template with unknown placeholders.
    pub fn new(
        spec: &ArgoCdDeploy,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<ArgoCdDeployer, ProviderError> {
        let rejected = |why: String| ProviderError::rejected(format!("{source}: extensions.baton.deploy: argo-cd {why}"));
        let server = http_url(&spec.server).map_err(|why| rejected(format!("server {why}")))?;
        let revision = Template::parse(&spec.revision, "revision", "a git revision such as {sha}", PLACEHOLDERS).map_err(rejected)?;
        Ok(ArgoCdDeployer {
            server,
            revision,
            token: LazySecret::new(spec.token.clone(), secrets),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            operation_wait: OPERATION_WAIT,
            lost_sync_wait: LOST_SYNC_WAIT,
            limits: RateLimits::shared(),
            http,
        })
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> ArgoCdDeployer {
        self.limits = limits;
        self
    }

    /// How long a sync whose answer was lost is looked for ([`LOST_SYNC_WAIT`] unless set).
    pub fn with_lost_sync_wait(mut self, wait: Duration) -> ArgoCdDeployer {
        self.lost_sync_wait = wait;
        self
    }

    /// How long a sync waits for another operation to end ([`OPERATION_WAIT`] unless set).
    pub fn with_operation_wait(mut self, wait: Duration) -> ArgoCdDeployer {
        self.operation_wait = wait;
        self
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`] unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> ArgoCdDeployer {
        self.timeout = timeout;
        self
    }

    /// `{server}/api/v1/applications/{name}[/tail]`, with `appNamespace` when the target names one.
    fn endpoint(&self, app: &App<'_>, tail: Option<&str>) -> Url {
        let mut url = self.server.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(["api", "v1", "applications", app.name])
            .extend(tail);
        if let Some(namespace) = app.namespace {
            url.query_pairs_mut().append_pair("appNamespace", namespace);
        }
        url
    }

    /// The application's page in Argo CD's UI.
    fn page(&self, app: &App<'_>) -> String {
        let mut url = self.server.clone();
        let segments = ["applications"].into_iter().chain(app.namespace).chain([app.name]);
        url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend(segments);
        url.to_string()
    }

    /// Sends an authenticated request; the answer whatever its status.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        context: &str,
    ) -> Result<(Answer, &Secret), ProviderError> {
        let token = self.token.get().await?;
        let build = || {
            let request = self.http.request(method.clone(), url.clone()).bearer_auth(token.expose());
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        };
        Ok((exchange(&self.limits, "Argo CD", build, self.timeout, context, retry_after).await?, token))
    }

    fn refusal(&self, answer: &Answer, app: &App<'_>, context: &str, token: &Secret) -> ProviderError {
        let credentials = format!(
            "check the token {}: it must be a current Argo CD API token (a JWT) whose role may get and sync application {} \
             (Argo CD also answers 403 for applications that do not exist)",
            self.token.reference(),
            app.name
        );
        let missing = format!("Argo CD has no application {} on {}: check the wave's targets", app.name, shown(&self.server));
        let refused = Refused { service: "Argo CD", context, credentials: &credentials, missing: &missing, secrets: &[token] };
        answer.refusal(&refused, retry_after(&answer.headers))
    }

    async fn application(&self, app: &App<'_>, context: &str) -> Result<Application, ProviderError> {
        let (answer, token) = self.send(Method::GET, self.endpoint(app, None), None, context).await?;
        if !answer.status.is_success() {
            return Err(self.refusal(&answer, app, context, token));
        }
        decode(&answer.body, context)
    }

    /// The revision a request syncs to: the rendered template, or on rollback what the forward
    /// run replaced (else the previous artifact's commit); never one made of an unknown commit.
    fn revision_for(&self, request: &DeployRequest, app: &App<'_>) -> Result<String, ProviderError> {
        if !request.rollback {
            return match baton_domain::rules::revision::deployable(&request.artifact.sha, self.takes_revision()) {
                Ok(()) => Ok(render(&self.revision, &request.artifact)),
                Err(why) => Err(ProviderError::rejected(format!("syncing Argo CD application {}: {why}", app.name))),
            };
        }
        let replaced = request
            .undoes
            .as_ref()
            .filter(|run| run.provider == PROVIDER)
            .and_then(|run| serde_json::from_value::<RunState>(run.state.clone()).ok())
            .and_then(|state| state.previous_revision);
        match replaced {
            Some(revision) => Ok(revision),
            None if !request.artifact.sha.is_empty() && request.artifact.sha != UNKNOWN_SHA => Ok(request.artifact.sha.clone()),
            None => Err(ProviderError::rejected(format!(
                "rolling back Argo CD application {}: nothing to go back to (it had no synced revision before this release, \
                 and the previous artifact names no known commit)",
                app.name
            ))),
        }
    }

    /// Asks for the sync once: started (or found started), or busy with another operation; a
    /// refusal is the error it means.
    async fn sync(&self, app: &App<'_>, state: &RunState, context: &str) -> Result<Synced, ProviderError> {
        let mut body = serde_json::json!({ "revision": state.revision, "prune": false });
        if let Some(namespace) = app.namespace {
            body["appNamespace"] = namespace.into();
        }
        let answer = match self.send(Method::POST, self.endpoint(app, Some("sync")), Some(&body), context).await {
            Ok(answer) => answer,
            // Held back by a rate limit: nothing was sent.
            Err(limited) if limited.rate_limit().is_some() => return Err(limited),
            Err(ProviderError::Unavailable { message, .. }) => return self.verify_sync(app, state, context, &message).await,
            Err(refused) => return Err(refused),
        };
        let (answer, token) = answer;
        if answer.status.is_success() {
            if let Err(unreadable) = decode::<Application>(&answer.body, context) {
                return self.verify_sync(app, state, context, unreadable.message()).await;
            }
            tracing::info!(target: "baton::argo_cd", application = app.name, revision = %state.revision, "sync requested");
            return Ok(Synced::Started);
        }
        if answer.status == StatusCode::FORBIDDEN && contains(&answer, "sync window") {
            let windows = self.active_windows(app, context).await;
            return Err(ProviderError::rejected(format!(
                "{context}: a sync window of the application's project blocks syncs now (HTTP 403{}){windows}; \
                 nothing was changed: release again once the window closes, or allow manual syncs in it",
                answer.said(&[token])
            )));
        }
        if answer.status == StatusCode::BAD_REQUEST && contains(&answer, "another operation is already in progress") {
            return Ok(Synced::Busy(answer.said(&[token])));
        }
        Err(self.refusal(&answer, app, context, token))
    }

    /// After a sync request whose answer never came or does not read (`why`): the sync it asked
    /// for, as soon as the application shows it (a server still at work on the request shows it
    /// only on a later read), else, once [`Self::with_lost_sync_wait`]'s time has passed with
    /// none shown, a refusal that says nothing changed.
    async fn verify_sync(&self, app: &App<'_>, state: &RunState, context: &str, why: &str) -> Result<Synced, ProviderError> {
        let looked_since = std::time::Instant::now();
        loop {
            let now = self.application(app, context).await?;
            let requested = now.operation.as_ref().and_then(|operation| operation.sync.as_ref()).and_then(|sync| sync.revision.as_deref());
            let started = now.status.operation_state.as_ref().is_some_and(|operation| operation.is_for(state));
            if started || requested == Some(state.revision.as_str()) {
                tracing::warn!(target: "baton::argo_cd", application = app.name, "the sync's answer was lost ({why}), but the sync started");
                return Ok(Synced::Started);
            }
            if looked_since.elapsed() >= self.lost_sync_wait {
                break;
            }
            tokio::time::sleep(OPERATION_CHECK.min(self.lost_sync_wait)).await;
        }
        Err(ProviderError::rejected(format!(
            "{why}; the application showed no sync to {} in the {} s after, so nothing was changed: the deploy of this target is refused",
            state.revision,
            self.lost_sync_wait.as_secs()
        )))
    }

    /// The sync windows active now, as ": active windows deny '0 22 * * *' for 8h", or nothing
    /// when they cannot be read (the refusal stands without them).
    async fn active_windows(&self, app: &App<'_>, context: &str) -> String {
        let read = async {
            let (answer, _) = self.send(Method::GET, self.endpoint(app, Some("syncwindows")), None, context).await?;
            if !answer.status.is_success() {
                return Err(ProviderError::rejected("the sync windows cannot be read"));
            }
            decode::<SyncWindows>(&answer.body, context)
        };
        match read.await {
            Ok(windows) if !windows.active_windows.is_empty() => {
                let listed: Vec<String> =
                    windows.active_windows.iter().map(|w| format!("{} '{}' for {}", w.kind, w.schedule, w.duration)).collect();
                format!(": active windows {} (each opens its duration after its schedule fires)", listed.join(", "))
            }
            _ => String::new(),
        }
    }

    fn handle(&self, target: &str, app: &App<'_>, state: &RunState) -> RunHandle {
        RunHandle {
            provider: PROVIDER.into(),
            id: target.to_owned(),
            url: Some(self.page(app)),
            state: serde_json::to_value(state).expect("run state serialises to JSON"),
        }
    }
}

fn render(template: &Template, artifact: &Artifact) -> String {
    template.render(|name| match name {
        "sha" => &artifact.sha,
        "short-sha" => short_sha(&artifact.sha),
        "branch" => &artifact.branch,
        "artifact" => &artifact.reference,
        other => unreachable!("{other} is not one of the PLACEHOLDERS"),
    })
}

/// What one sync request came to.
enum Synced {
    Started,
    /// Another operation runs on the application (what Argo CD said).
    Busy(String),
}

fn contains(answer: &Answer, text: &str) -> bool {
    String::from_utf8_lossy(&answer.body).to_ascii_lowercase().contains(text)
}

#[async_trait]
impl Deployer for ArgoCdDeployer {
    fn takes_revision(&self) -> bool {
        self.revision.uses("sha") || self.revision.uses("short-sha")
    }

    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let app = App::of(&request.target);
        let revision = self.revision_for(request, &app)?;
        let context = format!("syncing Argo CD application {} on {} to {revision}", app.name, shown(&self.server));
        let before = self.application(&app, &context).await?;
        let previous_revision = before.status.sync.revision.clone().filter(|revision| !revision.is_empty());
        let mut state = RunState { revision, previous_revision, since: None };
        if let Some(operation) = &before.status.operation_state {
            // A sync to our revision still running is ours, from a start whose answer was lost.
            if operation.phase == "Running" && operation.is_for(&state) {
                return Ok(self.handle(&request.target, &app, &state));
            }
            state.since.clone_from(&operation.started_at);
        }
        let waited_since = std::time::Instant::now();
        loop {
            match self.sync(&app, &state, &context).await? {
                Synced::Started => return Ok(self.handle(&request.target, &app, &state)),
                // Argo CD takes one operation at a time: wait for the other to end, bounded.
                Synced::Busy(said) if waited_since.elapsed() < self.operation_wait => {
                    tracing::info!(target: "baton::argo_cd", application = app.name, "another operation is in progress; waiting{said}");
                    tokio::time::sleep(OPERATION_CHECK.min(self.operation_wait)).await;
                }
                Synced::Busy(said) => {
                    return Err(ProviderError::rejected(format!(
                        "{context}: another operation was still in progress on the application after {} s of waiting{said}; \
                         nothing was changed",
                        self.operation_wait.as_secs()
                    )));
                }
            }
        }
    }

    async fn poll(&self, handle: &RunHandle) -> Result<DeployProgress, ProviderError> {
        if handle.provider != PROVIDER {
            return Err(ProviderError::rejected(format!(
                "run {} belongs to the '{}' provider, not the Argo CD deployer",
                handle.id, handle.provider
            )));
        }
        let state: RunState = serde_json::from_value(handle.state.clone())
            .map_err(|e| ProviderError::rejected(format!("Argo CD run handle {}: unreadable state", handle.id)).caused_by(e))?;
        let app = App::of(&handle.id);
        let context = format!("reading Argo CD application {} on {}", app.name, shown(&self.server));
        let status = self.application(&app, &context).await?.status;
        let Some(operation) = status.operation_state.filter(|operation| operation.is_for(&state)) else {
            return Ok(DeployProgress::Running);
        };
        let label = format!("the sync of Argo CD application {} to {}", app.name, state.revision);
        // Messages quote git and Kubernetes errors, which may quote the request that carried the token.
        let token = self.token.get().await?;
        let said =
            |message: Option<String>| message.map(|m| quote(&m, &[token])).filter(|m| !m.is_empty()).unwrap_or_else(|| "no message".into());
        Ok(match settled(&operation.phase, &status.sync.status, &status.health.status) {
            Settled::Ended => DeployProgress::Failed { reason: format!("{label} ended {}: {}", operation.phase, said(operation.message)) },
            Settled::Degraded => DeployProgress::Failed {
                reason: format!("{label} was applied, and the application is Degraded: {}", said(status.health.message)),
            },
            Settled::Succeeded => DeployProgress::Succeeded,
            Settled::Running => DeployProgress::Running,
        })
    }
}

/// What a sync came to, from its operation's phase and the application's sync and health
/// statuses (the polls' and the notification receiver's reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Succeeded,
    /// The operation ended `Failed` or `Error`.
    Ended,
    /// Applied, and the application is `Degraded`.
    Degraded,
    /// Anything else, `Terminating` included (it ends `Failed`).
    Running,
}

pub(crate) fn settled(phase: &str, sync: &str, health: &str) -> Settled {
    match (phase, sync, health) {
        ("Failed" | "Error", _, _) => Settled::Ended,
        ("Succeeded", _, "Degraded") => Settled::Degraded,
        ("Succeeded", "Synced", "Healthy") => Settled::Succeeded,
        _ => Settled::Running,
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArgoCdDeploy {
    /// The Argo CD server (`https://argocd.example.com`).
    pub server: String,
    /// An Argo CD API token allowed to sync the applications.
    pub token: SecretRef,
    /// The revision to sync to, with `{sha}`, `{short-sha}`, `{branch}`, `{artifact}` filled.
    #[serde(default = "ArgoCdDeploy::default_revision")]
    pub revision: String,
    /// Authenticates the provider's callbacks to Baton: the notification's X-Baton-Token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_secret: Option<SecretRef>,
}

impl ArgoCdDeploy {
    fn default_revision() -> String {
        "{sha}".into()
    }
}

const DEPLOY_ARGO_CD: &[Field] = &[
    required("server", Kind::Url, "The Argo CD server; the targets are application names."),
    required("token", Kind::Secret, "An Argo CD API token allowed to sync the applications (secret reference)."),
    field("revision", Kind::Text, "Revision to sync to, with `{sha}`, `{short-sha}`, `{branch}`, `{artifact}`; `{sha}` by default."),
    field(
        "events-secret",
        Kind::Secret,
        "The token the Argo CD notification webhook sends Baton as `X-Baton-Token` (secret reference); without it, Baton polls.",
    ),
];

pub const ARGO_CD: ProviderShape = ProviderShape {
    slot: Slot::Deploy,
    name: "argo-cd",
    doc: "Syncs Argo CD applications.",
    fields: DEPLOY_ARGO_CD,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<ArgoCdDeploy>,
};

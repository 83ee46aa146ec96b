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
//! - Refusals: a sync window (403, "Cannot sync: Blocked by sync window") is `Rejected` naming
//!   it; another operation in progress (400, "another operation is already in progress") is
//!   `Unavailable`, retried, unless it is our own sync from a retried `start`.
//! - Multi-source applications (`spec.sources`) are not supported: their sync takes
//!   `revisions` and `sourcePositions`.

use crate::http::{Answer, DEFAULT_REQUEST_TIMEOUT, Refused, decode, exchange, http_url, quote, retry_after, shown};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle, SecretResolver};
use baton_domain::release::Artifact;
use baton_domain::template::{Template, short_sha};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of the handles this deployer returns.
pub(crate) const PROVIDER: &str = "argo-cd";
const PLACEHOLDERS: &[&str] = &["sha", "short-sha", "branch", "artifact"];

/// Syncs each target application to the release's revision; see the module docs.
pub struct ArgoCdDeployer {
    server: Url,
    revision: Template,
    token: LazySecret,
    timeout: Duration,
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
        Ok(ArgoCdDeployer { server, revision, token: LazySecret::new(spec.token.clone(), secrets), timeout: DEFAULT_REQUEST_TIMEOUT, http })
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
        Ok((exchange(build, self.timeout, context, retry_after).await?, token))
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
    /// run replaced (else the previous artifact's commit).
    fn revision_for(&self, request: &DeployRequest, app: &App<'_>) -> Result<String, ProviderError> {
        if !request.rollback {
            return Ok(render(&self.revision, &request.artifact));
        }
        let replaced = request
            .undoes
            .as_ref()
            .filter(|run| run.provider == PROVIDER)
            .and_then(|run| serde_json::from_value::<RunState>(run.state.clone()).ok())
            .and_then(|state| state.previous_revision);
        match replaced {
            Some(revision) => Ok(revision),
            None if !request.artifact.sha.is_empty() => Ok(request.artifact.sha.clone()),
            None => Err(ProviderError::rejected(format!(
                "rolling back Argo CD application {}: nothing to go back to (it had no synced revision before this release, \
                 and no previous artifact names a commit)",
                app.name
            ))),
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

fn contains(answer: &Answer, text: &str) -> bool {
    String::from_utf8_lossy(&answer.body).to_ascii_lowercase().contains(text)
}

#[async_trait]
impl Deployer for ArgoCdDeployer {
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
        let mut body = serde_json::json!({ "revision": state.revision, "prune": false });
        if let Some(namespace) = app.namespace {
            body["appNamespace"] = namespace.into();
        }
        let (answer, token) = self.send(Method::POST, self.endpoint(&app, Some("sync")), Some(&body), &context).await?;
        if answer.status.is_success() {
            tracing::info!(target: "baton::argo_cd", application = app.name, revision = %state.revision, "sync requested");
            return Ok(self.handle(&request.target, &app, &state));
        }
        if answer.status == StatusCode::FORBIDDEN && contains(&answer, "sync window") {
            return Err(ProviderError::rejected(format!(
                "{context}: a sync window of the application's project blocks syncs now (HTTP 403{}); \
                 wait for the window to open or allow manual syncs in it",
                answer.said(&[token])
            )));
        }
        if answer.status == StatusCode::BAD_REQUEST && contains(&answer, "another operation is already in progress") {
            return Err(ProviderError::unavailable(format!(
                "{context}: another operation is in progress on the application{}",
                answer.said(&[token])
            )));
        }
        Err(self.refusal(&answer, &app, &context, token))
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
        Ok(match (operation.phase.as_str(), status.sync.status.as_str(), status.health.status.as_str()) {
            (phase @ ("Failed" | "Error"), _, _) => {
                DeployProgress::Failed { reason: format!("{label} ended {phase}: {}", said(operation.message)) }
            }
            ("Succeeded", _, "Degraded") => DeployProgress::Failed {
                reason: format!("{label} was applied, and the application is Degraded: {}", said(status.health.message)),
            },
            ("Succeeded", "Synced", "Healthy") => DeployProgress::Succeeded,
            _ => DeployProgress::Running,
        })
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
];

pub const ARGO_CD: ProviderShape = ProviderShape {
    slot: Slot::Deploy,
    name: "argo-cd",
    doc: "Syncs Argo CD applications.",
    fields: DEPLOY_ARGO_CD,
    at_least_one: None,
    local_only: None,
    through_model: through_model::<ArgoCdDeploy>,
};

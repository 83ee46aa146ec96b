//! The `webhook` deployer: a team's own endpoint deploys, Baton asks and follows.
//!
//! The contract, for whoever writes the endpoint:
//!
//! - **Deploy (and rollback).** One `POST <url>` per target, JSON body
//!   `{"service", "environment", "release_id", "wave", "target", "artifact": {"reference", "sha",
//!   "branch", "build_url"?}, "rollback": bool, "undoes": <id of the forward run, or null>}`.
//!   On a rollback the artifact is the one to put back; an empty `reference` means nothing was
//!   live before this release. When Baton receives provider events, the body also carries
//!   `"callback_url"`, this target's of this release: see **Callback**.
//! - **Signature.** `X-Baton-Timestamp: <unix seconds>` and `X-Baton-Signature: sha256=<hex>`,
//!   the HMAC-SHA256 with the shared secret of `<timestamp>.<body>` (the raw bytes). The endpoint
//!   should compare in constant time and refuse timestamps more than a few minutes old.
//! - **Trace context.** `traceparent` (W3C Trace Context): the deploy's span of the release's
//!   trace (or its putting back's, on a rollback), so an endpoint that traces joins the trace.
//! - **Idempotency.** `Idempotency-Key: <release_id>/<wave>/<target>/<deploy|rollback>`. Baton
//!   sends the same request again when an answer is lost or unreadable: the endpoint answers a
//!   key it has seen with the run it started for it, and starts nothing new.
//! - **Answer.** 200, 201 or 202 with `{"status_url": "...", "id": "..."}`: where to follow the
//!   run (absolute, or relative to `url`) and its id. The status URL must be on the host of
//!   `url`: Baton signs its requests, and an endpoint must not be able to send them elsewhere.
//! - **Status.** `GET <status_url>`, signed the same way over an empty body, answers
//!   `{"state": "running" | "succeeded" | "failed", "reason"?: "..."}`.
//! - **Callback** (optional: the status URL stays the safety net). `POST <callback_url>` with
//!   `{"id": <the id the answer gave>, "state": "succeeded" | "failed" | "running", "reason"?}`
//!   and `X-Baton-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<path>.<body>">` under
//!   the same secret, `<path>` being the callback URL's path as given
//!   (`/webhook/<release id>/<target>`, percent-encoded): the URL names the release and target, the
//!   body the run, so ids need only be unique per endpoint, and a callback signed for one release
//!   is refused at another's URL. Baton refuses a `t` more than 5 minutes from its clock. The
//!   release moves on within seconds instead of at its next poll.
//! - **Errors.** 401/403 is a signature the endpoint refuses (the secret differs), 404 a wrong
//!   URL: neither is retried. 408, 429 (with `Retry-After` in seconds) and 5xx are retried.

use crate::http::{Answer, DEFAULT_REQUEST_TIMEOUT, RateLimits, Refused, decode, exchange, http_url, quote, retry_after, shown};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle, SecretResolver};
use baton_domain::signing::hmac_sha256_hex;
use baton_domain::trace::deploy_traceparent;
use baton_domain::waits::{WaitKey, WaitKind};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of the handles this deployer returns.
pub(crate) const PROVIDER: &str = "webhook";
const TIMESTAMP_HEADER: &str = "x-baton-timestamp";
const SIGNATURE_HEADER: &str = "x-baton-signature";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const TRACEPARENT_HEADER: &str = "traceparent";
/// The longest run id and status URL kept: the handle travels in the execution's state.
const MAX_ID_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 2048;

/// Calls the team's endpoint for each target and polls the status URL it answers; see the
/// module docs for the contract.
pub struct WebhookDeployer {
    url: Url,
    /// Where Baton receives provider events, when it does: each request's `callback_url` is
    /// under it ([`callback_url`]).
    events_url: Option<String>,
    secret: LazySecret,
    timeout: Duration,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

/// The deploy request's body.
#[derive(Serialize)]
struct Call<'a> {
    service: &'a str,
    environment: &'a str,
    release_id: &'a str,
    wave: &'a str,
    target: &'a str,
    artifact: &'a baton_domain::release::Artifact,
    rollback: bool,
    undoes: Option<&'a str>,
    /// Where the endpoint may report the run's end at once (see the module docs), when Baton
    /// receives provider events.
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<String>,
}

#[derive(Deserialize)]
struct Started {
    status_url: String,
    id: String,
}

/// A run's state, as the status URL and the callback report it.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Running,
    Succeeded,
    Failed,
}

#[derive(Deserialize)]
pub(crate) struct Status {
    pub(crate) state: State,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// What a handle carries: where to poll, and which target, for messages.
#[derive(Serialize, Deserialize)]
struct RunState {
    status_url: String,
    target: String,
    /// The release the run deploys, which its callback URL names (absent from the handles of an
    /// older Baton: those runs are polled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<String>,
}

impl WebhookDeployer {
    /// `source` is the catalog file, for error messages. Refuses a URL that is not http(s).
    pub fn new(
        spec: &WebhookDeploy,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<WebhookDeployer, ProviderError> {
        let url =
            http_url(&spec.url).map_err(|why| ProviderError::rejected(format!("{source}: extensions.baton.deploy: webhook url {why}")))?;
        Ok(WebhookDeployer {
            url,
            events_url: None,
            secret: LazySecret::new(spec.secret.clone(), secrets),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            limits: RateLimits::shared(),
            http,
        })
    }

    /// Tells the endpoint, in each deploy request, to report the run's end under `events_url` (the
    /// provider-events function's URL, or `baton`'s loopback listener's), at
    /// `<events URL>/webhook/<release id>/<target>`.
    pub fn with_events_url(mut self, events_url: &str) -> WebhookDeployer {
        self.events_url = Some(events_url.trim_end_matches('/').to_owned());
        self
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`] unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> WebhookDeployer {
        self.timeout = timeout;
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> WebhookDeployer {
        self.limits = limits;
        self
    }

    /// Sends a signed request with `headers` and returns the 2xx answer's body, or the error the
    /// answer means.
    async fn signed(
        &self,
        method: Method,
        url: &Url,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        context: &str,
    ) -> Result<Vec<u8>, ProviderError> {
        let secret = self.secret.get().await?;
        let build = || {
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(TIMESTAMP_HEADER, &timestamp)
                .header(SIGNATURE_HEADER, signature(secret, &timestamp, &body));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if !body.is_empty() {
                request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
            }
            request
        };
        let answer = exchange(&self.limits, "the webhook endpoint", build, self.timeout, context, retry_after).await?;
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        Err(self.refusal(&answer, url, context, secret))
    }

    fn refusal(&self, answer: &Answer, url: &Url, context: &str, secret: &Secret) -> ProviderError {
        let credentials = format!(
            "it does not accept Baton's signature: check that it verifies X-Baton-Signature with the secret {}",
            self.secret.reference()
        );
        let missing = format!("nothing answers at {}: check the webhook's url and the status_url it returns", shown(url));
        let refused =
            Refused { service: "the webhook endpoint", context, credentials: &credentials, missing: &missing, secrets: &[secret] };
        answer.refusal(&refused, retry_after(&answer.headers))
    }

    /// `status_url` resolved against the webhook's URL, if it stays on the webhook's host.
    fn status_url(&self, status_url: &str, context: &str) -> Result<Url, ProviderError> {
        let refused = |why: String| ProviderError::rejected(format!("{context}: the status_url {why}"));
        let url = self.url.join(status_url).map_err(|e| refused(format!("'{}' is not a URL: {e}", quote(status_url, &[]))))?;
        let downgrade = self.url.scheme() == "https" && url.scheme() != "https";
        if !matches!(url.scheme(), "http" | "https") || downgrade {
            return Err(refused(format!("{} must be https like the webhook's url", shown(&url))));
        }
        if url.host() != self.url.host() {
            return Err(refused(format!(
                "{} is not on the webhook's host {}: Baton follows runs only on the endpoint's own host",
                shown(&url),
                self.url.host_str().unwrap_or_default()
            )));
        }
        Ok(url)
    }
}

/// The path of the callback URL of `target`'s run in `release`: `/webhook/<release>/<target>`,
/// each name encoded into one path segment (a target may hold `/`).
pub(crate) fn callback_path(release: &str, target: &str) -> String {
    format!("/{PROVIDER}/{}/{}", segment(release), segment(target))
}

/// Where the endpoint reports `target`'s run in `release`: [`callback_path`] under `events_url`.
fn callback_url(events_url: &str, release: &str, target: &str) -> String {
    format!("{events_url}{}", callback_path(release, target))
}

/// `text` as one path segment: every byte but ASCII letters, digits and `*-._` escaped, so the
/// segments and the key built from them read back one way only.
fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The key a webhook rollout parks on and its callback resumes: the release and target its
/// callback URL names (as [`callback_path`] encodes them) and the run id the endpoint answered.
/// `release` and `target` are taken encoded by the receiver, which reads them off the path.
pub(crate) fn callback_key(encoded_release: &str, encoded_target: &str, id: &str) -> WaitKey {
    WaitKey::new(WaitKind::Rollout, PROVIDER, format!("{encoded_release}/{encoded_target}/{id}"))
}

/// `sha256=<hex>` of the HMAC-SHA256 of `<timestamp>.<body>`.
fn signature(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(secret.expose().as_bytes(), &[timestamp.as_bytes(), b".", body]))
}

fn read_state(handle: &RunHandle) -> Result<RunState, ProviderError> {
    if handle.provider != PROVIDER {
        return Err(ProviderError::rejected(format!(
            "run {} belongs to the '{}' provider, not the webhook deployer",
            handle.id, handle.provider
        )));
    }
    serde_json::from_value(handle.state.clone())
        .map_err(|e| ProviderError::rejected(format!("webhook run handle {}: unreadable state", handle.id)).caused_by(e))
}

#[async_trait]
impl Deployer for WebhookDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let kind = if request.rollback { "rollback" } else { "deploy" };
        let context =
            format!("asking the webhook {} to {kind} {} to target {}", shown(&self.url), request.artifact.reference, request.target);
        let body = serde_json::to_vec(&Call {
            service: &request.service,
            environment: &request.environment,
            release_id: &request.release_id.0,
            wave: &request.wave,
            target: &request.target,
            artifact: &request.artifact,
            rollback: request.rollback,
            undoes: request.undoes.as_ref().map(|run| run.id.as_str()),
            callback_url: self.events_url.as_deref().map(|events_url| callback_url(events_url, &request.release_id.0, &request.target)),
        })
        .expect("a deploy call serialises to JSON");
        let key = format!("{}/{}/{}/{kind}", request.release_id.0, request.wave, request.target);
        let span = deploy_traceparent(request);
        let headers = [(IDEMPOTENCY_HEADER, key.as_str()), (TRACEPARENT_HEADER, span.as_str())];
        let answer = self.signed(Method::POST, &self.url, body, &headers, &context).await?;
        let Started { status_url, id } = decode(&answer, &context)?;
        if id.is_empty() || id.chars().count() > MAX_ID_CHARS || status_url.chars().count() > MAX_URL_CHARS {
            return Err(ProviderError::rejected(format!(
                "{context}: the answer's id must have 1 to {MAX_ID_CHARS} characters and its status_url at most {MAX_URL_CHARS} \
                 (they are kept in the release's state); got an id of {} and a status_url of {}",
                id.chars().count(),
                status_url.chars().count()
            )));
        }
        let status_url = self.status_url(&status_url, &context)?;
        tracing::info!(target: "baton::webhook", id = %id, target_name = %request.target, "the webhook started a {kind}");
        let state =
            RunState { status_url: status_url.to_string(), target: request.target.clone(), release: Some(request.release_id.0.clone()) };
        Ok(RunHandle {
            provider: PROVIDER.into(),
            id,
            url: None,
            state: serde_json::to_value(state).expect("run state serialises to JSON"),
        })
    }

    fn wait_key(&self, run: &RunHandle) -> Option<WaitKey> {
        let state = read_state(run).ok()?;
        Some(callback_key(&segment(&state.release?), &segment(&state.target), &run.id))
    }

    async fn poll(&self, handle: &RunHandle) -> Result<DeployProgress, ProviderError> {
        let state = read_state(handle)?;
        let context = format!("reading the status of webhook run {} (target {})", handle.id, state.target);
        let url = self.status_url(&state.status_url, &context)?;
        let answer = self.signed(Method::GET, &url, Vec::new(), &[], &context).await?;
        let status: Status = decode(&answer, &context)?;
        Ok(match status.state {
            State::Running => DeployProgress::Running,
            State::Succeeded => DeployProgress::Succeeded,
            State::Failed => {
                let secret = self.secret.get().await?;
                let why = status.reason.map(|reason| quote(&reason, &[secret])).filter(|reason| !reason.is_empty());
                DeployProgress::Failed {
                    reason: format!(
                        "the webhook reports run {} on target {} failed: {}",
                        handle.id,
                        state.target,
                        why.as_deref().unwrap_or("it gave no reason")
                    ),
                }
            }
        })
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, required, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WebhookDeploy {
    /// Receives the signed deploy (and rollback) requests.
    pub url: String,
    /// The HMAC-SHA256 key that signs each request.
    pub secret: SecretRef,
}

const DEPLOY_WEBHOOK: &[Field] = &[
    required("url", Kind::Url, "Receives each target's signed deploy and rollback request."),
    required("secret", Kind::Secret, "Key of the HMAC-SHA256 signature over each request (secret reference)."),
];

pub const WEBHOOK: ProviderShape = ProviderShape {
    slot: Slot::Deploy,
    name: "webhook",
    doc: "Calls the team's endpoint with a signed request.",
    fields: DEPLOY_WEBHOOK,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<WebhookDeploy>,
};

//! The github-webhook Lambda handler, behind a Lambda function URL: verifies GitHub's
//! `X-Hub-Signature-256` over the raw body, then, once per delivery, turns a merged pull request
//! into a merge event on the Baton bus (`baton_aws::events`), and a finished workflow run into
//! the resumption of the release parked on it ([`workflow_runs`]).
//!
//! Answers: 202 merge event published, or a release resumed; 200 duplicate delivery (acted on
//! before, nothing done now); 204 delivery understood and ignored (ping, other events, pull
//! requests closed without merging, a run under way or one no release waits for); 400 unreadable
//! body; 401 missing or wrong signature; 413 body over [`MAX_BODY_BYTES`]; 503 the delivery log,
//! the bus, the waits or Step Functions did not answer (GitHub shows the failed delivery, and it
//! can be redelivered; a workflow run's end is also seen by the release's safety-net poll).

mod deliveries;
pub mod workflow_runs;

pub use deliveries::{DELIVERY_RETENTION, DeliveryClaim, DeliveryLog, MemoryDeliveryLog};
pub use workflow_runs::{BuildWaits, MemoryWaits};

use async_trait::async_trait;
use base64::Engine;
use baton_aws::AwsError;
use baton_aws::events::{MergeEvent, put_merge_event};
use baton_domain::signing;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The largest body the webhook reads, checked before its signature is computed, so an unsigned
/// sender cannot make it hash and parse more. GitHub caps deliveries at 25 MB, but a
/// `pull_request` payload is far smaller: tens of KB, and well under 1 MiB even with a pull
/// request description at GitHub's 65,536-character limit written entirely as `\uXXXX` escapes
/// (6 bytes each, about 400 KB); a `workflow_run` payload is of the same order (its head
/// commit's message is its only free text). Lambda caps a function URL request at 6 MB anyway.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Where merge events go; the handler sees only this, so tests pass a recorder.
#[async_trait]
pub trait MergePublisher: Send + Sync {
    /// Publishes the event; returns its id.
    async fn publish(&self, event: &MergeEvent) -> Result<String, AwsError>;
}

/// The production publisher: `PutEvents` on the Baton bus.
pub struct EventBridgePublisher {
    pub client: aws_sdk_eventbridge::Client,
    pub bus: String,
}

#[async_trait]
impl MergePublisher for EventBridgePublisher {
    async fn publish(&self, event: &MergeEvent) -> Result<String, AwsError> {
        put_merge_event(&self.client, &self.bus, event).await
    }
}

/// The webhook's shared secret. Debug never shows it.
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<WebhookSecret, String> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err("the webhook secret is empty".into());
        }
        Ok(WebhookSecret(secret))
    }

    /// Checks `header` (`sha256=<hex>`) against the HMAC-SHA256 of `body`, in constant time.
    pub fn verify(&self, body: &[u8], header: &str) -> bool {
        header.trim().strip_prefix("sha256=").is_some_and(|hex| signing::hmac_sha256_matches(&self.0, &[body], hex))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

pub use baton_lambda_glue::function_url::{FunctionUrlRequest, FunctionUrlResponse};

/// The parts of GitHub's `pull_request` payload the merge event needs.
#[derive(Deserialize)]
struct PullRequestDelivery {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: Repository,
}

#[derive(Deserialize)]
struct PullRequest {
    #[serde(default)]
    merged: bool,
    merged_at: Option<DateTime<Utc>>,
    merge_commit_sha: Option<String>,
    base: BaseRef,
    user: User,
}

#[derive(Deserialize)]
struct BaseRef {
    #[serde(rename = "ref")]
    name: String,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Repository {
    name: String,
    /// `owner/name`.
    full_name: String,
}

pub struct Webhook<P, D> {
    secret: WebhookSecret,
    publisher: P,
    deliveries: D,
    waits: BuildWaits,
}

impl<P: MergePublisher, D: DeliveryLog> Webhook<P, D> {
    pub fn new(secret: WebhookSecret, publisher: P, deliveries: D, waits: BuildWaits) -> Webhook<P, D> {
        Webhook { secret, publisher, deliveries, waits }
    }

    pub async fn handle(&self, request: &FunctionUrlRequest) -> FunctionUrlResponse {
        self.handle_at(request, Utc::now()).await
    }

    /// [`Webhook::handle`] at `now`, the time a delivery is logged at.
    pub async fn handle_at(&self, request: &FunctionUrlRequest, now: DateTime<Utc>) -> FunctionUrlResponse {
        let header = |name: &str| request.header(name);
        // Logged, never trusted: the header is outside the signature.
        let delivery = header("x-github-delivery").unwrap_or("-");
        let body = match request.body_bytes(MAX_BODY_BYTES) {
            Ok(body) => body,
            Err(refused) => {
                tracing::warn!(delivery, status = refused.status_code, "rejected: {}", refused.body);
                return refused;
            }
        };

        let Some(signature) = header("x-hub-signature-256") else {
            tracing::warn!(delivery, "rejected: no X-Hub-Signature-256 header");
            return FunctionUrlResponse::message(401, "missing X-Hub-Signature-256 header");
        };
        if !self.secret.verify(&body, signature) {
            tracing::warn!(delivery, "rejected: X-Hub-Signature-256 does not match the body");
            return FunctionUrlResponse::message(401, "X-Hub-Signature-256 does not match the body");
        }

        match header("x-github-event") {
            Some("pull_request") => {}
            Some("workflow_run") => return self.workflow_run(&body, &delivery_key(&body), delivery, now).await,
            other => {
                tracing::info!(delivery, event = other.unwrap_or("-"), "ignored: not a pull_request or workflow_run event");
                return ignored();
            }
        }
        let payload: PullRequestDelivery = match serde_json::from_slice(&body) {
            Ok(payload) => payload,
            Err(err) => {
                return FunctionUrlResponse::message(
                    400,
                    format!(
                        "pull_request payload: {err} (expected action, number, pull_request.merged, merged_at, merge_commit_sha, base.ref, user.login, repository.name, repository.full_name)"
                    ),
                );
            }
        };
        let pr = payload.pull_request;
        if payload.action != "closed" || !pr.merged {
            tracing::info!(delivery, action = payload.action, merged = pr.merged, "ignored: not a merge");
            return ignored();
        }
        let (Some(sha), Some(merged_at)) = (pr.merge_commit_sha, pr.merged_at) else {
            return FunctionUrlResponse::message(400, "merged pull_request lacks merge_commit_sha or merged_at");
        };
        let repository = payload.repository;
        if repository.full_name.split_once('/').is_none_or(|(owner, name)| owner.is_empty() || name != repository.name) {
            return FunctionUrlResponse::message(
                400,
                format!(
                    "repository.full_name '{}' is not '<owner>/{}' (repository.name)",
                    repository.full_name.escape_debug(),
                    repository.name.escape_debug()
                ),
            );
        }
        let event = MergeEvent {
            repository: repository.name,
            full_name: repository.full_name,
            branch: pr.base.name,
            sha,
            pull_request: payload.number,
            author: pr.user.login,
            merged_at,
        };
        let key = delivery_key(&body);
        match self.deliveries.claim(&key, delivery, now).await {
            Ok(DeliveryClaim::New) => {}
            Ok(DeliveryClaim::Seen { delivery: first, at }) => {
                tracing::warn!(delivery, first_delivery = first, first_at = %at, pull_request = event.pull_request, "duplicate delivery: nothing published");
                return duplicate(&first, at);
            }
            Err(err) => {
                tracing::error!(delivery, error = %err, "delivery log unavailable: nothing published");
                return FunctionUrlResponse::message(503, "the delivery could not be checked for a replay; redeliver it from GitHub");
            }
        }
        match self.publisher.publish(&event).await {
            Ok(event_id) => {
                tracing::info!(
                    delivery,
                    event_id,
                    repository = event.full_name,
                    pull_request = event.pull_request,
                    "merge event published"
                );
                FunctionUrlResponse::json(202, serde_json::json!({ "event_id": event_id }))
            }
            Err(err) => {
                tracing::error!(delivery, error = %err, "merge event not published");
                // Without this, GitHub's redelivery of this delivery would count as a duplicate.
                if let Err(err) = self.deliveries.forget(&key, delivery).await {
                    tracing::error!(delivery, error = %err, "delivery claim not given back: a redelivery within the retention will be refused");
                }
                FunctionUrlResponse::message(503, "the merge event could not be published; redeliver it from GitHub")
            }
        }
    }
}

/// The key a delivery is claimed under: the signed body, not the delivery header, which anyone
/// replaying a captured body can change. GitHub's redelivery resends the same body under the
/// same delivery id.
fn delivery_key(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// 204: understood, and nothing to do.
fn ignored() -> FunctionUrlResponse {
    FunctionUrlResponse { status_code: 204, headers: HashMap::new(), body: String::new() }
}

/// 200, not an error, for a delivery acted on before: GitHub shows a failed delivery as one to
/// redeliver, which would only be refused again.
fn duplicate(first: &str, at: DateTime<Utc>) -> FunctionUrlResponse {
    FunctionUrlResponse::json(200, serde_json::json!({ "message": "duplicate delivery", "first_delivery": first, "first_received_at": at }))
}

/// The body of the `github_webhook` fuzz target, here so that the nightly fuzzer and the stable replay
/// test (`tests/fuzz_corpus.rs`) run the same code: arbitrary bytes never make the handler panic, and
/// nothing is published or resumed without a valid signature.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;
    use baton_domain::ports::WaitRegistry;
    use baton_domain::release::{ReleaseId, TaskToken};
    use baton_domain::waits::{Parked, WaitKey, WaitKind};
    use std::sync::Mutex;

    const SECRET: &[u8] = b"fuzzing secret";
    /// The run a release waits for (the corpus' `workflow-run-signed` finishes it).
    const PARKED_RUN: &str = "1";

    #[derive(Default)]
    struct Recorder(Mutex<Vec<MergeEvent>>);

    #[async_trait]
    impl MergePublisher for Recorder {
        async fn publish(&self, event: &MergeEvent) -> Result<String, AwsError> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone());
            Ok("event-1".into())
        }
    }

    /// The first byte's low bit asks the harness to sign the body with the right secret, so the
    /// fuzzer reaches the payload parser (it cannot forge an HMAC); the rest is a function URL request
    /// as JSON (as Lambda gives it), or, when it is not one, a raw signed `pull_request` body.
    pub fn request(data: &[u8]) {
        let Some((&flags, rest)) = data.split_first() else { return };
        let sign = flags & 1 == 1;
        let mut request = serde_json::from_slice::<FunctionUrlRequest>(rest).unwrap_or_else(|_| FunctionUrlRequest {
            headers: HashMap::from([("x-github-event".to_string(), "pull_request".to_string())]),
            body: Some(String::from_utf8_lossy(rest).into_owned()),
            is_base64_encoded: false,
        });
        let body = match request.is_base64_encoded {
            true => base64::engine::general_purpose::STANDARD.decode(request.body.as_deref().unwrap_or_default()).ok(),
            false => Some(request.body.as_deref().unwrap_or_default().as_bytes().to_vec()),
        };
        let signed = match (sign, &body) {
            (true, Some(body)) => {
                // Header names are matched without regard to case: drop any spelling of it first.
                request.headers.retain(|name, _| !name.eq_ignore_ascii_case("x-hub-signature-256"));
                request.headers.insert("x-hub-signature-256".into(), format!("sha256={}", signing::hmac_sha256_hex(SECRET, &[body])));
                true
            }
            _ => false,
        };
        let waits = std::sync::Arc::new(MemoryWaits::default());
        let hook = Webhook::new(
            WebhookSecret::new(SECRET).expect("a non-empty secret"),
            Recorder::default(),
            MemoryDeliveryLog::new(DELIVERY_RETENTION),
            waits.ports(),
        );
        let response = runtime().block_on(async {
            let parked = Parked {
                key: WaitKey::new(WaitKind::Build, "github-actions", PARKED_RUN),
                release: ReleaseId("rel-fuzz".into()),
                token: TaskToken("token-fuzz".into()),
                until: Utc::now() + chrono::TimeDelta::days(1),
            };
            WaitRegistry::park(waits.as_ref(), &parked).await.expect("an in-memory park");
            hook.handle(&request).await
        });
        let published = hook.publisher.0.lock().unwrap_or_else(|p| p.into_inner()).len();
        let acted = published + waits.told().len();
        // A fresh log per input: 200 (duplicate) would mean a first delivery was taken for a replay.
        assert!(matches!(response.status_code, 202 | 204 | 400 | 401 | 413), "unexpected status: {response:?}");
        assert_eq!(acted, usize::from(response.status_code == 202), "published or resumed {acted} for {response:?}");
        // Forging an HMAC is out of the fuzzer's reach: a request the harness did not sign that was
        // acted on would mean the check was skipped.
        assert!(signed || response.status_code != 202, "acted on without a valid signature: {request:?}");
    }

    thread_local! {
        static RUNTIME: &'static tokio::runtime::Runtime =
            Box::leak(Box::new(tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime")));
    }

    /// One runtime per thread: building one per input would dominate the fuzzer's time.
    fn runtime() -> &'static tokio::runtime::Runtime {
        RUNTIME.with(|rt| *rt)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    pub(crate) const SECRET: &str = "It's a Secret to Everybody";

    #[derive(Default)]
    pub(crate) struct Recorder {
        published: Mutex<Vec<MergeEvent>>,
        /// The next publish fails with this.
        fail: Mutex<Option<AwsError>>,
    }

    #[async_trait]
    impl MergePublisher for Recorder {
        async fn publish(&self, event: &MergeEvent) -> Result<String, AwsError> {
            if let Some(err) = self.fail.lock().unwrap().take() {
                return Err(err);
            }
            self.published.lock().unwrap().push(event.clone());
            Ok("event-1".into())
        }
    }

    /// A delivery log that does not answer.
    pub(crate) struct Unavailable;

    #[async_trait]
    impl DeliveryLog for Unavailable {
        async fn claim(&self, _: &str, _: &str, _: DateTime<Utc>) -> Result<DeliveryClaim, AwsError> {
            Err(AwsError::Unavailable { operation: "PutItem", message: "timeout".into() })
        }

        async fn forget(&self, _: &str, _: &str) -> Result<(), AwsError> {
            Err(AwsError::Unavailable { operation: "DeleteItem", message: "timeout".into() })
        }
    }

    fn webhook(recorder: Recorder) -> Webhook<Recorder, MemoryDeliveryLog> {
        Webhook::new(WebhookSecret::new(SECRET).unwrap(), recorder, MemoryDeliveryLog::new(DELIVERY_RETENTION), no_waits())
    }

    /// No release waits for a build: the merge tests' webhook.
    fn no_waits() -> BuildWaits {
        std::sync::Arc::new(MemoryWaits::default()).ports()
    }

    pub(crate) fn published(hook: &Webhook<Recorder, impl DeliveryLog>) -> usize {
        hook.publisher.published.lock().unwrap().len()
    }

    pub(crate) fn sign(body: &[u8]) -> String {
        format!("sha256={}", signing::hmac_sha256_hex(SECRET.as_bytes(), &[body]))
    }

    fn pull_request(action: &str, merged: bool) -> String {
        serde_json::json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "number": 42,
                "merged": merged,
                "merged_at": if merged { serde_json::json!("2026-03-01T10:00:00Z") } else { serde_json::Value::Null },
                "merge_commit_sha": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
                "base": {"ref": "main", "sha": "1111111111111111111111111111111111111111"},
                "head": {"ref": "feature/checkout"},
                "user": {"login": "octocat"}
            },
            "repository": {"name": "payments-api", "full_name": "acme/payments-api"},
            "sender": {"login": "hubot"}
        })
        .to_string()
    }

    pub(crate) fn request(event: &str, body: &str, signature: Option<String>) -> FunctionUrlRequest {
        let mut headers = HashMap::from([
            ("x-github-event".to_string(), event.to_string()),
            ("x-github-delivery".to_string(), "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string()),
        ]);
        if let Some(signature) = signature {
            headers.insert("x-hub-signature-256".into(), signature);
        }
        FunctionUrlRequest { headers, body: Some(body.to_string()), is_base64_encoded: false }
    }

    #[test]
    fn verifies_githubs_documented_example() {
        // GitHub's webhook docs: this secret and body give this signature.
        let secret = WebhookSecret::new(SECRET).unwrap();
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(secret.verify(b"Hello, World!", expected));
        assert!(!secret.verify(b"Hello, World?", expected));
        assert!(!secret.verify(b"Hello, World!", "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"));
        assert!(!secret.verify(b"Hello, World!", "sha256=not-hex"));
        assert!(WebhookSecret::new("").is_err());
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
    }

    #[tokio::test]
    async fn a_signed_merge_publishes_the_merge_event() {
        let hook = webhook(Recorder::default());
        let body = pull_request("closed", true);
        let response = hook.handle(&request("pull_request", &body, Some(sign(body.as_bytes())))).await;
        assert_eq!(response.status_code, 202, "{}", response.body);
        assert_eq!(response.body, r#"{"event_id":"event-1"}"#);
        assert_eq!(
            *hook.publisher.published.lock().unwrap(),
            vec![MergeEvent {
                repository: "payments-api".into(),
                full_name: "acme/payments-api".into(),
                branch: "main".into(),
                sha: "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432".into(),
                pull_request: 42,
                author: "octocat".into(),
                merged_at: "2026-03-01T10:00:00Z".parse().unwrap(),
            }]
        );
    }

    #[tokio::test]
    async fn base64_bodies_are_verified_after_decoding() {
        let hook = webhook(Recorder::default());
        let body = pull_request("closed", true);
        let mut req = request("pull_request", &base64::engine::general_purpose::STANDARD.encode(&body), Some(sign(body.as_bytes())));
        req.is_base64_encoded = true;
        assert_eq!(hook.handle(&req).await.status_code, 202);
        req.body = Some("%%%".into());
        assert_eq!(hook.handle(&req).await.status_code, 400);
    }

    #[tokio::test]
    async fn bad_or_missing_signatures_are_refused() {
        let hook = webhook(Recorder::default());
        let body = pull_request("closed", true);
        let tampered = body.replace("octocat", "mallory");
        let wrong = hook.handle(&request("pull_request", &tampered, Some(sign(body.as_bytes())))).await;
        assert_eq!(wrong.status_code, 401);
        let missing = hook.handle(&request("pull_request", &body, None)).await;
        assert_eq!(missing.status_code, 401);
        assert!(missing.body.contains("missing X-Hub-Signature-256"));
        assert!(hook.publisher.published.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn deliveries_that_are_not_merges_are_ignored() {
        let hook = webhook(Recorder::default());
        for (event, body) in [
            ("pull_request", pull_request("closed", false)),
            ("pull_request", pull_request("opened", false)),
            ("push", r#"{"ref": "refs/heads/main"}"#.to_string()),
            ("ping", r#"{"zen": "Keep it logically awesome."}"#.to_string()),
        ] {
            let response = hook.handle(&request(event, &body, Some(sign(body.as_bytes())))).await;
            assert_eq!(response.status_code, 204, "{event}: {body}");
        }
        assert!(hook.publisher.published.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn unreadable_payloads_are_bad_requests() {
        let hook = webhook(Recorder::default());
        let body = r#"{"action": "closed"}"#;
        let response = hook.handle(&request("pull_request", body, Some(sign(body.as_bytes())))).await;
        assert_eq!(response.status_code, 400);
        assert!(response.body.contains("pull_request payload"), "{}", response.body);
    }

    #[tokio::test]
    async fn a_bus_failure_is_a_503_and_githubs_redelivery_then_publishes() {
        let hook = webhook(Recorder {
            fail: Mutex::new(Some(AwsError::Unavailable { operation: "PutEvents", message: "timeout".into() })),
            ..Recorder::default()
        });
        let body = pull_request("closed", true);
        let delivery = request("pull_request", &body, Some(sign(body.as_bytes())));
        assert_eq!(hook.handle(&delivery).await.status_code, 503);
        assert_eq!(published(&hook), 0);
        let redelivered = hook.handle(&delivery).await;
        assert_eq!(redelivered.status_code, 202, "the failed delivery's claim was given back: {}", redelivered.body);
        assert_eq!(published(&hook), 1);
    }

    #[tokio::test]
    async fn a_replayed_delivery_publishes_nothing() {
        let hook = webhook(Recorder::default());
        let body = pull_request("closed", true);
        let delivery = request("pull_request", &body, Some(sign(body.as_bytes())));
        let t0: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        let later = t0 + DELIVERY_RETENTION - chrono::TimeDelta::seconds(1);
        let first = hook.handle_at(&delivery, t0).await;
        assert_eq!(first.status_code, 202, "{}", first.body);

        let replay = hook.handle_at(&delivery, later).await;
        assert_eq!(replay.status_code, 200);
        let answer: serde_json::Value = serde_json::from_str(&replay.body).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"message": "duplicate delivery", "first_delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                               "first_received_at": "2026-11-29T10:00:00Z"})
        );
        // The delivery header is not signed: a captured body under a new delivery id is the same replay.
        let mut renamed = delivery.clone();
        renamed.headers.insert("x-github-delivery".into(), "00000000-0000-0000-0000-000000000000".into());
        assert_eq!(hook.handle_at(&renamed, later).await.status_code, 200);
        assert_eq!(published(&hook), 1, "one event for one merge");

        // Another merge is another delivery.
        let other = pull_request("closed", true).replace("\"number\":42", "\"number\":43");
        assert_ne!(other, body);
        assert_eq!(hook.handle_at(&request("pull_request", &other, Some(sign(other.as_bytes()))), later).await.status_code, 202);
        assert_eq!(published(&hook), 2);

        // Past the retention the log has forgotten it (the release it would ask for exists already).
        assert_eq!(hook.handle_at(&delivery, t0 + DELIVERY_RETENTION).await.status_code, 202);
    }

    #[tokio::test]
    async fn without_the_delivery_log_nothing_is_published() {
        let hook = Webhook::new(WebhookSecret::new(SECRET).unwrap(), Recorder::default(), Unavailable, no_waits());
        let body = pull_request("closed", true);
        let response = hook.handle(&request("pull_request", &body, Some(sign(body.as_bytes())))).await;
        assert_eq!(response.status_code, 503, "{}", response.body);
        assert!(response.body.contains("replay"), "{}", response.body);
        assert_eq!(published(&hook), 0);
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_before_its_signature_is_checked() {
        let hook = webhook(Recorder::default());
        // Padding after the JSON keeps the payload a merge: only its size is wrong.
        let body = format!("{}{}", pull_request("closed", true), " ".repeat(MAX_BODY_BYTES));
        let unsigned = hook.handle(&request("pull_request", &body, None)).await;
        assert_eq!(unsigned.status_code, 413, "no signature needed to be refused: {}", unsigned.body);
        let signed = hook.handle(&request("pull_request", &body, Some(sign(body.as_bytes())))).await;
        assert_eq!(signed.status_code, 413);
        assert!(signed.body.contains(&format!("over the limit of {MAX_BODY_BYTES} bytes")), "{}", signed.body);
        let mut encoded = request("pull_request", &base64::engine::general_purpose::STANDARD.encode(&body), Some(sign(body.as_bytes())));
        encoded.is_base64_encoded = true;
        assert_eq!(hook.handle(&encoded).await.status_code, 413, "the limit applies to the decoded body");
        assert_eq!(published(&hook), 0);

        let at_limit = " ".repeat(MAX_BODY_BYTES);
        assert_eq!(hook.handle(&request("pull_request", &at_limit, None)).await.status_code, 401, "the limit is inclusive");
    }

    #[tokio::test]
    async fn a_full_name_that_does_not_end_in_the_name_is_a_bad_request() {
        let hook = webhook(Recorder::default());
        for full_name in ["mallory/other-repo", "payments-api", "/payments-api"] {
            let body = pull_request("closed", true).replace("acme/payments-api", full_name);
            let response = hook.handle(&request("pull_request", &body, Some(sign(body.as_bytes())))).await;
            assert_eq!(response.status_code, 400, "{full_name}: {}", response.body);
            assert!(response.body.contains("repository.full_name"), "{}", response.body);
        }
        assert_eq!(published(&hook), 0);
    }

    /// The lines `run` logs, as the function writes them on Lambda.
    pub(crate) async fn logged<F: std::future::Future>(run: F) -> Vec<String> {
        let captured = baton_logging::Captured::default();
        let subscriber = baton_logging::json_lines(captured.writer(), "info".parse().unwrap()).finish();
        let guard = tracing::subscriber::set_default(subscriber);
        run.await;
        drop(guard);
        captured.lines()
    }

    /// The stack's metric filter on this function's log group.
    pub(crate) fn error_filter() -> baton_local_stack::logs::FilterPattern {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
        let names = baton_local_stack::template::StackNames { stack_name: "prod".into(), region: "eu-west-1".into(), account: "1".into() };
        let template = baton_local_stack::template::Template::load(&path, names, &Default::default()).unwrap();
        let pattern = template.properties("GitHubWebhookErrorsMetric").unwrap()["FilterPattern"].as_str().unwrap().to_string();
        baton_local_stack::logs::FilterPattern::parse(&pattern).unwrap()
    }

    #[tokio::test]
    async fn the_stack_s_error_metric_counts_the_lines_of_lost_merges_and_no_others() {
        let filter = error_filter();
        let body = pull_request("closed", true);
        let merge = request("pull_request", &body, Some(sign(body.as_bytes())));
        let counted = |lines: &[String]| lines.iter().filter(|line| filter.matches(line)).count();

        let bus_down = Recorder::default();
        *bus_down.fail.lock().unwrap() = Some(AwsError::Unavailable { operation: "PutEvents", message: "timeout".into() });
        let hook = webhook(bus_down);
        let lines = logged(hook.handle(&merge)).await;
        assert!(counted(&lines) >= 1, "a merge the bus refused: {lines:#?}");

        let hook = Webhook::new(WebhookSecret::new(SECRET).unwrap(), Recorder::default(), Unavailable, no_waits());
        let lines = logged(hook.handle(&merge)).await;
        assert!(counted(&lines) >= 1, "a merge the delivery log could not record: {lines:#?}");

        // A published merge, an ignored delivery and a forged one are no fault of Baton's.
        let hook = webhook(Recorder::default());
        let opened = pull_request("opened", false);
        for request in
            [merge.clone(), request("pull_request", &opened, Some(sign(opened.as_bytes()))), request("pull_request", &body, None)]
        {
            let lines = logged(hook.handle(&request)).await;
            assert!(!lines.is_empty(), "every delivery is logged");
            assert_eq!(counted(&lines), 0, "{lines:#?}");
        }
    }
}

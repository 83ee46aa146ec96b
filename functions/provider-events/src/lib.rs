//! provider-events: delivers providers' events to the releases parked on them
//! ([`baton_domain::waits::deliver`]). Two doors:
//! - EventBridge, trusted (the account's own bus): "CodeBuild Build State Change" and
//!   "CloudWatch Alarm State Change", read here into [`ProviderEvent`]s;
//! - its function URL, `/{provider}`: the provider's signed callback, verified and read by the
//!   [`EventReceiver`](baton_domain::ports::EventReceiver) registered for that provider; anything unsigned or forged is refused.

use baton_domain::ports::{InboundRequest, TaskTokens, WaitRegistry};
use baton_domain::waits::{self, DeliveryError, Happened, ProviderEvent, WaitKey, WaitKind};
use baton_lambda_glue::function_url::{FunctionUrlRequest, FunctionUrlResponse};
use chrono::{DateTime, Utc};
use serde_json::Value;

pub const NAME: &str = "provider-events";

/// Why an EventBridge event could not be delivered: EventBridge retries the invocation.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Delivery(#[from] DeliveryError),
    #[error("the event is not a Lambda function URL request nor an EventBridge event: {0}")]
    Unrecognised(String),
}

/// The signed receivers, by the provider name their path starts with (shared with `baton`'s
/// loopback listener).
pub use baton_domain::waits::Receivers;

pub struct Delivery<S, T> {
    pub store: S,
    pub tokens: T,
    pub receivers: Receivers,
}

impl<S: WaitRegistry, T: TaskTokens> Delivery<S, T> {
    /// One invocation: a function URL request (answered with its response) or an EventBridge event.
    pub async fn handle(&self, payload: Value, now: DateTime<Utc>) -> Result<Value, EventError> {
        if payload.get("detail-type").is_some() {
            let events = from_eventbridge(&payload);
            let delivered = waits::deliver(&events, &self.store, &self.tokens, now).await?;
            return Ok(serde_json::json!({ "resumed": delivered.resumed.len(), "ignored": delivered.ignored }));
        }
        let Some(path) = payload.get("rawPath").and_then(Value::as_str).map(str::to_owned) else {
            return Err(EventError::Unrecognised(payload.get("source").map(Value::to_string).unwrap_or_default()));
        };
        let request: FunctionUrlRequest = serde_json::from_value(payload).map_err(|err| EventError::Unrecognised(err.to_string()))?;
        let response = self.callback(&path, &request, now).await;
        Ok(serde_json::to_value(response).unwrap_or(Value::Null))
    }

    async fn callback(&self, path: &str, request: &FunctionUrlRequest, now: DateTime<Utc>) -> FunctionUrlResponse {
        let body = match request.body_bytes(waits::MAX_CALLBACK_BYTES) {
            Ok(body) => body,
            Err(response) => return response,
        };
        let headers = request.headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect();
        let inbound = InboundRequest { path: path.to_owned(), headers, body };
        let answer = waits::answer_callback(&self.receivers, &inbound, &self.store, &self.tokens, now).await;
        FunctionUrlResponse::json(answer.status, answer.body)
    }
}

/// The events an EventBridge event carries: none when it is not one a release waits for (a
/// build phase change, an alarm back to OK is [`Happened::Progress`]).
pub fn from_eventbridge(event: &Value) -> Vec<ProviderEvent> {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let delivery = text("/id").unwrap_or_default().to_owned();
    let at = text("/time").and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let found = match text("/detail-type") {
        Some("CodeBuild Build State Change") => codebuild(event),
        Some("CloudWatch Alarm State Change") => alarm(event),
        other => {
            tracing::info!(detail_type = ?other, delivery, "an EventBridge event no release waits for");
            None
        }
    };
    found.map(|(key, happened)| ProviderEvent { key, happened, delivery, at }).into_iter().collect()
}

/// CodeBuild names the build by its ARN (`arn:...:build/project:uuid`); Baton by `project:uuid`.
fn codebuild(event: &Value) -> Option<(WaitKey, Happened)> {
    let detail = event.get("detail")?;
    let arn = detail.get("build-id")?.as_str()?;
    let id = arn.rsplit_once(":build/").map_or(arn, |(_, id)| id);
    let status = detail.get("build-status")?.as_str()?;
    let happened = match status {
        "SUCCEEDED" => Happened::Succeeded,
        "FAILED" | "FAULT" | "STOPPED" | "TIMED_OUT" => Happened::Failed(format!("CodeBuild build {id} {status}")),
        _ => Happened::Progress,
    };
    Some((WaitKey::new(WaitKind::Build, "codebuild", id), happened))
}

fn alarm(event: &Value) -> Option<(WaitKey, Happened)> {
    let detail = event.get("detail")?;
    let name = detail.get("alarmName")?.as_str()?;
    let happened = match detail.pointer("/state/value")?.as_str()? {
        "ALARM" => {
            let reason = detail.pointer("/state/reason").and_then(Value::as_str).unwrap_or_default();
            Happened::Failed(format!("{name} in ALARM: {reason}"))
        }
        _ => Happened::Progress,
    };
    Some((WaitKey::new(WaitKind::Bake, waits::CLOUDWATCH_GATE, name), happened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::error::ErrorName;
    use baton_domain::ports::{EventReceiver, InboundRefused, ProviderError, StoreError};
    use baton_domain::release::{ReleaseId, TaskToken};
    use baton_domain::waits::Parked;
    use std::sync::Mutex;

    fn sample(name: &str) -> Value {
        let path = format!("{}/../../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn eventbridge_events_become_provider_events() {
        let build = from_eventbridge(&sample("provider-events-codebuild"));
        assert_eq!(build.len(), 1);
        assert_eq!(build[0].key.to_string(), "build:codebuild:hello-web:5f2d8c3e-91b4-4e0a-a6b2-3c1d9e7f0a12");
        assert_eq!(build[0].happened, Happened::Succeeded);
        assert_eq!(build[0].delivery, "4c8e1f0a-7d2b-4b6e-9a35-0f3c2d1e5b7a");

        let alarm = from_eventbridge(&sample("provider-events-cloudwatch-alarm"));
        assert_eq!(alarm[0].key.to_string(), "bake:cloudwatch:hello-web-5xx");
        assert!(matches!(&alarm[0].happened, Happened::Failed(why) if why.starts_with("hello-web-5xx in ALARM: Threshold Crossed")));

        let mut ok = sample("provider-events-cloudwatch-alarm");
        ok["detail"]["state"]["value"] = "OK".into();
        assert_eq!(from_eventbridge(&ok)[0].happened, Happened::Progress);
        let mut other = sample("provider-events-codebuild");
        other["detail-type"] = "CodeBuild Build Phase Change".into();
        assert!(from_eventbridge(&other).is_empty());
    }

    #[derive(Default)]
    struct Memory(Mutex<Vec<Parked>>);

    #[async_trait::async_trait]
    impl WaitRegistry for Memory {
        async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(wait.clone());
            Ok(())
        }
        async fn take(&self, key: &WaitKey, _: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
            let mut waits = self.0.lock().unwrap();
            let (taken, kept) = waits.drain(..).partition(|w| &w.key == key);
            *waits = kept;
            Ok(taken)
        }
    }

    #[derive(Default)]
    struct Told(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl TaskTokens for Told {
        async fn succeed(&self, token: &TaskToken, _: &Value) -> Result<(), ProviderError> {
            self.0.lock().unwrap().push(format!("{} succeeded", token.expose()));
            Ok(())
        }
        async fn fail(&self, token: &TaskToken, error: ErrorName, _: &str) -> Result<(), ProviderError> {
            self.0.lock().unwrap().push(format!("{} {}", token.expose(), error.as_str()));
            Ok(())
        }
    }

    /// Accepts a request whose `x-signature` is `good`, carrying one build event for the run its body names.
    struct Signed;

    impl EventReceiver for Signed {
        fn provider(&self) -> &str {
            "buildkite"
        }
        fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
            if request.header("x-signature") != Some("good") {
                return Err(InboundRefused::Unauthenticated("bad signature".into()));
            }
            let id = String::from_utf8(request.body.clone()).map_err(|e| InboundRefused::Malformed(e.to_string()))?;
            Ok(vec![ProviderEvent {
                key: WaitKey::new(WaitKind::Build, "buildkite", id),
                happened: Happened::Succeeded,
                delivery: "d".into(),
                at: now,
            }])
        }
    }

    fn parked(key: WaitKey, token: &str) -> Parked {
        Parked { key, release: ReleaseId("r1".into()), token: TaskToken(token.into()), until: Utc::now() + chrono::TimeDelta::hours(1) }
    }

    #[tokio::test]
    async fn each_door_resumes_the_release_parked_on_the_event_s_key() {
        let store = Memory::default();
        store.park(&parked(WaitKey::new(WaitKind::Bake, "cloudwatch", "hello-web-5xx"), "t-alarm")).await.unwrap();
        store.park(&parked(WaitKey::new(WaitKind::Build, "buildkite", "42"), "t-build")).await.unwrap();
        let delivery = Delivery { store, tokens: Told::default(), receivers: Receivers(vec![Box::new(Signed)]) };

        let answer = delivery.handle(sample("provider-events-cloudwatch-alarm"), Utc::now()).await.unwrap();
        assert_eq!(answer, serde_json::json!({"resumed": 1, "ignored": 0}));

        let url = |path: &str, signature: &str, body: &str| serde_json::json!({"rawPath": path, "headers": {"x-signature": signature}, "body": body, "isBase64Encoded": false});
        let status = |answer: Value| answer["statusCode"].as_u64().unwrap();
        assert_eq!(status(delivery.handle(url("/buildkite", "forged", "42"), Utc::now()).await.unwrap()), 401, "a forged callback");
        assert_eq!(status(delivery.handle(url("/gitlab", "good", "42"), Utc::now()).await.unwrap()), 404, "no receiver");
        assert_eq!(*delivery.tokens.0.lock().unwrap(), ["t-alarm Baton.HealthCheckFailed"], "neither resumed anything");
        assert_eq!(status(delivery.handle(url("/buildkite", "good", "42"), Utc::now()).await.unwrap()), 202);
        assert_eq!(*delivery.tokens.0.lock().unwrap(), ["t-alarm Baton.HealthCheckFailed", "t-build succeeded"]);
        assert!(delivery.handle(serde_json::json!({"source": "x"}), Utc::now()).await.is_err(), "neither door");
    }
}

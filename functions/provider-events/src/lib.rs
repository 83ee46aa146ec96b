//! provider-events: delivers providers' events to the releases parked on them
//! ([`baton_domain::waits::deliver`]). Two doors:
//! - EventBridge, trusted (the account's own bus): "CodeBuild Build State Change", "ECS
//!   Deployment State Change" and "CloudWatch Alarm State Change", read here into [`ProviderEvent`]s;
//! - its function URL, `/{provider}`: the provider's signed callback, verified and read by the
//!   [`EventReceiver`] registered for that provider; anything unsigned or forged is refused.

use baton_aws::cloudwatch::alarm_key;
use baton_domain::ports::{InboundRequest, TaskTokens, WaitRegistry};
use baton_domain::waits::{self, DeliveryError, Happened, ProviderEvent, WaitKey, WaitKind};
use baton_lambda_glue::function_url::{FunctionUrlRequest, FunctionUrlResponse};
use chrono::{DateTime, Utc};
use serde_json::Value;

pub mod receivers;

pub use receivers::{CatalogReceivers, REFRESH_INTERVAL, ReceiverSource, RefreshingReceivers, ServiceList};

pub const NAME: &str = "provider-events";

/// A callback's body is refused past this size before its signature is checked.
const MAX_BODY_BYTES: usize = waits::MAX_CALLBACK_BYTES;

/// Why an EventBridge event could not be delivered: EventBridge retries the invocation.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Delivery(#[from] DeliveryError),
    #[error("the event is not a Lambda function URL request nor an EventBridge event: {0}")]
    Unrecognised(String),
}

pub use baton_domain::waits::Receivers;

pub struct Delivery<S, T, R> {
    pub store: S,
    pub tokens: T,
    pub receivers: RefreshingReceivers<R>,
}

impl<S: WaitRegistry, T: TaskTokens, R: ReceiverSource> Delivery<S, T, R> {
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
        let body = match request.body_bytes(MAX_BODY_BYTES) {
            Ok(body) => body,
            Err(response) => return response,
        };
        let headers = request.headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect();
        // `/<provider>`, or under it (`/webhook/<release>/<target>`): the receiver reads the rest.
        let inbound = InboundRequest { path: path.to_owned(), headers, body };
        let mut receivers = self.receivers.current().await;
        let mut events = waits::read_callback(&receivers, &inbound, now);
        if let Err(not_read) = &events
            && not_read.calls_for_a_refresh()
            && let Some(fresh) = self.receivers.refreshed(now).await
        {
            receivers = fresh;
            events = waits::read_callback(&receivers, &inbound, now);
        }
        let answer = match events {
            Ok(events) => waits::answer_events(&events, &self.store, &self.tokens, now).await,
            Err(not_read) => not_read.answer(&receivers, path),
        };
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
        Some("ECS Deployment State Change") => ecs_deployment(event),
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

/// ECS names the service by its ARN (`resources[0]`) and the deployment by its id, as the ECS
/// deployer keeps them ([`baton_aws::ecs::deployment_key`]). A deployment the circuit breaker
/// stopped is FAILED; the rollback ECS then starts is another deployment, which no run waits for.
fn ecs_deployment(event: &Value) -> Option<(WaitKey, Happened)> {
    let service_arn = event.pointer("/resources/0")?.as_str()?;
    let detail = event.get("detail")?;
    let deployment = detail.get("deploymentId")?.as_str()?;
    let happened = match detail.get("eventName")?.as_str()? {
        "SERVICE_DEPLOYMENT_COMPLETED" => Happened::Succeeded,
        "SERVICE_DEPLOYMENT_FAILED" => {
            let service = service_arn.rsplit('/').next().unwrap_or(service_arn);
            let reason = detail.get("reason").and_then(Value::as_str).unwrap_or("no reason given");
            Happened::Failed(format!("ECS deployment {deployment} of service {service} failed: {reason}"))
        }
        _ => Happened::Progress,
    };
    Some((baton_aws::ecs::deployment_key(service_arn, deployment), happened))
}

/// Keyed by [`alarm_key`] from the envelope's account and region: the alarm's, wherever the bus is.
fn alarm(event: &Value) -> Option<(WaitKey, Happened)> {
    let detail = event.get("detail")?;
    let name = detail.get("alarmName")?.as_str()?;
    let (account, region) = (event.get("account")?.as_str()?, event.get("region")?.as_str()?);
    let happened = match detail.pointer("/state/value")?.as_str()? {
        "ALARM" => {
            let reason = detail.pointer("/state/reason").and_then(Value::as_str).unwrap_or_default();
            Happened::Failed(format!("{name} in ALARM: {reason}"))
        }
        _ => Happened::Progress,
    };
    Some((alarm_key(account, region, name), happened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::error::ErrorName;
    use baton_domain::ports::{EventReceiver, InboundRefused, ProviderError, StoreError};
    use baton_domain::release::{ReleaseId, TaskToken};
    use baton_domain::waits::Parked;
    use chrono::TimeDelta;
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
        assert_eq!(alarm[0].key.to_string(), "bake:cloudwatch:123456789012:us-east-1:hello-web-5xx");
        assert!(matches!(&alarm[0].happened, Happened::Failed(why) if why.starts_with("hello-web-5xx in ALARM: Threshold Crossed")));

        let mut ok = sample("provider-events-cloudwatch-alarm");
        ok["detail"]["state"]["value"] = "OK".into();
        assert_eq!(from_eventbridge(&ok)[0].happened, Happened::Progress);
        let mut other = sample("provider-events-codebuild");
        other["detail-type"] = "CodeBuild Build Phase Change".into();
        assert!(from_eventbridge(&other).is_empty());
    }

    #[test]
    fn ecs_deployment_events_name_the_deployment_the_run_keeps() {
        let service = "arn:aws:ecs:us-east-1:123456789012:service/prod/hello-web";
        let completed = from_eventbridge(&sample("provider-events-ecs-deployment"));
        assert_eq!(completed.len(), 1);
        assert_eq!(completed[0].key, baton_aws::ecs::deployment_key(service, "ecs-svc/6508373925391276325"));
        assert_eq!(completed[0].key.to_string(), format!("rollout:ecs:{service}/ecs-svc/6508373925391276325"));
        assert_eq!(completed[0].happened, Happened::Succeeded);
        assert_eq!(completed[0].delivery, "6c1f3e9a-2b7d-4e58-9a0c-8d4f1b2e7a35");

        let with = |name: &str, reason: &str| {
            let mut event = sample("provider-events-ecs-deployment");
            event["detail"]["eventName"] = name.into();
            event["detail"]["reason"] = reason.into();
            from_eventbridge(&event).remove(0)
        };
        let breaker = "ECS deployment circuit breaker: task failed to start.";
        assert_eq!(
            with("SERVICE_DEPLOYMENT_FAILED", breaker).happened,
            Happened::Failed(format!("ECS deployment ecs-svc/6508373925391276325 of service hello-web failed: {breaker}"))
        );
        assert_eq!(with("SERVICE_DEPLOYMENT_IN_PROGRESS", "ECS deployment in progress.").happened, Happened::Progress);

        let mut action = sample("provider-events-ecs-deployment");
        action["detail-type"] = "ECS Service Action".into();
        assert!(from_eventbridge(&action).is_empty(), "another ECS event");
        let mut unnamed = sample("provider-events-ecs-deployment");
        unnamed["resources"] = serde_json::json!([]);
        assert!(from_eventbridge(&unnamed).is_empty(), "no service, no wait to find");
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

    /// Accepts a request to `provider` whose `x-signature` is `secret`, carrying one build event for the run its body names.
    struct Signed {
        provider: &'static str,
        secret: &'static str,
    }

    impl EventReceiver for Signed {
        fn provider(&self) -> &str {
            self.provider
        }
        fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
            if request.header("x-signature") != Some(self.secret) {
                return Err(InboundRefused::Unauthenticated("bad signature".into()));
            }
            let id = String::from_utf8(request.body.clone()).map_err(|e| InboundRefused::Malformed(e.to_string()))?;
            Ok(vec![ProviderEvent {
                key: WaitKey::new(WaitKind::Build, self.provider, id),
                happened: Happened::Succeeded,
                delivery: "d".into(),
                at: now,
            }])
        }
    }

    /// A catalog naming, for each provider, its callbacks' secret (or unreadable), counting its reads.
    #[derive(Default)]
    struct Catalog {
        secrets: Mutex<Option<Vec<(&'static str, &'static str)>>>,
        reads: Mutex<usize>,
    }

    impl Catalog {
        fn naming(secrets: &[(&'static str, &'static str)]) -> Catalog {
            Catalog { secrets: Mutex::new(Some(secrets.to_vec())), reads: Mutex::default() }
        }
        fn now_names(&self, secrets: Option<&[(&'static str, &'static str)]>) {
            *self.secrets.lock().unwrap() = secrets.map(<[_]>::to_vec);
        }
        fn reads(&self) -> usize {
            *self.reads.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl ReceiverSource for Catalog {
        async fn receivers(&self) -> Result<Receivers, String> {
            *self.reads.lock().unwrap() += 1;
            let secrets = self.secrets.lock().unwrap().clone().ok_or("the catalog table is unavailable")?;
            let signed = secrets.into_iter().map(|(provider, secret)| Box::new(Signed { provider, secret }) as Box<dyn EventReceiver>);
            Ok(Receivers(signed.collect()))
        }
    }

    fn callback(path: &str, signature: &str, body: &str) -> Value {
        serde_json::json!({"rawPath": path, "headers": {"x-signature": signature}, "body": body, "isBase64Encoded": false})
    }

    fn status(answer: Value) -> u64 {
        answer["statusCode"].as_u64().unwrap()
    }

    fn parked(key: WaitKey, token: &str) -> Parked {
        Parked { key, release: ReleaseId("r1".into()), token: TaskToken(token.into()), until: Utc::now() + chrono::TimeDelta::hours(1) }
    }

    #[tokio::test]
    async fn each_door_resumes_the_release_parked_on_the_event_s_key() {
        let store = Memory::default();
        store.park(&parked(alarm_key("123456789012", "us-east-1", "hello-web-5xx"), "t-alarm")).await.unwrap();
        store.park(&parked(WaitKey::new(WaitKind::Build, "buildkite", "42"), "t-build")).await.unwrap();
        let receivers = RefreshingReceivers::read(Catalog::naming(&[("buildkite", "good")]), Utc::now()).await;
        let delivery = Delivery { store, tokens: Told::default(), receivers };

        // The same alarm name in another region, then in another account: another alarm.
        for (field, other) in [("region", "eu-west-1"), ("account", "210987654321")] {
            let mut elsewhere = sample("provider-events-cloudwatch-alarm");
            elsewhere[field] = other.into();
            let answer = delivery.handle(elsewhere, Utc::now()).await.unwrap();
            assert_eq!(answer, serde_json::json!({"resumed": 0, "ignored": 1}), "{field} {other}");
        }
        let answer = delivery.handle(sample("provider-events-cloudwatch-alarm"), Utc::now()).await.unwrap();
        assert_eq!(answer, serde_json::json!({"resumed": 1, "ignored": 0}));

        assert_eq!(status(delivery.handle(callback("/buildkite", "forged", "42"), Utc::now()).await.unwrap()), 401, "a forged callback");
        assert_eq!(status(delivery.handle(callback("/gitlab", "good", "42"), Utc::now()).await.unwrap()), 404, "no receiver");
        assert_eq!(*delivery.tokens.0.lock().unwrap(), ["t-alarm Baton.HealthCheckFailed"], "neither resumed anything");
        assert_eq!(status(delivery.handle(callback("/buildkite", "good", "42"), Utc::now()).await.unwrap()), 202);
        assert_eq!(*delivery.tokens.0.lock().unwrap(), ["t-alarm Baton.HealthCheckFailed", "t-build succeeded"]);
        assert!(delivery.handle(serde_json::json!({"source": "x"}), Utc::now()).await.is_err(), "neither door");
    }

    #[tokio::test]
    async fn a_cold_start_reads_no_catalog_until_the_first_callback() {
        let store = Memory::default();
        store.park(&parked(WaitKey::new(WaitKind::Build, "gitlab-ci", "1"), "t-1")).await.unwrap();
        let receivers = RefreshingReceivers::unread(Catalog::naming(&[("gitlab-ci", "hook-1")]));
        let delivery = Delivery { store, tokens: Told::default(), receivers };
        delivery.handle(sample("provider-events-codebuild"), Utc::now()).await.unwrap();
        assert_eq!(delivery.receivers.source.reads(), 0, "an EventBridge event needs no receiver");
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-1", "1"), Utc::now()).await.unwrap()), 202);
        assert_eq!(delivery.receivers.source.reads(), 1, "the first callback read the catalog");
    }

    #[tokio::test]
    async fn the_receivers_are_read_again_when_a_callback_needs_it_at_most_once_a_minute() {
        let store = Memory::default();
        for id in ["1", "2", "3"] {
            store.park(&parked(WaitKey::new(WaitKind::Build, "gitlab-ci", id), &format!("t-{id}"))).await.unwrap();
        }
        let cold_start = Utc::now();
        let after = |seconds: i64| cold_start + TimeDelta::seconds(seconds);
        let receivers = RefreshingReceivers::read(Catalog::naming(&[]), cold_start).await;
        let delivery = Delivery { store, tokens: Told::default(), receivers };
        let catalog = &delivery.receivers.source;
        let told = || delivery.tokens.0.lock().unwrap().clone();
        assert_eq!(catalog.reads(), 1, "read at the cold start");

        // A provider added to the catalog: a minute after the last read, its callback reads it.
        catalog.now_names(Some(&[("gitlab-ci", "hook-1")]));
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-1", "1"), after(30)).await.unwrap()), 404);
        assert_eq!(catalog.reads(), 1, "not again within the minute");
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-1", "1"), after(60)).await.unwrap()), 202);
        assert_eq!((catalog.reads(), told()), (2, vec!["t-1 succeeded".to_owned()]));

        // Forged callbacks read the catalog at most once a minute, and resume nothing.
        for second in 61..=119 {
            assert_eq!(status(delivery.handle(callback("/gitlab-ci", "forged", "2"), after(second)).await.unwrap()), 401);
        }
        assert_eq!(catalog.reads(), 2, "forged callbacks within a minute of the last read do not read it");
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "forged", "2"), after(120)).await.unwrap()), 401);
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "forged", "2"), after(121)).await.unwrap()), 401);
        assert_eq!((catalog.reads(), told().len()), (3, 1));

        // A rotated secret: refused until the next read, accepted after it.
        catalog.now_names(Some(&[("gitlab-ci", "hook-2")]));
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-2", "2"), after(150)).await.unwrap()), 401);
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-2", "2"), after(180)).await.unwrap()), 202);
        assert_eq!((catalog.reads(), told().len()), (4, 2));

        // An accepted callback or a malformed one does not read it; an unreadable catalog keeps
        // the receivers read before.
        catalog.now_names(None);
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-2", "3"), after(300)).await.unwrap()), 202);
        let bad_body =
            serde_json::json!({"rawPath": "/gitlab-ci", "headers": {"x-signature": "hook-2"}, "body": "/w==", "isBase64Encoded": true});
        assert_eq!(status(delivery.handle(bad_body, after(301)).await.unwrap()), 400);
        assert_eq!(catalog.reads(), 4);
        assert_eq!(status(delivery.handle(callback("/buildkite", "any", "4"), after(302)).await.unwrap()), 404);
        assert_eq!(catalog.reads(), 5, "a path without a receiver reads it");
        assert_eq!(status(delivery.handle(callback("/gitlab-ci", "hook-2", "3"), after(303)).await.unwrap()), 202, "still received");
    }
}

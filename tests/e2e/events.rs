//! Every sample in `events/` is a valid input of the function it is named after, so
//! `sam local invoke -e` and `cargo lambda invoke --data-file` get what the handlers take.

use baton_aws::AwsError;
use baton_domain::flow::*;
use baton_domain::release::{MERGE_DETAIL_TYPE, MERGE_SOURCE, MergeEvent};
use baton_github_webhook::{DELIVERY_RETENTION, FunctionUrlRequest, MemoryDeliveryLog, MergePublisher, Webhook, WebhookSecret};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The secret `events/github-webhook.json` is signed with (`BATON_WEBHOOK_SECRET` to replay it).
const SAMPLE_WEBHOOK_SECRET: &str = "baton-sample-secret";

#[derive(Default, Clone)]
struct Published(Arc<Mutex<Vec<MergeEvent>>>);

#[async_trait::async_trait]
impl MergePublisher for Published {
    async fn publish(&self, event: &MergeEvent) -> Result<String, AwsError> {
        self.0.lock().unwrap().push(event.clone());
        Ok("event-1".into())
    }
}

/// The webhook sample is signed, accepted, and what it publishes starts a release of hello-web.
async fn check_webhook_sample(path: &Path, value: serde_json::Value) {
    let request: FunctionUrlRequest = serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let published = Published::default();
    let webhook =
        Webhook::new(WebhookSecret::new(SAMPLE_WEBHOOK_SECRET).unwrap(), published.clone(), MemoryDeliveryLog::new(DELIVERY_RETENTION));
    let response = webhook.handle(&request).await;
    assert_eq!(response.status_code, 202, "{}: {}", path.display(), response.body);
    let event = published.0.lock().unwrap().pop().expect("one merge event published");
    let envelope = serde_json::json!({"source": MERGE_SOURCE, "detail-type": MERGE_DETAIL_TYPE, "detail": event});
    let signal = baton_load_catalog::normalise(&envelope, "sample-execution").unwrap();
    assert_eq!((signal.service.as_str(), signal.branch.as_deref()), ("hello-web", Some("main")));
    assert_eq!(signal.trigger.repository.as_deref(), Some("acme/hello-web"), "the repository the example catalog links");
}

fn parse_as<T: serde::de::DeserializeOwned>(file: &Path, value: serde_json::Value) {
    if let Err(err) = serde_json::from_value::<T>(value) {
        panic!("{}: does not match {}: {err}", file.display(), std::any::type_name::<T>());
    }
}

#[tokio::test]
async fn every_sample_event_is_a_valid_handler_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("events/") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        match name.split('.').next().unwrap() {
            n if n.starts_with("load-catalog") => parse_as::<LoadCatalogRequest>(&path, value),
            "trigger-build" => parse_as::<TriggerBuildRequest>(&path, value),
            "poll-build" => parse_as::<PollBuildRequest>(&path, value),
            n if n.starts_with("deploy-wave") => parse_as::<DeployWaveRequest>(&path, value),
            "check-health" => parse_as::<CheckHealthRequest>(&path, value),
            n if n.starts_with("notify") => parse_as::<NotifyRequest>(&path, value),
            "record-metrics" => parse_as::<RecordMetricsRequest>(&path, value),
            "github-webhook" => check_webhook_sample(&path, value).await,
            // Slack's presses; their signatures are checked in functions/interactions' tests.
            n if n.starts_with("interactions") => parse_as::<baton_interactions::FunctionUrlRequest>(&path, value),
            // Execution inputs: whatever starts the state machine must normalise to a signal.
            "eventbridge-merge" | "scheduler-schedule" | "console-start" => {
                let signal = baton_load_catalog::normalise(&value, "sample-execution").unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(signal.service, "hello-web", "{name}");
            }
            other => panic!("{name}: no handler named {other}; name samples after the function they feed"),
        }
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} samples found in {}", dir.display());
}

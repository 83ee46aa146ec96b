//! Every sample in `events/` is a valid input of the function it is named after, so
//! `sam local invoke -e` and `cargo lambda invoke --data-file` get what the handlers take.

use baton_core::flow::*;
use std::path::Path;

fn parse_as<T: serde::de::DeserializeOwned>(file: &Path, value: serde_json::Value) {
    if let Err(err) = serde_json::from_value::<T>(value) {
        panic!("{}: does not match {}: {err}", file.display(), std::any::type_name::<T>());
    }
}

#[test]
fn every_sample_event_is_a_valid_handler_input() {
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

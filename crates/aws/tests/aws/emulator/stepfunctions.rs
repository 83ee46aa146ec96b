//! Starting and reading release executions on LocalStack's Step Functions.

use crate::common;

use baton_aws::stepfunctions::{describe_release, execution_history, execution_name, start_release};
use baton_domain::release::{ReleaseStatus, Signal, Stage, Trigger, TriggerKind, WaveStatus};
use serde_json::json;

fn signal(service: &str, pr: u64) -> Signal {
    Signal {
        service: service.into(),
        environment: Some("production".into()),
        sha: Some("4f2a9c1e".into()),
        branch: Some("main".into()),
        trigger: Trigger::new(TriggerKind::Merge, format!("pr-{pr}"), Some("octocat".into())),
        changed_at: None,
    }
}

/// How long the small machines here may take on LocalStack.
const FINISH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::test]
async fn the_same_signal_twice_starts_one_execution() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    // Long enough to still be running on the second start, which StartExecution would accept.
    let machine = common::state_machine(
        &config,
        &common::unique("hold"),
        json!({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 120, "End": true}}}),
    )
    .await;
    let signal = signal("payments-api", 42);

    let first = start_release(&client, &machine, &signal).await.expect("first start");
    let second = start_release(&client, &machine, &signal).await.expect("second start");
    assert!(first.new, "the first start runs an execution");
    assert!(!second.new, "a repeated signal starts nothing");
    assert_eq!(first.execution_arn, second.execution_arn);
    assert_eq!(first.name, execution_name(&signal));
    assert_eq!(common::executions(&config, &machine).await, vec![first.execution_arn.clone()]);

    let other = start_release(&client, &machine, &self::signal("payments-api", 43)).await.expect("another signal");
    assert!(other.new);
    assert_eq!(common::executions(&config, &machine).await.len(), 2);

    let view = describe_release(&client, &first.execution_arn).await.expect("describe");
    assert_eq!(view.status, "RUNNING");
    assert_eq!(view.current_state.as_deref(), Some("Hold"));
    assert_eq!(view.release, None);
    for arn in [first.execution_arn, other.execution_arn] {
        client.stop_execution().execution_arn(arn).send().await.expect("stop the held execution");
    }
}

#[tokio::test]
async fn a_finished_execution_is_not_started_again() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    let machine = common::state_machine(
        &config,
        &common::unique("quick"),
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let first = start_release(&client, &machine, &signal("web", 7)).await.expect("first start");
    common::finished_execution(&client, &first.execution_arn, FINISH_LIMIT).await;
    let again = start_release(&client, &machine, &signal("web", 7)).await.expect("second start");
    assert!(!again.new);
    assert_eq!(again.execution_arn, first.execution_arn);
    assert_eq!(common::executions(&config, &machine).await.len(), 1);
}

#[tokio::test]
async fn describe_release_reads_stage_and_waves_from_the_state_outputs() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    let release = json!({
        "id": "rel-web-20260301100000-abcd1234", "service": "web", "environment": "production",
        "status": "rolled-back", "stage": "rollback", "trigger": {"kind": "merge", "id": "pr-9"},
        "branch": "main", "created_at": "2026-03-01T10:00:00Z",
        "waves": [
            {"name": "canary", "targets": ["eu-1"], "status": "rolled-back"},
            {"name": "rest", "targets": ["eu-2", "us-1"], "status": "unhealthy"}
        ]
    });
    let machine = common::state_machine(
        &config,
        &common::unique("report"),
        json!({
            "StartAt": "Deploy",
            "States": {
                "Deploy": {"Type": "Pass", "Result": release, "ResultPath": "$.release", "Next": "Fail"},
                "Fail": {"Type": "Fail", "Error": "Baton.HealthCheckFailed", "Cause": "wave rest unhealthy"}
            }
        }),
    )
    .await;
    let started = start_release(&client, &machine, &signal("web", 9)).await.expect("start");
    common::finished_execution(&client, &started.execution_arn, FINISH_LIMIT).await;

    let view = describe_release(&client, &started.execution_arn).await.expect("describe");
    assert_eq!(view.status, "FAILED");
    assert_eq!(view.error.as_deref(), Some("Baton.HealthCheckFailed"));
    assert_eq!(view.cause.as_deref(), Some("wave rest unhealthy"));
    assert_eq!(view.current_state.as_deref(), Some("Fail"));
    assert_eq!(view.stage, Some(Stage::Rollback));
    let waves: Vec<(&str, WaveStatus)> = view.waves.iter().map(|w| (w.name.as_str(), w.status)).collect();
    assert_eq!(waves, [("canary", WaveStatus::RolledBack), ("rest", WaveStatus::Unhealthy)]);
    assert!(view.stopped_at.is_some());
}

/// The dashboard's release page reads an execution's history as GetExecutionHistory gives it,
/// oldest first, as many events as it asks for and without the states' data.
#[tokio::test]
async fn execution_history_reads_the_first_events_oldest_first() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    let machine = common::state_machine(
        &config,
        &common::unique("history"),
        json!({
            "StartAt": "Deploy",
            "States": {
                "Deploy": {"Type": "Pass", "Result": {"token": "kept-out"}, "ResultPath": "$.release", "Next": "Fail"},
                "Fail": {"Type": "Fail", "Error": "Baton.HealthCheckFailed", "Cause": "wave rest unhealthy"}
            }
        }),
    )
    .await;
    let started = start_release(&client, &machine, &signal("web", 11)).await.expect("start");
    common::finished_execution(&client, &started.execution_arn, FINISH_LIMIT).await;

    let events = execution_history(&client, &started.execution_arn, 100).await.expect("history");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ExecutionStarted", "PassStateEntered", "PassStateExited", "FailStateEntered", "ExecutionFailed"]);
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(events[1]["stateEnteredEventDetails"]["name"], "Deploy");
    assert_eq!(events[4]["executionFailedEventDetails"]["error"], "Baton.HealthCheckFailed");
    assert!(events.iter().all(|e| chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).is_ok()), "{events:?}");
    assert!(!serde_json::Value::Array(events.clone()).to_string().contains("kept-out"), "no state data: {events:?}");

    let first = execution_history(&client, &started.execution_arn, 2).await.expect("the first two");
    assert_eq!(first, events[..2]);
}

/// A clean rollback ends the execution SUCCEEDED: the view names the outcome and the error behind
/// it from the output, which is what `baton status` exits on.
#[tokio::test]
async fn describe_release_reads_the_outcome_an_execution_that_succeeded_names() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    let outcome = json!({"status": "rolled-back", "error": {"Error": "Baton.HealthCheckFailed", "Cause": "wave rest unhealthy"}});
    let machine = common::state_machine(
        &config,
        &common::unique("outcome"),
        json!({
            "StartAt": "MarkRolledBack",
            "States": {
                "MarkRolledBack": {"Type": "Pass", "Result": outcome, "ResultPath": "$.outcome", "Next": "NotReleased"},
                "NotReleased": {"Type": "Succeed"}
            }
        }),
    )
    .await;
    let started = start_release(&client, &machine, &signal("web", 10)).await.expect("start");
    common::finished_execution(&client, &started.execution_arn, FINISH_LIMIT).await;

    let view = describe_release(&client, &started.execution_arn).await.expect("describe");
    assert_eq!((view.status.as_str(), view.outcome), ("SUCCEEDED", Some(ReleaseStatus::RolledBack)));
    assert_eq!((view.error.as_deref(), view.cause.as_deref()), (Some("Baton.HealthCheckFailed"), Some("wave rest unhealthy")));
}

/// `scripts/emulators.sh` starts LocalStack with `SFN_MOCK_CONFIG` (tests/fixtures/sfn-mock-config.json):
/// an execution started as `<arn>#<TestCase>` gets mocked Lambda answers, which is what runs the
/// release definition on LocalStack without Lambda.
#[tokio::test]
async fn mocked_lambda_answers_come_from_the_mock_config() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/sfn-mock-config.json")).expect("the mock config is JSON");
    let expected = &fixture["MockedResponses"]["DeploySucceeded"]["0"]["Return"]["Payload"];

    // The mock config names the machine, so this one has a fixed name: create it once per emulator run.
    let definition = json!({"StartAt": "Deploy", "States": {"Deploy": {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:baton-deploy-wave", "Payload.$": "$"},
        "OutputPath": "$.Payload",
        "End": true
    }}});
    let existing = client.list_state_machines().send().await.expect("list state machines");
    let machine = match existing.state_machines().iter().find(|m| m.name() == "baton-mock-probe") {
        Some(machine) => machine.state_machine_arn().to_string(),
        None => common::state_machine(&config, "baton-mock-probe", definition).await,
    };

    let started = client
        .start_execution()
        .state_machine_arn(format!("{machine}#Deployed"))
        .name(common::unique("probe"))
        .input("{}")
        .send()
        .await
        .expect("start the mocked test case");
    let execution = common::finished_execution(&client, &started.execution_arn, FINISH_LIMIT).await;
    assert_eq!(execution.status().as_str(), "SUCCEEDED", "{:?}", execution.cause());
    let output: serde_json::Value = serde_json::from_str(execution.output().expect("output")).expect("output is JSON");
    assert_eq!(&output, expected);
}

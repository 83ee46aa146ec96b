//! Starting and reading release executions of the Step Functions state machine.

use crate::clients::to_chrono;
use crate::error::AwsError;
use crate::names::bounded_name;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::types::HistoryEvent;
use baton_domain::error::ErrorName;
use baton_domain::flow::CaughtError;
use baton_domain::ports::{ExecutionHistories, ProviderError, StoreError, TaskTokens};
use baton_domain::release::{Release, ReleaseStatus, Signal, Stage, TaskToken, WaveRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// AWS's limit on execution names.
const MAX_NAME_LEN: usize = 80;
/// History pages read at most when looking for the release record (1,000 events each).
const MAX_HISTORY_PAGES: usize = 20;

/// A started (or already running) release execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub execution_arn: String,
    pub name: String,
    /// False when AWS refused the start because an execution of that name exists: nothing new runs.
    pub new: bool,
}

/// The execution name for a signal: the readable part of its idempotency key plus a hash of
/// the whole key, within AWS's 80 characters of `[0-9A-Za-z_-]`. Equal signals get equal
/// names, so Step Functions itself refuses a second start.
pub fn execution_name(signal: &Signal) -> String {
    bounded_name(&signal.idempotency_key(), MAX_NAME_LEN, true, |c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `arn:aws:states:<region>:<account>:stateMachine:<name>` -> the ARN of its execution `name`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let (prefix, machine) = state_machine_arn.split_once(":stateMachine:")?;
    Some(format!("{prefix}:execution:{machine}:{name}"))
}

/// Starts the release state machine for `signal`, its input being the signal's JSON.
/// A repeat of an earlier signal starts nothing and reports the existing execution with
/// `new: false` (two racing first starts may both report `new: true`; AWS still runs one).
pub async fn start_release(client: &Client, state_machine_arn: &str, signal: &Signal) -> Result<Started, AwsError> {
    let name = execution_name(signal);
    let arn = execution_arn(state_machine_arn, &name).ok_or_else(|| AwsError::Rejected {
        operation: "StartExecution",
        code: "InvalidArn".into(),
        message: format!("'{state_machine_arn}' is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)"),
    })?;
    // Looked up first because StartExecution answers a repeat of a running execution with the
    // same input by succeeding, which would hide that nothing new started.
    match client.describe_execution().execution_arn(&arn).send().await {
        Ok(existing) => return Ok(Started { execution_arn: existing.execution_arn, name, new: false }),
        Err(err) if matches!(err.as_service_error(), Some(DescribeExecutionError::ExecutionDoesNotExist(_))) => {}
        Err(err) => return Err(AwsError::from_sdk("DescribeExecution", err)),
    }
    let input = serde_json::to_string(signal).map_err(|e| AwsError::unexpected("StartExecution", e.to_string()))?;
    let result = client.start_execution().state_machine_arn(state_machine_arn).name(&name).input(input).send().await;
    match result {
        Ok(output) => Ok(Started { execution_arn: output.execution_arn, name, new: true }),
        Err(err) if matches!(err.as_service_error(), Some(StartExecutionError::ExecutionAlreadyExists(_))) => {
            Ok(Started { execution_arn: arn, name, new: false })
        }
        Err(err) => Err(AwsError::from_sdk("StartExecution", err)),
    }
}

/// What `baton status` shows about one execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseView {
    pub execution_arn: String,
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED` or `PENDING_REDRIVE`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// The state the execution is in, or entered last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    pub waves: Vec<WaveRecord>,
    /// The newest release record found in the execution's state outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// How the release ended (`$.outcome.status`), once the definition has said so. A failed
    /// build or a clean rollback ends the execution SUCCEEDED: this, not `status`, says how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReleaseStatus>,
    /// The execution's error, or for an ordinary end the error behind its outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ReleaseView {
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING"
    }
}

/// Reads an execution: DescribeExecution for its status, the history (newest first) for the
/// current state and the latest release record the tasks passed along.
pub async fn describe_release(client: &Client, execution_arn: &str) -> Result<ReleaseView, AwsError> {
    let execution =
        client.describe_execution().execution_arn(execution_arn).send().await.map_err(|e| AwsError::from_sdk("DescribeExecution", e))?;
    let mut current_state = None;
    let mut release = execution.output().and_then(release_in);
    // Set by the last few states, so found in the first page of the newest-first history.
    let mut outcome = execution.output().and_then(outcome_in);
    let mut pages = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .reverse_order(true)
        .include_execution_data(true)
        .into_paginator()
        .send();
    let mut read = 0;
    while current_state.is_none() || release.is_none() {
        let Some(page) = pages.next().await else { break };
        let page = page.map_err(|e| AwsError::from_sdk("GetExecutionHistory", e))?;
        for event in page.events() {
            if current_state.is_none() {
                current_state = event.state_entered_event_details().map(|d| d.name().to_string());
            }
            if release.is_none() {
                release = event_output(event).and_then(release_in);
            }
            if outcome.is_none() {
                outcome = event_output(event).and_then(outcome_in);
            }
        }
        read += 1;
        if read == MAX_HISTORY_PAGES {
            break;
        }
    }
    let (error, cause) = match (execution.error(), outcome.as_ref().and_then(|o| o.error.as_ref())) {
        (None, Some(caught)) => (Some(caught.error.clone()), Some(caught.cause.clone())),
        (error, _) => (error.map(str::to_string), execution.cause().map(str::to_string)),
    };
    Ok(ReleaseView {
        execution_arn: execution.execution_arn().to_string(),
        name: execution.name().unwrap_or_default().to_string(),
        status: execution.status().as_str().to_string(),
        started_at: to_chrono(execution.start_date()),
        stopped_at: execution.stop_date().map(to_chrono),
        current_state,
        stage: release.as_ref().map(|r| r.stage),
        waves: release.as_ref().map(|r| r.waves.clone()).unwrap_or_default(),
        release,
        outcome: outcome.as_ref().map(|o| o.status),
        error,
        cause,
    })
}

/// The first `limit` events of an execution's history, oldest first, as GetExecutionHistory's
/// JSON shows them (`id`, `previousEventId`, `timestamp`, `type` and the event's details, without
/// the states' input and output, which hold whole release records): the embedded executor's
/// journal has that shape too, so the dashboard reads either.
pub async fn execution_history(client: &Client, execution_arn: &str, limit: usize) -> Result<Vec<serde_json::Value>, AwsError> {
    let mut events = Vec::new();
    let mut pages = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .include_execution_data(false)
        .max_results(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
        .into_paginator()
        .send();
    while events.len() < limit {
        let Some(page) = pages.next().await else { break };
        let page = page.map_err(|e| AwsError::from_sdk("GetExecutionHistory", e))?;
        events.extend(page.events().iter().take(limit - events.len()).map(history_event_json));
    }
    Ok(events)
}

/// `event` as GetExecutionHistory's JSON, with the details the dashboard shows: a state's name,
/// a task's resource, a failure's error and cause.
fn history_event_json(event: &HistoryEvent) -> serde_json::Value {
    use serde_json::json;
    let task = |key: &str, resource_type: &str, resource: &str, error: Option<&str>, cause: Option<&str>| {
        (key.to_owned(), json!({ "resourceType": resource_type, "resource": resource, "error": error, "cause": cause }))
    };
    let failure = |key: &str, error: Option<&str>, cause: Option<&str>| (key.to_owned(), json!({ "error": error, "cause": cause }));
    let details = if let Some(d) = event.state_entered_event_details() {
        Some(("stateEnteredEventDetails".to_owned(), json!({ "name": d.name() })))
    } else if let Some(d) = event.state_exited_event_details() {
        Some(("stateExitedEventDetails".to_owned(), json!({ "name": d.name() })))
    } else if let Some(d) = event.task_scheduled_event_details() {
        Some(task("taskScheduledEventDetails", d.resource_type(), d.resource(), None, None))
    } else if let Some(d) = event.task_started_event_details() {
        Some(task("taskStartedEventDetails", d.resource_type(), d.resource(), None, None))
    } else if let Some(d) = event.task_succeeded_event_details() {
        Some(task("taskSucceededEventDetails", d.resource_type(), d.resource(), None, None))
    } else if let Some(d) = event.task_failed_event_details() {
        Some(task("taskFailedEventDetails", d.resource_type(), d.resource(), d.error(), d.cause()))
    } else if let Some(d) = event.task_timed_out_event_details() {
        Some(task("taskTimedOutEventDetails", d.resource_type(), d.resource(), d.error(), d.cause()))
    } else if let Some(d) = event.lambda_function_scheduled_event_details() {
        Some(("lambdaFunctionScheduledEventDetails".to_owned(), json!({ "resource": d.resource() })))
    } else if let Some(d) = event.lambda_function_failed_event_details() {
        Some(failure("lambdaFunctionFailedEventDetails", d.error(), d.cause()))
    } else if let Some(d) = event.execution_failed_event_details() {
        Some(failure("executionFailedEventDetails", d.error(), d.cause()))
    } else if let Some(d) = event.execution_aborted_event_details() {
        Some(failure("executionAbortedEventDetails", d.error(), d.cause()))
    } else {
        event.execution_timed_out_event_details().map(|d| failure("executionTimedOutEventDetails", d.error(), d.cause()))
    };
    let mut out = json!({
        "id": event.id(),
        "previousEventId": event.previous_event_id(),
        "timestamp": to_chrono(event.timestamp()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "type": event.r#type().as_str(),
    });
    if let Some((key, details)) = details {
        out[key] = details;
    }
    out
}

/// `$.outcome` as the definition sets it before the finishing chain (`Mark*`, `Superseded`).
#[derive(Deserialize)]
struct NamedOutcome {
    status: ReleaseStatus,
    error: Option<CaughtError>,
}

fn outcome_in(output: &str) -> Option<NamedOutcome> {
    let mut value: serde_json::Value = serde_json::from_str(output).ok()?;
    serde_json::from_value(value.get_mut("outcome")?.take()).ok()
}

fn event_output(event: &HistoryEvent) -> Option<&str> {
    event
        .state_exited_event_details()
        .and_then(|d| d.output())
        .or_else(|| event.task_succeeded_event_details().and_then(|d| d.output()))
        .or_else(|| event.lambda_function_succeeded_event_details().and_then(|d| d.output()))
        .or_else(|| event.execution_succeeded_event_details().and_then(|d| d.output()))
}

/// A state's output carries the release either as itself, under `release`, or (for a raw
/// `lambda:invoke` result) under `Payload`.
fn release_in(output: &str) -> Option<Release> {
    let value: serde_json::Value = serde_json::from_str(output).ok()?;
    let candidates = [Some(&value), value.get("release"), value.get("Payload"), value.get("Payload").and_then(|p| p.get("release"))];
    candidates.into_iter().flatten().find_map(|candidate| serde_json::from_value(candidate.clone()).ok())
}

/// Answers tasks parked on `.waitForTaskToken` (an approval, an event wait) through `SendTaskSuccess` and
/// `SendTaskFailure`. The token is sent, never logged: errors name the operation only.
pub struct SfnTaskTokens {
    client: Client,
}

impl SfnTaskTokens {
    pub fn new(client: Client) -> SfnTaskTokens {
        SfnTaskTokens { client }
    }
}

#[async_trait::async_trait]
impl TaskTokens for SfnTaskTokens {
    async fn succeed(&self, token: &TaskToken, output: &serde_json::Value) -> Result<(), ProviderError> {
        let sent = self.client.send_task_success().task_token(token.expose()).output(output.to_string()).send().await;
        sent.map(drop)
            .map_err(|err| AwsError::from_sdk("SendTaskSuccess", err).for_provider("the parked task (an approval or an event wait)"))
    }

    async fn fail(&self, token: &TaskToken, error: ErrorName, cause: &str) -> Result<(), ProviderError> {
        let sent = self.client.send_task_failure().task_token(token.expose()).error(error.as_str()).cause(cause).send().await;
        sent.map(drop)
            .map_err(|err| AwsError::from_sdk("SendTaskFailure", err).for_provider("the parked task (an approval or an event wait)"))
    }
}

/// Executions' histories read with GetExecutionHistory: the dashboard's release pages (the
/// operator's credentials) and record-metrics' cost (the function's role).
pub struct SfnHistories {
    client: Client,
    /// Turns a release record's execution name into its ARN; without it only ARNs are read.
    state_machine_arn: Option<String>,
}

impl SfnHistories {
    pub fn new(client: Client, state_machine_arn: Option<String>) -> SfnHistories {
        SfnHistories { client, state_machine_arn }
    }
}

#[async_trait::async_trait]
impl ExecutionHistories for SfnHistories {
    async fn history(&self, execution: &str, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
        // A release record names its execution (`$$.Execution.Name`); an ARN is taken as it is.
        let arn = match execution.starts_with("arn:") {
            true => Some(execution.to_owned()),
            false => self.state_machine_arn.as_deref().and_then(|machine| execution_arn(machine, execution)),
        };
        let Some(arn) = arn else {
            let machine = self.state_machine_arn.as_deref().unwrap_or("no state machine");
            return Err(StoreError::refused(format!("execution '{execution}' is not an ARN, and '{machine}' is not a state machine ARN")));
        };
        execution_history(&self.client, &arn, limit)
            .await
            .map_err(|err| StoreError::unavailable(format!("GetExecutionHistory of {arn}")).caused_by(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::{HistoryEventType, StateEnteredEventDetails, TaskFailedEventDetails};
    use baton_domain::release::{Trigger, TriggerKind};

    #[test]
    fn history_events_read_as_get_execution_history_shows_them() {
        let at = aws_smithy_types::DateTime::from_millis(1_800_000_000_250);
        let entered = HistoryEvent::builder()
            .id(2)
            .previous_event_id(1)
            .timestamp(at)
            .r#type(HistoryEventType::TaskStateEntered)
            .state_entered_event_details(StateEnteredEventDetails::builder().name("CheckHealth").input("{\"secret\":1}").build().unwrap())
            .build()
            .unwrap();
        assert_eq!(
            history_event_json(&entered),
            serde_json::json!({
                "id": 2, "previousEventId": 1, "timestamp": "2027-01-15T08:00:00.250Z", "type": "TaskStateEntered",
                "stateEnteredEventDetails": {"name": "CheckHealth"},
            }),
            "the name, never the state's input"
        );
        let failed = HistoryEvent::builder()
            .id(5)
            .previous_event_id(4)
            .timestamp(at)
            .r#type(HistoryEventType::TaskFailed)
            .task_failed_event_details(
                TaskFailedEventDetails::builder()
                    .resource_type("lambda")
                    .resource("invoke")
                    .error("Baton.HealthCheckFailed")
                    .cause("wave canary is unhealthy")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(
            history_event_json(&failed)["taskFailedEventDetails"],
            serde_json::json!({"resourceType": "lambda", "resource": "invoke", "error": "Baton.HealthCheckFailed", "cause": "wave canary is unhealthy"})
        );
    }

    fn signal(service: &str, id: &str) -> Signal {
        Signal {
            service: service.into(),
            environment: None,
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            branch: None,
            trigger: Trigger::new(TriggerKind::Merge, id.into(), None),
            changed_at: None,
        }
    }

    fn valid(name: &str) -> bool {
        !name.is_empty() && name.len() <= MAX_NAME_LEN && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn names_are_valid_deterministic_and_readable() {
        let name = execution_name(&signal("payments-api", "pr-42"));
        assert!(valid(&name), "{name}");
        assert_eq!(name, execution_name(&signal("payments-api", "pr-42")));
        assert!(name.starts_with("payments-api-0123456789abcdef"), "{name}");
    }

    #[test]
    fn long_keys_stay_within_limits_and_distinct() {
        let long = "x".repeat(200);
        let a = execution_name(&signal(&long, "pr-1"));
        let b = execution_name(&signal(&long, "pr-2"));
        assert!(valid(&a) && valid(&b), "{a} {b}");
        assert_eq!(a.len(), MAX_NAME_LEN);
        assert_ne!(a, b);
    }

    #[test]
    fn keys_that_sanitise_alike_get_different_names() {
        let a = execution_name(&signal("web", "pr:1"));
        let b = execution_name(&signal("web", "pr/1"));
        assert_ne!(a, b);
    }

    #[test]
    fn execution_arns_derive_from_the_machine() {
        assert_eq!(
            execution_arn("arn:aws:states:us-east-1:000000000000:stateMachine:baton-release", "n1").as_deref(),
            Some("arn:aws:states:us-east-1:000000000000:execution:baton-release:n1")
        );
        assert_eq!(execution_arn("arn:aws:lambda:us-east-1:0:function:f", "n1"), None);
    }

    #[test]
    fn release_records_are_found_in_common_output_shapes() {
        let release = serde_json::json!({
            "id": "rel-web-1", "service": "web", "environment": "prod", "status": "running",
            "stage": "deploy", "trigger": {"kind": "cli", "id": "1"}, "branch": "main",
            "waves": [{"name": "canary", "targets": ["a"], "status": "baking"}],
            "created_at": "2026-01-01T00:00:00Z"
        });
        for output in [
            release.clone(),
            serde_json::json!({"release": release.clone(), "other": 1}),
            serde_json::json!({"Payload": {"release": release.clone()}}),
        ] {
            let found = release_in(&output.to_string()).expect("release found");
            assert_eq!(found.stage, Stage::Deploy);
            assert_eq!(found.waves[0].name, "canary");
        }
        assert_eq!(release_in(r#"{"service": "web"}"#), None);
        assert_eq!(release_in("not json"), None);
    }
}

//! Parity of the embedded executor with Step Functions: the release definition runs on LocalStack
//! with mocked Lambda answers (`SFN_MOCK_CONFIG`, tests/fixtures/sfn-mock-config.json) and on
//! `baton_asl` with the same answers read from the same file; both must end alike.
//!
//! `parity::emulator` runs on LocalStack; the rest checks the fixture itself (contracts, embedded runs).

use async_trait::async_trait;
use baton_asl::{Clock, EventType, ExecutionStart, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use baton_domain::error::ErrorName;
use baton_domain::flow::{BuildStarted, Done, FreezeVerdict, Registered, ReleaseContext, RollbackPlan, WatchReport, WavePlan};
use baton_domain::release::Artifact;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

const MOCK_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sfn-mock-config.json");
/// The mock config names state machines, so the LocalStack one has this fixed name.
const STATE_MACHINE: &str = "baton-release-parity";
const REGION: &str = "us-east-1";
/// LocalStack's default account: the definition's Lambda ARNs must name it.
const ACCOUNT: &str = "000000000000";
const SIGNAL: &str = include_str!("../../../../events/eventbridge-merge.json");

/// The `$.release` every mocked answer is built around.
fn fixture_release() -> ReleaseContext {
    let sample: Value =
        serde_json::from_str(include_str!("../../../../events/trigger-build.json")).expect("events/trigger-build.json is JSON");
    serde_json::from_value(sample["release"].clone()).expect("events/trigger-build.json: release is a ReleaseContext")
}

/// The waves of the release in `events/`, as PlanRollback's sample lists them.
fn fixture_waves() -> Vec<WavePlan> {
    let sample: Value = serde_json::from_str(include_str!("../../../../events/deploy-wave-plan-rollback.json"))
        .expect("events/deploy-wave-plan-rollback.json is JSON");
    serde_json::from_value(sample["waves"].clone()).expect("events/deploy-wave-plan-rollback.json: waves are WavePlans")
}

/// The release definition with its substitutions made as `sam deploy` would make them in
/// LocalStack's account and region; the embedded run gets the same text.
fn release_definition() -> String {
    let definition = baton_local_runner::FUNCTIONS.iter().fold(baton_local_runner::substituted_definition(), |text, (_, function)| {
        text.replace(
            &baton_local_runner::local_function_arn(function),
            &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:baton-{function}"),
        )
    });
    assert!(!definition.contains("${"), "a substitution of the release definition is not in baton_local_runner::FUNCTIONS");
    definition
}

// ---- The mock config, read as the AWS Step Functions Local mock-config format specifies ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawConfig {
    state_machines: BTreeMap<String, RawMachine>,
    mocked_responses: BTreeMap<String, BTreeMap<String, MockedAnswer>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawMachine {
    /// Test case -> state name -> mocked response name.
    test_cases: BTreeMap<String, BTreeMap<String, String>>,
}

/// What one invocation of a mocked state gets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
enum MockedAnswer {
    /// The service's API response; for a Lambda task, the Invoke response (`StatusCode`, `Payload`).
    Return(Value),
    Throw {
        #[serde(rename = "Error")]
        error: String,
        #[serde(rename = "Cause")]
        cause: String,
    },
}

struct MockConfig {
    machines: BTreeMap<String, RawMachine>,
    /// Mocked response name -> the answer of invocation 0, 1, 2...
    responses: BTreeMap<String, Vec<MockedAnswer>>,
}

impl MockConfig {
    fn load() -> MockConfig {
        let text = std::fs::read_to_string(MOCK_CONFIG).unwrap_or_else(|err| panic!("{MOCK_CONFIG}: {err}"));
        let raw: RawConfig =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{MOCK_CONFIG}: not a Step Functions mock config: {err}"));
        let responses = raw
            .mocked_responses
            .into_iter()
            .map(|(name, steps)| {
                let answers = invocation_answers(steps).unwrap_or_else(|err| panic!("{MOCK_CONFIG}: MockedResponses.{name}: {err}"));
                (name, answers)
            })
            .collect();
        MockConfig { machines: raw.state_machines, responses }
    }

    /// State name -> its answers, for one test case.
    fn test_case(&self, machine: &str, case: &str) -> BTreeMap<String, Vec<MockedAnswer>> {
        let states = self
            .machines
            .get(machine)
            .and_then(|m| m.test_cases.get(case))
            .unwrap_or_else(|| panic!("{MOCK_CONFIG}: StateMachines.{machine}.TestCases has no test case {case}"));
        states
            .iter()
            .map(|(state, response)| {
                let answers = self.responses.get(response).unwrap_or_else(|| {
                    panic!("{MOCK_CONFIG}: StateMachines.{machine}.TestCases.{case}.{state} names {response}, which MockedResponses lacks")
                });
                (state.clone(), answers.clone())
            })
            .collect()
    }
}

/// Expands `"0"`, `"1-3"` keys into one answer per invocation; the ranges must cover 0, 1, 2... without gaps.
fn invocation_answers(steps: BTreeMap<String, MockedAnswer>) -> Result<Vec<MockedAnswer>, String> {
    let mut ranges = steps
        .into_iter()
        .map(|(key, answer)| {
            let bounds = match key.split_once('-') {
                Some((first, last)) => first.trim().parse().ok().zip(last.trim().parse().ok()),
                None => key.trim().parse().ok().map(|n| (n, n)),
            };
            match bounds {
                Some((first, last)) if first <= last => Ok((first, last, answer)),
                _ => Err(format!("key {key:?}: expected an invocation number (\"0\") or a range (\"1-3\")")),
            }
        })
        .collect::<Result<Vec<(usize, usize, MockedAnswer)>, String>>()?;
    ranges.sort_by_key(|(first, _, _)| *first);
    let mut answers = Vec::new();
    for (first, last, answer) in ranges {
        if first != answers.len() {
            return Err(format!(
                "invocations {first}-{last} follow invocation {}: the numbering must go on without gaps",
                answers.len() as i64 - 1
            ));
        }
        answers.extend(std::iter::repeat_n(answer, last - first + 1));
    }
    Ok(answers)
}

// ---- The embedded executor's tasks, answered from the mock config ----

/// Answers each task by (state name, how many times that state was invoked so far in the
/// execution), as Step Functions Local does: retries and Map iterations count as invocations.
struct MockedTasks {
    case: String,
    answers: BTreeMap<String, Vec<MockedAnswer>>,
    invocations: Mutex<HashMap<String, usize>>,
    /// Calls the mock config could not answer; a run with any is not a comparison.
    problems: Mutex<Vec<String>>,
}

impl MockedTasks {
    fn new(config: &MockConfig, case: &str) -> MockedTasks {
        MockedTasks {
            case: case.to_owned(),
            answers: config.test_case(STATE_MACHINE, case),
            invocations: Mutex::default(),
            problems: Mutex::default(),
        }
    }

    fn unanswered(&self, problem: String) -> TaskFailure {
        self.problems.lock().unwrap().push(problem.clone());
        TaskFailure::new("ParityTest.Unanswered", problem)
    }
}

#[async_trait]
impl TaskInvoker for MockedTasks {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let invocation = {
            let mut counts = self.invocations.lock().unwrap();
            let count = counts.entry(call.state_name.clone()).or_insert(0);
            *count += 1;
            *count - 1
        };
        let state = &call.state_name;
        let case = &self.case;
        let Some(answer) = self.answers.get(state).and_then(|answers| answers.get(invocation)) else {
            return Err(self.unanswered(format!("{MOCK_CONFIG}: test case {case} has no answer for {state}, invocation {invocation}")));
        };
        match answer {
            MockedAnswer::Throw { error, cause } => Err(TaskFailure::new(error, cause)),
            MockedAnswer::Return(_) if call.function.is_none() => {
                Err(self.unanswered(format!("{state} calls {}: this test reads Return values as Lambda Invoke responses only", call.resource)))
            }
            MockedAnswer::Return(response) => match (response.get("Payload"), response.get("FunctionError")) {
                (Some(payload), None) => Ok(payload.clone()),
                _ => Err(self.unanswered(format!(
                    "{MOCK_CONFIG}: test case {case}, {state} invocation {invocation}: expected a Lambda Invoke response with a Payload and no FunctionError (use Throw for errors)"
                ))),
            },
        }
    }
}

// ---- How an execution ended, comparable across the two ----

#[derive(Debug, PartialEq)]
struct Ending {
    status: String,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
    /// States entered, in order, except that the interleaving of side-by-side iterations is not
    /// part of it: each stretch of concurrently run states is sorted.
    path: Vec<String>,
    /// Lambda invocations, retries included.
    invocations: usize,
    /// The errors Lambda tasks failed with (retried or not), sorted: side-by-side iterations fail in any order.
    task_errors: Vec<String>,
}

/// Names of the states that run side by side: inside a Map whose MaxConcurrency is not 1, or a Parallel.
fn concurrent_states(states: &Value, concurrent: bool, found: &mut BTreeSet<String>) {
    let Some(states) = states.as_object() else { return };
    for (name, state) in states {
        if concurrent {
            found.insert(name.clone());
        }
        match state["Type"].as_str() {
            Some("Map") => {
                let side_by_side = state.get("MaxConcurrency").and_then(Value::as_u64) != Some(1);
                let processor = state.get("ItemProcessor").or_else(|| state.get("Iterator")).unwrap_or(&Value::Null);
                concurrent_states(&processor["States"], concurrent || side_by_side, found);
            }
            Some("Parallel") => {
                for branch in state["Branches"].as_array().into_iter().flatten() {
                    concurrent_states(&branch["States"], true, found);
                }
            }
            _ => {}
        }
    }
}

/// [`Ending::path`] from the names of the states entered, in history order.
fn path(entered: impl IntoIterator<Item = String>) -> Vec<String> {
    let definition: Value = serde_json::from_str(&release_definition()).expect("the release definition is JSON");
    let mut concurrent = BTreeSet::new();
    concurrent_states(&definition["States"], false, &mut concurrent);
    let (mut path, mut stretch) = (Vec::new(), Vec::new());
    for name in entered {
        if concurrent.contains(&name) {
            stretch.push(name);
        } else {
            stretch.sort();
            path.append(&mut stretch);
            path.push(name);
        }
    }
    stretch.sort();
    path.append(&mut stretch);
    path
}

fn signal() -> Value {
    serde_json::from_str(SIGNAL).expect("events/eventbridge-merge.json is JSON")
}

/// Runs the test case on the embedded executor; panics if the mock config left a task unanswered.
async fn embedded_run(case: &str, execution_name: &str) -> Ending {
    let tasks = Arc::new(MockedTasks::new(&MockConfig::load(), case));
    let machine = StateMachine::from_json(&release_definition()).expect("the release definition parses");
    let executor = Executor::new(tasks.clone(), Clock::Virtual);
    let start = ExecutionStart {
        state_machine_name: STATE_MACHINE.into(),
        region: REGION.into(),
        account_id: ACCOUNT.into(),
        ..ExecutionStart::new(execution_name, signal())
    };
    let outcome = executor.run(Arc::new(machine), start).await;
    let problems = tasks.problems.lock().unwrap();
    assert!(problems.is_empty(), "the mock config did not answer every task:\n{}", problems.join("\n"));
    let of_type = |t: EventType| outcome.history.iter().filter(move |e| e.event_type == t);
    let mut task_errors: Vec<String> =
        of_type(EventType::LambdaFunctionFailed).filter_map(|e| Some(e.details.as_ref()?.error()?.to_owned())).collect();
    task_errors.sort();
    Ending {
        status: serde_json::to_value(outcome.status).expect("statuses serialise").as_str().expect("a status is a string").to_owned(),
        output: outcome.output,
        error: outcome.error,
        cause: outcome.cause,
        path: path(
            outcome.history.iter().filter(|e| e.event_type.as_str().ends_with("StateEntered")).map(|e| {
                e.details.as_ref().and_then(|d| d.name.as_deref().map(str::to_owned)).expect("a StateEntered event names its state")
            }),
        ),
        invocations: of_type(EventType::LambdaFunctionScheduled).count(),
        task_errors,
    }
}

// ---- The fixture on its own ----

/// A mocked answer must be what the handler answers: it parses as the contract type and says
/// nothing the type does not.
fn conforms<T: DeserializeOwned + serde::Serialize>(payload: &Value) -> Result<(), String> {
    let parsed: T = serde_json::from_value(payload.clone()).map_err(|err| err.to_string())?;
    let back = serde_json::to_value(parsed).expect("contract types serialise");
    if &back == payload { Ok(()) } else { Err(format!("only this much of it is in the contract: {back}")) }
}

/// The response type of the handler each Task state of the release definition calls (crates/domain/src/flow.rs).
fn contract(state: &str) -> fn(&Value) -> Result<(), String> {
    match state {
        "Register" => conforms::<Registered>,
        "TriggerBuild" => conforms::<BuildStarted>,
        "WaitForBuild" => conforms::<Artifact>,
        "WatchHealth" => conforms::<WatchReport>,
        "PlanRollback" => conforms::<RollbackPlan>,
        "CheckFreeze" | "Acquire" => conforms::<FreezeVerdict>,
        "Unlock"
        | "NotifyStarted"
        | "NotifyBuilt"
        | "NotifyWaveHealthy"
        | "NotifyRollingBack"
        | "NotifyFinished"
        | "RecordMetrics"
        | "StartWave"
        | "WaitForWave"
        | "StartWaveRollback"
        | "WaitForWaveRollback" => conforms::<Done>,
        other => panic!("{MOCK_CONFIG}: {other} is not a Task state of the release definition with a known contract"),
    }
}

const CASES: [&str; 4] = ["Success", "BuildFailure", "HealthFailure", "RecordFailure"];

#[test]
fn mocked_answers_follow_the_handlers_contracts() {
    let config = MockConfig::load();
    let release = fixture_release();
    let waves = fixture_waves();
    for case in CASES {
        for (state, answers) in config.test_case(STATE_MACHINE, case) {
            for (invocation, answer) in answers.iter().enumerate() {
                let at = format!("{MOCK_CONFIG}: test case {case}, {state} invocation {invocation}");
                match answer {
                    MockedAnswer::Return(response) => {
                        let payload = response.get("Payload").unwrap_or_else(|| panic!("{at}: a Lambda Invoke response needs a Payload"));
                        contract(&state)(payload).unwrap_or_else(|err| panic!("{at}: {err}"));
                        if state == "Register" {
                            let registered: Registered = serde_json::from_value(payload.clone()).expect("checked above");
                            assert_eq!(registered.release, release, "{at}: the release is not the one in events/trigger-build.json");
                            assert_eq!(
                                registered.waves, waves,
                                "{at}: the waves are not the ones in events/deploy-wave-plan-rollback.json"
                            );
                        }
                    }
                    // Handlers fail with an ErrorName and Lambda's error object as the cause (see baton_local_runner).
                    MockedAnswer::Throw { error, cause } => {
                        serde_json::from_value::<ErrorName>(Value::from(error.as_str()))
                            .unwrap_or_else(|_| panic!("{at}: {error} is not a Baton error name"));
                        let cause: Value =
                            serde_json::from_str(cause).unwrap_or_else(|err| panic!("{at}: the Cause is not Lambda's error JSON: {err}"));
                        assert_eq!(cause["errorType"], error.as_str(), "{at}: the Cause's errorType differs from the Error");
                        assert!(cause["errorMessage"].is_string(), "{at}: the Cause has no errorMessage");
                    }
                }
            }
        }
    }
}

/// The outcome an execution's output names, and the error behind it.
fn outcome_of(ending: &Ending) -> (&str, &str) {
    let named = |pointer: &str| ending.output.as_ref().and_then(|o| o.pointer(pointer)).and_then(Value::as_str).unwrap_or_default();
    (named("/outcome/status"), named("/outcome/error/Error"))
}

/// Each test case takes the path its name promises, so the parity runs cover those paths.
#[tokio::test]
async fn each_test_case_takes_its_path_on_the_embedded_executor() {
    let count = |ending: &Ending, state: &str| ending.path.iter().filter(|s| *s == state).count();

    let success = embedded_run("Success", "parity-success").await;
    assert_eq!(success.status, "SUCCEEDED", "{success:?}");
    assert_eq!(success.output.as_ref().map(|o| &o["outcome"]["status"]), Some(&Value::from("succeeded")));
    // The canary is sampled twice (the first sample asks for another), the other waves once.
    assert_eq!((count(&success, "WatchHealth"), count(&success, "WatchPause")), (4, 1), "{:?}", success.path);

    let build = embedded_run("BuildFailure", "parity-build-failure").await;
    // An ordinary outcome, no fault: the execution succeeds and its output says what ended it.
    assert_eq!((build.status.as_str(), outcome_of(&build)), ("SUCCEEDED", ("failed", "Baton.BuildFailed")), "{build:?}");
    assert_eq!((count(&build, "MarkFailed"), count(&build, "DeployWaves")), (1, 0), "{:?}", build.path);

    let health = embedded_run("HealthFailure", "parity-health-failure").await;
    assert_eq!((health.status.as_str(), outcome_of(&health)), ("SUCCEEDED", ("rolled-back", "Baton.HealthCheckFailed")), "{health:?}");
    assert_eq!(count(&health, "MarkRolledBack"), 1, "{:?}", health.path);
    // one-region, then the canary: one task per wave, whatever its targets.
    assert_eq!(count(&health, "StartWaveRollback"), 2, "{:?}", health.path);

    // A release that shipped but whose record the store refused to close is Baton's fault: the
    // execution fails (the failed-executions alarm), after the last notification and the unlock.
    let record = embedded_run("RecordFailure", "parity-record-failure").await;
    assert_eq!((record.status.as_str(), record.error.as_deref()), ("FAILED", Some("Baton.Internal")), "{record:?}");
    assert_eq!(record.path.iter().rev().take(3).collect::<Vec<_>>(), ["RecordFailed", "Finished", "Unlock"], "{:?}", record.path);
}

#[test]
fn invocation_ranges_expand_in_order_and_reject_gaps() {
    let answer = |n: u64| MockedAnswer::Return(Value::from(n));
    let steps = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, n)| (k.to_string(), answer(*n))).collect::<BTreeMap<_, _>>();
    assert_eq!(invocation_answers(steps(&[("2-3", 2), ("0", 0), ("1", 1)])).unwrap(), [answer(0), answer(1), answer(2), answer(2)]);
    assert!(invocation_answers(steps(&[("0", 0), ("2", 2)])).unwrap_err().contains("without gaps"));
    assert!(invocation_answers(steps(&[("1-0", 0)])).unwrap_err().contains("\"1-0\""));
    assert!(invocation_answers(steps(&[("first", 0)])).unwrap_err().contains("\"first\""));
}

// ---- The same test cases on LocalStack ----

mod emulator {
    use super::*;
    use crate::common;
    use aws_sdk_sfn::Client;
    use aws_sdk_sfn::types::HistoryEventType;
    use std::time::Duration;
    use tokio::sync::OnceCell;

    /// The `baton-release-parity` machine with the current definition; created once per emulator
    /// run and updated after, so an edited definition is what runs.
    async fn release_machine(config: &aws_config::SdkConfig) -> String {
        static MACHINE: OnceCell<String> = OnceCell::const_new();
        MACHINE
            .get_or_init(|| async {
                let client = Client::new(config);
                let machines: Vec<_> = client
                    .list_state_machines()
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<_, _>>()
                    .await
                    .expect("list state machines");
                match machines.into_iter().find(|m| m.name() == STATE_MACHINE) {
                    Some(machine) => {
                        client
                            .update_state_machine()
                            .state_machine_arn(machine.state_machine_arn())
                            .definition(release_definition())
                            .send()
                            .await
                            .expect("update the parity state machine");
                        machine.state_machine_arn().to_owned()
                    }
                    None => {
                        let definition = serde_json::from_str(&release_definition()).expect("the release definition is JSON");
                        common::state_machine(config, STATE_MACHINE, definition).await
                    }
                }
            })
            .await
            .clone()
    }

    async fn localstack_run(case: &str, execution_name: &str) -> Ending {
        let config = common::sdk_config().await;
        let client = Client::new(&config);
        let machine = release_machine(&config).await;
        let started = client
            .start_execution()
            .state_machine_arn(format!("{machine}#{case}"))
            .name(execution_name)
            .input(SIGNAL)
            .send()
            .await
            .expect("start the mocked test case");
        // Bake waits and retry intervals really pass on LocalStack.
        let execution = common::finished_execution(&client, &started.execution_arn, Duration::from_secs(180)).await;
        let events: Vec<_> = client
            .get_execution_history()
            .execution_arn(&started.execution_arn)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .expect("read the execution history");
        Ending {
            status: execution.status().as_str().to_owned(),
            output: execution.output().map(|o| serde_json::from_str(o).expect("the execution output is JSON")),
            error: execution.error().map(str::to_owned),
            cause: execution.cause().map(str::to_owned),
            path: path(events.iter().filter_map(|e| e.state_entered_event_details()).map(|d| d.name().to_owned())),
            invocations: events.iter().filter(|e| e.r#type() == &HistoryEventType::LambdaFunctionScheduled).count(),
            task_errors: {
                // LocalStack records a mocked Throw as TaskFailed where AWS records LambdaFunctionFailed.
                let mut errors: Vec<String> = events
                    .iter()
                    .filter_map(|e| {
                        let lambda = e.lambda_function_failed_event_details().and_then(|d| d.error());
                        lambda.or_else(|| e.task_failed_event_details().and_then(|d| d.error())).map(str::to_owned)
                    })
                    .collect();
                errors.sort();
                errors
            },
        }
    }

    async fn same_ending(case: &str) {
        let name = common::unique(&format!("parity-{case}"));
        let (localstack, embedded) = tokio::join!(localstack_run(case, &name), embedded_run(case, &name));
        assert_eq!(embedded, localstack, "test case {case}: the embedded executor (left) and LocalStack (right) ended differently");
    }

    #[tokio::test]
    async fn success_ends_alike() {
        same_ending("Success").await;
    }

    #[tokio::test]
    async fn build_failure_ends_alike() {
        same_ending("BuildFailure").await;
    }

    #[tokio::test]
    async fn health_failure_with_rollback_ends_alike() {
        same_ending("HealthFailure").await;
    }

    #[tokio::test]
    async fn record_failure_ends_alike() {
        same_ending("RecordFailure").await;
    }
}

//! End-to-end behaviour of the executor: states, errors, Retry timing, Catch, task tokens, concurrency.
use baton_asl::{
    Clock, EventType, ExecutionOutcome, ExecutionStart, ExecutionStatus, Executor, HistoryEvent, ResumeAt, StateMachine, TaskCall,
    TaskFailure, TaskInvoker,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Handler = dyn Fn(&TaskCall) -> Result<Value, TaskFailure> + Send + Sync;

/// Records every call and answers with a closure.
struct Recorder {
    calls: Mutex<Vec<TaskCall>>,
    answer: Box<Handler>,
}

impl Recorder {
    fn new(answer: impl Fn(&TaskCall) -> Result<Value, TaskFailure> + Send + Sync + 'static) -> Arc<Recorder> {
        Arc::new(Recorder { calls: Mutex::new(Vec::new()), answer: Box::new(answer) })
    }

    fn calls(&self) -> Vec<TaskCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TaskInvoker for Recorder {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let answer = (self.answer)(&call);
        self.calls.lock().unwrap().push(call);
        answer
    }
}

async fn run_with(invoker: Arc<dyn TaskInvoker>, def: Value, input: Value) -> ExecutionOutcome {
    let machine = Arc::new(StateMachine::from_value(&def).expect("valid definition"));
    Executor::new(invoker, Clock::Virtual).run(machine, ExecutionStart::new("test", input)).await
}

async fn run(def: Value, input: Value) -> ExecutionOutcome {
    run_with(Recorder::new(|c| Ok(c.payload.clone())), def, input).await
}

fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

fn of_type(history: &[HistoryEvent], t: EventType) -> Vec<&HistoryEvent> {
    history.iter().filter(|e| e.event_type == t).collect()
}

const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:work";

#[tokio::test]
async fn pass_applies_paths_in_aws_order() {
    let out = run(
        single(json!({"Type": "Pass", "InputPath": "$.in", "Parameters": {"v.$": "$.x", "k": 1}, "ResultPath": "$.res", "OutputPath": "$.res", "End": true})),
        json!({"in": {"x": 5}}),
    )
    .await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    assert_eq!(out.output, Some(json!({"v": 5, "k": 1})));
    let out = run(single(json!({"Type": "Pass", "Result": false, "ResultPath": "$.r", "End": true})), json!({"a": 1})).await;
    assert_eq!(out.output, Some(json!({"a": 1, "r": false})));
}

#[tokio::test]
async fn task_result_goes_through_result_selector_and_result_path() {
    let invoker = Recorder::new(|_| Ok(json!({"body": {"id": 7}, "noise": true})));
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "Parameters": {"name.$": "$.n"},
        "ResultSelector": {"id.$": "$.body.id"}, "ResultPath": "$.result", "End": true}));
    let out = run_with(invoker.clone(), def, json!({"n": "svc"})).await;
    assert_eq!(out.output, Some(json!({"n": "svc", "result": {"id": 7}})));
    let calls = invoker.calls();
    assert_eq!(calls[0].payload, json!({"name": "svc"}));
    assert_eq!(calls[0].function.as_deref(), Some(LAMBDA));
    assert_eq!(of_type(&out.history, EventType::LambdaFunctionScheduled).len(), 1);
}

#[tokio::test]
async fn lambda_invoke_wraps_the_answer_like_aws() {
    let invoker = Recorder::new(|c| Ok(json!({"echo": c.payload})));
    let def = single(json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "fn-1", "Payload": {"a.$": "$.a"}}, "End": true}));
    let out = run_with(invoker.clone(), def, json!({"a": 1})).await;
    let output = out.output.unwrap();
    assert_eq!(output["Payload"], json!({"echo": {"a": 1}}));
    assert_eq!(output["StatusCode"], json!(200));
    assert_eq!(output["ExecutedVersion"], json!("$LATEST"));
    assert_eq!(invoker.calls()[0].function.as_deref(), Some("fn-1"));
    let scheduled = of_type(&out.history, EventType::TaskScheduled)[0].details.clone().unwrap().more.unwrap();
    assert_eq!((scheduled.resource_type.as_deref(), scheduled.resource.as_deref()), (Some("lambda"), Some("invoke")));
}

#[tokio::test]
async fn choice_routes_and_fails_without_a_match() {
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.s", "StringMatches": "re*"}], "Next": "Big"}
        ]},
        "Big": {"Type": "Pass", "Result": "big", "End": true}
    }});
    assert_eq!(run(def.clone(), json!({"n": 2, "s": "release"})).await.output, Some(json!("big")));
    let out = run(def, json!({"n": 0, "s": "release"})).await;
    assert_eq!((out.status, out.error.as_deref()), (ExecutionStatus::Failed, Some("States.NoChoiceMatched")));
}

#[tokio::test]
async fn wait_advances_virtual_time_only() {
    let started = std::time::Instant::now();
    let out = run(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "Next": "T"}, "T": {"Type": "Pass", "Parameters": {"t.$": "$$.State.EnteredTime"}, "End": true}}}),
        json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let entered = &of_type(&out.history, EventType::WaitStateEntered)[0].timestamp;
    let exited = &of_type(&out.history, EventType::WaitStateExited)[0].timestamp;
    assert_eq!(*exited - *entered, chrono::Duration::hours(1));
    let shown = chrono::DateTime::parse_from_rfc3339(out.output.unwrap()["t"].as_str().unwrap()).unwrap();
    assert_eq!(shown.timestamp_millis(), exited.timestamp_millis());
}

#[tokio::test]
async fn fail_and_succeed_end_the_execution() {
    let out = run(single(json!({"Type": "Fail", "Error": "E", "Cause": "why"})), json!({})).await;
    assert_eq!((out.error.as_deref(), out.cause.as_deref()), (Some("E"), Some("why")));
    assert_eq!(out.history.last().unwrap().event_type, EventType::ExecutionFailed);
    let out = run(single(json!({"Type": "Succeed", "OutputPath": "$.a"})), json!({"a": [1]})).await;
    assert_eq!(out.output, Some(json!([1])));
}

#[tokio::test]
async fn runtime_errors_name_state_and_event() {
    let out = run(single(json!({"Type": "Pass", "InputPath": "$.missing", "End": true})), json!({})).await;
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert_eq!(
        out.cause.as_deref(),
        Some(
            "An error occurred while executing the state 'S' (entered at the event id #2). Invalid path '$.missing' : No results for path: $['missing']"
        )
    );
    let out =
        run(single(json!({"Type": "Pass", "Parameters": {"x.$": "States.ArrayGetItem($.a, 5)"}, "End": true})), json!({"a": []})).await;
    assert_eq!(out.error.as_deref(), Some("States.IntrinsicFailure"));
    let out = run(single(json!({"Type": "Pass", "ResultPath": "$.a.b", "End": true})), json!({"a": "text"})).await;
    assert_eq!(out.error.as_deref(), Some("States.ResultPathMatchFailure"));
}

fn scheduled_gaps(history: &[HistoryEvent]) -> Vec<i64> {
    let times: Vec<_> = of_type(history, EventType::LambdaFunctionScheduled).iter().map(|e| e.timestamp).collect();
    times.windows(2).map(|w| (w[1] - w[0]).num_milliseconds()).collect()
}

#[tokio::test]
async fn retry_backs_off_exponentially_in_virtual_time() {
    let invoker = Recorder::new(|_| Err(TaskFailure::new("Flaky", "try again")));
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "End": true,
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}]}));
    let out = run_with(invoker.clone(), def, json!({})).await;
    assert_eq!((out.error.as_deref(), out.cause.as_deref()), (Some("Flaky"), Some("try again")));
    assert_eq!(invoker.calls().len(), 4);
    assert_eq!(scheduled_gaps(&out.history), vec![1000, 2000, 4000]);
    assert_eq!(invoker.calls().iter().map(|c| c.retry_count).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn retry_delay_is_capped_by_max_delay_seconds() {
    let invoker = Recorder::new(|_| Err(TaskFailure::new("Flaky", "x")));
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3, "MaxAttempts": 4, "BackoffRate": 3.0, "MaxDelaySeconds": 10}]}));
    let out = run_with(invoker, def, json!({})).await;
    assert_eq!(scheduled_gaps(&out.history), vec![3000, 9000, 10000, 10000]);
}

#[tokio::test]
async fn full_jitter_never_exceeds_the_backoff() {
    let invoker = Recorder::new(|_| Err(TaskFailure::new("Flaky", "x")));
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "End": true,
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "MaxAttempts": 3, "JitterStrategy": "FULL"}]}));
    let out = run_with(invoker, def, json!({})).await;
    let gaps = scheduled_gaps(&out.history);
    assert_eq!(gaps.len(), 3);
    for (gap, cap) in gaps.iter().zip([2000, 4000, 8000]) {
        assert!((0..=cap).contains(gap), "{gap} > {cap}");
    }
}

#[tokio::test]
async fn retry_then_succeed_and_runtime_errors_are_never_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let invoker =
        Recorder::new(move |_| if seen.fetch_add(1, Ordering::SeqCst) < 2 { Err(TaskFailure::new("Flaky", "x")) } else { Ok(json!("ok")) });
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "End": true, "Retry": [{"ErrorEquals": ["States.TaskFailed"]}]}));
    assert_eq!(run_with(invoker, def, json!({})).await.output, Some(json!("ok")));

    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "InputPath": "$.nope", "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "S"}]}));
    let invoker = Recorder::new(|_| Ok(json!(1)));
    let out = run_with(invoker.clone(), def, json!({})).await;
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(invoker.calls().is_empty());
}

#[tokio::test]
async fn catch_routes_by_error_name_with_result_path() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "Next": "Done", "Catch": [
            {"ErrorEquals": ["Other"], "Next": "Wrong"},
            {"ErrorEquals": ["Deploy.Failed"], "ResultPath": "$.error", "Next": "Handle"}
        ]},
        "Wrong": {"Type": "Fail", "Error": "Wrong"},
        "Handle": {"Type": "Pass", "End": true},
        "Done": {"Type": "Succeed"}
    }});
    let invoker = Recorder::new(|_| Err(TaskFailure::new("Deploy.Failed", "wave 2 unhealthy")));
    let out = run_with(invoker, def, json!({"service": "a"})).await;
    assert_eq!(out.output, Some(json!({"service": "a", "error": {"Error": "Deploy.Failed", "Cause": "wave 2 unhealthy"}})));
    let failed = of_type(&out.history, EventType::LambdaFunctionFailed)[0].details.clone().unwrap();
    assert_eq!(failed.error(), Some("Deploy.Failed"));
}

#[tokio::test]
async fn task_timeout_raises_states_timeout() {
    struct Slow;
    #[async_trait::async_trait]
    impl TaskInvoker for Slow {
        async fn invoke(&self, _: TaskCall) -> Result<Value, TaskFailure> {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Value::Null)
        }
    }
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "TimeoutSeconds": 1, "End": true,
              "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "X"}, {"ErrorEquals": ["States.Timeout"], "Next": "Y"}]},
        "X": {"Type": "Pass", "Result": "task-failed", "End": true},
        "Y": {"Type": "Pass", "Result": "timed-out", "End": true}
    }});
    let out = run_with(Arc::new(Slow), def, json!({})).await;
    assert_eq!(out.output, Some(json!("timed-out")));
    assert_eq!(of_type(&out.history, EventType::TaskTimedOut).len(), 1);
}

/// Keeps tokens so the test can answer them.
#[derive(Default)]
struct TokenSink {
    tokens: Mutex<Vec<(String, Value)>>,
}

#[async_trait::async_trait]
impl TaskInvoker for TokenSink {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        self.tokens.lock().unwrap().push((call.task_token.clone().expect("a token"), call.payload));
        Ok(Value::Null)
    }
}

async fn next_token(sink: &TokenSink) -> (String, Value) {
    for _ in 0..500 {
        if let Some(t) = sink.tokens.lock().unwrap().pop() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no task token arrived");
}

fn token_def(extra: Value) -> Value {
    let mut task = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "approve", "Payload": {"token.$": "$$.Task.Token", "v.$": "$.v"}}, "End": true});
    task.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    single(task)
}

#[tokio::test]
async fn wait_for_task_token_success() {
    let sink = Arc::new(TokenSink::default());
    let executor = Executor::new(sink.clone(), Clock::Virtual);
    let machine = Arc::new(StateMachine::from_value(&token_def(json!({}))).unwrap());
    let handle = executor.start(machine, ExecutionStart::new("tok", json!({"v": 1})));
    let (token, payload) = next_token(&sink).await;
    assert_eq!(payload, json!({"token": token, "v": 1}));
    executor.send_task_heartbeat(&token).unwrap();
    executor.send_task_success(&token, json!({"approved": true})).unwrap();
    let out = handle.outcome().await;
    assert_eq!(out.output, Some(json!({"approved": true})));
    assert_eq!(executor.send_task_success(&token, json!(1)), Err(baton_asl::TaskTokenError::TaskDoesNotExist));
    assert_eq!(of_type(&out.history, EventType::TaskSubmitted).len(), 1);
}

#[tokio::test]
async fn wait_for_task_token_failure() {
    let sink = Arc::new(TokenSink::default());
    let executor = Executor::new(sink.clone(), Clock::Virtual);
    let machine = Arc::new(StateMachine::from_value(&token_def(json!({}))).unwrap());
    let handle = executor.start(machine, ExecutionStart::new("tok", json!({"v": 1})));
    let (token, _) = next_token(&sink).await;
    executor.send_task_failure(&token, "Rejected", Some("by a human")).unwrap();
    let out = handle.outcome().await;
    assert_eq!((out.error.as_deref(), out.cause.as_deref()), (Some("Rejected"), Some("by a human")));
}

#[tokio::test]
async fn wait_for_task_token_heartbeat_timeout() {
    let sink = Arc::new(TokenSink::default());
    let executor = Executor::new(sink.clone(), Clock::Virtual);
    let machine = Arc::new(StateMachine::from_value(&token_def(json!({"HeartbeatSeconds": 1}))).unwrap());
    let handle = executor.start(machine, ExecutionStart::new("tok", json!({"v": 1})));
    let (token, _) = next_token(&sink).await;
    let out = handle.outcome().await;
    assert_eq!(out.error.as_deref(), Some("States.HeartbeatTimeout"));
    assert_eq!(executor.send_task_heartbeat(&token), Err(baton_asl::TaskTokenError::TaskDoesNotExist));
}

/// Blocks every call until `n` calls are in flight at once: proves they run concurrently.
struct Gate {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    barrier: tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl TaskInvoker for Gate {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.barrier.wait().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(call.payload)
    }
}

fn gate(n: usize) -> Arc<Gate> {
    Arc::new(Gate { in_flight: AtomicUsize::new(0), peak: AtomicUsize::new(0), barrier: tokio::sync::Barrier::new(n) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_iterations_and_parallel_branches_run_concurrently() {
    let g = gate(4);
    let def = single(json!({"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0,
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}}, "End": true}));
    let out = tokio::time::timeout(Duration::from_secs(10), run_with(g.clone(), def, json!({"items": ["a", "b", "c", "d"]})))
        .await
        .expect("iterations waited for each other, so they ran concurrently");
    assert_eq!(out.output, Some(json!([{"i": 0, "v": "a"}, {"i": 1, "v": "b"}, {"i": 2, "v": "c"}, {"i": 3, "v": "d"}])));

    let g = gate(3);
    // State names are unique across the machine, branches included.
    let branch = |r: &str| json!({"StartAt": r, "States": {r: {"Type": "Task", "Resource": LAMBDA, "ResultPath": "$.b", "Parameters": {"b": r}, "End": true}}});
    let def = single(json!({"Type": "Parallel", "Branches": [branch("x"), branch("y"), branch("z")], "End": true}));
    let out = tokio::time::timeout(Duration::from_secs(10), run_with(g, def, json!({}))).await.expect("branches ran concurrently");
    assert_eq!(out.output, Some(json!([{"b": {"b": "x"}}, {"b": {"b": "y"}}, {"b": {"b": "z"}}])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_bounds_iterations_in_flight() {
    let g = gate(2);
    let def = single(json!({"Type": "Map", "MaxConcurrency": 2,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}}, "End": true}));
    let out = run_with(g.clone(), def, json!([1, 2, 3, 4, 5, 6])).await;
    assert_eq!(out.output, Some(json!([1, 2, 3, 4, 5, 6])));
    assert_eq!(g.peak.load(Ordering::SeqCst), 2);
}

/// Counts calls in flight without waiting for each other.
struct Counter {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait::async_trait]
impl TaskInvoker for Counter {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(call.payload)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_map_runs_at_most_40_iterations_at_once_as_aws_does() {
    let items: Vec<u64> = (0..100).collect();
    for max_concurrency in [0, 100] {
        let counter = Arc::new(Counter { in_flight: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
        let def = single(json!({"Type": "Map", "MaxConcurrency": max_concurrency,
            "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}}, "End": true}));
        let out = run_with(counter.clone(), def, json!(items)).await;
        assert_eq!(out.output, Some(json!(items)));
        assert_eq!(counter.peak.load(Ordering::SeqCst), 40, "MaxConcurrency {max_concurrency}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_one_runs_items_in_order_and_stops_at_a_failure() {
    let recorder = Recorder::new(|c| match c.payload.as_i64() {
        Some(3) => Err(TaskFailure::new("Item.Bad", "three")),
        _ => Ok(c.payload.clone()),
    });
    let def = single(json!({"Type": "Map", "MaxConcurrency": 1,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}}, "End": true}));
    let out = run_with(recorder.clone(), def, json!([1, 2, 3, 4, 5, 6, 7, 8])).await;
    assert_eq!(out.error.as_deref(), Some("Item.Bad"));
    let order: Vec<Value> = recorder.calls().into_iter().map(|c| c.payload).collect();
    assert_eq!(order, vec![json!(1), json!(2), json!(3)], "items after the failed one never start");
}

#[tokio::test]
async fn map_failures_propagate_or_are_tolerated() {
    let processor = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Boom"}], "Default": "Ok"},
        "Boom": {"Type": "Fail", "Error": "Item.Bad", "Cause": "two"},
        "Ok": {"Type": "Pass", "End": true}}});
    let out = run(single(json!({"Type": "Map", "ItemProcessor": processor, "End": true})), json!([1, 2, 3])).await;
    assert_eq!(out.error.as_deref(), Some("Item.Bad"));
    let out =
        run(single(json!({"Type": "Map", "ItemProcessor": processor, "ToleratedFailureCount": 1, "End": true})), json!([1, 2, 3])).await;
    assert_eq!(out.output, Some(json!([1, {"Error": "Item.Bad", "Cause": "two"}, 3])));
    let out =
        run(single(json!({"Type": "Map", "ItemProcessor": processor, "ToleratedFailurePercentage": 10, "End": true})), json!([1, 2, 3]))
            .await;
    assert_eq!(out.error.as_deref(), Some("States.ExceedToleratedFailureThreshold"));
}

#[tokio::test]
async fn parallel_branch_failure_is_caught() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "Done", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "Smoke.Failed", "Cause": "3 failures"}}}
        ], "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Done"}]},
        "Done": {"Type": "Succeed"}
    }});
    let out = run(def, json!({"x": 1})).await;
    assert_eq!(out.output, Some(json!({"x": 1, "err": {"Error": "Smoke.Failed", "Cause": "3 failures"}})));
    assert_eq!(of_type(&out.history, EventType::ParallelStateFailed).len(), 1);
}

#[tokio::test]
async fn history_ids_chain_and_subscribers_see_every_event() {
    let sink = Arc::new(TokenSink::default());
    let executor = Executor::new(sink.clone(), Clock::Virtual);
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "Parameters": {"t.$": "$$.Task.Token"}, "End": true}}});
    let handle = executor.start(Arc::new(StateMachine::from_value(&def).unwrap()), ExecutionStart::new("live", json!({})));
    let (past, mut live) = handle.subscribe();
    let (token, _) = next_token(&sink).await;
    executor.send_task_success(&token, json!("done")).unwrap();
    let out = handle.outcome().await;
    let mut seen: Vec<u64> = past.iter().map(|e| e.id).collect();
    while let Ok(e) = live.try_recv() {
        seen.push(e.id);
    }
    assert_eq!(seen, out.history.iter().map(|e| e.id).collect::<Vec<_>>());
    // As in AWS's histories, the first state's entered event follows 0, not ExecutionStarted.
    assert_eq!(out.history[1].previous_event_id, 0);
    for pair in out.history[1..].windows(2) {
        assert_eq!(pair[1].previous_event_id, pair[0].id);
    }
    let json = serde_json::to_value(&out.history[1]).unwrap();
    assert_eq!(json["type"], "PassStateEntered");
    assert_eq!(json["stateEnteredEventDetails"]["input"], "{}");
}

#[tokio::test]
async fn stop_aborts_a_parked_execution() {
    let sink = Arc::new(TokenSink::default());
    let executor = Executor::new(sink.clone(), Clock::Virtual);
    let handle =
        executor.start(Arc::new(StateMachine::from_value(&token_def(json!({}))).unwrap()), ExecutionStart::new("s", json!({"v": 0})));
    let (token, _) = next_token(&sink).await;
    handle.stop(Some("Operator".into()), Some("cancelled".into()));
    let out = handle.outcome().await;
    assert_eq!(out.status, ExecutionStatus::Aborted);
    assert_eq!(out.error.as_deref(), Some("Operator"));
    assert_eq!(out.history.last().unwrap().event_type, EventType::ExecutionAborted);
    assert!(executor.send_task_success(&token, json!(1)).is_err(), "the token is released when the execution stops");
}

#[tokio::test]
async fn context_object_describes_the_execution() {
    let machine = Arc::new(StateMachine::from_value(&single(json!({"Type": "Pass", "Parameters": {"c.$": "$$"}, "End": true}))).unwrap());
    let mut start = ExecutionStart::new("exec-9", json!({"k": 1}));
    start.state_machine_name = "release".into();
    let out = Executor::new(Recorder::new(|_| Ok(Value::Null)), Clock::Virtual).run(machine, start).await;
    let c = &out.output.unwrap()["c"];
    assert_eq!(c["Execution"]["Id"], "arn:aws:states:us-east-1:123456789012:execution:release:exec-9");
    assert_eq!(c["Execution"]["Input"], json!({"k": 1}));
    assert_eq!(c["Execution"]["RedriveCount"], 0);
    assert_eq!(c["StateMachine"]["Name"], "release");
    assert_eq!(c["State"]["Name"], "S");
}

#[tokio::test]
async fn a_panic_inside_an_execution_ends_it_failed_with_the_panic_as_cause() {
    let invoker = Recorder::new(|_| panic!("invoker bug"));
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "End": true}));
    let out = run_with(invoker.clone(), def.clone(), json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert_eq!(out.cause.as_deref(), Some("the executor failed internally: panicked: invoker bug"));
    assert_eq!(out.history.last().map(|e| e.event_type), Some(EventType::ExecutionFailed));
    // A started execution, a task of its own, ends the same way.
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let started = Executor::new(invoker, Clock::Virtual).start(machine, ExecutionStart::new("spawned", json!({}))).outcome().await;
    assert_eq!(started.status, ExecutionStatus::Failed);
    assert!(started.cause.unwrap().contains("invoker bug"));
}

#[tokio::test]
async fn context_paths_read_the_item_index_and_execution_input_at_any_depth() {
    let def = single(json!({"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {
            "id.$": "$$.Map.Item.Value.id", "index.$": "$$.Map.Item.Index", "item.$": "$$.Map.Item",
            "release.$": "$$.Execution.Input.release.name", "tags.$": "$$.Execution.Input.items[*].id"
        },
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}));
    let input = json!({"release": {"name": "r1"}, "items": [{"id": "a"}, {"id": "b"}]});
    let out = run(def, input).await;
    assert_eq!(
        out.output,
        Some(json!([
            {"id": "a", "index": 0, "item": {"Index": 0, "Value": {"id": "a"}}, "release": "r1", "tags": ["a", "b"]},
            {"id": "b", "index": 1, "item": {"Index": 1, "Value": {"id": "b"}}, "release": "r1", "tags": ["a", "b"]}
        ]))
    );

    let missing = single(json!({"Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"x.$": "$$.Map.Item.Value.nope"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}));
    let out = run(missing, json!({"items": [{"id": "a"}]})).await;
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(out.cause.unwrap().contains("The JSONPath '$$.Map.Item.Value.nope' specified for the field 'x.$' could not be found"));
}

// Hostile definitions and inputs: each ends in a clear error, promptly, within bounded memory.

/// A definition whose state `L` loops on itself (Next: L); a Choice that never matches first
/// keeps a terminal state reachable, as validation requires.
fn self_loop(looping: Value) -> Value {
    json!({"StartAt": "Start", "States": {
        "Start": {"Type": "Choice", "Choices": [{"Variable": "$.never", "IsPresent": true, "Next": "Done"}], "Default": "L"},
        "L": looping,
        "Done": {"Type": "Succeed"}
    }})
}

/// Runs `def` on the virtual clock and checks that it ended within `secs` of wall time.
async fn run_promptly(def: Value, input: Value, secs: u64) -> ExecutionOutcome {
    let started = std::time::Instant::now();
    let out = run(def, input).await;
    assert!(started.elapsed() < Duration::from_secs(secs), "took {:?}", started.elapsed());
    out
}

#[tokio::test]
async fn an_endless_pass_loop_fails_at_the_history_quota() {
    let out = run_promptly(self_loop(json!({"Type": "Pass", "Next": "L"})), json!({}), 20).await;
    assert_eq!(out.status, ExecutionStatus::Failed);
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert_eq!(out.cause.as_deref(), Some("The execution reached the maximum number of history events (25000)."));
    assert_eq!(out.history.len(), 25_000);
    let last = out.history.last().unwrap();
    assert_eq!(last.event_type, EventType::ExecutionFailed);
    assert_eq!(last.previous_event_id, 24_999);
}

#[tokio::test]
async fn an_endless_choice_loop_inside_a_parallel_branch_fails_at_the_history_quota() {
    let looping = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.never", "IsPresent": true, "Next": "Out"}], "Default": "C"},
        "Out": {"Type": "Succeed"}
    }});
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [looping, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": true}}}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}, "Caught": {"Type": "Succeed"}}});
    let out = run_promptly(def, json!({}), 20).await;
    assert_eq!(out.status, ExecutionStatus::Failed, "the quota is not an error a Catch can handle");
    assert!(out.cause.unwrap().contains("maximum number of history events (25000)"));
    assert_eq!(out.history.len(), 25_000);
}

#[tokio::test]
async fn a_loop_that_wraps_its_input_deeper_each_time_fails_before_the_stack_does() {
    let def = self_loop(json!({"Type": "Pass", "Parameters": {"a.$": "$"}, "Next": "L"}));
    let out = run_promptly(def, json!({}), 20).await;
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(out.cause.as_deref().unwrap().ends_with("The state's output nests more than 512 levels deep."), "{:?}", out.cause);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_seconds_ends_a_loop_that_never_awaits() {
    // Each pass is slow (ArrayUnique over 2,000 distinct items) but never awaits: the execution's
    // deadline is still seen, long before the history quota.
    let items: Vec<u32> = (0..2_000).collect();
    let mut def =
        self_loop(json!({"Type": "Pass", "Parameters": {"u.$": "States.ArrayUnique($.items)"}, "ResultPath": "$.u", "Next": "L"}));
    def["TimeoutSeconds"] = json!(1);
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let started = std::time::Instant::now();
    let out = Executor::new(Recorder::new(|_| Ok(Value::Null)), Clock::Real)
        .run(machine, ExecutionStart::new("t", json!({"items": items})))
        .await;
    assert_eq!(out.status, ExecutionStatus::TimedOut);
    assert_eq!(out.error.as_deref(), Some("States.Timeout"));
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_eq!(out.history.last().unwrap().event_type, EventType::ExecutionTimedOut);
}

#[tokio::test]
async fn waits_past_the_maximum_execution_time_time_out_on_the_virtual_clock() {
    for wait in [
        json!({"Seconds": 1_000_000_000_000_000u64}),
        json!({"SecondsPath": "$.s"}),
        json!({"TimestampPath": "$.t"}),
        json!({"Timestamp": "9999-12-31T23:59:59Z"}),
    ] {
        let mut state = json!({"Type": "Wait", "End": true});
        state.as_object_mut().unwrap().extend(wait.as_object().unwrap().clone());
        let out = run_promptly(single(state), json!({"s": i64::MAX, "t": "9999-12-31T23:59:59Z"}), 5).await;
        assert_eq!(out.status, ExecutionStatus::TimedOut, "{wait}");
        let ended = out.history.last().unwrap();
        assert_eq!(ended.event_type, EventType::ExecutionTimedOut);
        assert_eq!((ended.timestamp - out.history[0].timestamp).num_seconds(), 365 * 24 * 3600, "{wait}");
    }
}

#[tokio::test]
async fn retries_without_end_time_out_on_the_virtual_clock() {
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 99_999_999, "BackoffRate": 1000, "MaxAttempts": 99_999_999}]}));
    let started = std::time::Instant::now();
    let out = run_with(Recorder::new(|_| Err(TaskFailure::new("E", "again"))), def, json!({})).await;
    assert_eq!(out.status, ExecutionStatus::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_huge_wait_on_the_real_clock_waits_without_panicking_and_can_be_stopped() {
    let executor = Executor::new(Recorder::new(|_| Ok(Value::Null)), Clock::Real);
    let def = single(json!({"Type": "Wait", "SecondsPath": "$.s", "End": true}));
    let handle = executor.start(Arc::new(StateMachine::from_value(&def).unwrap()), ExecutionStart::new("w", json!({"s": i64::MAX})));
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.stop(None, None);
    assert_eq!(handle.outcome().await.status, ExecutionStatus::Aborted);
}

#[tokio::test]
async fn a_huge_task_timeout_path_is_no_deadline_at_all() {
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.t", "End": true}));
    let out = run(def, json!({"t": u64::MAX})).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{:?}", out.cause);
}

#[tokio::test]
async fn array_range_at_the_integer_bounds_fails_cleanly() {
    for (args, ok) in [
        ("-9223372036854775808, 9223372036854775807, 1", false),
        ("9223372036854775807, -9223372036854775808, -1", false),
        ("-9223372036854775808, 9223372036854775807, 9223372036854775807", true),
        ("1e300, -1e300, -1", false),
        ("9223372036854775806, 9223372036854775807, 1", true),
    ] {
        let def = single(json!({"Type": "Pass", "Parameters": {"r.$": format!("States.ArrayRange({args})")}, "End": true}));
        let out = run(def, json!({})).await;
        if ok {
            assert_eq!(out.status, ExecutionStatus::Succeeded, "{args}: {:?}", out.cause);
        } else {
            assert_eq!(out.error.as_deref(), Some("States.IntrinsicFailure"), "{args}");
            assert!(out.cause.unwrap().contains("more than 1000 elements"), "{args}");
        }
    }
}

#[test]
fn deeply_nested_paths_and_intrinsics_are_definition_errors() {
    let parens = format!("$.a[?({}@.x == 1{})]", "(".repeat(2_000), ")".repeat(2_000));
    let nots = format!("$.a[?({}@.x)]", "!".repeat(100_000));
    let filters = format!("${}", "[?(@.a".repeat(2_000)) + &")]".repeat(2_000);
    let calls = format!("{}1{}", "States.Array(".repeat(5_000), ")".repeat(5_000));
    for (field, text, limit) in [
        ("x.$", parens, "filters nest more than 64 levels deep"),
        ("x.$", nots, "filters nest more than 64 levels deep"),
        ("x.$", filters, "filters nest more than 64 levels deep"),
        ("x.$", calls, "calls nest more than 32 levels deep"),
    ] {
        let started = std::time::Instant::now();
        let def = single(json!({"Type": "Pass", "Parameters": {field: text}, "End": true}));
        let errs = StateMachine::from_value(&def).unwrap_err();
        assert!(errs.to_string().contains(limit), "{}", &errs.to_string()[..200]);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn long_paths_and_deep_documents_are_walked_without_recursion() {
    // 20,000 segments after a wildcard: selected level by level.
    let path = format!("$[*]{}", ".a".repeat(20_000));
    let def = single(json!({"Type": "Pass", "Parameters": {"x.$": path}, "End": true}));
    let out = run(def, json!([{"b": 1}])).await;
    assert_eq!(out.output, Some(json!({"x": []})));
}

/// `(type, id, previousEventId)` of every event, for comparing with AWS's recorded histories.
fn chain(history: &[HistoryEvent]) -> Vec<(String, u64, u64)> {
    history.iter().map(|e| (e.event_type.as_str().to_owned(), e.id, e.previous_event_id)).collect()
}

fn ev(t: &str, id: u64, prev: u64) -> (String, u64, u64) {
    (t.to_owned(), id, prev)
}

#[tokio::test]
async fn map_history_chains_as_aws_records_it() {
    // As AWS recorded a Map whose iterations ran one after the other (LocalStack's
    // test_map_state_break_condition snapshot): each MapIterationStarted follows the previous
    // iteration's last state event, MapIteration{Succeeded,Failed} hang off that event, and
    // MapStateFailed follows the failing iteration's last state event.
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 1, "End": true,
        "ItemProcessor": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericEquals": 3, "Next": "Break"}], "Default": "P"},
            "P": {"Type": "Pass", "End": true},
            "Break": {"Type": "Fail", "Error": "SomeFailure"}}}}}});
    let out = run(def, json!([1, 3])).await;
    assert_eq!(
        chain(&out.history),
        vec![
            ev("ExecutionStarted", 1, 0),
            ev("MapStateEntered", 2, 0),
            ev("MapStateStarted", 3, 2),
            ev("MapIterationStarted", 4, 3),
            ev("ChoiceStateEntered", 5, 4),
            ev("ChoiceStateExited", 6, 5),
            ev("PassStateEntered", 7, 6),
            ev("PassStateExited", 8, 7),
            ev("MapIterationSucceeded", 9, 8),
            ev("MapIterationStarted", 10, 8),
            ev("ChoiceStateEntered", 11, 10),
            ev("ChoiceStateExited", 12, 11),
            ev("FailStateEntered", 13, 12),
            ev("MapIterationFailed", 14, 13),
            ev("MapStateFailed", 15, 13),
            ev("ExecutionFailed", 16, 15),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_iterations_are_recorded_when_they_start_under_max_concurrency() {
    let def = single(json!({"Type": "Map", "MaxConcurrency": 2, "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}}}));
    let out = tokio::time::timeout(Duration::from_secs(10), run_with(gate(2), def, json!([1, 2, 3, 4]))).await.unwrap();
    assert_eq!(out.status, ExecutionStatus::Succeeded);
    // The third iteration starts only after one of the first two ends.
    let started: Vec<u64> = of_type(&out.history, EventType::MapIterationStarted).iter().map(|e| e.id).collect();
    let first_end = out.history.iter().find(|e| e.event_type == EventType::MapIterationSucceeded).unwrap().id;
    assert!(started[1] < first_end && started[2] > first_end, "{started:?}, first end {first_end}");
}

#[tokio::test]
async fn parallel_history_chains_as_aws_records_it() {
    // As AWS recorded test_parallel_state (LocalStack's snapshot): ParallelStateSucceeded follows the
    // last event of the branch that ended last, ParallelStateExited follows it.
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}]}}});
    let out = run(def, json!({})).await;
    // Branches that never await run one after the other here, so the second starts after the first
    // ended, as a Map's iterations do.
    assert_eq!(
        chain(&out.history),
        vec![
            ev("ExecutionStarted", 1, 0),
            ev("ParallelStateEntered", 2, 0),
            ev("ParallelStateStarted", 3, 2),
            ev("PassStateEntered", 4, 3),
            ev("PassStateExited", 5, 4),
            ev("PassStateEntered", 6, 5),
            ev("PassStateExited", 7, 6),
            ev("ParallelStateSucceeded", 8, 7),
            ev("ParallelStateExited", 9, 8),
            ev("ExecutionSucceeded", 10, 9),
        ]
    );
}

#[tokio::test]
async fn context_paths_are_read_wherever_aws_reads_a_path() {
    // InputPath and OutputPath.
    let out = run(single(json!({"Type": "Pass", "InputPath": "$$.Execution.Input.a", "End": true})), json!({"a": {"b": 1}})).await;
    assert_eq!(out.output, Some(json!({"b": 1})));
    let out = run(single(json!({"Type": "Pass", "OutputPath": "$$.State.Name", "End": true})), json!({})).await;
    assert_eq!(out.output, Some(json!("S")));
    // ItemsPath, and ItemSelector reading the item.
    let def = single(json!({"Type": "Map", "ItemsPath": "$$.Execution.Input.items", "ItemSelector": {"v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}));
    assert_eq!(run(def, json!({"items": [1, 2]})).await.output, Some(json!([{"v": 1}, {"v": 2}])));
    // SecondsPath and TimestampPath.
    let out = run(single(json!({"Type": "Wait", "SecondsPath": "$$.Execution.Input.s", "End": true})), json!({"s": 60})).await;
    assert_eq!((out.history.last().unwrap().timestamp - out.history[0].timestamp).num_seconds(), 60);
    let def = single(json!({"Type": "Wait", "TimestampPath": "$$.Execution.Input.t", "End": true}));
    assert_eq!(run(def, json!({"t": "2016-03-14T01:59:00Z"})).await.status, ExecutionStatus::Succeeded);
    // TimeoutSecondsPath and HeartbeatSecondsPath.
    let def = single(json!({"Type": "Task", "Resource": LAMBDA, "TimeoutSecondsPath": "$$.Execution.Input.t",
        "HeartbeatSecondsPath": "$$.Execution.Input.h", "End": true}));
    assert_eq!(run(def, json!({"t": 10, "h": 5})).await.status, ExecutionStatus::Succeeded);
    // Choice Variable and ...Path comparisons.
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$$.Execution.Input.x", "NumericEqualsPath": "$$.Execution.Input.y", "Next": "Yes"}], "Default": "No"},
        "Yes": {"Type": "Succeed"}, "No": {"Type": "Fail"}}});
    assert_eq!(run(def, json!({"x": 2, "y": 2})).await.status, ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn a_context_path_that_matches_nothing_fails_like_any_path() {
    let out = run(single(json!({"Type": "Pass", "InputPath": "$$.Execution.Input.nope", "End": true})), json!({})).await;
    assert_eq!(out.error.as_deref(), Some("States.Runtime"));
    assert!(out.cause.unwrap().ends_with("Invalid path '$$.Execution.Input.nope' : No results for path: $$['Execution']['Input']['nope']"));
}

#[test]
fn result_path_cannot_be_a_context_path() {
    let errs = StateMachine::from_value(&single(json!({"Type": "Pass", "ResultPath": "$$.Execution.Input", "End": true}))).unwrap_err();
    assert_eq!(errs.0[0].pointer, "/States/S/ResultPath");
    assert!(errs.0[0].message.contains("'$$'"), "{}", errs.0[0].message);
}

/// A string of `bytes` bytes of UTF-8 (two per 'é'), so the quota counts bytes, not characters.
fn text_of(bytes: usize) -> String {
    "é".repeat(bytes / 2)
}

#[tokio::test]
async fn results_and_outputs_over_256_kib_fail_with_data_limit_exceeded() {
    let big = text_of(262_144);
    // A task's result: States.ALL does not catch it, an explicit entry does.
    let task = |catch: &str| {
        single(json!({"Type": "Task", "Resource": LAMBDA, "End": true,
            "Catch": [{"ErrorEquals": [catch], "ResultPath": "$.err", "Next": "Caught"}]}))
    };
    let mut def = task("States.ALL");
    def["States"]["Caught"] = json!({"Type": "Succeed"});
    let answer = big.clone();
    let out = run_with(Recorder::new(move |_| Ok(json!(answer))), def, json!({})).await;
    assert_eq!(out.error.as_deref(), Some("States.DataLimitExceeded"));
    assert_eq!(
        out.cause.as_deref(),
        Some("The state/task 'S' returned a result with a size exceeding the maximum number of bytes service limit.")
    );
    let mut def = task("States.DataLimitExceeded");
    def["States"]["Caught"] = json!({"Type": "Succeed"});
    let answer = big.clone();
    let out = run_with(Recorder::new(move |_| Ok(json!(answer))), def, json!({})).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);

    // A state's output, {"a":"<s>","b":"<s>"}, is 15 bytes plus twice the text: 262,135 bytes passes,
    // 262,147 fails.
    let half = text_of(131_060);
    let def = single(json!({"Type": "Pass", "Parameters": {"a.$": "$.s", "b.$": "$.s"}, "End": true}));
    assert_eq!(run(def.clone(), json!({"s": half})).await.status, ExecutionStatus::Succeeded);
    let out = run(def, json!({"s": format!("{half}ééé")})).await;
    assert_eq!(out.error.as_deref(), Some("States.DataLimitExceeded"));
}

#[tokio::test]
async fn execution_input_over_256_kib_fails_at_start_unless_quotas_are_off() {
    let def = single(json!({"Type": "Pass", "End": true}));
    let input = json!({"s": text_of(262_144)});
    let out = run(def.clone(), input.clone()).await;
    assert_eq!(out.error.as_deref(), Some("States.DataLimitExceeded"));
    assert_eq!(out.history.len(), 2, "ExecutionStarted, ExecutionFailed");

    let executor = Executor::new(Recorder::new(|_| Ok(Value::Null)), Clock::Virtual).with_quotas(false);
    let out = executor.run(Arc::new(StateMachine::from_value(&def).unwrap()), ExecutionStart::new("q", input)).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quotas_timeout_seconds_still_ends_an_endless_pass_loop() {
    let mut def = self_loop(json!({"Type": "Pass", "Next": "L"}));
    def["TimeoutSeconds"] = json!(1);
    let executor = Executor::new(Recorder::new(|_| Ok(Value::Null)), Clock::Real).with_quotas(false);
    let started = std::time::Instant::now();
    let out = executor.run(Arc::new(StateMachine::from_value(&def).unwrap()), ExecutionStart::new("q", json!({}))).await;
    assert_eq!(out.status, ExecutionStatus::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(out.history.len() > 25_000, "no history quota: {} events", out.history.len());
}

#[tokio::test]
async fn a_resumed_execution_starts_at_the_named_state_with_its_input_and_keeps_the_execution_input() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": LAMBDA, "Next": "B"},
        "B": {"Type": "Task", "Resource": LAMBDA, "Parameters": {"state.$": "$", "execution.$": "$$.Execution.Input"}, "End": true}}});
    let machine = Arc::new(StateMachine::from_value(&def).expect("valid definition"));
    let recorder = Recorder::new(|c| Ok(c.payload.clone()));
    let start = ExecutionStart {
        resume_at: Some(ResumeAt { state: "B".into(), input: json!({"from": "journal"}) }),
        ..ExecutionStart::new("resumed", json!({"signal": 1}))
    };
    let out = Executor::new(recorder.clone(), Clock::Virtual).run(machine.clone(), start).await;
    assert_eq!(out.status, ExecutionStatus::Succeeded, "{out:?}");
    let calls = recorder.calls();
    assert_eq!(calls.iter().map(|c| c.state_name.as_str()).collect::<Vec<_>>(), ["B"], "A is not run again");
    assert_eq!(out.output, Some(json!({"state": {"from": "journal"}, "execution": {"signal": 1}})));

    let nowhere =
        ExecutionStart { resume_at: Some(ResumeAt { state: "Inner".into(), input: json!({}) }), ..ExecutionStart::new("lost", json!({})) };
    let out = Executor::new(recorder, Clock::Virtual).run(machine, nowhere).await;
    assert_eq!((out.status, out.error.as_deref()), (ExecutionStatus::Failed, Some("States.Runtime")));
    assert!(out.cause.unwrap().contains("'Inner'"));
}

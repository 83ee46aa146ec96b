//! Running executions: the state loop, I/O processing, Retry/Catch, tasks and task tokens, Map and Parallel.
use crate::choice::parse_timestamp;
use crate::definition::{
    Amount, Catcher, FailField, IoPath, Kind, MapSpec, ParallelSpec, Program, Recovery, ResultPath, Retrier, State, StateMachine, TaskSpec,
    Transition, WaitSpec,
};
use crate::env::{ContextSource, Env, EvalError, compact};
use crate::errors;
use crate::history::{EventDetails, EventType, HistoryEvent, Log, MoreDetails};
use crate::jsonpath::JsonPath;
use crate::limits;
use crate::payload::{Dynamic, Template};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, oneshot};

/// Up to this many events (~1.5 MB) are reserved up front for an execution's history.
const HISTORY_HINT_CAP: usize = 16_384;

/// A line of execution lets the others run, and checks the execution's deadline, every this many
/// transitions: a loop of states that never await (Pass, Choice) would otherwise hold its worker and
/// never see TimeoutSeconds expire.
const TRANSITIONS_PER_TURN: u32 = 64;

/// What a Task state asks the embedder to do.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    /// The Resource, without a `.waitForTaskToken` suffix.
    pub resource: String,
    /// The function for Lambda resources: the ARN of an `arn:aws:lambda:...:function:...` resource, or the
    /// `FunctionName` parameter of `arn:aws:states:::lambda:invoke`.
    pub function: Option<String>,
    /// The effective input (after InputPath and Parameters); for `lambda:invoke`, the `Payload` parameter.
    pub payload: Value,
    pub state_name: String,
    /// Set for `.waitForTaskToken` resources: answer with [`Executor::send_task_success`] and friends.
    pub task_token: Option<String>,
    pub execution_name: String,
    pub execution_arn: String,
    /// How many times this state has been retried so far.
    pub retry_count: u64,
}

/// A task's failure: becomes an ASL error with this name and cause, as Lambda's errorType/errorMessage do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub error: String,
    pub cause: Option<String>,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> TaskFailure {
        TaskFailure { error: error.into(), cause: Some(cause.into()) }
    }
}

/// Runs the work of Task states; implemented by the embedder.
#[async_trait::async_trait]
pub trait TaskInvoker: Send + Sync {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure>;
}

/// Where time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time: Wait states and retry intervals really wait.
    Real,
    /// Zero wall time: Wait states and retry intervals complete at once and advance a virtual clock, which
    /// history timestamps and `$$` times show. Each branch and iteration keeps its own virtual time and a
    /// Parallel or Map ends at the latest of them, as if they ran side by side. Task TimeoutSeconds and
    /// HeartbeatSeconds still bound the embedder's real work in wall-clock time.
    Virtual,
    /// Wall-clock time with every Wait, retry interval and the execution's TimeoutSeconds divided by this
    /// factor: executions that wait on each other (a lock, a callback) really wait, only faster. For tests.
    /// Task timeouts and heartbeats stay unscaled, as on the virtual clock.
    Scaled(u32),
}

impl Clock {
    /// How long `d` of definition time lasts on this clock; `None` on the virtual clock.
    fn wall(self, d: Duration) -> Option<Duration> {
        match self {
            Clock::Real => Some(d),
            Clock::Scaled(factor) => Some(d / factor.max(1)),
            Clock::Virtual => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub history: Vec<HistoryEvent>,
}

/// Parameters of one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionStart {
    pub name: String,
    pub input: Value,
    pub state_machine_name: String,
    pub region: String,
    pub account_id: String,
    /// `$$.Execution.RoleArn`; defaults to a role in `account_id`.
    pub role_arn: Option<String>,
}

impl ExecutionStart {
    pub fn new(name: impl Into<String>, input: Value) -> ExecutionStart {
        ExecutionStart {
            name: name.into(),
            input,
            state_machine_name: "StateMachine".into(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            role_arn: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskTokenError {
    #[error("Task does not exist anymore: no execution is waiting for this task token")]
    TaskDoesNotExist,
}

type TokenReply = Result<Value, TaskFailure>;

struct TokenSlot {
    reply: oneshot::Sender<TokenReply>,
    heartbeat: Arc<Notify>,
}

struct Inner {
    invoker: Arc<dyn TaskInvoker>,
    clock: Clock,
    tokens: Mutex<HashMap<String, TokenSlot>>,
}

/// Runs executions; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

/// A running execution.
pub struct ExecutionHandle {
    exec: Arc<Execution>,
    task: tokio::task::JoinHandle<ExecutionOutcome>,
}

impl ExecutionHandle {
    pub fn execution_arn(&self) -> &str {
        &self.exec.arn
    }

    /// The events so far and a receiver of every later event, with nothing missed or repeated in between.
    pub fn subscribe(&self) -> (Vec<HistoryEvent>, broadcast::Receiver<HistoryEvent>) {
        self.exec.log.subscribe()
    }

    /// Stops the execution (StopExecution): it ends ABORTED with this error and cause.
    pub fn stop(&self, error: Option<String>, cause: Option<String>) {
        let mut stopped = self.exec.stopped.lock().unwrap_or_else(|p| p.into_inner());
        if stopped.is_none() && !self.task.is_finished() {
            *stopped = Some((error, cause));
            self.task.abort();
        }
    }

    /// Waits for the execution to end.
    pub async fn outcome(self) -> ExecutionOutcome {
        match self.task.await {
            Ok(outcome) => outcome,
            Err(join) if join.is_cancelled() => {
                let (error, cause) = self.exec.stopped.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
                self.exec.ended_abnormally(ExecutionStatus::Aborted, EventType::ExecutionAborted, error, cause)
            }
            Err(join) => self.exec.failed_internally(&join),
        }
    }
}

impl Executor {
    pub fn new(invoker: Arc<dyn TaskInvoker>, clock: Clock) -> Executor {
        Executor { inner: Arc::new(Inner { invoker, clock, tokens: Mutex::new(HashMap::new()) }) }
    }

    fn execution(&self, machine: Arc<StateMachine>, start: ExecutionStart) -> Arc<Execution> {
        let sm_arn = format!("arn:aws:states:{}:{}:stateMachine:{}", start.region, start.account_id, start.state_machine_name);
        let arn = format!("arn:aws:states:{}:{}:execution:{}:{}", start.region, start.account_id, start.state_machine_name, start.name);
        let role_arn = start.role_arn.unwrap_or_else(|| format!("arn:aws:iam::{}:role/StepFunctionsExecutionRole", start.account_id));
        let started = Utc::now();
        let log = Log::new(machine.history_hint.load(Ordering::Relaxed), limits::HISTORY_EVENTS);
        let limit = Duration::from_secs(machine.timeout_seconds.unwrap_or(u64::MAX).min(limits::MAX_EXECUTION_SECONDS));
        let clock = self.inner.clock;
        Arc::new(Execution {
            inner: self.inner.clone(),
            machine,
            arn,
            name: start.name,
            region: start.region,
            input: Arc::new(start.input),
            started,
            started_text: started.to_rfc3339_opts(SecondsFormat::Millis, true),
            state_machine_arn: sm_arn,
            state_machine_name: start.state_machine_name,
            role_arn,
            log,
            stopped: Mutex::new(None),
            deadline: clock.wall(limit).map(after),
            virtual_limit: (clock == Clock::Virtual).then_some(limit),
            halt: OnceLock::new(),
            halted: Notify::new(),
        })
    }

    /// Starts an execution as its own task on the current tokio runtime: it can be watched and stopped.
    pub fn start(&self, machine: Arc<StateMachine>, start: ExecutionStart) -> ExecutionHandle {
        let exec = self.execution(machine, start);
        let task = tokio::spawn(exec.clone().run());
        ExecutionHandle { exec, task }
    }

    /// Runs an execution to its end inside the caller's task (nothing to watch or stop, so no task of
    /// its own to spawn and wake).
    pub async fn run(&self, machine: Arc<StateMachine>, start: ExecutionStart) -> ExecutionOutcome {
        let exec = self.execution(machine, start);
        match AssertUnwindSafe(exec.clone().run()).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => exec.failed_internally(&panic_message(panic.as_ref())),
        }
    }

    fn take_token(&self, token: &str) -> Result<TokenSlot, TaskTokenError> {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(token).ok_or(TaskTokenError::TaskDoesNotExist)
    }

    pub fn send_task_success(&self, token: &str, output: Value) -> Result<(), TaskTokenError> {
        self.take_token(token)?.reply.send(Ok(output)).map_err(|_| TaskTokenError::TaskDoesNotExist)
    }

    pub fn send_task_failure(&self, token: &str, error: &str, cause: Option<&str>) -> Result<(), TaskTokenError> {
        let failure = TaskFailure { error: error.to_owned(), cause: cause.map(str::to_owned) };
        self.take_token(token)?.reply.send(Err(failure)).map_err(|_| TaskTokenError::TaskDoesNotExist)
    }

    pub fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        let tokens = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let slot = tokens.get(token).ok_or(TaskTokenError::TaskDoesNotExist)?;
        slot.heartbeat.notify_one();
        Ok(())
    }
}

/// An ASL error on its way to Retry, Catch or the execution's end.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    error: Option<String>,
    cause: Option<String>,
}

impl Failure {
    fn new(error: &str, cause: String) -> Failure {
        Failure { error: Some(error.to_owned()), cause: Some(cause) }
    }

    fn name(&self) -> &str {
        self.error.as_deref().unwrap_or_default()
    }

    fn as_value(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }
}

/// Shared by every branch of one execution.
struct Execution {
    inner: Arc<Inner>,
    machine: Arc<StateMachine>,
    arn: String,
    name: String,
    region: String,
    input: Arc<Value>,
    started: DateTime<Utc>,
    started_text: String,
    state_machine_arn: String,
    state_machine_name: String,
    role_arn: String,
    log: Log,
    stopped: Mutex<Option<(Option<String>, Option<String>)>>,
    /// When the execution times out, on a wall clock.
    deadline: Option<tokio::time::Instant>,
    /// How much virtual time the execution may take, on the virtual clock.
    virtual_limit: Option<Duration>,
    /// Why a line of execution ended the whole execution, and its virtual time then.
    halt: OnceLock<(Halt, Duration)>,
    halted: Notify,
}

/// Ends an execution from inside any of its branches, past Catch and Retry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Halt {
    TimedOut,
    HistoryFull,
}

type Run<'p> = Pin<Box<dyn Future<Output = (Thread, Result<Arc<Value>, Failure>)> + Send + 'p>>;

/// One line of execution (the main flow, a branch or an iteration): its last event and its virtual time.
struct Thread {
    exec: Arc<Execution>,
    previous: u64,
    virtual_elapsed: Duration,
}

impl Thread {
    fn now(&self) -> DateTime<Utc> {
        match self.exec.inner.clock {
            Clock::Real | Clock::Scaled(_) => Utc::now(),
            // Saturates: without quotas a virtual clock may run past the last date chrono knows.
            Clock::Virtual => chrono::TimeDelta::from_std(self.virtual_elapsed)
                .ok()
                .and_then(|d| self.exec.started.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    fn record(&mut self, event_type: EventType, details: Option<EventDetails>) -> u64 {
        self.previous = self.exec.log.append(self.previous, self.now(), event_type, details);
        self.previous
    }

    async fn sleep(&mut self, d: Duration) {
        match self.exec.inner.clock.wall(d) {
            Some(wall) => tokio::time::sleep(wall).await,
            None => {
                self.virtual_elapsed = self.virtual_elapsed.saturating_add(d);
                if self.exec.virtual_limit.is_some_and(|limit| self.virtual_elapsed > limit) {
                    self.halt(Halt::TimedOut).await;
                }
                // Let other executions and branches run, as a real wait would.
                take_turn().await;
            }
        }
    }

    /// Ends the execution: records why and waits for the execution to drop this line of it.
    async fn halt(&self, why: Halt) {
        let at = match (why, self.exec.virtual_limit) {
            (Halt::TimedOut, Some(limit)) => limit,
            _ => self.virtual_elapsed,
        };
        // The first reason stands; the execution ends at once on it.
        let _ = self.exec.halt.set((why, at));
        self.exec.halted.notify_one();
        std::future::pending::<()>().await
    }

    /// Lets other executions and branches run, after checking the execution's limits.
    async fn take_turn(&self) {
        if self.exec.deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            self.halt(Halt::TimedOut).await;
        }
        take_turn().await
    }

    fn child(&self) -> Thread {
        Thread { exec: self.exec.clone(), previous: self.previous, virtual_elapsed: self.virtual_elapsed }
    }
}

/// What the running state knows about itself: for `$$.State`, `$$.Task`, `$$.Map` and error causes.
struct StateRun<'a> {
    state: &'a State,
    entered_id: u64,
    entered_at: DateTime<Utc>,
    retry_count: u64,
    task_token: Option<String>,
    map_item: Option<(usize, Value)>,
}

impl StateRun<'_> {
    /// States.Runtime and friends carry the state and the event it entered at, as AWS writes them.
    fn fail(&self, e: EvalError) -> Failure {
        Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
                self.state.name, self.entered_id, e.message
            ),
        )
    }

    fn runtime(&self, message: String) -> Failure {
        self.fail(EvalError::runtime(message))
    }
}

impl Execution {
    /// An end the state loop did not reach: stopped, or a bug in the executor.
    fn ended_abnormally(
        &self,
        status: ExecutionStatus,
        event_type: EventType,
        error: Option<String>,
        cause: Option<String>,
    ) -> ExecutionOutcome {
        let details = EventDetails::failure(error.clone(), cause.clone());
        self.log.append(0, Utc::now(), event_type, Some(details));
        ExecutionOutcome { status, output: None, error, cause, history: self.log.take() }
    }

    fn failed_internally(&self, why: &dyn std::fmt::Display) -> ExecutionOutcome {
        let cause = format!("the executor failed internally: {why}");
        self.ended_abnormally(ExecutionStatus::Failed, EventType::ExecutionFailed, Some(errors::RUNTIME.to_owned()), Some(cause))
    }

    fn failed(&self, th: &mut Thread, f: Failure) -> ExecutionOutcome {
        th.record(EventType::ExecutionFailed, Some(EventDetails::failure(f.error.clone(), f.cause.clone())));
        ExecutionOutcome { status: ExecutionStatus::Failed, output: None, error: f.error, cause: f.cause, history: vec![] }
    }

    async fn run(self: Arc<Self>) -> ExecutionOutcome {
        let mut th = Thread { exec: self.clone(), previous: 0, virtual_elapsed: Duration::ZERO };
        let details = EventDetails {
            input: Some(self.input.clone()),
            ..EventDetails::more(MoreDetails { role_arn: Some(self.role_arn.clone()), ..Default::default() })
        };
        th.record(EventType::ExecutionStarted, Some(details));
        let run = run_program(th, &self.machine.program, self.input.clone());
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let ended = tokio::select! {
            biased;
            _ = self.halted.notified() => None,
            _ = deadline => {
                let _ = self.halt.set((Halt::TimedOut, Duration::ZERO));
                None
            }
            ended = run => Some(ended),
        };
        let outcome = match ended {
            Some((mut th, Ok(output))) => {
                th.record(EventType::ExecutionSucceeded, Some(EventDetails { output: Some(output.clone()), ..Default::default() }));
                let output = Some(Arc::unwrap_or_clone(output));
                ExecutionOutcome { status: ExecutionStatus::Succeeded, output, error: None, cause: None, history: vec![] }
            }
            Some((mut th, Err(f))) => self.failed(&mut th, f),
            None => {
                let (why, virtual_elapsed) = self.halt.get().copied().unwrap_or((Halt::TimedOut, Duration::ZERO));
                let mut th = Thread { exec: self.clone(), previous: self.log.last_id(), virtual_elapsed };
                match why {
                    Halt::TimedOut => {
                        let error = Some(errors::TIMEOUT.to_owned());
                        th.record(EventType::ExecutionTimedOut, Some(EventDetails::failure(error.clone(), None)));
                        ExecutionOutcome { status: ExecutionStatus::TimedOut, output: None, error, cause: None, history: vec![] }
                    }
                    Halt::HistoryFull => {
                        let cause = format!("The execution reached the maximum number of history events ({}).", limits::HISTORY_EVENTS);
                        self.failed(&mut th, Failure::new(errors::RUNTIME, cause))
                    }
                }
            }
        };
        let history = self.log.take();
        self.machine.history_hint.fetch_max(history.len().min(HISTORY_HINT_CAP), Ordering::Relaxed);
        ExecutionOutcome { history, ..outcome }
    }
}

/// `$$` as the running state sees it.
struct StateContext<'a> {
    exec: &'a Execution,
    run: &'a StateRun<'a>,
}

impl ContextSource for StateContext<'_> {
    fn build(&self, part: Option<&str>) -> Value {
        let (exec, run) = (self.exec, self.run);
        let wanted = |key: &str| part.is_none_or(|p| p == key);
        let mut ctx = Map::new();
        if wanted("Execution") {
            let execution = json!({
                "Id": exec.arn,
                "Input": exec.input.as_ref(),
                "StartTime": exec.started_text,
                "Name": exec.name,
                "RoleArn": exec.role_arn,
                "RedriveCount": 0,
            });
            ctx.insert("Execution".into(), execution);
        }
        if wanted("State") {
            let entered = run.entered_at.to_rfc3339_opts(SecondsFormat::Millis, true);
            let mut state = json!({"EnteredTime": entered, "Name": run.state.name.as_ref()});
            // AWS shows RetryCount only in states that can be retried.
            if matches!(run.state.kind, Kind::Task(_) | Kind::Parallel(_) | Kind::Map(_)) {
                state["RetryCount"] = json!(run.retry_count);
            }
            ctx.insert("State".into(), state);
        }
        if wanted("StateMachine") {
            ctx.insert("StateMachine".into(), json!({"Id": exec.state_machine_arn, "Name": exec.state_machine_name}));
        }
        if let Some(token) = run.task_token.as_ref().filter(|_| wanted("Task")) {
            ctx.insert("Task".into(), json!({"Token": token}));
        }
        if let Some((index, value)) = run.map_item.as_ref().filter(|_| wanted("Map")) {
            ctx.insert("Map".into(), json!({"Item": {"Index": index, "Value": value}}));
        }
        Value::Object(ctx)
    }

    /// The two document-valued fields, the execution input and the Map item, are read where they are
    /// instead of being copied into a context object and then out of it (and the item's index beside it).
    fn query(&self, path: &JsonPath) -> Option<Value> {
        if path.is_definite() {
            match (path.name_at(0), path.name_at(1), path.name_at(2)) {
                (Some("Execution"), Some("Input"), _) => return path.query_below(&self.exec.input, 2),
                (Some("Map"), Some("Item"), Some(field @ ("Value" | "Index"))) => {
                    if let Some((index, item)) = &self.run.map_item {
                        return match field {
                            "Value" => path.query_below(item, 3),
                            _ => path.query_below(&Value::from(*index), 3),
                        };
                    }
                }
                _ => {}
            }
        }
        path.query(&self.build(path.first_name()))
    }
}

fn entered_type(kind: &Kind) -> (EventType, EventType) {
    match kind {
        Kind::Pass { .. } => (EventType::PassStateEntered, EventType::PassStateExited),
        Kind::Task(_) => (EventType::TaskStateEntered, EventType::TaskStateExited),
        Kind::Choice { .. } => (EventType::ChoiceStateEntered, EventType::ChoiceStateExited),
        Kind::Wait(_) => (EventType::WaitStateEntered, EventType::WaitStateExited),
        Kind::Succeed => (EventType::SucceedStateEntered, EventType::SucceedStateExited),
        Kind::Fail { .. } => (EventType::FailStateEntered, EventType::FailStateEntered),
        Kind::Parallel(_) => (EventType::ParallelStateEntered, EventType::ParallelStateExited),
        Kind::Map(_) => (EventType::MapStateEntered, EventType::MapStateExited),
    }
}

/// Borrows the program: branches and iterations run inside their execution's task, so no program is
/// shared between threads through a reference count each of them bumps.
fn run_program(mut th: Thread, program: &Program, mut input: Arc<Value>) -> Run<'_> {
    Box::pin(async move {
        let mut index = program.start;
        let mut transitions = 0u32;
        loop {
            if th.exec.log.is_full() {
                th.halt(Halt::HistoryFull).await;
            }
            transitions = transitions.wrapping_add(1);
            if transitions.is_multiple_of(TRANSITIONS_PER_TURN) {
                th.take_turn().await;
            }
            let state = &program.states[index];
            let (entered, exited) = entered_type(&state.kind);
            let entered_at = th.now();
            let details = EventDetails { name: Some(state.name.clone()), input: Some(input.clone()), ..Default::default() };
            let entered_id = th.record(entered, Some(details));
            let mut run = StateRun { state, entered_id, entered_at, retry_count: 0, task_token: None, map_item: None };
            match run_state(&mut th, &mut run, input).await {
                Ok((output, next)) => {
                    let details = EventDetails { name: Some(state.name.clone()), output: Some(output.clone()), ..Default::default() };
                    th.record(exited, Some(details));
                    match next {
                        Transition::End => return (th, Ok(output)),
                        Transition::Next(i) => {
                            index = i;
                            input = output;
                        }
                    }
                }
                Err(f) => return (th, Err(f)),
            }
        }
    })
}

async fn run_state(th: &mut Thread, run: &mut StateRun<'_>, raw: Arc<Value>) -> Result<(Arc<Value>, Transition), Failure> {
    let state = run.state;
    match &state.kind {
        Kind::Pass { parameters, result, result_path } => {
            let effective = input_path(run, &state.input_path, &raw)?;
            let produced = match (result, parameters) {
                (Some(r), _) => Arc::new(r.clone()),
                (None, Some(p)) => Arc::new(eval(th, run, p, &effective)?),
                (None, None) => effective,
            };
            let output = apply_result_path(run, raw, produced, result_path)?;
            Ok((output_path(run, &state.output_path, output)?, state.next))
        }
        Kind::Choice { choices, default } => {
            let effective = input_path(run, &state.input_path, &raw)?;
            let context = StateContext { exec: &th.exec, run };
            let env = Env::lazy(&effective, &context);
            let mut chosen = None;
            for (rule, next) in choices {
                if rule.eval(&env).map_err(|e| run.fail(e))? {
                    chosen = Some(*next);
                    break;
                }
            }
            let next = chosen.or(*default).ok_or_else(|| Failure::new(errors::NO_CHOICE_MATCHED, "No Matches!".into()))?;
            Ok((output_path(run, &state.output_path, effective)?, Transition::Next(next)))
        }
        Kind::Wait(spec) => {
            let effective = input_path(run, &state.input_path, &raw)?;
            let delay = wait_delay(th, run, spec, &effective)?;
            th.sleep(delay).await;
            Ok((output_path(run, &state.output_path, effective)?, state.next))
        }
        Kind::Succeed => {
            let effective = input_path(run, &state.input_path, &raw)?;
            Ok((output_path(run, &state.output_path, effective)?, Transition::End))
        }
        Kind::Fail { error, cause } => {
            let error = fail_field(th, run, error.as_ref(), &raw)?;
            let cause = fail_field(th, run, cause.as_ref(), &raw)?;
            Err(Failure { error, cause })
        }
        Kind::Task(spec) => recoverable(th, run, raw, &spec.recovery).await,
        Kind::Parallel(spec) => recoverable(th, run, raw, &spec.recovery).await,
        Kind::Map(spec) => recoverable(th, run, raw, &spec.recovery).await,
    }
}

/// Task, Parallel and Map: attempts under Retry, then Catch.
async fn recoverable(
    th: &mut Thread,
    run: &mut StateRun<'_>,
    raw: Arc<Value>,
    recovery: &Recovery,
) -> Result<(Arc<Value>, Transition), Failure> {
    let mut attempts = vec![0u64; recovery.retry.len()];
    loop {
        let attempt = match &run.state.kind {
            Kind::Task(spec) => run_task(th, run, spec, &raw).await,
            Kind::Parallel(spec) => run_parallel(th, run, spec, &raw).await,
            Kind::Map(spec) => run_map(th, run, spec, &raw).await,
            _ => unreachable!("only Task, Parallel and Map states have Retry and Catch"),
        };
        let failure = match attempt {
            Ok(result) => {
                let selected = match &recovery.result_selector {
                    Some(selector) => Arc::new(eval(th, run, selector, &result)?),
                    None => result,
                };
                let output = apply_result_path(run, raw, selected, &recovery.result_path)?;
                return Ok((output_path(run, &run.state.output_path, output)?, run.state.next));
            }
            Err(f) => f,
        };
        if let Some(delay) = retry_delay(&recovery.retry, &mut attempts, &failure) {
            th.sleep(delay).await;
            run.retry_count += 1;
            continue;
        }
        return match find_catcher(&recovery.catch, &failure) {
            Some(catcher) => {
                let output = apply_result_path(run, raw, Arc::new(failure.as_value()), &catcher.result_path)?;
                Ok((output, Transition::Next(catcher.next)))
            }
            None => Err(failure),
        };
    }
}

/// The delay before the next attempt, or None when no retrier applies or the matching one is exhausted.
fn retry_delay(retriers: &[Retrier], attempts: &mut [u64], failure: &Failure) -> Option<Duration> {
    let (i, r) = retriers.iter().enumerate().find(|(_, r)| r.errors.iter().any(|e| errors::matches(e, failure.name())))?;
    if attempts[i] >= r.max_attempts {
        return None;
    }
    let mut seconds = r.interval_seconds as f64 * r.backoff_rate.powi(attempts[i].min(i32::MAX as u64) as i32);
    if let Some(max) = r.max_delay_seconds {
        seconds = seconds.min(max as f64);
    }
    if r.full_jitter {
        seconds *= rand::random::<f64>();
    }
    attempts[i] += 1;
    Some(Duration::from_secs_f64(seconds.min(u32::MAX as f64)))
}

fn find_catcher<'c>(catchers: &'c [Catcher], failure: &Failure) -> Option<&'c Catcher> {
    catchers.iter().find(|c| c.errors.iter().any(|e| errors::matches(e, failure.name())))
}

fn eval(th: &Thread, run: &StateRun, template: &Template, input: &Value) -> Result<Value, Failure> {
    let context = StateContext { exec: &th.exec, run };
    template.eval(&Env::lazy(input, &context)).map_err(|e| run.fail(e))
}

fn no_results(run: &StateRun, path: &JsonPath) -> Failure {
    run.runtime(format!("Invalid path '{path}' : No results for path: {}", path.normalized()))
}

/// Documents move between states as `Arc`s shared with the history: a state copies one only to change it.
fn input_path(run: &StateRun, path: &IoPath, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    select_path(run, path, raw)
}

fn output_path(run: &StateRun, path: &IoPath, output: Arc<Value>) -> Result<Arc<Value>, Failure> {
    select_path(run, path, &output)
}

fn select_path(run: &StateRun, path: &IoPath, doc: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    match path {
        IoPath::Whole => Ok(doc.clone()),
        IoPath::Empty => Ok(Arc::new(Value::Object(Map::new()))),
        IoPath::Path(p) => p.query(doc).map(Arc::new).ok_or_else(|| no_results(run, p)),
    }
}

fn apply_result_path(run: &StateRun, raw: Arc<Value>, result: Arc<Value>, path: &ResultPath) -> Result<Arc<Value>, Failure> {
    match path {
        ResultPath::Discard => Ok(raw),
        ResultPath::Path(p) if p.is_root() => bounded(run, result),
        ResultPath::Path(p) => {
            let mut target = Arc::unwrap_or_clone(raw);
            p.assign(&mut target, Arc::unwrap_or_clone(result)).map_err(|why| {
                Failure::new(
                    errors::RESULT_PATH_MATCH_FAILURE,
                    format!(
                        "An error occurred while executing the state '{}' (entered at the event id #{}). Unable to apply ResultPath '{p}' to input '{}': {why}",
                        run.state.name,
                        run.entered_id,
                        compact(&target)
                    ),
                )
            })?;
            bounded(run, Arc::new(target))
        }
    }
}

/// A state's new output, refused when it nests too deeply to be handled safely: a loop that wraps its
/// input one level deeper each time ends here rather than in a stack overflow.
fn bounded(run: &StateRun, doc: Arc<Value>) -> Result<Arc<Value>, Failure> {
    if limits::nests_deeper_than(&doc, limits::MAX_DOCUMENT_DEPTH) {
        return Err(run.runtime(format!("The state's output nests more than {} levels deep.", limits::MAX_DOCUMENT_DEPTH)));
    }
    Ok(doc)
}

fn fail_field(th: &Thread, run: &StateRun, field: Option<&FailField>, input: &Value) -> Result<Option<String>, Failure> {
    let (name, dynamic) = match field {
        None => return Ok(None),
        Some(FailField::Literal(s)) => return Ok(Some(s.clone())),
        Some(FailField::Dynamic { field, value }) => (*field, value),
    };
    let context = StateContext { exec: &th.exec, run };
    let env = Env::lazy(input, &context);
    let value = match dynamic {
        Dynamic::Call(call) => call.eval(&env).map_err(|e| run.fail(e))?,
        Dynamic::Path(path) => env.resolve(path).ok_or_else(|| {
            run.runtime(format!(
                "The JSONPath '{path}' specified for the field '{name}' could not be found in the input '{}'",
                compact(&env.root_for(path))
            ))
        })?,
    };
    Ok(Some(match value {
        Value::String(s) => s,
        other => compact(&other),
    }))
}

/// How a `...Path` field's value is quoted in AWS error messages: strings bare, anything else as JSON.
fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

fn wait_delay(th: &Thread, run: &StateRun, spec: &WaitSpec, input: &Value) -> Result<Duration, Failure> {
    let until = |t: DateTime<chrono::FixedOffset>| (t.with_timezone(&Utc) - th.now()).to_std().unwrap_or(Duration::ZERO);
    match spec {
        WaitSpec::Seconds(s) => Ok(Duration::from_secs(*s)),
        WaitSpec::Timestamp(t) => Ok(until(*t)),
        WaitSpec::SecondsPath(p) => {
            let v = p.query(input).ok_or_else(|| no_results(run, p))?;
            match v.as_i64() {
                Some(n) if n < 0 => {
                    Err(run.runtime(format!("The SecondsPath parameter references a negative value: {p} == {}", quoted(&v))))
                }
                Some(n) => Ok(Duration::from_secs(n as u64)),
                None => Err(run.runtime(format!("The SecondsPath parameter cannot be parsed as a long value: {p} == {}", quoted(&v)))),
            }
        }
        WaitSpec::TimestampPath(p) => {
            let v = p.query(input).ok_or_else(|| no_results(run, p))?;
            match v.as_str().and_then(parse_timestamp) {
                Some(t) => Ok(until(t)),
                None => Err(run.runtime(format!(
                    "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {}",
                    quoted(&v)
                ))),
            }
        }
    }
}

/// Resolves a `...Path` number field. `parse` returns None when the value is not of the right type.
fn resolve_amount<T: Copy>(
    run: &StateRun,
    amount: &Amount<T>,
    input: &Value,
    field: &str,
    kind: &str,
    parse: impl Fn(&Value) -> Option<T>,
) -> Result<T, Failure> {
    match amount {
        Amount::Fixed(v) => Ok(*v),
        Amount::Path(p) => {
            let v = p.query(input).ok_or_else(|| no_results(run, p))?;
            parse(&v).ok_or_else(|| {
                run.runtime(format!("The {field}Path field refers to value \"{}\" which is not a valid {kind}: {p}", quoted(&v)))
            })
        }
    }
}

fn positive_seconds(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

enum ResourceKind<'r> {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:alias]`: the effective input goes to the function.
    LambdaArn,
    /// `arn:aws:states:::lambda:invoke`: FunctionName and Payload parameters; the answer is wrapped.
    LambdaInvoke,
    /// `arn:aws:states:::SERVICE:ACTION` and anything else.
    Other { service: &'r str, action: &'r str },
}

fn classify(resource: &str) -> ResourceKind<'_> {
    let parts: Vec<&str> = resource.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", _] => ResourceKind::LambdaArn,
        ["arn", _, "states", "", "", "lambda", action] if action.split('.').next() == Some("invoke") => ResourceKind::LambdaInvoke,
        ["arn", _, "states", "", "", service, action] => ResourceKind::Other { service, action },
        ["arn", _, service, ..] => ResourceKind::Other { service, action: resource },
        _ => ResourceKind::Other { service: "", action: resource },
    }
}

/// Removes the token from the executor's table however the task ends (answer, timeout, abort).
struct TokenGuard<'a> {
    inner: &'a Inner,
    token: String,
}

impl Drop for TokenGuard<'_> {
    fn drop(&mut self) {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.token);
    }
}

enum TaskEnd {
    Done(Result<Value, TaskFailure>),
    TimedOut,
    HeartbeatTimedOut,
}

async fn run_task(th: &mut Thread, run: &mut StateRun<'_>, spec: &TaskSpec, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    let effective = input_path(run, &run.state.input_path, raw)?;
    let timeout = spec
        .timeout
        .as_ref()
        .map(|a| resolve_amount(run, a, &effective, "TimeoutSeconds", "positive integer", positive_seconds))
        .transpose()?;
    let heartbeat = spec
        .heartbeat
        .as_ref()
        .map(|a| resolve_amount(run, a, &effective, "HeartbeatSeconds", "positive integer", positive_seconds))
        .transpose()?;
    let (resource, wait_for_token) = match spec.resource.strip_suffix(".waitForTaskToken") {
        Some(base) => (base, true),
        None => (spec.resource.as_str(), false),
    };
    run.task_token = wait_for_token.then(|| uuid::Uuid::new_v4().simple().to_string());
    let parameters = match &spec.parameters {
        Some(p) => Arc::new(eval(th, run, p, &effective)?),
        None => effective,
    };
    let kind = classify(resource);
    let (function, payload) = match &kind {
        ResourceKind::LambdaArn => (Some(resource.to_owned()), (*parameters).clone()),
        ResourceKind::LambdaInvoke => match parameters.get("FunctionName").and_then(Value::as_str) {
            Some(f) => (Some(f.to_owned()), parameters.get("Payload").cloned().unwrap_or_else(|| Value::Object(Map::new()))),
            None => {
                return Err(run.runtime(format!(
                    "The resource '{}' needs a 'FunctionName' string in Parameters: {}",
                    spec.resource,
                    compact(parameters.as_ref())
                )));
            }
        },
        ResourceKind::Other { .. } => (None, (*parameters).clone()),
    };
    let (resource_type, resource_name) = match &kind {
        ResourceKind::LambdaArn => ("lambda".to_owned(), spec.resource.clone()),
        ResourceKind::LambdaInvoke => ("lambda".to_owned(), spec.resource.rsplit(':').next().unwrap_or_default().to_owned()),
        ResourceKind::Other { service, action } => {
            let action = if wait_for_token { format!("{action}.waitForTaskToken") } else { (*action).to_owned() };
            ((*service).to_owned(), action)
        }
    };
    let legacy_lambda = matches!(kind, ResourceKind::LambdaArn);
    // Every event of a non-Lambda-ARN task names its resource.
    let task_details = |mut details: EventDetails| {
        if !legacy_lambda {
            let more = details.more.get_or_insert_with(Default::default);
            more.resource_type = Some(resource_type.clone());
            more.resource = Some(resource_name.clone());
        }
        details
    };
    if legacy_lambda {
        let more = MoreDetails { resource: Some(spec.resource.clone()), timeout_in_seconds: timeout, ..Default::default() };
        let details = EventDetails { input: Some(parameters.clone()), ..EventDetails::more(more) };
        th.record(EventType::LambdaFunctionScheduled, Some(details));
        th.record(EventType::LambdaFunctionStarted, None);
    } else {
        let details = task_details(EventDetails::more(MoreDetails {
            region: Some(th.exec.region.clone()),
            parameters: Some(parameters.clone()),
            timeout_in_seconds: timeout,
            heartbeat_in_seconds: heartbeat,
            ..Default::default()
        }));
        th.record(EventType::TaskScheduled, Some(details));
        th.record(EventType::TaskStarted, Some(task_details(EventDetails::default())));
    }

    let exec = th.exec.clone();
    let inner = &exec.inner;
    let call = TaskCall {
        resource: resource.to_owned(),
        function,
        payload,
        state_name: run.state.name.to_string(),
        task_token: run.task_token.clone(),
        execution_name: th.exec.name.clone(),
        execution_arn: th.exec.arn.clone(),
        retry_count: run.retry_count,
    };
    let deadline = timeout.map(|t| after(Duration::from_secs(t)));
    let end = match &run.task_token {
        Some(token) => {
            let (tx, rx) = oneshot::channel();
            let beat = Arc::new(Notify::new());
            inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), TokenSlot { reply: tx, heartbeat: beat.clone() });
            let _guard = TokenGuard { inner, token: token.clone() };
            let invoked = with_deadline(deadline, inner.invoker.invoke(call)).await;
            match invoked {
                None => TaskEnd::TimedOut,
                Some(Err(f)) => TaskEnd::Done(Err(f)),
                Some(Ok(_)) => {
                    th.record(EventType::TaskSubmitted, Some(task_details(EventDetails::default())));
                    await_token(rx, beat, deadline, heartbeat).await
                }
            }
        }
        None => match with_deadline(deadline, inner.invoker.invoke(call)).await {
            None => TaskEnd::TimedOut,
            Some(result) => TaskEnd::Done(result),
        },
    };
    // Lambda function ARNs get AWS's LambdaFunction* events, every other resource the Task* ones.
    let (lambda_event, task_event, details, result) = match end {
        TaskEnd::Done(Ok(answer)) => {
            let wrap = matches!(kind, ResourceKind::LambdaInvoke) && !wait_for_token;
            let result = Arc::new(if wrap { wrap_lambda_invoke(answer) } else { answer });
            let details = EventDetails { output: Some(result.clone()), ..Default::default() };
            (EventType::LambdaFunctionSucceeded, EventType::TaskSucceeded, details, Ok(result))
        }
        TaskEnd::Done(Err(f)) => {
            let failure = Failure { error: Some(f.error), cause: f.cause };
            let details = EventDetails::failure(failure.error.clone(), failure.cause.clone());
            (EventType::LambdaFunctionFailed, EventType::TaskFailed, details, Err(failure))
        }
        TaskEnd::TimedOut | TaskEnd::HeartbeatTimedOut => {
            let error = if matches!(end, TaskEnd::TimedOut) { errors::TIMEOUT } else { errors::HEARTBEAT_TIMEOUT };
            let failure = Failure { error: Some(error.to_owned()), cause: None };
            let details = EventDetails::failure(failure.error.clone(), None);
            (EventType::LambdaFunctionTimedOut, EventType::TaskTimedOut, details, Err(failure))
        }
    };
    let event = if legacy_lambda { lambda_event } else { task_event };
    th.record(event, Some(task_details(details)));
    result
}

async fn with_deadline<F: Future>(deadline: Option<tokio::time::Instant>, f: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await.ok(),
        None => Some(f.await),
    }
}

async fn await_token(
    mut rx: oneshot::Receiver<TokenReply>,
    beat: Arc<Notify>,
    deadline: Option<tokio::time::Instant>,
    heartbeat: Option<u64>,
) -> TaskEnd {
    loop {
        let beat_deadline = heartbeat.map(|h| after(Duration::from_secs(h))).unwrap_or_else(far_future);
        tokio::select! {
            reply = &mut rx => return TaskEnd::Done(reply.unwrap_or_else(|_| Err(TaskFailure::new(errors::RUNTIME, "the task token was dropped")))),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)) => return TaskEnd::TimedOut,
            _ = tokio::time::sleep_until(beat_deadline) => return TaskEnd::HeartbeatTimedOut,
            _ = beat.notified() => continue,
        }
    }
}

const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// An instant that stands for "never".
fn far_future() -> tokio::time::Instant {
    after(CENTURY)
}

/// `d` from now; a century from now when `d` is past what the platform's clock can add (a
/// `...SecondsPath` may name any number).
fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d).or_else(|| now.checked_add(CENTURY)).unwrap_or(now)
}

/// The shape `arn:aws:states:::lambda:invoke` returns: the function's answer under `Payload`.
fn wrap_lambda_invoke(answer: Value) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": answer,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-Remapped-Content-Length": ["0"],
                "Connection": ["keep-alive"],
                "x-amzn-RequestId": [request_id],
                "Content-Type": ["application/json"],
            },
            "HttpHeaders": {
                "Connection": "keep-alive",
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": request_id,
            },
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200
    })
}

/// Lets the other tasks of this worker run before going on: the task wakes itself and goes to the back
/// of the run queue, so executions that wait on the virtual clock take turns in order. (tokio's
/// `yield_now` defers the wake-up to the next driver poll, after which some tasks run again ahead of
/// others: 50 executions at a time then saw latencies spread over two rounds instead of one.)
async fn take_turn() {
    let mut waited = false;
    std::future::poll_fn(|cx| {
        if waited {
            return std::task::Poll::Ready(());
        }
        waited = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_owned(),
    }
}

/// Runs sub-programs side by side as futures of the execution's own task: they interleave at every await
/// (a Wait, a task, a token) as AWS's branches do, without a tokio task, a cross-thread wake-up and a
/// join handle per iteration; separate executions still run in parallel on the runtime's workers. Unless
/// failures are tolerated, the first one ends the rest (dropping their futures cancels them).
async fn run_children(
    th: &mut Thread,
    jobs: Vec<(Thread, &Program, Arc<Value>)>,
    limit: Option<usize>,
    tolerate_failures: bool,
) -> Vec<(usize, Result<Arc<Value>, Failure>)> {
    let mut running = FuturesUnordered::new();
    let mut queue = jobs.into_iter().enumerate();
    let mut results = Vec::with_capacity(queue.len());
    loop {
        // Start children in item order as the limit allows, so `MaxConcurrency: 1` runs items one
        // after the other in order, and a failure stops the items not yet started.
        while limit.is_none_or(|l| running.len() < l) {
            let Some((i, (child, program, input))) = queue.next() else { break };
            running.push(async move {
                let (child, result) = run_program(child, program, input).await;
                (i, child.virtual_elapsed, result)
            });
        }
        let Some((i, elapsed, result)) = running.next().await else { return results };
        th.virtual_elapsed = th.virtual_elapsed.max(elapsed);
        let failed = result.is_err();
        results.push((i, result));
        if failed && !tolerate_failures {
            return results;
        }
    }
}

async fn run_parallel(th: &mut Thread, run: &mut StateRun<'_>, spec: &ParallelSpec, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    let effective = input_path(run, &run.state.input_path, raw)?;
    let input = match &spec.parameters {
        Some(p) => Arc::new(eval(th, run, p, &effective)?),
        None => effective,
    };
    th.record(EventType::ParallelStateStarted, None);
    let jobs = spec.branches.iter().map(|b| (th.child(), b, input.clone())).collect();
    let mut results = run_children(th, jobs, None, false).await;
    if let Some(failure) = results.iter().find_map(|(_, r)| r.as_ref().err().cloned()) {
        th.record(EventType::ParallelStateFailed, Some(EventDetails::failure(failure.error.clone(), failure.cause.clone())));
        return Err(failure);
    }
    results.sort_by_key(|(i, _)| *i);
    th.record(EventType::ParallelStateSucceeded, None);
    Ok(Arc::new(Value::Array(results.into_iter().filter_map(|(_, r)| r.ok().map(Arc::unwrap_or_clone)).collect())))
}

async fn run_map(th: &mut Thread, run: &mut StateRun<'_>, spec: &MapSpec, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    let effective = input_path(run, &run.state.input_path, raw)?;
    let items = match &spec.items_path {
        IoPath::Whole => Value::clone(&effective),
        IoPath::Empty => Value::Object(Map::new()),
        IoPath::Path(p) => p.query(&effective).ok_or_else(|| no_results(run, p))?,
    };
    let Value::Array(items) = items else {
        return Err(run.runtime(format!(
            "The Map state's items (ItemsPath) must be a JSON array, got {}: {}",
            crate::jsonpath::type_name(&items),
            compact(&items)
        )));
    };
    let max_concurrency = resolve_amount(run, &spec.max_concurrency, &effective, "MaxConcurrency", "integer", |v| v.as_u64())?;
    let tolerated_count = spec
        .tolerated_count
        .as_ref()
        .map(|a| resolve_amount(run, a, &effective, "ToleratedFailureCount", "integer", |v| v.as_i64()))
        .transpose()?;
    if tolerated_count.is_some_and(|c| c < 0) {
        return Err(run.runtime("ToleratedFailureCount cannot be negative.".into()));
    }
    let tolerated_percentage = spec
        .tolerated_percentage
        .as_ref()
        .map(|a| resolve_amount(run, a, &effective, "ToleratedFailurePercentage", "float", |v| v.as_f64()))
        .transpose()?;
    if tolerated_percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        return Err(run.runtime("ToleratedFailurePercentage must be between 0 and 100.".into()));
    }
    let tolerant = tolerated_count.is_some_and(|c| c > 0) || tolerated_percentage.is_some_and(|p| p > 0.0);

    th.record(EventType::MapStateStarted, Some(EventDetails::more(MoreDetails { length: Some(items.len()), ..Default::default() })));
    let len = items.len();
    let mut jobs = Vec::with_capacity(len);
    for (index, item) in items.into_iter().enumerate() {
        let input = match &spec.item_selector {
            Some(selector) => {
                run.map_item = Some((index, item));
                let selected = eval(th, run, selector, &effective);
                run.map_item = None;
                Arc::new(selected?)
            }
            None => Arc::new(item),
        };
        let details = EventDetails { name: Some(run.state.name.clone()), index: Some(index), ..Default::default() };
        let mut child = th.child();
        child.record(EventType::MapIterationStarted, Some(details));
        jobs.push((child, &spec.processor, input));
    }
    let limit = (max_concurrency > 0).then_some(max_concurrency as usize);
    let results = run_children(th, jobs, limit, tolerant).await;

    let mut outputs = vec![Value::Null; len];
    let mut failures = 0usize;
    let mut first_failure = None;
    for (index, result) in results {
        let (event, output) = match result {
            Ok(v) => (EventType::MapIterationSucceeded, Arc::unwrap_or_clone(v)),
            Err(f) => {
                failures += 1;
                let v = f.as_value();
                first_failure.get_or_insert(f);
                (EventType::MapIterationFailed, v)
            }
        };
        let details = EventDetails { name: Some(run.state.name.clone()), index: Some(index), ..Default::default() };
        th.record(event, Some(details));
        if let Some(slot) = outputs.get_mut(index) {
            *slot = output;
        }
    }
    if let Some(failure) = first_failure {
        let within = tolerant
            && tolerated_count.is_none_or(|c| failures as i64 <= c)
            && tolerated_percentage.is_none_or(|p| failures as f64 * 100.0 / len as f64 <= p);
        if !within {
            let failure = if tolerant {
                Failure::new(errors::EXCEED_TOLERATED_FAILURE_THRESHOLD, "The specified tolerated failure threshold was exceeded".into())
            } else {
                failure
            };
            let details = EventDetails::failure(failure.error.clone(), failure.cause.clone());
            th.record(EventType::MapStateFailed, Some(details));
            return Err(failure);
        }
    }
    th.record(EventType::MapStateSucceeded, None);
    Ok(Arc::new(Value::Array(outputs)))
}

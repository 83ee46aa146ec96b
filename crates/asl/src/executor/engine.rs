//! An execution and its lines of execution (the main flow, each branch and iteration): the state
//! loop, the history they record, and how an execution ends (normally, failed, timed out, halted).
use super::clock::{Clock, after, take_turn};
use super::states::run_state;
use super::{ExecutionOutcome, ExecutionStart, ExecutionStatus, Inner, ResumeAt};
use crate::definition::{Kind, Program, State, StateMachine, Transition};
use crate::env::EvalError;
use crate::errors;
use crate::history::{EventDetails, EventType, Log, MoreDetails};
use crate::limits;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// Up to this many events (~1.5 MB) are reserved up front for an execution's history.
const HISTORY_HINT_CAP: usize = 16_384;

/// A line of execution lets the others run, and checks the execution's deadline, every this many
/// transitions: a loop of states that never await (Pass, Choice) would otherwise hold its worker and
/// never see TimeoutSeconds expire.
const TRANSITIONS_PER_TURN: u32 = 64;

/// An ASL error on its way to Retry, Catch or the execution's end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) error: Option<String>,
    pub(crate) cause: Option<String>,
}

impl Failure {
    pub(crate) fn new(error: &str, cause: String) -> Failure {
        Failure { error: Some(error.to_owned()), cause: Some(cause) }
    }

    pub(crate) fn name(&self) -> &str {
        self.error.as_deref().unwrap_or_default()
    }

    pub(crate) fn as_value(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }
}

/// Shared by every branch of one execution.
pub(crate) struct Execution {
    pub(crate) inner: Arc<Inner>,
    pub(crate) machine: Arc<StateMachine>,
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) region: String,
    pub(crate) input: Arc<Value>,
    resume_at: Option<ResumeAt>,
    pub(crate) started: DateTime<Utc>,
    pub(crate) started_text: String,
    pub(crate) state_machine_arn: String,
    pub(crate) state_machine_name: String,
    pub(crate) role_arn: String,
    pub(crate) log: Log,
    pub(crate) stopped: Mutex<Option<(Option<String>, Option<String>)>>,
    /// When the execution times out, on a wall clock.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// How much virtual time the execution may take, on the virtual clock.
    pub(crate) virtual_limit: Option<Duration>,
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
pub(crate) struct Thread {
    pub(crate) exec: Arc<Execution>,
    pub(crate) previous: u64,
    pub(crate) virtual_elapsed: Duration,
}

impl Thread {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match self.exec.inner.clock {
            Clock::Real => Utc::now(),
            // Definition time: a Wait of N seconds moves `$$` times and history timestamps on by
            // N seconds, as on the other clocks, though it lasts N / factor of wall time.
            Clock::Scaled(factor) => {
                let elapsed = (Utc::now() - self.exec.started).checked_mul(i32::try_from(factor.max(1)).unwrap_or(i32::MAX));
                elapsed.and_then(|d| self.exec.started.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
            // Saturates: without quotas a virtual clock may run past the last date chrono knows.
            Clock::Virtual => chrono::TimeDelta::from_std(self.virtual_elapsed)
                .ok()
                .and_then(|d| self.exec.started.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    pub(crate) fn record(&mut self, event_type: EventType, details: Option<EventDetails>) -> u64 {
        self.previous = self.exec.log.append(self.previous, self.now(), event_type, details);
        self.previous
    }

    pub(crate) async fn sleep(&mut self, d: Duration) {
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
    pub(crate) async fn take_turn(&self) {
        if self.exec.deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            self.halt(Halt::TimedOut).await;
        }
        take_turn().await
    }

    pub(crate) fn child(&self) -> Thread {
        Thread { exec: self.exec.clone(), previous: self.previous, virtual_elapsed: self.virtual_elapsed }
    }
}

/// What the running state knows about itself: for `$$.State`, `$$.Task`, `$$.Map` and error causes.
pub(crate) struct StateRun<'a> {
    pub(crate) state: &'a State,
    pub(crate) entered_id: u64,
    pub(crate) entered_at: DateTime<Utc>,
    pub(crate) retry_count: u64,
    pub(crate) task_token: Option<String>,
    pub(crate) map_item: Option<(usize, Value)>,
}

impl StateRun<'_> {
    /// States.Runtime and friends carry the state and the event it entered at, as AWS writes them.
    pub(crate) fn fail(&self, e: EvalError) -> Failure {
        Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
                self.state.name, self.entered_id, e.message
            ),
        )
    }

    pub(crate) fn runtime(&self, message: String) -> Failure {
        self.fail(EvalError::runtime(message))
    }
}

impl Execution {
    pub(crate) fn new(inner: Arc<Inner>, machine: Arc<StateMachine>, start: ExecutionStart) -> Arc<Execution> {
        let sm_arn = format!("arn:aws:states:{}:{}:stateMachine:{}", start.region, start.account_id, start.state_machine_name);
        let arn = format!("arn:aws:states:{}:{}:execution:{}:{}", start.region, start.account_id, start.state_machine_name, start.name);
        let role_arn = start.role_arn.unwrap_or_else(|| format!("arn:aws:iam::{}:role/StepFunctionsExecutionRole", start.account_id));
        let started = Utc::now();
        let quotas = inner.quotas;
        let log = Log::new(machine.history_hint.load(Ordering::Relaxed), if quotas { limits::HISTORY_EVENTS } else { usize::MAX });
        let max_seconds = if quotas { Some(limits::MAX_EXECUTION_SECONDS) } else { None };
        let limit = machine.timeout_seconds.into_iter().chain(max_seconds).min().map(Duration::from_secs);
        let clock = inner.clock;
        Arc::new(Execution {
            inner,
            machine,
            arn,
            name: start.name,
            region: start.region,
            input: Arc::new(start.input),
            resume_at: start.resume_at,
            started,
            started_text: started.to_rfc3339_opts(SecondsFormat::Millis, true),
            state_machine_arn: sm_arn,
            state_machine_name: start.state_machine_name,
            role_arn,
            log,
            stopped: Mutex::new(None),
            deadline: limit.and_then(|l| clock.wall(l)).map(after),
            virtual_limit: limit.filter(|_| clock == Clock::Virtual),
            halt: OnceLock::new(),
            halted: Notify::new(),
        })
    }

    /// An end the state loop did not reach: stopped, or a bug in the executor.
    pub(crate) fn ended_abnormally(
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

    pub(crate) fn failed_internally(&self, why: &dyn std::fmt::Display) -> ExecutionOutcome {
        let cause = format!("{FAILED_INTERNALLY}{why}");
        self.ended_abnormally(ExecutionStatus::Failed, EventType::ExecutionFailed, Some(errors::RUNTIME.to_owned()), Some(cause))
    }

    pub(crate) fn failed(&self, th: &mut Thread, f: Failure) -> ExecutionOutcome {
        th.record(EventType::ExecutionFailed, Some(EventDetails::failure(f.error.clone(), f.cause.clone())));
        ExecutionOutcome { status: ExecutionStatus::Failed, output: None, error: f.error, cause: f.cause, history: vec![] }
    }

    pub(crate) async fn run(self: Arc<Self>) -> ExecutionOutcome {
        let mut th = Thread { exec: self.clone(), previous: 0, virtual_elapsed: Duration::ZERO };
        let details = EventDetails {
            input: Some(self.input.clone()),
            ..EventDetails::more(MoreDetails { role_arn: Some(self.role_arn.clone()), ..Default::default() })
        };
        th.record(EventType::ExecutionStarted, Some(details));
        if self.inner.quotas && limits::json_size(&self.input, limits::MAX_DOCUMENT_DEPTH).is_none_or(|n| n > limits::PAYLOAD_BYTES) {
            let cause = limits::INPUT_TOO_LARGE.to_owned();
            let outcome = self.failed(&mut th, Failure::new(errors::DATA_LIMIT_EXCEEDED, cause));
            return ExecutionOutcome { history: self.log.take(), ..outcome };
        }
        // AWS's histories give the first state's entered event a previousEventId of 0, not the
        // ExecutionStarted event's id (recorded executions; the developer guide's Step Functions Local
        // history example shows the same).
        th.previous = 0;
        let (start, input) = match &self.resume_at {
            None => (self.machine.program.start, self.input.clone()),
            Some(at) => match self.machine.program.states.iter().position(|state| *state.name == *at.state) {
                Some(index) => (index, Arc::new(at.input.clone())),
                None => {
                    let cause = format!("cannot resume at '{}': the definition has no such top-level state", at.state);
                    let outcome = self.failed(&mut th, Failure::new(errors::RUNTIME, cause));
                    return ExecutionOutcome { history: self.log.take(), ..outcome };
                }
            },
        };
        let run = run_program_from(th, &self.machine.program, start, input);
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
pub(crate) fn run_program(th: Thread, program: &Program, input: Arc<Value>) -> Run<'_> {
    run_program_from(th, program, program.start, input)
}

fn run_program_from(mut th: Thread, program: &Program, mut index: usize, mut input: Arc<Value>) -> Run<'_> {
    Box::pin(async move {
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

/// How the cause of an execution that failed internally (a panic or a lost task) begins.
pub(crate) const FAILED_INTERNALLY: &str = "the executor failed internally: ";

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_owned(),
    }
}

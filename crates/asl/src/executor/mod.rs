//! Running executions: the public API. An execution's engine (its lines of execution and the state
//! loop) is in `engine`, each family of states in `states`, input and output processing in `io`, the
//! context object in `context`, task tokens in `task_token`, clocks and deadlines in `clock`.
mod clock;
mod context;
mod engine;
mod io;
pub(crate) mod states;
mod task_token;

pub use clock::Clock;
pub use task_token::{TaskTokenError, WeakExecutor};

use crate::definition::StateMachine;
use crate::history::{EventType, HistoryEvent};
pub(crate) use engine::FAILED_INTERNALLY;
use engine::{Execution, panic_message};
use futures_util::FutureExt;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use task_token::TokenSlot;
use tokio::sync::broadcast;

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
    /// Not an ASL feature (Step Functions has no such API): the embedder resuming an execution it
    /// journaled starts the top-level flow at this state instead of `StartAt`. `input` stays the
    /// execution's input (`$$.Execution.Input`).
    pub resume_at: Option<ResumeAt>,
}

/// Where a resumed execution starts: a top-level state and the input it was entered with.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeAt {
    pub state: String,
    pub input: Value,
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
            resume_at: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) invoker: Arc<dyn TaskInvoker>,
    pub(crate) clock: Clock,
    pub(crate) tokens: Mutex<HashMap<String, TokenSlot>>,
    /// Whether AWS's quotas apply (see [`Executor::with_quotas`]).
    pub(crate) quotas: bool,
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
        self.stopper().stop(error, cause);
    }

    /// Something that reads the execution's history from elsewhere while it runs, as
    /// GetExecutionHistory does.
    pub fn history_reader(&self) -> HistoryReader {
        HistoryReader { exec: self.exec.clone() }
    }

    /// Something that stops the execution from elsewhere (a signal handler, a watchdog) while
    /// this handle waits for its outcome.
    pub fn stopper(&self) -> Stopper {
        Stopper { exec: self.exec.clone(), task: self.task.abort_handle() }
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

/// Reads one execution's history; see [`ExecutionHandle::history_reader`].
#[derive(Clone)]
pub struct HistoryReader {
    exec: Arc<Execution>,
}

impl HistoryReader {
    /// The events so far, oldest first; none once the execution ended (its outcome has them).
    pub fn events(&self) -> Vec<HistoryEvent> {
        self.exec.log.events()
    }
}

/// Stops one execution; see [`ExecutionHandle::stopper`].
#[derive(Clone)]
pub struct Stopper {
    exec: Arc<Execution>,
    task: tokio::task::AbortHandle,
}

impl Stopper {
    /// As [`ExecutionHandle::stop`]; the first stop's error and cause stand.
    pub fn stop(&self, error: Option<String>, cause: Option<String>) {
        let mut stopped = self.exec.stopped.lock().unwrap_or_else(|p| p.into_inner());
        if stopped.is_none() && !self.task.is_finished() {
            *stopped = Some((error, cause));
            self.task.abort();
        }
    }
}

impl Executor {
    pub fn new(invoker: Arc<dyn TaskInvoker>, clock: Clock) -> Executor {
        Executor { inner: Arc::new(Inner { invoker, clock, tokens: Mutex::new(HashMap::new()), quotas: true }) }
    }

    /// Whether AWS's quotas apply to executions started from now on; they do by default. They are the
    /// 262,144-byte limit on the execution input, state results and outputs (States.DataLimitExceeded),
    /// the 25,000-event history and the one-year maximum execution time (developer guide, Quotas).
    /// Without them only TimeoutSeconds or a stop ends a definition that loops forever.
    pub fn with_quotas(self, quotas: bool) -> Executor {
        let inner = Inner { invoker: self.inner.invoker.clone(), clock: self.inner.clock, tokens: Mutex::new(HashMap::new()), quotas };
        Executor { inner: Arc::new(inner) }
    }

    fn execution(&self, machine: Arc<StateMachine>, start: ExecutionStart) -> Arc<Execution> {
        Execution::new(self.inner.clone(), machine, start)
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
}

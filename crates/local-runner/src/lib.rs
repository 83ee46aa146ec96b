//! Baton on one machine. The release definition in `statemachines/release.asl.json` runs
//! on the embedded executor exactly as Step Functions runs it; its Lambda tasks are
//! answered in-process by the same handler functions the Lambda binaries wrap.

mod invoker;
mod journal;
mod listener;
mod owner;
mod plan;
mod resume;
mod setup;

pub use baton_domain::support::{RUN_HEARTBEAT as HEARTBEAT, RUN_SILENT_AFTER as SILENT_AFTER};
pub use invoker::{ExecutorTokens, HandlerInvoker};
pub use journal::{Finished, Journaled, ResumePoint, Run, resume_point};
pub use listener::{CallbackListener, ListenError, bind_callbacks};
pub use owner::{Owned, describe};
pub use plan::{Forecast, PlanError, Planned, plan_release};
pub use resume::{ResumeError, Resumption};
pub use setup::LocalConfig;

use baton_asl::{Clock as AslClock, ExecutionOutcome, ExecutionStart, Executor, StateMachine};
use baton_domain::ports::StoreError;
use baton_domain::support::Ports;
use baton_domain::waits::{self, Delivered, DeliveryError, ProviderEvent};
use baton_store_sqlite::SqliteStore;
use std::sync::Arc;

/// The release definition, as deployed to AWS (with `${...}` substitutions).
pub const RELEASE_DEFINITION: &str = include_str!("../../../statemachines/release.asl.json");

/// The state machine's name, as the SAM stack names it.
pub const STATE_MACHINE_NAME: &str = "baton-release";

/// The functions the definition calls, by substitution name and the Lambda function name they stand for.
pub const FUNCTIONS: [(&str, &str); 7] = [
    ("LoadCatalogFunctionArn", baton_load_catalog::NAME),
    ("TriggerBuildFunctionArn", baton_trigger_build::NAME),
    ("PollBuildFunctionArn", baton_poll_build::NAME),
    ("DeployWaveFunctionArn", baton_deploy_wave::NAME),
    ("CheckHealthFunctionArn", baton_check_health::NAME),
    ("NotifyFunctionArn", baton_notify::NAME),
    ("RecordMetricsFunctionArn", baton_record_metrics::NAME),
];

/// The local stand-in for a deployed function's ARN.
pub fn local_function_arn(function: &str) -> String {
    format!("arn:aws:lambda:local:000000000000:function:baton-{function}")
}

/// The definition with its substitutions made the way `sam deploy` makes them, pointing at
/// the in-process functions.
pub fn substituted_definition() -> String {
    FUNCTIONS.iter().fold(RELEASE_DEFINITION.to_owned(), |text, (placeholder, function)| {
        text.replace(&format!("${{{placeholder}}}"), &local_function_arn(function))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("the bundled release definition is invalid:\n{0}")]
    Definition(String),
    #[error(transparent)]
    Catalog(#[from] baton_domain::ports::CatalogError),
    #[error(transparent)]
    Store(#[from] baton_domain::ports::StoreError),
    #[error(transparent)]
    Providers(#[from] baton_domain::ports::ProviderError),
}

/// The release definition, parsed once, with an executor whose tasks call the handlers.
#[derive(Clone)]
pub struct LocalBaton {
    machine: Arc<StateMachine>,
    executor: Executor,
    ports: Ports,
    /// Where executions are journaled; none keeps them in memory only (tests of the flow).
    journal: Option<SqliteStore>,
    /// Who this process is, as its claims on runs name it.
    pub(crate) owner: String,
    /// What its callback listener's receivers are built from: none for a Baton not opened over a
    /// catalog's files (tests of the flow).
    pub(crate) callbacks_from: Option<Arc<setup::CallbackSources>>,
}

impl LocalBaton {
    pub fn new(ports: Ports, clock: AslClock) -> Result<LocalBaton, LocalError> {
        let machine = StateMachine::from_json(&substituted_definition()).map_err(|err| LocalError::Definition(err.to_string()))?;
        let invoker = HandlerInvoker::new(ports.clone());
        let slot = invoker.executor_slot();
        let executor = Executor::new(Arc::new(invoker), clock);
        let _ = slot.set(executor.downgrade());
        let owner = owner::this_process("baton");
        Ok(LocalBaton { machine: Arc::new(machine), executor, ports, journal: None, owner, callbacks_from: None })
    }

    /// Names this process in its claims by `role` ("baton resume by ann"), with its pid and host.
    pub fn with_owner(self, role: &str) -> LocalBaton {
        LocalBaton { owner: owner::this_process(role), ..self }
    }

    /// Journals every execution started from now on in `store`, so it can be read while it runs
    /// and resumed after a crash.
    pub fn with_journal(self, store: SqliteStore) -> LocalBaton {
        LocalBaton { journal: Some(store), ..self }
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Starts one execution of the release definition with `input` (any signal shape), claimed by
    /// no process: for runs nothing else can resume (tests of the flow).
    pub fn start(&self, execution_name: &str, input: serde_json::Value) -> Run {
        let start = ExecutionStart { state_machine_name: STATE_MACHINE_NAME.to_owned(), ..ExecutionStart::new(execution_name, input) };
        Run::journaled(self.executor.start(self.machine.clone(), start), self.journal.clone(), execution_name, 0, None)
    }

    /// Starts the execution `owned` names with `input`, beating for the claim while it runs.
    pub fn start_owned(&self, owned: Owned, input: serde_json::Value) -> Run {
        let execution = owned.execution.clone();
        let start = ExecutionStart { state_machine_name: STATE_MACHINE_NAME.to_owned(), ..ExecutionStart::new(&execution, input) };
        Run::journaled(self.executor.start(self.machine.clone(), start), self.journal.clone(), &execution, 0, Some(owned))
    }

    /// Hands verified provider events to the releases parked on them, as the provider-events
    /// function does on AWS: the tokens are this process's executor's.
    pub async fn deliver(&self, events: &[ProviderEvent]) -> Result<Delivered, DeliveryError> {
        let tokens = ExecutorTokens(self.executor.clone());
        waits::deliver(events, self.ports.store.as_ref(), &tokens, self.ports.clock.now()).await
    }

    /// Runs one execution to its end.
    pub async fn run(&self, execution_name: &str, input: serde_json::Value) -> ExecutionOutcome {
        self.start(execution_name, input).outcome().await
    }

    /// The journaled events of an execution, oldest first; empty without a journal.
    pub async fn journal(&self, execution_name: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        match &self.journal {
            Some(store) => store.journal(execution_name).await,
            None => Ok(Vec::new()),
        }
    }

    /// What the journal says about an execution: ended, or where it resumes.
    pub async fn journaled(&self, execution_name: &str) -> Result<Journaled, StoreError> {
        resume_point(&self.machine, execution_name, &self.journal(execution_name).await?)
    }

    /// Runs the journaled execution `owned` names on from `point` under its own name: its events
    /// follow the earlier runs' in the journal.
    pub fn resume(&self, owned: Owned, point: ResumePoint) -> Run {
        let execution = owned.execution.clone();
        let start = ExecutionStart {
            state_machine_name: STATE_MACHINE_NAME.to_owned(),
            resume_at: Some(point.at),
            ..ExecutionStart::new(&execution, point.input)
        };
        Run::journaled(self.executor.start(self.machine.clone(), start), self.journal.clone(), &execution, point.journaled, Some(owned))
    }
}

//! An embedded Amazon States Language executor: runs Step Functions definitions in-process.
//!
//! Parse a definition once ([`StateMachine::from_json`]), share it in an `Arc`, and start any number of
//! concurrent executions on an [`Executor`]. Task states call the embedder's [`TaskInvoker`]. Semantics follow
//! the States Language specification and the AWS Step Functions developer guide (JSONPath query language).
mod choice;
mod definition;
mod env;
pub mod errors;
mod executor;
#[doc(hidden)]
pub mod fuzzing;
mod history;
mod intrinsic;
mod jsonpath;
mod limits;
mod payload;

pub use definition::{DefinitionError, DefinitionErrors, StateMachine};
pub use executor::{
    Clock, ExecutionHandle, ExecutionOutcome, ExecutionStart, ExecutionStatus, Executor, HistoryReader, ResumeAt, Stopper, TaskCall,
    TaskFailure, TaskInvoker, TaskTokenError, WeakExecutor,
};
pub use history::{EventDetails, EventType, HistoryEvent, MoreDetails};
pub use limits::{INPUT_TOO_LARGE, certainly_over_payload};

//! `baton asl run|validate`.
use crate::exit;
use crate::failure::{Failure, Outcome};
use baton_asl::{Clock, ExecutionStart, ExecutionStatus, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum AslCommand {
    /// Run a definition once and print `{"status":"SUCCEEDED","output":...}` or
    /// `{"status":"FAILED","error":...,"cause":...}` as one JSON object on stdout (exit 0 either way).
    ///
    /// No task workers are attached: a Task state fails with States.TaskFailed naming its resource.
    Run {
        /// The Amazon States Language definition (JSON).
        definition: PathBuf,
        /// The execution input (JSON); `{}` when omitted.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Wait states and retry intervals take no wall time; timestamps advance virtually.
        #[arg(long)]
        virtual_time: bool,
        /// Include the execution history (GetExecutionHistory-shaped events) as "history".
        #[arg(long)]
        history: bool,
        /// The execution name (`$$.Execution.Name`).
        #[arg(long, default_value = "local")]
        name: String,
        /// Lift AWS's quotas: 256 KiB documents, 25,000 history events, one-year executions.
        #[arg(long)]
        no_quotas: bool,
    },
    /// Check a definition and report every error (exit 1 when there are any).
    Validate {
        /// The Amazon States Language definition (JSON).
        definition: PathBuf,
        /// Print the result as JSON: `{"valid":bool,"errors":[{"pointer","state","message"}]}`.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: AslCommand) -> Outcome {
    match command {
        AslCommand::Run { definition, input, virtual_time, history, name, no_quotas } => {
            run_definition(&definition, input.as_deref(), virtual_time, history, name, no_quotas).await
        }
        AslCommand::Validate { definition, json } => validate(&definition, json),
    }
}

/// Answers every Task with a failure: `baton asl run` has no workers to call.
struct NoTasks;

#[async_trait::async_trait]
impl TaskInvoker for NoTasks {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        Err(TaskFailure::new(
            "States.TaskFailed",
            format!("state '{}': no task worker is available for resource '{}' under `baton asl run`", call.state_name, call.resource),
        ))
    }
}

fn read(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("cannot read the {what} {}", path.display())).caused_by(&e))
}

fn load(path: &Path) -> Result<StateMachine, Failure> {
    let text = read(path, "definition")?;
    StateMachine::from_json(&text).map_err(|errors| Failure::usage(format!("{}: {errors}", path.display())))
}

async fn run_definition(
    definition: &Path,
    input: Option<&Path>,
    virtual_time: bool,
    history: bool,
    name: String,
    no_quotas: bool,
) -> Outcome {
    let machine = Arc::new(load(definition)?);
    let input = match input {
        None => json!({}),
        Some(path) => match read(path, "input")? {
            // Told before parsing: a document of megabytes takes hundreds to parse.
            text if !no_quotas && baton_asl::certainly_over_payload(&text) => {
                let mut out =
                    json!({"status": "FAILED", "error": baton_asl::errors::DATA_LIMIT_EXCEEDED, "cause": baton_asl::INPUT_TOO_LARGE});
                if history {
                    out["history"] = json!([]);
                }
                outln!("{out}");
                return Ok(exit::code(exit::OK));
            }
            text => match serde_json::from_str::<Value>(&text) {
                Ok(v) => v,
                Err(e) => return Err(Failure::usage(format!("the input {} is not valid JSON", path.display())).caused_by(&e)),
            },
        },
    };
    let clock = if virtual_time { Clock::Virtual } else { Clock::Real };
    let executor = Executor::new(Arc::new(NoTasks), clock).with_quotas(!no_quotas);
    let outcome = executor.run(machine, ExecutionStart::new(name, input)).await;
    let status = serde_json::to_value(outcome.status).unwrap_or(Value::Null);
    let mut out = match outcome.status {
        ExecutionStatus::Succeeded => json!({"status": status, "output": outcome.output}),
        _ => json!({"status": status, "error": outcome.error, "cause": outcome.cause}),
    };
    if history {
        out["history"] = serde_json::to_value(&outcome.history).unwrap_or(Value::Null);
    }
    outln!("{out}");
    Ok(exit::code(exit::OK))
}

fn validate(definition: &Path, as_json: bool) -> Outcome {
    let text = read(definition, "definition")?;
    let errors = match StateMachine::from_json(&text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0,
    };
    if as_json {
        outln!("{}", json!({"valid": errors.is_empty(), "errors": errors}));
    } else if errors.is_empty() {
        outln!("{}: valid", definition.display());
    } else {
        outln!("{}: {} error(s)", definition.display(), errors.len());
        for e in &errors {
            outln!("  {e}");
        }
    }
    Ok(exit::code(if errors.is_empty() { exit::OK } else { exit::FAILED }))
}

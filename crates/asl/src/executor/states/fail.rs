//! Fail: the error and cause, literal or read with ErrorPath and CausePath.
use crate::definition::FailField;
use crate::env::{Env, compact};
use crate::executor::context::StateContext;
use crate::executor::engine::{Failure, StateRun, Thread};
use crate::payload::Dynamic;
use serde_json::Value;

pub(crate) fn fail_field(th: &Thread, run: &StateRun, field: Option<&FailField>, input: &Value) -> Result<Option<String>, Failure> {
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

//! Input and output processing shared by the states: InputPath, Parameters, ResultPath, OutputPath,
//! and the `...Path` fields that read a number from the input.
use super::context::StateContext;
use super::engine::{Failure, StateRun, Thread};
use crate::definition::{Amount, IoPath, ResultPath};
use crate::env::{ContextSource, Env, compact};
use crate::errors;
use crate::jsonpath::JsonPath;
use crate::limits;
use crate::payload::Template;
use serde_json::{Map, Value};
use std::sync::Arc;

pub(crate) fn eval(th: &Thread, run: &StateRun, template: &Template, input: &Value) -> Result<Value, Failure> {
    let context = StateContext { exec: &th.exec, run };
    template.eval(&Env::lazy(input, &context)).map_err(|e| run.fail(e))
}

pub(crate) fn no_results(run: &StateRun, path: &JsonPath) -> Failure {
    run.runtime(format!("Invalid path '{path}' : No results for path: {}", path.normalized()))
}

/// What a path field selects in `doc`, or in the context object for a `$$` path: AWS accepts those
/// wherever a path reads a value (InputPath, OutputPath, ItemsPath, the `...Path` fields). Fails with
/// AWS's "No results for path" when a definite path selects nothing.
pub(crate) fn select(th: &Thread, run: &StateRun, path: &JsonPath, doc: &Value) -> Result<Value, Failure> {
    let found = if path.is_context() { StateContext { exec: &th.exec, run }.query(path) } else { path.query(doc) };
    found.ok_or_else(|| no_results(run, path))
}

/// Documents move between states as `Arc`s shared with the history: a state copies one only to change it.
pub(crate) fn input_path(th: &Thread, run: &StateRun, path: &IoPath, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    select_path(th, run, path, raw)
}

pub(crate) fn output_path(th: &Thread, run: &StateRun, path: &IoPath, output: Arc<Value>) -> Result<Arc<Value>, Failure> {
    select_path(th, run, path, &output)
}

fn select_path(th: &Thread, run: &StateRun, path: &IoPath, doc: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    match path {
        IoPath::Whole => Ok(doc.clone()),
        IoPath::Empty => Ok(Arc::new(Value::Object(Map::new()))),
        IoPath::Path(p) => select(th, run, p, doc).map(Arc::new),
    }
}

pub(crate) fn apply_result_path(
    th: &Thread,
    run: &StateRun,
    raw: Arc<Value>,
    result: Arc<Value>,
    path: &ResultPath,
) -> Result<Arc<Value>, Failure> {
    match path {
        ResultPath::Discard => Ok(raw),
        // The input itself (a Pass without Result or Parameters) was measured as the previous output.
        ResultPath::Path(p) if p.is_root() && Arc::ptr_eq(&raw, &result) => Ok(result),
        ResultPath::Path(p) if p.is_root() => bounded(th, run, result),
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
            bounded(th, run, Arc::new(target))
        }
    }
}

/// A state's new result or output, refused when over AWS's size quota (when quotas apply) or when it
/// nests too deeply to be handled safely: a loop that wraps its input one level deeper each time ends
/// here rather than in a stack overflow.
pub(crate) fn bounded(th: &Thread, run: &StateRun, doc: Arc<Value>) -> Result<Arc<Value>, Failure> {
    let too_deep = if th.exec.inner.quotas {
        match limits::json_size(&doc, limits::MAX_DOCUMENT_DEPTH) {
            Some(size) if size > limits::PAYLOAD_BYTES => {
                let cause = format!(
                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                    run.state.name
                );
                return Err(Failure::new(errors::DATA_LIMIT_EXCEEDED, cause));
            }
            size => size.is_none(),
        }
    } else {
        limits::nests_deeper_than(&doc, limits::MAX_DOCUMENT_DEPTH)
    };
    if too_deep {
        return Err(run.runtime(format!("The state's output nests more than {} levels deep.", limits::MAX_DOCUMENT_DEPTH)));
    }
    Ok(doc)
}

/// How a `...Path` field's value is quoted in AWS error messages: strings bare, anything else as JSON.
pub(crate) fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

/// Resolves a `...Path` number field. `parse` returns None when the value is not of the right type.
pub(crate) fn resolve_amount<T: Copy>(
    th: &Thread,
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
            let v = select(th, run, p, input)?;
            parse(&v).ok_or_else(|| {
                run.runtime(format!("The {field}Path field refers to value \"{}\" which is not a valid {kind}: {p}", quoted(&v)))
            })
        }
    }
}

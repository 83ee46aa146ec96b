//! Fail: the error and cause, literal or read with ErrorPath and CausePath: parsed, then resolved.
use crate::definition::Cx;
use crate::env::{Env, compact};
use crate::executor::context::StateContext;
use crate::executor::engine::{Failure, StateRun, Thread};
use crate::payload::Dynamic;
use serde_json::{Map, Value};

#[derive(Debug)]
pub(crate) enum FailField {
    Literal(String),
    Dynamic { field: &'static str, value: Dynamic },
}

impl Cx {
    pub(crate) fn fail_field(&mut self, obj: &Map<String, Value>, at: &str, literal: &str, path: &'static str) -> Option<FailField> {
        match (obj.get(literal), obj.get(path)) {
            (Some(_), Some(_)) => {
                self.err(&format!("{at}/{path}"), format!("use either '{literal}' or '{path}', not both"));
                None
            }
            (Some(v), None) => match v.as_str() {
                Some(s) => Some(FailField::Literal(s.to_owned())),
                None => {
                    self.err(&format!("{at}/{literal}"), "expected a string");
                    None
                }
            },
            (None, Some(v)) => match v.as_str().map(Dynamic::parse) {
                Some(Ok(d)) => Some(FailField::Dynamic { field: path, value: d }),
                Some(Err(e)) => {
                    self.err(&format!("{at}/{path}"), e);
                    None
                }
                None => {
                    self.err(&format!("{at}/{path}"), "expected a JSONPath or an intrinsic function string");
                    None
                }
            },
            (None, None) => None,
        }
    }
}

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

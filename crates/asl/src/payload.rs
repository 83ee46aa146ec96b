//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`): fields ending in `.$` take their
//! value from a path or an intrinsic function. Compiled once; constant sub-trees are kept as plain values.
use crate::env::{Env, EvalError, compact};
use crate::intrinsic::{Intrinsic, looks_like_intrinsic};
use crate::jsonpath::JsonPath;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Const(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path { field: String, path: JsonPath },
    Call { field: String, call: Intrinsic },
}

/// A definition problem found while compiling: where (a JSON pointer suffix) and what.
pub type Problem = (String, String);

/// A path-or-intrinsic string (a `.$` value, ErrorPath, CausePath).
#[derive(Debug, Clone, PartialEq)]
pub enum Dynamic {
    Path(JsonPath),
    Call(Intrinsic),
}

impl Dynamic {
    pub fn parse(text: &str) -> Result<Dynamic, String> {
        if looks_like_intrinsic(text) { Intrinsic::parse(text).map(Dynamic::Call) } else { JsonPath::parse(text).map(Dynamic::Path) }
    }
}

impl Template {
    pub fn compile(value: &Value, pointer: &str, problems: &mut Vec<Problem>) -> Template {
        match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let here = format!("{pointer}/{}", escape_pointer(key));
                    match key.strip_suffix(".$") {
                        Some(name) => {
                            let Some(text) = v.as_str() else {
                                problems.push((here, format!("the value of '{key}' must be a JSONPath or an intrinsic function string")));
                                continue;
                            };
                            let t = match Dynamic::parse(text) {
                                Ok(Dynamic::Path(path)) => Template::Path { field: key.clone(), path },
                                Ok(Dynamic::Call(call)) => Template::Call { field: key.clone(), call },
                                Err(e) => {
                                    problems.push((here, e));
                                    continue;
                                }
                            };
                            fields.push((name.to_owned(), t));
                        }
                        None => fields.push((key.clone(), Template::compile(v, &here, problems))),
                    }
                }
                if fields.iter().all(|(_, t)| matches!(t, Template::Const(_))) && map.keys().all(|k| !k.ends_with(".$")) {
                    Template::Const(value.clone())
                } else {
                    Template::Object(fields)
                }
            }
            Value::Array(items) => {
                let compiled: Vec<Template> =
                    items.iter().enumerate().map(|(i, v)| Template::compile(v, &format!("{pointer}/{i}"), problems)).collect();
                if compiled.iter().all(|t| matches!(t, Template::Const(_))) {
                    Template::Const(value.clone())
                } else {
                    Template::Array(compiled)
                }
            }
            other => Template::Const(other.clone()),
        }
    }

    pub fn eval(&self, env: &Env) -> Result<Value, EvalError> {
        match self {
            Template::Const(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    map.insert(k.clone(), t.eval(env)?);
                }
                Ok(Value::Object(map))
            }
            Template::Array(items) => items.iter().map(|t| t.eval(env)).collect::<Result<Vec<_>, _>>().map(Value::Array),
            Template::Path { field, path } => env.resolve(path).ok_or_else(|| {
                EvalError::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
                    compact(&env.root_for(path))
                ))
            }),
            Template::Call { call, .. } => call.eval(env),
        }
    }
}

pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dollar_fields_are_resolved_and_constants_kept() {
        let mut problems = Vec::new();
        let t = Template::compile(
            &json!({"a": 1, "b.$": "$.x", "c": [{"d.$": "$$.Execution.Name"}], "e.$": "States.Array($.x)"}),
            "/Parameters",
            &mut problems,
        );
        assert!(problems.is_empty());
        let input = json!({"x": "X"});
        let ctx = json!({"Execution": {"Name": "n"}});
        let out = t.eval(&Env::with_context(&input, &ctx)).unwrap();
        assert_eq!(out, json!({"a": 1, "b": "X", "c": [{"d": "n"}], "e": ["X"]}));
        assert!(matches!(Template::compile(&json!({"a": {"b": 1}}), "", &mut problems), Template::Const(_)));
    }

    #[test]
    fn missing_paths_fail_with_aws_text() {
        let t = Template::compile(&json!({"v.$": "$.nope"}), "", &mut Vec::new());
        let input = json!({"a": 0});
        let err = t.eval(&Env::with_context(&input, &Value::Null)).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        assert_eq!(err.message, "The JSONPath '$.nope' specified for the field 'v.$' could not be found in the input '{\"a\":0}'");
    }

    #[test]
    fn bad_dynamic_fields_are_reported_with_their_pointer() {
        let mut problems = Vec::new();
        Template::compile(&json!({"a.$": 3, "b": {"c.$": "nope"}}), "/States/S/Parameters", &mut problems);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].0, "/States/S/Parameters/a.$");
        assert_eq!(problems[1].0, "/States/S/Parameters/b/c.$");
    }
}

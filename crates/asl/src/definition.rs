//! Parsing and validating a definition into its executable form, reporting every problem at once.
use crate::choice::Rule;
use crate::executor::states::{FailField, MapSpec, ParallelSpec, TaskSpec, WaitSpec};
use crate::jsonpath::JsonPath;
use crate::payload::{Problem, Template, escape_pointer};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// One thing wrong with a definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefinitionError {
    /// JSON pointer to the offending field, e.g. `/States/Deploy/Retry/0/ErrorEquals`.
    pub pointer: String,
    /// The innermost state the field belongs to, when it belongs to one.
    pub state: Option<String>,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        match &self.state {
            Some(state) => write!(f, "{at} (state '{state}'): {}", self.message),
            None => write!(f, "{at}: {}", self.message),
        }
    }
}

/// Every problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the definition has {} error(s):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DefinitionErrors {}

/// A parsed, validated state machine, ready to run any number of times concurrently (share it in an `Arc`).
#[derive(Debug)]
pub struct StateMachine {
    pub(crate) program: Program,
    pub(crate) timeout_seconds: Option<u64>,
    /// How many events an execution of this machine has recorded at most (capped): later executions
    /// start with room for them instead of growing their history step by step.
    pub(crate) history_hint: std::sync::atomic::AtomicUsize,
}

impl StateMachine {
    /// The names of the top-level flow's states (not those of Parallel branches or Map iterations).
    pub fn top_level_states(&self) -> impl Iterator<Item = &str> {
        self.program.states.iter().map(|state| &*state.name)
    }

    pub fn from_json(text: &str) -> Result<StateMachine, DefinitionErrors> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            DefinitionErrors(vec![DefinitionError { pointer: String::new(), state: None, message: format!("not valid JSON: {e}") }])
        })?;
        StateMachine::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<StateMachine, DefinitionErrors> {
        if crate::limits::nests_deeper_than(value, crate::limits::MAX_DEFINITION_DEPTH) {
            return Err(DefinitionErrors(vec![DefinitionError {
                pointer: String::new(),
                state: None,
                message: format!("the definition nests more than {} levels deep", crate::limits::MAX_DEFINITION_DEPTH),
            }]));
        }
        let mut cx = Cx { errors: Vec::new(), state: None, names: HashMap::new() };
        let Some(obj) = value.as_object() else {
            return Err(DefinitionErrors(vec![DefinitionError {
                pointer: String::new(),
                state: None,
                message: "a definition must be a JSON object".into(),
            }]));
        };
        cx.unknown_fields(obj, "", &["StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"]);
        if obj.get("QueryLanguage").is_some_and(|ql| ql != "JSONPath") {
            cx.err("/QueryLanguage", "only the JSONPath query language is supported");
        }
        if obj.get("Version").is_some_and(|v| v != "1.0") {
            cx.err("/Version", "expected \"1.0\"");
        }
        let timeout_seconds = cx.positive_int(obj, "", "TimeoutSeconds");
        let program = cx.program(obj, "");
        match program {
            Some(program) if cx.errors.is_empty() => Ok(StateMachine { program, timeout_seconds, history_hint: Default::default() }),
            _ => Err(DefinitionErrors(cx.errors)),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Program {
    pub start: usize,
    pub states: Vec<State>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: std::sync::Arc<str>,
    pub input_path: IoPath,
    pub output_path: IoPath,
    pub next: Transition,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Transition {
    Next(usize),
    End,
}

/// InputPath/OutputPath/ItemsPath: `$` by default, `null` for `{}`.
#[derive(Debug)]
pub(crate) enum IoPath {
    Whole,
    Empty,
    Path(JsonPath),
}

/// ResultPath: `$` by default, `null` to keep the input and drop the result.
#[derive(Debug)]
pub(crate) enum ResultPath {
    Discard,
    Path(JsonPath),
}

impl ResultPath {
    /// `$`: the result becomes the whole output.
    pub fn is_whole(&self) -> bool {
        matches!(self, ResultPath::Path(p) if p.is_root())
    }
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass { parameters: Option<Template>, result: Option<Value>, result_path: ResultPath },
    Task(Box<TaskSpec>),
    Choice { choices: Vec<(Rule, usize)>, default: Option<usize> },
    Wait(WaitSpec),
    Succeed,
    Fail { error: Option<FailField>, cause: Option<FailField> },
    Parallel(Box<ParallelSpec>),
    Map(Box<MapSpec>),
}

/// A number given literally or read from the input at run time.
#[derive(Debug)]
pub(crate) enum Amount<T> {
    Fixed(T),
    Path(JsonPath),
}

#[derive(Debug)]
pub(crate) struct Recovery {
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
}

#[derive(Debug)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub full_jitter: bool,
}

#[derive(Debug)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub result_path: ResultPath,
    pub next: usize,
}

const IO: [&str; 2] = ["InputPath", "OutputPath"];
const FLOW: [&str; 2] = ["Next", "End"];
const RESULT: [&str; 5] = ["ResultPath", "Parameters", "ResultSelector", "Retry", "Catch"];

fn allowed_fields(ty: &str) -> Option<Vec<&'static str>> {
    let mut f = vec!["Type", "Comment"];
    match ty {
        "Pass" => f.extend(IO.iter().chain(&FLOW).chain(&["ResultPath", "Parameters", "Result"])),
        "Task" => f.extend(IO.iter().chain(&FLOW).chain(&RESULT).chain(&[
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ])),
        "Choice" => f.extend(IO.iter().chain(&["Choices", "Default"])),
        "Wait" => f.extend(IO.iter().chain(&FLOW).chain(&["Seconds", "Timestamp", "SecondsPath", "TimestampPath"])),
        "Succeed" => f.extend(IO),
        "Fail" => f.extend(["Error", "Cause", "ErrorPath", "CausePath"]),
        "Parallel" => f.extend(IO.iter().chain(&FLOW).chain(&RESULT).chain(&["Branches"])),
        "Map" => f.extend(IO.iter().chain(&FLOW).chain(&RESULT).chain(&[
            "ItemsPath",
            "ItemSelector",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "Label",
        ])),
        _ => return None,
    }
    Some(f)
}

/// Fields AWS accepts that this executor cannot honour: reported rather than silently ignored.
const UNSUPPORTED: [(&str, &str); 6] = [
    ("ItemReader", "reading Map items from S3 (ItemReader) is not supported by the embedded executor"),
    ("ResultWriter", "writing Map results to S3 (ResultWriter) is not supported by the embedded executor"),
    ("ItemBatcher", "batching Map items (ItemBatcher) is not supported by the embedded executor"),
    ("Assign", "variables (Assign) are not supported by the embedded executor"),
    ("Arguments", "JSONata fields (Arguments) are not supported: use Parameters"),
    ("Output", "JSONata fields (Output) are not supported: use OutputPath"),
];

/// A definition being checked: the problems found so far. Each state type's parsing lives beside
/// its evaluation, in `executor::states`.
pub(crate) struct Cx {
    errors: Vec<DefinitionError>,
    state: Option<String>,
    /// Every state name met so far, with where: AWS requires names unique across the whole
    /// machine, nested Map and Parallel states included.
    names: HashMap<String, String>,
}

impl Cx {
    pub(crate) fn err(&mut self, pointer: &str, message: impl Into<String>) {
        self.errors.push(DefinitionError { pointer: pointer.to_owned(), state: self.state.clone(), message: message.into() });
    }

    pub(crate) fn absorb(&mut self, problems: Vec<Problem>) {
        for (pointer, message) in problems {
            self.err(&pointer, message);
        }
    }

    pub(crate) fn unknown_fields(&mut self, obj: &Map<String, Value>, at: &str, allowed: &[&str]) {
        for key in obj.keys() {
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(k, _)| k == key) {
                self.err(&format!("{at}/{key}"), *why);
            } else if !allowed.contains(&key.as_str()) {
                self.err(
                    &format!("{at}/{}", escape_pointer(key)),
                    format!("unknown field '{key}'; expected one of {}", allowed.join(", ")),
                );
            }
        }
    }

    pub(crate) fn program(&mut self, obj: &Map<String, Value>, at: &str) -> Option<Program> {
        let Some(states) = obj.get("States").and_then(Value::as_object).filter(|s| !s.is_empty()) else {
            self.err(&format!("{at}/States"), "expected a non-empty object of states");
            return None;
        };
        let index: HashMap<&str, usize> = states.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        let start = match obj.get("StartAt").and_then(Value::as_str) {
            Some(name) => match index.get(name) {
                Some(i) => Some(*i),
                None => {
                    self.err(&format!("{at}/StartAt"), format!("'{name}' is not a state in this States object"));
                    None
                }
            },
            None => {
                self.err(&format!("{at}/StartAt"), "expected the name of the first state");
                None
            }
        };
        let outer = self.state.clone();
        let mut parsed = Vec::with_capacity(states.len());
        for (name, def) in states {
            self.state = Some(name.clone());
            let here = format!("{at}/States/{}", escape_pointer(name));
            if name.chars().count() > 80 {
                self.err(&here, "state names must be at most 80 characters long");
            }
            if let Some(first) = self.names.get(name).cloned() {
                self.err(
                    &here,
                    format!("state name '{name}' is already used at {first}; state names must be unique across the whole state machine"),
                );
            } else {
                self.names.insert(name.clone(), here.clone());
            }
            parsed.push(self.state_def(name, def, &here, &index));
        }
        self.state = outer;
        if let Some(start) = start {
            self.check_graph(states, start, at, &index);
        }
        let states: Vec<State> = parsed.into_iter().collect::<Option<_>>()?;
        Some(Program { start: start?, states })
    }

    /// Reachability and termination, on the raw definition so they are reported even when states have errors.
    fn check_graph(&mut self, states: &Map<String, Value>, start: usize, at: &str, index: &HashMap<&str, usize>) {
        let defs: Vec<(&String, &Value)> = states.iter().collect();
        let targets = |def: &Value| -> Vec<usize> {
            let mut names: Vec<&Value> = Vec::new();
            names.extend(def.get("Next"));
            names.extend(def.get("Default"));
            for list in ["Choices", "Catch"] {
                names.extend(def.get(list).and_then(Value::as_array).into_iter().flatten().filter_map(|c| c.get("Next")));
            }
            names.into_iter().filter_map(|n| n.as_str().and_then(|n| index.get(n).copied())).collect()
        };
        let mut seen = vec![false; defs.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(targets(defs[i].1));
            }
        }
        for ((name, _), reached) in defs.iter().zip(seen) {
            if !reached {
                self.errors.push(DefinitionError {
                    pointer: format!("{at}/States/{}", escape_pointer(name)),
                    state: Some((*name).clone()),
                    message: "this state is not reachable from StartAt".into(),
                });
            }
        }
        let terminal = defs.iter().any(|(_, d)| {
            d.get("End") == Some(&Value::Bool(true)) || matches!(d.get("Type").and_then(Value::as_str), Some("Succeed" | "Fail"))
        });
        if !terminal {
            self.err(&format!("{at}/States"), "no terminal state: at least one state must have \"End\": true or be Succeed or Fail");
        }
    }

    fn state_def(&mut self, name: &str, def: &Value, at: &str, index: &HashMap<&str, usize>) -> Option<State> {
        let Some(obj) = def.as_object() else {
            self.err(at, "a state must be a JSON object");
            return None;
        };
        let Some(ty) = obj.get("Type").and_then(Value::as_str) else {
            self.err(&format!("{at}/Type"), "expected one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map");
            return None;
        };
        let Some(allowed) = allowed_fields(ty) else {
            self.err(
                &format!("{at}/Type"),
                format!("'{ty}' is not a state type; expected one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map"),
            );
            return None;
        };
        self.unknown_fields(obj, at, &allowed);
        let errors_before = self.errors.len();
        let next = if allowed.contains(&"End") { self.transition(obj, at, index) } else { Some(Transition::End) };
        let input_path = self.io_path(obj, at, "InputPath");
        let output_path = self.io_path(obj, at, "OutputPath");
        let kind = match ty {
            "Pass" => Some(self.pass(obj, at)),
            "Task" => self.task(obj, at, index).map(|t| Kind::Task(Box::new(t))),
            "Choice" => self.choice(obj, at, index),
            "Wait" => self.wait(obj, at).map(Kind::Wait),
            "Succeed" => Some(Kind::Succeed),
            "Fail" => Some(Kind::Fail {
                error: self.fail_field(obj, at, "Error", "ErrorPath"),
                cause: self.fail_field(obj, at, "Cause", "CausePath"),
            }),
            "Parallel" => self.parallel(obj, at, index).map(|p| Kind::Parallel(Box::new(p))),
            _ => self.map(obj, at, index).map(|m| Kind::Map(Box::new(m))),
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(State { name: name.into(), input_path, output_path, next: next?, kind: kind? })
    }

    fn transition(&mut self, obj: &Map<String, Value>, at: &str, index: &HashMap<&str, usize>) -> Option<Transition> {
        match (obj.get("Next"), obj.get("End")) {
            (Some(_), Some(_)) => {
                self.err(&format!("{at}/End"), "a state has either 'Next' or \"End\": true, not both");
                None
            }
            (Some(next), None) => self.target(next, &format!("{at}/Next"), index).map(Transition::Next),
            (None, Some(Value::Bool(true))) => Some(Transition::End),
            (None, Some(_)) => {
                self.err(&format!("{at}/End"), "expected true (or use 'Next')");
                None
            }
            (None, None) => {
                self.err(at, "expected 'Next' or \"End\": true");
                None
            }
        }
    }

    pub(crate) fn target(&mut self, v: &Value, at: &str, index: &HashMap<&str, usize>) -> Option<usize> {
        match v.as_str() {
            Some(name) => match index.get(name) {
                Some(i) => Some(*i),
                None => {
                    self.err(at, format!("'{name}' is not a state in this States object"));
                    None
                }
            },
            None => {
                self.err(at, "expected a state name");
                None
            }
        }
    }

    pub(crate) fn path(&mut self, v: &Value, at: &str) -> Option<JsonPath> {
        match v.as_str().map(JsonPath::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                self.err(at, e);
                None
            }
            None => {
                self.err(at, "expected a JSONPath string");
                None
            }
        }
    }

    pub(crate) fn io_path(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> IoPath {
        match obj.get(field) {
            None => IoPath::Whole,
            Some(Value::Null) => IoPath::Empty,
            Some(v) => match self.path(v, &format!("{at}/{field}")) {
                Some(p) if p.is_root() && !p.is_context() => IoPath::Whole,
                Some(p) => IoPath::Path(p),
                None => IoPath::Whole,
            },
        }
    }

    pub(crate) fn result_path(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> ResultPath {
        let here = format!("{at}/{field}");
        match obj.get(field) {
            None => ResultPath::Path(JsonPath::parse("$").expect("'$' is a path")),
            Some(Value::Null) => ResultPath::Discard,
            Some(v) => match self.path(v, &here) {
                Some(p) if p.is_reference() => ResultPath::Path(p),
                Some(_) => {
                    self.err(&here, "expected a reference path: only field names and array indices, no wildcards, filters or '$$'");
                    ResultPath::Discard
                }
                None => ResultPath::Discard,
            },
        }
    }

    pub(crate) fn template(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<Template> {
        let v = obj.get(field)?;
        let here = format!("{at}/{field}");
        if !v.is_object() {
            self.err(&here, "expected a JSON object");
            return None;
        }
        let mut problems = Vec::new();
        let t = Template::compile(v, &here, &mut problems);
        self.absorb(problems);
        Some(t)
    }

    pub(crate) fn int_field(&mut self, obj: &Map<String, Value>, at: &str, field: &str, min: i64) -> Option<i64> {
        let v = obj.get(field)?;
        match v.as_i64() {
            Some(n) if n >= min => Some(n),
            _ => {
                let what = if min > 0 { "a positive integer" } else { "a non-negative integer" };
                self.err(&format!("{at}/{field}"), format!("expected {what}"));
                None
            }
        }
    }

    pub(crate) fn positive_int(&mut self, obj: &Map<String, Value>, at: &str, field: &str) -> Option<u64> {
        self.int_field(obj, at, field, 1).map(|n| n as u64)
    }

    /// A literal number field and its `...Path` twin, at most one of them.
    pub(crate) fn amount<T>(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        field: &str,
        literal: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Amount<T>> {
        let path_field = format!("{field}Path");
        match (obj.contains_key(field), obj.get(&path_field)) {
            (true, Some(_)) => {
                self.err(&format!("{at}/{path_field}"), format!("use either '{field}' or '{path_field}', not both"));
                None
            }
            (true, None) => literal(self).map(Amount::Fixed),
            (false, Some(v)) => self.path(v, &format!("{at}/{path_field}")).map(Amount::Path),
            (false, None) => None,
        }
    }

    pub(crate) fn recovery(&mut self, obj: &Map<String, Value>, at: &str, index: &HashMap<&str, usize>) -> Recovery {
        let mut retry = Vec::new();
        if let Some(v) = obj.get("Retry") {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let last = i + 1 == items.len();
                        retry.extend(self.retrier(item, &format!("{at}/Retry/{i}"), last));
                    }
                }
                None => self.err(&format!("{at}/Retry"), "expected an array of retriers"),
            }
        }
        let mut catch = Vec::new();
        if let Some(v) = obj.get("Catch") {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let last = i + 1 == items.len();
                        catch.extend(self.catcher(item, &format!("{at}/Catch/{i}"), last, index));
                    }
                }
                None => self.err(&format!("{at}/Catch"), "expected an array of catchers"),
            }
        }
        Recovery {
            retry,
            catch,
            result_selector: self.template(obj, at, "ResultSelector"),
            result_path: self.result_path(obj, at, "ResultPath"),
        }
    }

    fn error_equals(&mut self, obj: &Map<String, Value>, at: &str, last: bool) -> Option<Vec<String>> {
        let here = format!("{at}/ErrorEquals");
        let names: Option<Vec<String>> = obj
            .get("ErrorEquals")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect());
        let Some(names) = names else {
            self.err(&here, "expected a non-empty array of error names");
            return None;
        };
        if names.iter().any(|n| n == crate::errors::ALL) && (names.len() > 1 || !last) {
            self.err(&here, "States.ALL must appear alone, in the last retrier or catcher");
        }
        Some(names)
    }

    fn retrier(&mut self, v: &Value, at: &str, last: bool) -> Option<Retrier> {
        let Some(obj) = v.as_object() else {
            self.err(at, "expected a retrier object");
            return None;
        };
        self.unknown_fields(
            obj,
            at,
            &["ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"],
        );
        let errors = self.error_equals(obj, at, last);
        let backoff_rate = match obj.get("BackoffRate") {
            None => 2.0,
            Some(v) => match v.as_f64() {
                Some(r) if r >= 1.0 => r,
                _ => {
                    self.err(&format!("{at}/BackoffRate"), "expected a number greater than or equal to 1.0");
                    2.0
                }
            },
        };
        let full_jitter = match obj.get("JitterStrategy").map(|v| v.as_str()) {
            None | Some(Some("NONE")) => false,
            Some(Some("FULL")) => true,
            Some(_) => {
                self.err(&format!("{at}/JitterStrategy"), "expected \"FULL\" or \"NONE\"");
                false
            }
        };
        Some(Retrier {
            errors: errors?,
            interval_seconds: self.positive_int(obj, at, "IntervalSeconds").unwrap_or(1),
            max_attempts: self.int_field(obj, at, "MaxAttempts", 0).unwrap_or(3) as u64,
            backoff_rate,
            max_delay_seconds: self.positive_int(obj, at, "MaxDelaySeconds"),
            full_jitter,
        })
    }

    fn catcher(&mut self, v: &Value, at: &str, last: bool, index: &HashMap<&str, usize>) -> Option<Catcher> {
        let Some(obj) = v.as_object() else {
            self.err(at, "expected a catcher object");
            return None;
        };
        self.unknown_fields(obj, at, &["ErrorEquals", "Next", "ResultPath", "Comment"]);
        let errors = self.error_equals(obj, at, last);
        let next = match obj.get("Next") {
            Some(n) => self.target(n, &format!("{at}/Next"), index),
            None => {
                self.err(&format!("{at}/Next"), "expected the name of the state to go to");
                None
            }
        };
        let result_path = self.result_path(obj, at, "ResultPath");
        Some(Catcher { errors: errors?, result_path, next: next? })
    }

    pub(crate) fn non_empty_array<'v>(&mut self, obj: &'v Map<String, Value>, at: &str, field: &str, what: &str) -> Option<&'v Vec<Value>> {
        let items = obj.get(field).and_then(Value::as_array).filter(|a| !a.is_empty());
        if items.is_none() {
            self.err(&format!("{at}/{field}"), format!("expected a non-empty array of {what}"));
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(def: Value) -> Vec<DefinitionError> {
        StateMachine::from_value(&def).expect_err("definition should be rejected").0
    }

    #[test]
    fn state_names_are_unique_across_nested_states() {
        let errs = errors(json!({
            "StartAt": "M",
            "States": {
                "M": {"Type": "Map", "ItemProcessor": {"StartAt": "Work", "States": {"Work": {"Type": "Pass", "End": true}}}, "Next": "P"},
                "P": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "Work", "States": {"Work": {"Type": "Pass", "End": true}}}]}
            }
        }));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].pointer, "/States/P/Branches/0/States/Work");
        assert!(errs[0].message.contains("/States/M/ItemProcessor/States/Work"), "{}", errs[0].message);
    }

    #[test]
    fn a_valid_definition_parses() {
        let sm = StateMachine::from_value(&json!({
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Next": "B"},
                "B": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "C"}], "Default": "D"},
                "C": {"Type": "Succeed"},
                "D": {"Type": "Fail", "Error": "E"}
            }
        }))
        .unwrap();
        assert_eq!(sm.program.states.len(), 4);
    }

    #[test]
    fn every_error_is_reported_with_pointer_and_state() {
        let errs = errors(json!({
            "StartAt": "Deploy",
            "States": {
                "Deploy": {
                    "Type": "Task",
                    "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                    "Retry": [{"ErrorEquals": [], "BackoffRate": 0.5}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Nowhere"}],
                    "Next": "Done"
                },
                "Done": {"Type": "Wait", "End": true},
                "Orphan": {"Type": "Nope"}
            }
        }));
        let pointers: Vec<&str> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/States/Deploy/Retry/0/ErrorEquals"), "{errs:?}");
        assert!(pointers.contains(&"/States/Deploy/Retry/0/BackoffRate"));
        assert!(pointers.contains(&"/States/Deploy/Catch/0/Next"));
        assert!(pointers.contains(&"/States/Done"));
        assert!(pointers.contains(&"/States/Orphan/Type"));
        let retry = errs.iter().find(|e| e.pointer == "/States/Deploy/Retry/0/ErrorEquals").unwrap();
        assert_eq!(retry.state.as_deref(), Some("Deploy"));
        assert_eq!(retry.to_string(), "/States/Deploy/Retry/0/ErrorEquals (state 'Deploy'): expected a non-empty array of error names");
    }

    #[test]
    fn nested_states_and_reachability() {
        let errs = errors(json!({
            "StartAt": "M",
            "States": {
                "M": {"Type": "Map", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "ResultPath": "$[*]", "End": true}}}, "End": true},
                "Lost": {"Type": "Succeed"}
            }
        }));
        assert_eq!(errs[0].pointer, "/States/M/ItemProcessor/States/I/ResultPath");
        assert_eq!(errs[0].state.as_deref(), Some("I"));
        assert!(errs.iter().any(|e| e.pointer == "/States/Lost" && e.message.contains("not reachable")));
    }

    #[test]
    fn states_all_must_be_last_and_alone() {
        let errs = errors(json!({
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": "r", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}
        }));
        assert_eq!(errs[0].pointer, "/States/T/Retry/0/ErrorEquals");
    }

    #[test]
    fn deeply_nested_definitions_are_refused_cleanly() {
        // As text, serde_json's recursion limit stops it.
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = StateMachine::from_json(&text).unwrap_err();
        assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
        // As a value built by the caller, the depth check does, before anything recurses over it.
        let mut deep = json!({});
        for _ in 0..2_000 {
            deep = Value::Array(vec![deep]);
        }
        // (Not through json!, which would copy `deep` recursively.)
        let mut def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": null, "End": true}}});
        def["States"]["P"]["Result"] = deep;
        let err = StateMachine::from_value(&def).unwrap_err();
        assert!(err.to_string().contains("nests more than 128 levels deep"), "{err}");
        // Dropping a value this deep would itself overflow a small stack: leak it.
        std::mem::forget(def);
    }

    #[test]
    fn not_json_is_an_error_not_a_panic() {
        let err = StateMachine::from_json("{").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"));
    }
}

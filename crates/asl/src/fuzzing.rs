//! The bodies of the fuzz targets (`fuzz/fuzz_targets/asl_*.rs`), here so that the nightly fuzzer and
//! the stable replay test (`tests/asl/fuzz_corpus.rs`) run the same code. Each takes arbitrary bytes and
//! returns normally whatever they are; a panic (or an execution that failed internally, which is a
//! caught panic) is a bug. Only public APIs are used: hostile text reaches the parsers the way a
//! definition's author reaches them.
use crate::{Clock, ExecutionOutcome, ExecutionStart, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use serde_json::{Value, json};
use std::sync::Arc;

/// Arbitrary bytes as a definition; a valid one is also run, on a small input.
pub fn definition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(machine) = StateMachine::from_json(text) {
        run(machine, json!({"a": [1, 2, 3], "s": "x"}));
    }
}

/// Arbitrary text as a path in every field that takes one, each run on [`document`].
pub fn jsonpath(data: &[u8]) {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let pass = |fields: Value| json!({"StartAt": "S", "States": {"S": pass_state(fields)}});
    for def in [
        pass(json!({"InputPath": path})),
        pass(json!({"OutputPath": path})),
        // ResultPath takes only reference paths and writes into the document.
        pass(json!({"Result": {"r": 1}, "ResultPath": path})),
        pass(json!({"Parameters": {"x.$": path}})),
        json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": path, "IsPresent": true, "Next": "Y"},
                                                 {"Variable": "$.n", "NumericEqualsPath": path, "Next": "Y"}],
                  "Default": "Y"},
            "Y": {"Type": "Succeed"}}}),
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": path, "End": true,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}}),
    ] {
        parse_and_run(&def, document());
    }
}

/// Arbitrary text as a payload template's value (`"x.$": <text>`): an intrinsic call when it
/// names one, otherwise a path.
pub fn intrinsic(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let def = json!({"StartAt": "S", "States": {"S": pass_state(json!({"Parameters": {"x.$": text}}))}});
    parse_and_run(&def, document());
}

/// Arbitrary JSON input through a fixed definition with every kind of state that moves data.
pub fn execution(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Value>(data) else { return };
    let machine = EXECUTION_MACHINE.get_or_init(|| {
        // The text is ours; the harness would be wrong, not the executor, if it failed to parse.
        StateMachine::from_json(EXECUTION_DEFINITION).map(Arc::new).expect("the fuzzing definition is valid")
    });
    check(&runtime().block_on(executor().run(machine.clone(), ExecutionStart::new("fuzz", input))));
}

static EXECUTION_MACHINE: std::sync::OnceLock<Arc<StateMachine>> = std::sync::OnceLock::new();

/// Reads every shape of input it can: Choice on types and values, intrinsics on strings and arrays,
/// Map over an array (or an error when there is none), Parallel copies. Pass states cannot Catch, so
/// the intrinsics that fail on most inputs run in one-branch Parallels that do, and execution goes on.
const EXECUTION_DEFINITION: &str = r#"{
  "StartAt": "HasN",
  "States": {
    "HasN": {"Type": "Choice", "Choices": [{"And": [{"Variable": "$.n", "IsPresent": true}, {"Variable": "$.n", "IsNumeric": true}], "Next": "Size"}], "Default": "HasS"},
    "Size": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1000000, "Next": "Big"}], "Default": "Big"},
    "Big": {"Type": "Parallel", "ResultPath": "$.big", "Next": "HasS",
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "HasS"}],
      "Branches": [{"StartAt": "Add", "States": {"Add": {"Type": "Pass", "End": true,
        "Parameters": {"sum.$": "States.MathAdd($.n, 1)", "range.$": "States.ArrayRange(0, $.n, 100000)"}}}}]},
    "HasS": {"Type": "Choice", "Choices": [{"And": [{"Variable": "$.s", "IsPresent": true}, {"Variable": "$.s", "IsString": true}], "Next": "Match"}], "Default": "Shape"},
    "Match": {"Type": "Choice", "Choices": [{"Variable": "$.s", "StringMatches": "*a*b*", "Next": "Strings"},
                                             {"Variable": "$.s", "TimestampLessThan": "2026-01-01T00:00:00Z", "Next": "Strings"}], "Default": "Strings"},
    "Strings": {"Type": "Parallel", "ResultPath": "$.strings", "Next": "Shape",
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Shape"}],
      "Branches": [{"StartAt": "Text", "States": {"Text": {"Type": "Pass", "End": true, "Parameters": {
        "f.$": "States.Format('{} and {}', $.s, $)",
        "j.$": "States.JsonToString($)",
        "h.$": "States.Hash($.s, 'SHA-256')",
        "b.$": "States.Base64Encode(States.JsonToString($))",
        "split.$": "States.StringSplit($.s, ',')",
        "parsed.$": "States.StringToJson($.s)"}}}}]},
    "Shape": {"Type": "Parallel", "ResultPath": "$.parallel", "Next": "HasItems",
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "HasItems"}],
      "Branches": [
        {"StartAt": "Whole", "States": {"Whole": {"Type": "Pass", "Parameters": {"all.$": "$", "deep.$": "$..*", "merged.$": "States.JsonMerge($, $, false)"}, "End": true}}},
        {"StartAt": "Filter", "States": {"Filter": {"Type": "Pass", "InputPath": "$..[?(@.n > 1)]", "End": true}}}
      ]},
    "HasItems": {"Type": "Choice", "Choices": [{"And": [{"Variable": "$.items", "IsPresent": true}, {"Not": {"Variable": "$.items", "IsNull": true}}], "Next": "Each"}], "Default": "Done"},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 4, "ResultPath": "$.mapped", "End": true,
      "ItemSelector": {"item.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Done"}],
      "ItemProcessor": {"StartAt": "Item", "States": {
        "Item": {"Type": "Choice", "Choices": [{"Variable": "$.item", "IsNumeric": true, "Next": "Number"}], "Default": "Other"},
        "Number": {"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.item, $.i)", "u.$": "States.ArrayUnique(States.Array($.item, $.item))"}, "End": true},
        "Other": {"Type": "Pass", "Parameters": {"v.$": "States.ArrayPartition(States.Array($.item, $.i), 1)", "len.$": "States.ArrayLength(States.Array($.item))"}, "End": true}
      }}},
    "Done": {"Type": "Succeed"}
  }
}"#;

fn pass_state(fields: Value) -> Value {
    let mut state = json!({"Type": "Pass", "End": true});
    if let (Some(state), Value::Object(fields)) = (state.as_object_mut(), fields) {
        state.extend(fields);
    }
    state
}

/// The document paths and intrinsics run on: every JSON type, nesting, names that need quoting,
/// strings that intrinsics parse (JSON, base64, lists).
pub fn document() -> Value {
    json!({
        "n": 3, "f": -1.5e3, "big": 18446744073709551615u64, "t": true, "z": null,
        "s": "a,b,,c", "json": "{\"k\": [1, {\"v\": \"w\"}]}", "b64": "aGVsbG8=", "empty": "",
        "a": [1, 2, 3, [4, [5]], {"n": 6}],
        "objs": [{"n": 1, "s": "x"}, {"n": 2, "s": "y", "tags": ["p", "q"]}, {"m": null}],
        "k.e y": {"$": {"@": ["'", "\""]}},
        "deep": {"a": {"b": {"c": {"d": [[[[{"e": "f"}]]]]}}}}
    })
}

fn parse_and_run(def: &Value, input: Value) {
    if let Ok(machine) = StateMachine::from_value(def) {
        run(machine, input);
    }
}

fn run(machine: StateMachine, input: Value) {
    check(&runtime().block_on(executor().run(Arc::new(machine), ExecutionStart::new("fuzz", input))));
}

/// The executor turns a panic into a failed execution so that one bad state does not take down its
/// embedder; under fuzzing that is still a bug, so it is raised again here.
fn check(outcome: &ExecutionOutcome) {
    if let Some(cause) = outcome.cause.as_deref().filter(|c| c.starts_with(crate::executor::FAILED_INTERNALLY)) {
        panic!("the execution failed internally: {cause}");
    }
}

/// Answers every task with its payload, and refuses callbacks: nothing would ever send the token,
/// and a wait for it is the definition's choice, not a hang of the executor.
struct Echo;

#[async_trait::async_trait]
impl TaskInvoker for Echo {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        match call.task_token {
            Some(_) => Err(TaskFailure::new("Fuzz.NoCallbacks", "the fuzzing invoker does not answer task tokens")),
            None => Ok(call.payload),
        }
    }
}

fn executor() -> Executor {
    Executor::new(Arc::new(Echo), Clock::Virtual)
}

thread_local! {
    static RUNTIME: &'static tokio::runtime::Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime")
    ));
}

/// One runtime per thread for every input: building one per input would dominate the fuzzer's time.
fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.with(|rt| *rt)
}

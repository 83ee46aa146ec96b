//! Bounds on what a definition or an execution may build, so hostile input ends in an error rather
//! than a stack overflow or an endless run.
use serde_json::Value;

/// How deeply a document an execution builds may nest. serde_json clones, compares, drops and
/// serializes documents recursively: a loop that wraps its input one level deeper per state (a Pass
/// with `{"a.$": "$"}`) would otherwise overflow the stack in thousands of states. Input parsed from
/// text never comes near it (serde_json stops at 128).
pub const MAX_DOCUMENT_DEPTH: usize = 512;

/// How deeply a definition given as a [`Value`] may nest, as serde_json allows from text: it is
/// compiled recursively.
pub const MAX_DEFINITION_DEPTH: usize = 128;

/// AWS's quota on an execution's history: "If the execution history reaches this quota, the
/// execution will fail" (Step Functions developer guide, Quotas).
pub const HISTORY_EVENTS: usize = 25_000;

/// AWS's maximum execution time for Standard workflows (developer guide, Quotas): longer executions
/// fail with States.Timeout. It also bounds a Wait: "the maximum wait time ... is one year".
pub const MAX_EXECUTION_SECONDS: u64 = 365 * 24 * 3600;

/// True when `v` nests arrays and objects more than `limit` levels deep. Recurses at most `limit + 1`
/// levels, so it is safe on any document.
pub fn nests_deeper_than(v: &Value, limit: usize) -> bool {
    match v {
        Value::Array(items) => limit == 0 || items.iter().any(|c| nests_deeper_than(c, limit - 1)),
        Value::Object(map) => limit == 0 || map.values().any(|c| nests_deeper_than(c, limit - 1)),
        _ => false,
    }
}

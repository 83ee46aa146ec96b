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

/// "In this mode [Inline], the Map state supports up to 40 concurrent iterations" (developer
/// guide, Using Map state in Inline mode): no MaxConcurrency, or a larger one, runs 40 at a time.
pub const INLINE_MAP_CONCURRENCY: usize = 40;

/// AWS's quota on execution input, state input and output and task results: "262,144 bytes of data
/// as a UTF-8 encoded string" (developer guide, Quotas).
pub const PAYLOAD_BYTES: usize = 262_144;

/// What an execution whose input is over [`PAYLOAD_BYTES`] fails with (States.DataLimitExceeded).
pub const INPUT_TOO_LARGE: &str = "The execution input has a size exceeding the maximum number of bytes service limit.";

/// How many bytes of JSON text the shortest escape-free writing of them can take at most: a
/// `\u0041` (six bytes) is written `A`.
const MOST_SHRINK: usize = 6;

/// Whether the JSON `text` is certainly over [`PAYLOAD_BYTES`] once parsed and written compactly,
/// told without parsing it (a document of megabytes takes hundreds to parse): its bytes outside
/// insignificant whitespace, divided by the most its escapes can shrink, are already over.
/// False for any text that may fit, valid JSON or not: parsing decides those.
pub fn certainly_over_payload(text: &str) -> bool {
    let (mut significant, mut in_string, mut escaped) = (0usize, false, false);
    for byte in text.bytes() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b' ' | b'\t' | b'\n' | b'\r' if !in_string => continue,
            _ => {}
        }
        significant += 1;
        if significant > PAYLOAD_BYTES * MOST_SHRINK {
            return true;
        }
    }
    false
}

/// The size of `v` as compact JSON text in UTF-8, as serde_json writes it, or `None` when it nests
/// more than `depth` levels deep (so the walk stays within the stack).
pub fn json_size(v: &Value, depth: usize) -> Option<usize> {
    Some(match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) if n.is_u64() => digits(n.as_u64().unwrap_or_default()),
        Value::Number(n) if n.is_i64() => 1 + digits(n.as_i64().unwrap_or_default().unsigned_abs()),
        Value::Number(n) => {
            let mut counter = Counter(0);
            // Number's Display is the text serde_json writes; writing to a counter cannot fail.
            let _ = std::fmt::Write::write_fmt(&mut counter, format_args!("{n}"));
            counter.0
        }
        Value::String(s) => string_size(s),
        Value::Array(items) => {
            let depth = depth.checked_sub(1)?;
            let mut size = 2 + items.len().saturating_sub(1);
            for item in items {
                size += json_size(item, depth)?;
            }
            size
        }
        Value::Object(map) => {
            let depth = depth.checked_sub(1)?;
            let mut size = 2 + map.len().saturating_sub(1);
            for (k, item) in map {
                size += string_size(k) + 1 + json_size(item, depth)?;
            }
            size
        }
    })
}

/// How many decimal digits `n` has: integers are most numbers, and this is cheaper than formatting.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// A JSON string's size with its quotes and serde_json's escapes.
fn string_size(s: &str) -> usize {
    2 + s.len()
        + s.bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum::<usize>()
}

struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_certainly_over_the_payload_quota_is_told_without_parsing_and_nothing_that_may_fit() {
        let over = PAYLOAD_BYTES * MOST_SHRINK;
        let string = |n: usize| format!("\"{}\"", "a".repeat(n - 2));
        assert!(certainly_over_payload(&string(over + 1)), "a string past what any escape can shrink");
        assert!(!certainly_over_payload(&string(over)), "may fit: parsing decides");
        // Whitespace between tokens is no part of the compact size; inside strings it is.
        let padded = format!("{{\"a\": {}1}}", " ".repeat(over + 1));
        assert!(!certainly_over_payload(&padded));
        assert!(certainly_over_payload(&format!("[\"{}\"]", " ".repeat(over))));
        // A string's escaped quote does not end it: the spaces after it are inside.
        assert!(certainly_over_payload(&format!("[\"\\\"{}\"]", " ".repeat(over))));
        // Escapes that shrink most still cannot bring the certainly-over below the quota.
        let escapes = "\\u0041".repeat(PAYLOAD_BYTES + 1);
        let parsed: serde_json::Value = serde_json::from_str(&format!("\"{escapes}\"")).unwrap();
        assert!(json_size(&parsed, 4).unwrap() > PAYLOAD_BYTES && certainly_over_payload(&format!("\"{escapes}\"")));
    }

    #[test]
    fn json_size_is_the_length_serde_json_writes() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(-12.5e-7),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0),
            json!(-7),
            json!(10),
            json!("a\"b\\c\n\u{1}é"),
            json!({"k\t": [1, {}, [], "x"], "": null}),
        ] {
            assert_eq!(json_size(&v, 10), Some(serde_json::to_string(&v).unwrap().len()), "{v}");
        }
        assert_eq!(json_size(&json!([[1]]), 1), None);
    }
}

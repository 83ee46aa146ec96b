//! What a release costs on AWS, from its execution history: the state transitions Step Functions
//! bills (standard workflows), the task invocations (each a Lambda request) and the Lambda time
//! they took, priced at the public on-demand prices. A pure function over counts
//! ([`estimate`]), so a plan made before a release (counts from the definition and the catalog)
//! prices the same way as a release that ran (counts from its history, [`usage`]). Free tiers
//! and regional price differences are left out: it is an estimate to compare releases by.

use serde::{Deserialize, Serialize};

/// What an execution used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// State transitions: each state entered, and each retry of a task (AWS counts a retry as a
    /// transition of its own).
    pub transitions: u64,
    /// Task invocations: each Lambda request, retries included.
    pub invocations: u64,
    /// Lambda run time over all invocations, each rounded up to the millisecond as Lambda bills it.
    pub task_milliseconds: u64,
}

/// The size of Baton's functions, as `infra/template.yaml`'s `Globals` declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSize {
    pub memory_mb: u64,
    /// Graviton (arm64) compute is billed about 20 % below x86_64.
    pub arm64: bool,
}

/// Baton's functions: 256 MB on arm64 (a test keeps this in step with the template).
pub const BATON_FUNCTIONS: FunctionSize = FunctionSize { memory_mb: 256, arm64: true };

/// On-demand prices in US dollars (US East, N. Virginia, as published by AWS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Step Functions standard workflows: $0.025 per 1,000 state transitions.
    pub per_transition: f64,
    /// Lambda: $0.20 per million requests.
    pub per_request: f64,
    /// Lambda compute per GB-second, x86_64 and arm64.
    pub per_gb_second_x86: f64,
    pub per_gb_second_arm64: f64,
}

pub const PUBLIC_PRICES: Prices = Prices {
    per_transition: 0.025 / 1000.0,
    per_request: 0.20 / 1_000_000.0,
    per_gb_second_x86: 0.000_016_666_7,
    per_gb_second_arm64: 0.000_013_333_4,
};

/// A release's cost: what it used and its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub transitions: u64,
    pub invocations: u64,
    /// Lambda compute: the invocations' time times the functions' memory.
    pub lambda_gb_seconds: f64,
    /// Step Functions' transitions, Lambda's requests and compute, in US dollars.
    pub dollars: f64,
}

/// The calls a release makes against its providers' APIs (and their quotas): each build start
/// and poll, each poll of a target's rollout, each sample of a gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCalls {
    pub build: u64,
    pub rollout_polls: u64,
    pub gate_samples: u64,
}

/// What one way of running a release is expected to cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    #[serde(flatten)]
    pub cost: Cost,
    pub provider_calls: ProviderCalls,
}

/// The price of `usage` on functions of `size` at `prices`.
pub fn estimate(usage: &Usage, size: FunctionSize, prices: &Prices) -> Cost {
    let gb_seconds = usage.task_milliseconds as f64 / 1000.0 * size.memory_mb as f64 / 1024.0;
    let per_gb_second = if size.arm64 { prices.per_gb_second_arm64 } else { prices.per_gb_second_x86 };
    let dollars =
        usage.transitions as f64 * prices.per_transition + usage.invocations as f64 * prices.per_request + gb_seconds * per_gb_second;
    Cost { transitions: usage.transitions, invocations: usage.invocations, lambda_gb_seconds: gb_seconds, dollars }
}

/// What an execution used, from its history events in the shape of Step Functions'
/// GetExecutionHistory (`type`, `id`, `previousEventId`, `timestamp`): the embedded executor's
/// journal, and AWS's. A task's time runs from its `*Started` event to the end event that follows
/// it (`previousEventId`); events of other shapes are not counted.
pub fn usage(events: &[serde_json::Value]) -> Usage {
    let kind = |event: &serde_json::Value| event.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    let at = |event: &serde_json::Value| {
        event.get("timestamp").and_then(|t| t.as_str()).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let started: std::collections::HashMap<u64, chrono::DateTime<chrono::FixedOffset>> = events
        .iter()
        .filter(|e| matches!(kind(e).as_str(), "TaskStarted" | "LambdaFunctionStarted"))
        .filter_map(|e| Some((e.get("id")?.as_u64()?, at(e)?)))
        .collect();
    let mut usage = Usage::default();
    let mut task_entries = 0;
    for event in events {
        match kind(event).as_str() {
            "TaskStateEntered" => {
                task_entries += 1;
                usage.transitions += 1;
            }
            entered if entered.ends_with("StateEntered") => usage.transitions += 1,
            "TaskScheduled" | "LambdaFunctionScheduled" => usage.invocations += 1,
            "TaskSucceeded"
            | "TaskFailed"
            | "TaskTimedOut"
            | "LambdaFunctionSucceeded"
            | "LambdaFunctionFailed"
            | "LambdaFunctionTimedOut" => {
                let began = event.get("previousEventId").and_then(|id| id.as_u64()).and_then(|id| started.get(&id));
                if let (Some(began), Some(ended)) = (began, at(event)) {
                    let micros = (ended - *began).num_microseconds().unwrap_or(0).max(0) as u64;
                    usage.task_milliseconds += micros.div_ceil(1000);
                }
            }
            _ => {}
        }
    }
    // Each invocation past the first of a task state's entry is a retry: a transition too.
    usage.transitions += usage.invocations.saturating_sub(task_entries);
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: u64, previous: u64, millis: u64, kind: &str) -> serde_json::Value {
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(1_790_000_000_000 + millis as i64).unwrap();
        json!({ "id": id, "previousEventId": previous, "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "type": kind })
    }

    #[test]
    fn usage_counts_states_retries_invocations_and_task_time_worked_by_hand() {
        // A task that failed once (120 ms) and succeeded on its retry (80.5 ms, billed 81), a
        // Wait, a Choice, then a Succeed: 4 states entered + 1 retry = 5 transitions, 2 invocations.
        let history = [
            event(1, 0, 0, "ExecutionStarted"),
            event(2, 1, 1, "TaskStateEntered"),
            event(3, 2, 2, "TaskScheduled"),
            event(4, 3, 3, "TaskStarted"),
            event(5, 4, 123, "TaskFailed"),
            event(6, 5, 1123, "TaskScheduled"),
            event(7, 6, 1124, "TaskStarted"),
            json!({ "id": 8, "previousEventId": 7, "timestamp": "2026-09-21T14:13:21.2045Z", "type": "TaskSucceeded" }),
            event(9, 8, 1300, "TaskStateExited"),
            event(10, 9, 1301, "WaitStateEntered"),
            event(11, 10, 6301, "WaitStateExited"),
            event(12, 11, 6302, "ChoiceStateEntered"),
            event(13, 12, 6302, "ChoiceStateExited"),
            event(14, 13, 6303, "SucceedStateEntered"),
            event(15, 14, 6303, "SucceedStateExited"),
            event(16, 15, 6304, "ExecutionSucceeded"),
        ];
        // 1_790_000_000_000 ms is 2026-09-21T14:13:20Z: the retry started at 21.124 and ended at 21.2045.
        assert_eq!(usage(&history), Usage { transitions: 5, invocations: 2, task_milliseconds: 120 + 81 });
        assert_eq!(usage(&[]), Usage::default());
    }

    #[test]
    fn the_estimate_prices_transitions_requests_and_compute_worked_by_hand() {
        // 400 transitions: $0.01; 100 requests: $0.00002; 51.2 s at 256 MB = 12.8 GB-s, on arm64
        // $0.000170667..., on x86_64 $0.000213333...
        let used = Usage { transitions: 400, invocations: 100, task_milliseconds: 51_200 };
        let arm = estimate(&used, BATON_FUNCTIONS, &PUBLIC_PRICES);
        assert_eq!((arm.transitions, arm.invocations), (400, 100));
        assert!((arm.lambda_gb_seconds - 12.8).abs() < 1e-12);
        assert!((arm.dollars - (0.01 + 0.000_02 + 12.8 * 0.000_013_333_4)).abs() < 1e-12, "{arm:?}");
        let x86 = estimate(&used, FunctionSize { memory_mb: 256, arm64: false }, &PUBLIC_PRICES);
        assert!((x86.dollars - (0.01 + 0.000_02 + 12.8 * 0.000_016_666_7)).abs() < 1e-12, "{x86:?}");
        assert_eq!(estimate(&Usage::default(), BATON_FUNCTIONS, &PUBLIC_PRICES).dollars, 0.0);
    }

    #[test]
    fn the_function_size_is_the_template_s() {
        let template = include_str!("../../../../infra/template.yaml");
        let globals = template.split("\nGlobals:").nth(1).expect("the template has Globals");
        let function = globals.split("\n  Function:").nth(1).expect("Globals has Function");
        let field = |name: &str| function.lines().find_map(|line| line.trim().strip_prefix(name)).map(str::trim);
        assert_eq!(field("MemorySize:"), Some(BATON_FUNCTIONS.memory_mb.to_string().as_str()));
        assert_eq!(field("Architectures:"), Some(if BATON_FUNCTIONS.arm64 { "[arm64]" } else { "[x86_64]" }));
    }
}

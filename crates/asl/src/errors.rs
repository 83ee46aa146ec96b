//! The predefined error names and how Retry/Catch `ErrorEquals` match them.

pub const ALL: &str = "States.ALL";
pub const TASK_FAILED: &str = "States.TaskFailed";
pub const TIMEOUT: &str = "States.Timeout";
pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
pub const RUNTIME: &str = "States.Runtime";
pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
pub const BRANCH_FAILED: &str = "States.BranchFailed";
pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
pub const PERMISSIONS: &str = "States.Permissions";

/// Whether an `ErrorEquals` entry matches a raised error.
///
/// Per the developer guide: States.Runtime can never be retried or caught; States.ALL matches every other
/// error except the terminal States.DataLimitExceeded (which only an explicit entry catches);
/// States.TaskFailed matches every error except timeouts; States.Timeout also covers heartbeat timeouts.
pub fn matches(pattern: &str, error: &str) -> bool {
    if error == RUNTIME {
        return false;
    }
    match pattern {
        ALL => error != DATA_LIMIT_EXCEEDED,
        TASK_FAILED => !matches!(error, TIMEOUT | HEARTBEAT_TIMEOUT | DATA_LIMIT_EXCEEDED),
        TIMEOUT => matches!(error, TIMEOUT | HEARTBEAT_TIMEOUT),
        _ => pattern == error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_the_developer_guide() {
        assert!(matches(ALL, "Custom.Error"));
        assert!(matches(ALL, TIMEOUT));
        assert!(!matches(ALL, RUNTIME));
        assert!(!matches(RUNTIME, RUNTIME));
        assert!(!matches(ALL, DATA_LIMIT_EXCEEDED));
        assert!(matches(DATA_LIMIT_EXCEEDED, DATA_LIMIT_EXCEEDED));
        assert!(matches(TASK_FAILED, "Lambda.Unknown"));
        assert!(!matches(TASK_FAILED, TIMEOUT));
        assert!(matches(TIMEOUT, HEARTBEAT_TIMEOUT));
        assert!(!matches("A", "B"));
    }
}

//! What the timeline says of an error a Catch of the definition handed on: a task whose retry
//! budget ran out is news of its own (`gave-up`, with the last error and its cause), not only
//! the release's final `failure`.

use crate::error::ErrorName;
use crate::flow::CaughtError;

/// The timeline line for `error` when it is one the definition retries, and so reached a Catch
/// only because its retries were spent: an outage (a provider's or the store's), a build or
/// deploy still pending (a rate limit included), the lock still held, or Lambda's own failures.
/// `None` for an error no retry was spent on (a failed build, a refused deploy, an unhealthy wave).
pub fn gave_up(error: &CaughtError) -> Option<String> {
    let retried = match ErrorName::parse(&error.error) {
        Some(name) => name.is_transient() || matches!(name, ErrorName::BuildPending | ErrorName::DeployPending | ErrorName::LockHeld),
        None => error.error.starts_with("Lambda.") || error.error == "Sandbox.Timedout",
    };
    retried.then(|| {
        let message = error.message();
        let said = if message.is_empty() { String::new() } else { format!(": {message}") };
        format!("gave up after its retries: {}{said}", error.error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caught(error: &str, cause: &str) -> CaughtError {
        CaughtError { error: error.into(), cause: cause.into() }
    }

    #[test]
    fn only_errors_the_definition_retries_are_given_up_on() {
        let lambda_cause = r#"{"errorMessage":"GitHub answered HTTP 502","errorType":"Baton.ProviderUnavailable"}"#;
        let cases = [
            (
                caught("Baton.ProviderUnavailable", lambda_cause),
                Some("gave up after its retries: Baton.ProviderUnavailable: GitHub answered HTTP 502"),
            ),
            (
                caught("Baton.StoreUnavailable", "DynamoDB throttled"),
                Some("gave up after its retries: Baton.StoreUnavailable: DynamoDB throttled"),
            ),
            (
                caught("Baton.BuildPending", "build 42 is still running"),
                Some("gave up after its retries: Baton.BuildPending: build 42 is still running"),
            ),
            (
                caught("Baton.DeployPending", "wave canary: 1 of 2 targets left to start"),
                Some("gave up after its retries: Baton.DeployPending: wave canary: 1 of 2 targets left to start"),
            ),
            (caught("Baton.LockHeld", ""), Some("gave up after its retries: Baton.LockHeld")),
            (
                caught("Lambda.TooManyRequestsException", "Rate exceeded"),
                Some("gave up after its retries: Lambda.TooManyRequestsException: Rate exceeded"),
            ),
            (
                caught("Sandbox.Timedout", "Task timed out after 60.00 seconds"),
                Some("gave up after its retries: Sandbox.Timedout: Task timed out after 60.00 seconds"),
            ),
            (caught("Baton.BuildFailed", "build 42 failed"), None),
            (caught("Baton.DeployFailed", "wave canary target a: refused"), None),
            (caught("Baton.HealthCheckFailed", "alarm"), None),
            (caught("States.Timeout", "the execution ran out of time"), None),
        ];
        for (error, expected) in cases {
            assert_eq!(gave_up(&error).as_deref(), expected, "{error:?}");
        }
    }
}

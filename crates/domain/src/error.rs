//! The error vocabulary shared by the handlers and `statemachines/release.asl.json`.
//!
//! A handler that fails returns a [`TaskError`]; its `error` becomes the Lambda
//! `errorType` (and so the ASL error name that `Retry`/`Catch` match). The names
//! are stable: renaming one is a breaking change to every deployed definition.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error name a Baton task can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorName {
    /// The task input is malformed (bad event payload, missing service). Not retried.
    #[serde(rename = "Baton.InputInvalid")]
    InputInvalid,
    /// The service's catalog entry is missing or invalid. Not retried.
    #[serde(rename = "Baton.CatalogInvalid")]
    CatalogInvalid,
    /// Another release of the same service and environment holds the lock. Retried with backoff.
    #[serde(rename = "Baton.LockHeld")]
    LockHeld,
    /// A newer signal for the same service and environment is waiting; this one stops.
    #[serde(rename = "Baton.Superseded")]
    Superseded,
    /// The CI build ended without an artifact.
    #[serde(rename = "Baton.BuildFailed")]
    BuildFailed,
    /// The build is still running: poll-build raises it so the definition's Retry does the waiting.
    #[serde(rename = "Baton.BuildPending")]
    BuildPending,
    /// A deploy of one wave failed.
    #[serde(rename = "Baton.DeployFailed")]
    DeployFailed,
    /// A deploy is still rolling out.
    #[serde(rename = "Baton.DeployPending")]
    DeployPending,
    /// The health check after a wave's bake found the service unhealthy.
    #[serde(rename = "Baton.HealthCheckFailed")]
    HealthCheckFailed,
    /// A provider (CI, deploy target, health source, Slack) did not answer or answered 5xx/429. Retried.
    #[serde(rename = "Baton.ProviderUnavailable")]
    ProviderUnavailable,
    /// The release store did not answer. Retried.
    #[serde(rename = "Baton.StoreUnavailable")]
    StoreUnavailable,
    /// A bug or an unexpected state; the cause says what.
    #[serde(rename = "Baton.Internal")]
    Internal,
}

impl ErrorName {
    pub const ALL: [ErrorName; 12] = [
        ErrorName::InputInvalid,
        ErrorName::CatalogInvalid,
        ErrorName::LockHeld,
        ErrorName::Superseded,
        ErrorName::BuildFailed,
        ErrorName::BuildPending,
        ErrorName::DeployFailed,
        ErrorName::DeployPending,
        ErrorName::HealthCheckFailed,
        ErrorName::ProviderUnavailable,
        ErrorName::StoreUnavailable,
        ErrorName::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::InputInvalid => "Baton.InputInvalid",
            ErrorName::CatalogInvalid => "Baton.CatalogInvalid",
            ErrorName::LockHeld => "Baton.LockHeld",
            ErrorName::Superseded => "Baton.Superseded",
            ErrorName::BuildFailed => "Baton.BuildFailed",
            ErrorName::BuildPending => "Baton.BuildPending",
            ErrorName::DeployFailed => "Baton.DeployFailed",
            ErrorName::DeployPending => "Baton.DeployPending",
            ErrorName::HealthCheckFailed => "Baton.HealthCheckFailed",
            ErrorName::ProviderUnavailable => "Baton.ProviderUnavailable",
            ErrorName::StoreUnavailable => "Baton.StoreUnavailable",
            ErrorName::Internal => "Baton.Internal",
        }
    }

    pub fn parse(name: &str) -> Option<ErrorName> {
        ErrorName::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Transient errors: the definition retries these before it catches anything.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorName::ProviderUnavailable | ErrorName::StoreUnavailable)
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task failure as Step Functions sees it: an error name and a human cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{error}: {cause}")]
pub struct TaskError {
    pub error: ErrorName,
    pub cause: String,
}

impl TaskError {
    pub fn new(error: ErrorName, cause: impl Into<String>) -> Self {
        TaskError { error, cause: cause.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for name in ErrorName::ALL {
            assert_eq!(ErrorName::parse(name.as_str()), Some(name));
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{}\"", name.as_str()));
        }
        assert_eq!(ErrorName::parse("States.ALL"), None);
    }
}

//! The error vocabulary shared by the handlers and `statemachines/release.asl.json`.
//!
//! A handler that fails returns a [`TaskError`]; its `error` becomes the Lambda
//! `errorType` (and so the ASL error name that `Retry`/`Catch` match). The names
//! are stable: renaming one is a breaking change to every deployed definition.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Declares [`ErrorName`] from one list of (variant, wire name), so the enum, its wire names
/// and [`ErrorName::ALL`] cannot drift apart.
macro_rules! error_names {
    ($($(#[doc = $doc:literal])* $variant:ident => $wire:literal,)+) => {
        /// Every error name a Baton task can raise.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorName {
            $($(#[doc = $doc])* $variant,)+
        }

        impl ErrorName {
            pub const ALL: &'static [ErrorName] = &[$(ErrorName::$variant,)+];

            /// The wire name: the Lambda `errorType` and what Retry/Catch match.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorName::$variant => $wire,)+
                }
            }
        }
    };
}

error_names! {
    /// The task input is malformed (bad event payload, missing service). Not retried.
    InputInvalid => "Baton.InputInvalid",
    /// The service's catalog entry is missing or invalid. Not retried.
    CatalogInvalid => "Baton.CatalogInvalid",
    /// A well-formed merge that releases nothing (another branch, a repository outside the
    /// catalog): the execution ends quietly, without failing (and so without an alarm).
    Ignored => "Baton.Ignored",
    /// Another release of the same service and environment holds the lock. Retried with backoff.
    LockHeld => "Baton.LockHeld",
    /// A newer signal for the same service and environment is waiting; this one stops.
    Superseded => "Baton.Superseded",
    /// The CI build ended without an artifact.
    BuildFailed => "Baton.BuildFailed",
    /// The build is still running: poll-build raises it so the definition's Retry does the waiting.
    BuildPending => "Baton.BuildPending",
    /// A deploy of one wave failed.
    DeployFailed => "Baton.DeployFailed",
    /// A deploy is still rolling out.
    DeployPending => "Baton.DeployPending",
    /// The health check after a wave's bake found the service unhealthy.
    HealthCheckFailed => "Baton.HealthCheckFailed",
    /// A provider (CI, deploy target, health source, Slack) did not answer or answered 5xx/429. Retried.
    ProviderUnavailable => "Baton.ProviderUnavailable",
    /// The release store did not answer. Retried.
    StoreUnavailable => "Baton.StoreUnavailable",
    /// A bug, an unexpected state, or a store that refuses requests (a missing IAM grant); the
    /// cause says what. Not retried: it needs a person.
    Internal => "Baton.Internal",
    /// The release was stopped (a signal, `baton cancel`, a cancel requested on its record) and
    /// is closed by rolling it back; the cause says who or what stopped it. Raised by the tasks
    /// that move a release forward once its record carries a cancel request.
    Interrupted => "Baton.Interrupted",
    /// A person rejected a wave's approval: the release rolls back the waves that ran.
    ApprovalRejected => "Baton.ApprovalRejected",
    /// Nobody approved a wave before its deadline, and the catalog says `on-timeout: rollback`.
    ApprovalExpired => "Baton.ApprovalExpired",
    /// Nobody approved a wave before its deadline, and the catalog says `on-timeout: stop`: the
    /// release ends before the wave, leaving the waves that ran.
    ApprovalStopped => "Baton.ApprovalStopped",
}

impl ErrorName {
    pub fn parse(name: &str) -> Option<ErrorName> {
        ErrorName::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// Transient errors: the definition retries these before it catches anything.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorName::ProviderUnavailable | ErrorName::StoreUnavailable)
    }
}

impl Serialize for ErrorName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        ErrorName::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("'{name}' is not a Baton error name")))
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lower-level error behind a port error (an SDK, HTTP, SQLite, I/O or JSON error), kept
/// whole so that logs and the CLI can walk the chain while callers match on the port's variants.
/// Shared (`Arc`) so port errors stay `Clone`; compared by text so they stay comparable in tests.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(error))
    }

    /// The error itself, when it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

/// `error` and each of its sources on one line, `: `-separated: what a record, a Slack message
/// or a task's cause shows, since they hold text, not errors. A source whose text the message
/// already ends with (errors that quote their cause) is not repeated.
pub fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = source.source();
    }
    text
}

/// A task failure as Step Functions sees it: an error name and a human cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{error}: {cause}")]
pub struct TaskError {
    pub error: ErrorName,
    pub cause: String,
}

impl TaskError {
    /// The cause is scrubbed of every secret Baton resolved: it travels into the execution's
    /// history, the release record and the team's messages.
    pub fn new(error: ErrorName, cause: impl Into<String>) -> Self {
        TaskError { error, cause: crate::redact::scrub_owned(cause.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ProviderError, StoreError};
    use crate::support::provider_error;

    #[test]
    fn port_errors_keep_their_cause_and_task_errors_show_the_whole_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = ProviderError::unavailable("Argo CD application web").caused_by(io);
        assert_eq!(error.message(), "Argo CD application web");
        let source = std::error::Error::source(&error).expect("the cause is the error's source");
        assert_eq!(source.to_string(), "connection refused");
        assert_eq!(chain_text(&error), "provider unavailable: Argo CD application web: connection refused");

        let task = provider_error(error.clone(), ErrorName::DeployFailed);
        assert_eq!(task.error, ErrorName::ProviderUnavailable);
        assert_eq!(task.cause, "provider unavailable: Argo CD application web: connection refused");
        let refused = provider_error(ProviderError::rejected("bad token"), ErrorName::DeployFailed);
        assert_eq!((refused.error, refused.cause.as_str()), (ErrorName::DeployFailed, "provider rejected the request: bad token"));

        let store: TaskError = StoreError::conflict("release rel-1 changed").caused_by(std::fmt::Error).into();
        assert_eq!(store.cause, "release store conflict: release rel-1 changed: an error occurred when formatting an argument");
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("request failed: timed out")]
        struct Wrapper(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("timed out")]
        struct Inner;
        assert_eq!(chain_text(&Wrapper(Inner)), "request failed: timed out");
        // Port errors compare by message and cause text, so tests can compare them whole.
        let a = ProviderError::rejected("x").caused_by(Inner);
        assert_eq!(a, ProviderError::rejected("x").caused_by(Inner));
        assert_ne!(a, ProviderError::rejected("x"));
    }

    fn definition_names(definition: &serde_json::Value, found: &mut Vec<String>) {
        match definition {
            serde_json::Value::String(text) if text.starts_with("Baton.") => found.push(text.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|item| definition_names(item, found)),
            serde_json::Value::Object(fields) => fields.values().for_each(|value| definition_names(value, found)),
            _ => {}
        }
    }

    #[test]
    fn wire_names_round_trip_through_serde() {
        let wire = r#"["Baton.InputInvalid","Baton.CatalogInvalid","Baton.Ignored","Baton.LockHeld","Baton.Superseded","Baton.BuildFailed",
            "Baton.BuildPending","Baton.DeployFailed","Baton.DeployPending","Baton.HealthCheckFailed",
            "Baton.ProviderUnavailable","Baton.StoreUnavailable","Baton.Internal","Baton.Interrupted",
            "Baton.ApprovalRejected","Baton.ApprovalExpired","Baton.ApprovalStopped"]"#;
        let names: Vec<ErrorName> = serde_json::from_str(wire).unwrap();
        assert_eq!(names, ErrorName::ALL, "the published vocabulary, in order");
        let back: serde_json::Value = serde_json::to_value(&names).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(wire).unwrap());
        assert!(serde_json::from_str::<ErrorName>(r#""States.ALL""#).is_err());
    }

    #[test]
    fn the_definition_matches_only_known_names() {
        let definition: serde_json::Value =
            serde_json::from_str(include_str!("../../../statemachines/release.asl.json")).expect("the release definition is JSON");
        let mut used = Vec::new();
        definition_names(&definition, &mut used);
        assert!(!used.is_empty());
        for name in &used {
            assert!(ErrorName::parse(name).is_some(), "the definition matches '{name}', which no handler raises");
        }
        for transient in ErrorName::ALL.iter().filter(|e| e.is_transient()) {
            assert!(used.iter().any(|n| n == transient.as_str()), "the definition never retries {transient}");
        }
    }

    #[test]
    fn the_readme_documents_every_name() {
        let readme = include_str!("../../../README.md");
        for name in ErrorName::ALL {
            assert!(readme.contains(&format!("`{name}`")), "README's error vocabulary lacks {name}");
        }
    }
}

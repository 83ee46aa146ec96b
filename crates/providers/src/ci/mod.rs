//! Build providers that drive a hosted CI service over its HTTP API, and what they share: the
//! artifact template (from [`baton_domain::template`]), the state their handles carry, reading
//! a handle back. What every HTTP provider shares (timeouts, reading answers, quoting them
//! without credentials) is in [`crate::http`]; what the token-authenticated REST providers
//! share is in [`rest`].

pub(crate) mod buildkite;
pub(crate) mod circleci;
pub(crate) mod from_catalog;
pub(crate) mod github_actions;
mod github_app;
pub(crate) mod gitlab_ci;
pub(crate) mod rest;

pub use github_app::GitHubAppTokens;

use baton_domain::error::chain_text;
use baton_domain::ports::{BuildProvider, BuildRequest, ProviderError, RunHandle};
use baton_domain::release::ReleaseId;
pub(crate) use baton_domain::template::{ArtifactTemplate, RunFacts};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a run's status says before its artifact is read: shared by a provider's polls and its
/// event receiver, so both read a status alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Passed,
    Running,
    /// Finished without success; the text says why, for the build's reason.
    Failed(&'static str),
}

/// What the handle of a started run carries besides its id: what the artifact template needs,
/// since `poll` sees nothing but the handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Started {
    pub release_id: ReleaseId,
    /// The branch the run was started on, for the artifact.
    pub branch: String,
    /// The commit the release asked for, for the artifact when the service echoes `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
}

impl Started {
    pub(crate) fn of(request: &BuildRequest) -> Started {
        Started { release_id: request.release_id.clone(), branch: request.branch.clone(), sha: request.sha.clone() }
    }

    pub(crate) fn handle(&self, provider: &str, id: u64, url: &str) -> RunHandle {
        RunHandle {
            provider: provider.into(),
            id: id.to_string(),
            url: Some(url.to_owned()),
            state: serde_json::to_value(self).expect("run state serialises to JSON"),
        }
    }
}

/// The state of `handle`, which must be one of `provider`'s (`service` names it in errors).
pub(crate) fn handle_state<T: DeserializeOwned>(handle: &RunHandle, provider: &str, service: &str) -> Result<T, ProviderError> {
    if handle.provider != provider {
        return Err(ProviderError::rejected(format!(
            "run {} belongs to the '{}' provider, not the {service} build provider",
            handle.id, handle.provider
        )));
    }
    serde_json::from_value(handle.state.clone())
        .map_err(|e| ProviderError::rejected(format!("{service} run handle {}: unreadable state", handle.id)).caused_by(e))
}

/// The run number a handle's id holds.
pub(crate) fn handle_number(handle: &RunHandle, service: &str) -> Result<u64, ProviderError> {
    handle.id.parse().map_err(|_| ProviderError::rejected(format!("{service} run handle {}: the id is not a run number", handle.id)))
}

/// How far before Baton's request a build found by [`BuildProvider::find`] may have been
/// created: the service's clock and Baton's differ.
pub(crate) const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(30);

/// The earliest creation time a build asked for at `since` may show.
pub(crate) fn created_from(since: DateTime<Utc>) -> DateTime<Utc> {
    since - CLOCK_SLACK
}

/// A create the service accepted (2xx) whose answer does not read (`unreadable`): the build may
/// exist, and Baton cannot follow what it cannot read. The build this release started, if
/// `provider` finds it, is cancelled, so no build runs that nobody follows; the error
/// (`Rejected`: a retry would start a second build) says what became of it.
pub(crate) async fn unfollowable(
    provider: &dyn BuildProvider,
    request: &BuildRequest,
    since: DateTime<Utc>,
    unreadable: ProviderError,
    service: &str,
) -> ProviderError {
    let (ProviderError::Unavailable { message, cause } | ProviderError::Rejected { message, cause }) = unreadable;
    let what = match provider.find(request, since).await {
        Ok(Some(run)) => match provider.cancel(&run).await {
            Ok(()) => format!("cancelled the build it started ({} {}), which Baton cannot follow", service, run.id),
            Err(err) => format!(
                "could not cancel the build it started ({service} {}): {}; cancel it at {}",
                run.id,
                chain_text(&err),
                run.url.as_deref().unwrap_or("the service")
            ),
        },
        Ok(None) => format!("no build of release {} is listed: if one appears, cancel it", request.release_id),
        Err(err) => format!("cannot look for the build it may have started ({}): cancel it if one runs", chain_text(&err)),
    };
    ProviderError::Rejected {
        message: format!("{message}; the request was accepted, not retried, to start no second build; {what}"),
        cause,
    }
}

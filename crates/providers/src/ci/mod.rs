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
mod rest;

pub use github_app::GitHubAppTokens;

use baton_domain::ports::{ProviderError, RunHandle};
use baton_domain::release::ReleaseId;
pub(crate) use baton_domain::template::{ArtifactTemplate, RunFacts, RunWord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What the handle of a started run carries besides its id: what the artifact template needs,
/// since `poll` sees nothing but the handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Started {
    pub release_id: ReleaseId,
    /// The branch the run was started on, for the artifact.
    pub branch: String,
}

impl Started {
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

//! Build providers that drive a hosted CI service over its HTTP API, and what they share: the
//! artifact template, the state their handles carry, reading a handle back. What every HTTP
//! provider shares (timeouts, reading answers, quoting them without credentials) is in
//! [`crate::http`]; what the token-authenticated REST providers share is in [`rest`].

pub(crate) mod buildkite;
pub(crate) mod circleci;
pub(crate) mod from_catalog;
pub(crate) mod github_actions;
mod github_app;
pub(crate) mod gitlab_ci;
mod rest;

pub use github_app::GitHubAppTokens;

use crate::template::{Template, short_sha};
use baton_domain::ports::{BuildProgress, ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How a build's artifact is named, from the facts the CI service reports about the run:
/// `ghcr.io/acme/web:{short-sha}` becomes `ghcr.io/acme/web:0123abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArtifactTemplate(Template);

/// The placeholder that names the run, in each service's own word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunWord {
    /// GitHub Actions: `{run-id}`.
    RunId,
    /// GitLab CI: `{pipeline-id}`.
    PipelineId,
    /// Buildkite: `{build-number}`.
    BuildNumber,
    /// CircleCI: `{pipeline-number}`.
    PipelineNumber,
}

impl RunWord {
    fn placeholders(self) -> &'static [&'static str] {
        match self {
            RunWord::RunId => &["sha", "short-sha", "branch", "run-id", "release-id"],
            RunWord::PipelineId => &["sha", "short-sha", "branch", "pipeline-id", "release-id"],
            RunWord::BuildNumber => &["sha", "short-sha", "branch", "build-number", "release-id"],
            RunWord::PipelineNumber => &["sha", "short-sha", "branch", "pipeline-number", "release-id"],
        }
    }
}

/// What an [`ArtifactTemplate`] is filled with.
pub(crate) struct RunFacts<'a> {
    pub sha: &'a str,
    pub branch: &'a str,
    /// The run's id or number: what the template's [`RunWord`] stands for.
    pub run_id: &'a str,
    pub release_id: &'a str,
}

impl ArtifactTemplate {
    /// Checked when the provider is built, so that a typo fails the release before a build runs.
    pub(crate) fn parse(template: &str, run: RunWord) -> Result<ArtifactTemplate, String> {
        Template::parse(template, "the artifact template", "a reference such as registry/app:{short-sha}", run.placeholders())
            .map(ArtifactTemplate)
    }

    pub(crate) fn render(&self, facts: &RunFacts<'_>) -> String {
        self.0.render(|name| match name {
            "sha" => facts.sha,
            "short-sha" => short_sha(facts.sha),
            "branch" => facts.branch,
            "release-id" => facts.release_id,
            // `parse` admitted one more placeholder: the run's, whatever the service calls it.
            _ => facts.run_id,
        })
    }

    /// A successful build: the artifact named from the run's facts, linked to the run's page.
    pub(crate) fn built(&self, facts: &RunFacts<'_>, build_url: &str) -> BuildProgress {
        BuildProgress::Succeeded {
            artifact: Artifact {
                reference: self.render(facts),
                sha: facts.sha.to_owned(),
                branch: facts.branch.to_owned(),
                build_url: Some(build_url.to_owned()),
            },
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RunFacts<'static> {
        RunFacts { sha: "0123456789abcdef", branch: "main", run_id: "42", release_id: "rel-1" }
    }

    #[test]
    fn templates_fill_every_placeholder() {
        let template =
            ArtifactTemplate::parse("ghcr.io/acme/web:{short-sha} {sha} {branch} {run-id} {release-id}", RunWord::RunId).unwrap();
        assert_eq!(template.render(&facts()), "ghcr.io/acme/web:0123456 0123456789abcdef main 42 rel-1");
        let short = RunFacts { sha: "abc", ..facts() };
        assert_eq!(ArtifactTemplate::parse("{short-sha}", RunWord::RunId).unwrap().render(&short), "abc");
        assert_eq!(ArtifactTemplate::parse("plain", RunWord::RunId).unwrap().render(&facts()), "plain");
        assert_eq!(ArtifactTemplate::parse("web:{pipeline-id}", RunWord::PipelineId).unwrap().render(&facts()), "web:42");
        assert_eq!(ArtifactTemplate::parse("web:{build-number}", RunWord::BuildNumber).unwrap().render(&facts()), "web:42");
        assert_eq!(ArtifactTemplate::parse("web:{pipeline-number}", RunWord::PipelineNumber).unwrap().render(&facts()), "web:42");
    }

    #[test]
    fn bad_templates_are_refused_with_the_known_placeholders() {
        let unknown = ArtifactTemplate::parse("web:{commit}", RunWord::RunId).unwrap_err();
        assert!(unknown.contains("unknown placeholder {commit}") && unknown.contains("{short-sha}"), "{unknown}");
        let open = ArtifactTemplate::parse("web:{sha", RunWord::RunId).unwrap_err();
        assert!(open.contains("without a closing"), "{open}");
        assert!(ArtifactTemplate::parse("  ", RunWord::RunId).unwrap_err().contains("empty"));
        // Each service's run placeholder is its own: a template copied from another fails early.
        let copied = ArtifactTemplate::parse("web:{run-id}", RunWord::PipelineId).unwrap_err();
        assert!(copied.contains("unknown placeholder {run-id}") && copied.contains("{pipeline-id}"), "{copied}");
        assert!(ArtifactTemplate::parse("web:{pipeline-id}", RunWord::BuildNumber).unwrap_err().contains("{build-number}"));
        assert!(ArtifactTemplate::parse("web:{pipeline-id}", RunWord::PipelineNumber).unwrap_err().contains("{pipeline-number}"));
    }
}

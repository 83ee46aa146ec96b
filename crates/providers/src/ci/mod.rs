//! Build providers that drive a hosted CI service over its HTTP API, and the artifact template
//! they share. What every HTTP provider shares (timeouts, reading answers, quoting them without
//! credentials) is in [`crate::http`].

pub(crate) mod from_catalog;
pub(crate) mod github_actions;
mod github_app;

pub use github_app::GitHubAppTokens;

use crate::template::{Template, short_sha};

/// How a build's artifact is named, from the facts the CI service reports about the run:
/// `ghcr.io/acme/web:{short-sha}` becomes `ghcr.io/acme/web:0123abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArtifactTemplate(Template);

const PLACEHOLDERS: &[&str] = &["sha", "short-sha", "branch", "run-id", "release-id"];

/// What an [`ArtifactTemplate`] is filled with.
pub(crate) struct RunFacts<'a> {
    pub sha: &'a str,
    pub branch: &'a str,
    pub run_id: &'a str,
    pub release_id: &'a str,
}

impl ArtifactTemplate {
    /// Checked when the provider is built, so that a typo fails the release before a build runs.
    pub(crate) fn parse(template: &str) -> Result<ArtifactTemplate, String> {
        Template::parse(template, "the artifact template", "a reference such as registry/app:{short-sha}", PLACEHOLDERS)
            .map(ArtifactTemplate)
    }

    pub(crate) fn render(&self, facts: &RunFacts<'_>) -> String {
        self.0.render(|name| match name {
            "sha" => facts.sha,
            "short-sha" => short_sha(facts.sha),
            "branch" => facts.branch,
            "run-id" => facts.run_id,
            "release-id" => facts.release_id,
            other => unreachable!("{other} is not one of the PLACEHOLDERS"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RunFacts<'static> {
        RunFacts { sha: "0123456789abcdef", branch: "main", run_id: "42", release_id: "rel-1" }
    }

    #[test]
    fn templates_fill_every_placeholder() {
        let template = ArtifactTemplate::parse("ghcr.io/acme/web:{short-sha} {sha} {branch} {run-id} {release-id}").unwrap();
        assert_eq!(template.render(&facts()), "ghcr.io/acme/web:0123456 0123456789abcdef main 42 rel-1");
        let short = RunFacts { sha: "abc", ..facts() };
        assert_eq!(ArtifactTemplate::parse("{short-sha}").unwrap().render(&short), "abc");
        assert_eq!(ArtifactTemplate::parse("plain").unwrap().render(&facts()), "plain");
    }

    #[test]
    fn bad_templates_are_refused_with_the_known_placeholders() {
        let unknown = ArtifactTemplate::parse("web:{commit}").unwrap_err();
        assert!(unknown.contains("unknown placeholder {commit}") && unknown.contains("{short-sha}"), "{unknown}");
        let open = ArtifactTemplate::parse("web:{sha").unwrap_err();
        assert!(open.contains("without a closing"), "{open}");
        assert!(ArtifactTemplate::parse("  ").unwrap_err().contains("empty"));
    }
}

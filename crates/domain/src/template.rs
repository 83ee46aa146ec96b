//! Templates with `{placeholder}`s (an artifact's reference, an Argo CD revision), checked when
//! the provider is built so that a typo fails the release before anything runs. Here rather
//! than in a provider crate because build providers in both `baton-providers` and `baton-aws`
//! name their artifacts with [`ArtifactTemplate`].

use crate::ports::BuildProgress;
use crate::release::Artifact;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder(&'static str),
}

impl Template {
    /// `what` names the template in errors ("the artifact template"), `example` says what a
    /// good one looks like, `known` lists the placeholders it may use.
    pub fn parse(template: &str, what: &str, example: &str, known: &'static [&'static str]) -> Result<Template, String> {
        let listed = || known.iter().map(|name| format!("{{{name}}}")).collect::<Vec<_>>().join(", ");
        if template.trim().is_empty() {
            return Err(format!("{what} is empty: expected {example} ({})", listed()));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("{what} '{template}' has a '{{' without a closing '}}'"));
            };
            let name = &rest[open + 1..open + close];
            let Some(placeholder) = known.iter().find(|known| **known == name) else {
                return Err(format!("{what} '{template}' has an unknown placeholder {{{name}}}: known ones are {}", listed()));
            };
            parts.push(Part::Placeholder(placeholder));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    /// The template with each placeholder replaced by `value(name)`.
    pub fn render<'v>(&self, value: impl Fn(&'static str) -> &'v str) -> String {
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.as_str(),
                Part::Placeholder(name) => value(name),
            })
            .collect()
    }
}

/// A commit's first 7 characters, as `git log --oneline` shows it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// How a build's artifact is named, from the facts the CI service reports about the run:
/// `ghcr.io/acme/web:{short-sha}` becomes `ghcr.io/acme/web:0123abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactTemplate(Template);

/// The placeholder that names the run, in each service's own word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunWord {
    /// GitHub Actions: `{run-id}`.
    RunId,
    /// GitLab CI: `{pipeline-id}`.
    PipelineId,
    /// Buildkite and CodeBuild: `{build-number}`.
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
pub struct RunFacts<'a> {
    pub sha: &'a str,
    pub branch: &'a str,
    /// The run's id or number: what the template's [`RunWord`] stands for.
    pub run_id: &'a str,
    pub release_id: &'a str,
}

impl ArtifactTemplate {
    /// Checked when the provider is built, so that a typo fails the release before a build runs.
    pub fn parse(template: &str, run: RunWord) -> Result<ArtifactTemplate, String> {
        Template::parse(template, "the artifact template", "a reference such as registry/app:{short-sha}", run.placeholders())
            .map(ArtifactTemplate)
    }

    pub fn render(&self, facts: &RunFacts<'_>) -> String {
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
    pub fn built(&self, facts: &RunFacts<'_>, build_url: &str) -> BuildProgress {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["sha", "branch"];

    #[test]
    fn placeholders_are_filled_and_text_kept() {
        let template = Template::parse("{branch}@{sha}!", "the revision", "a revision", KNOWN).unwrap();
        assert_eq!(template.render(|name| if name == "sha" { "abc" } else { "main" }), "main@abc!");
        assert_eq!(short_sha("0123456789"), "0123456");
        assert_eq!(short_sha("abc"), "abc");
    }

    #[test]
    fn errors_name_the_template_and_the_known_placeholders() {
        let unknown = Template::parse("{commit}", "the revision", "a revision", KNOWN).unwrap_err();
        assert_eq!(unknown, "the revision '{commit}' has an unknown placeholder {commit}: known ones are {sha}, {branch}");
        let empty = Template::parse(" ", "the revision", "a git revision", KNOWN).unwrap_err();
        assert_eq!(empty, "the revision is empty: expected a git revision ({sha}, {branch})");
    }

    fn facts() -> RunFacts<'static> {
        RunFacts { sha: "0123456789abcdef", branch: "main", run_id: "42", release_id: "rel-1" }
    }

    #[test]
    fn artifact_templates_fill_every_placeholder() {
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
    fn bad_artifact_templates_are_refused_with_the_known_placeholders() {
        let unknown = ArtifactTemplate::parse("web:{commit}", RunWord::RunId).unwrap_err();
        assert!(unknown.contains("unknown placeholder {commit}") && unknown.contains("{short-sha}"), "{unknown}");
        let open = ArtifactTemplate::parse("web:{sha", RunWord::RunId).unwrap_err();
        assert!(open.contains("without a closing"), "{open}");
        assert!(ArtifactTemplate::parse("  ", RunWord::RunId).unwrap_err().contains("empty"));
        // Each service's run placeholder is its own: a template copied from another fails early.
        let copied = ArtifactTemplate::parse("web:{run-id}", RunWord::PipelineId).unwrap_err();
        assert!(copied.contains("unknown placeholder {run-id}") && copied.contains("{pipeline-id}"), "{copied}");
        assert!(ArtifactTemplate::parse("web:{pipeline-id}", RunWord::BuildNumber).unwrap_err().contains("{build-number}"));
    }
}

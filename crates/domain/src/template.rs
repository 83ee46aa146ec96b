//! Templates with `{placeholder}`s (an artifact's reference, an Argo CD revision), checked when
//! the provider is built so that a typo fails the release before anything runs. Here rather
//! than in a provider crate because build providers in both `baton-providers` and `baton-aws`
//! name their artifacts with [`ArtifactTemplate`].

use crate::ports::BuildProgress;
use crate::release::{Artifact, UNKNOWN_SHA};

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
    pub fn parse(template: &str, what: &str, example: &str, known: &[&'static str]) -> Result<Template, String> {
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

    /// Whether the template uses the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.0.iter().any(|part| matches!(part, Part::Placeholder(used) if *used == name))
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

/// What an [`ArtifactTemplate`] is filled with.
#[derive(Clone, Copy)]
pub struct RunFacts<'a> {
    pub sha: &'a str,
    pub branch: &'a str,
    /// The run's id or number: what the provider's run word stands for.
    pub run_id: &'a str,
    pub release_id: &'a str,
}

impl ArtifactTemplate {
    /// Checked when the provider is built, so that a typo fails the release before a build runs.
    /// `run_word` is the provider's word for its run ([`ProviderShape::run_word`]: `run-id`,
    /// `pipeline-number`), the one placeholder that differs from one CI service to the next.
    ///
    /// [`ProviderShape::run_word`]: crate::catalog::ProviderShape::run_word
    pub fn parse(template: &str, run_word: Option<&'static str>) -> Result<ArtifactTemplate, String> {
        let known: Vec<&'static str> = ["sha", "short-sha", "branch"].into_iter().chain(run_word).chain(["release-id"]).collect();
        Template::parse(template, "the artifact template", "a reference such as registry/app:{short-sha}", &known).map(ArtifactTemplate)
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
    /// Its commit is the one the release asked for (`requested`), else the commit id the
    /// provider reports ([`rules::revision::built_sha`](crate::rules::revision::built_sha)); a
    /// template that names the commit fails the build when neither says which it is.
    pub fn built(&self, facts: &RunFacts<'_>, requested: Option<&str>, build_url: &str) -> BuildProgress {
        let sha = crate::rules::revision::built_sha(requested, facts.sha);
        if sha.is_none() && (self.0.uses("sha") || self.0.uses("short-sha")) {
            return BuildProgress::Failed {
                reason: format!(
                    "the build reports the commit '{}', which is no commit id, and the release named none, so the artifact \
                     cannot be named; see {build_url} and release again with --sha <commit>",
                    facts.sha
                ),
            };
        }
        let sha = sha.unwrap_or_else(|| UNKNOWN_SHA.to_owned());
        BuildProgress::Succeeded {
            artifact: Artifact {
                reference: self.render(&RunFacts { sha: &sha, ..*facts }),
                sha,
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
            ArtifactTemplate::parse("ghcr.io/acme/web:{short-sha} {sha} {branch} {run-id} {release-id}", Some("run-id")).unwrap();
        assert_eq!(template.render(&facts()), "ghcr.io/acme/web:0123456 0123456789abcdef main 42 rel-1");
        let short = RunFacts { sha: "abc", ..facts() };
        assert_eq!(ArtifactTemplate::parse("{short-sha}", Some("run-id")).unwrap().render(&short), "abc");
        assert_eq!(ArtifactTemplate::parse("plain", Some("run-id")).unwrap().render(&facts()), "plain");
        assert_eq!(ArtifactTemplate::parse("web:{pipeline-id}", Some("pipeline-id")).unwrap().render(&facts()), "web:42");
        assert_eq!(ArtifactTemplate::parse("web:{build-number}", Some("build-number")).unwrap().render(&facts()), "web:42");
        assert_eq!(ArtifactTemplate::parse("web:{pipeline-number}", Some("pipeline-number")).unwrap().render(&facts()), "web:42");
    }

    #[test]
    fn a_built_artifact_names_the_requested_commit_never_an_echo() {
        let template = ArtifactTemplate::parse("web:{short-sha}-{build-number}", Some("build-number")).unwrap();
        let echoed = RunFacts { sha: "HEAD", ..facts() };
        let BuildProgress::Succeeded { artifact } = template.built(&echoed, Some("4f2a9c1e0b7d"), "https://ci/1") else { panic!() };
        assert_eq!((artifact.reference.as_str(), artifact.sha.as_str()), ("web:4f2a9c1-42", "4f2a9c1e0b7d"));
        let resolved = RunFacts { sha: "4f2a9c1e0b7d5a3c4f2a9c1e0b7d5a3c4f2a9c1e", ..facts() };
        let BuildProgress::Succeeded { artifact } = template.built(&resolved, None, "https://ci/1") else { panic!() };
        assert_eq!(artifact.reference, "web:4f2a9c1-42");
        let BuildProgress::Failed { reason } = template.built(&echoed, None, "https://ci/1") else { panic!("named from HEAD") };
        assert!(reason.contains("'HEAD'") && reason.contains("--sha"), "{reason}");
        // A template that does not name the commit still builds; the commit stays unknown.
        let plain = ArtifactTemplate::parse("web:{build-number}", Some("build-number")).unwrap();
        let BuildProgress::Succeeded { artifact } = plain.built(&echoed, None, "https://ci/1") else { panic!() };
        assert_eq!((artifact.reference.as_str(), artifact.sha.as_str()), ("web:42", UNKNOWN_SHA));
    }

    #[test]
    fn bad_artifact_templates_are_refused_with_the_known_placeholders() {
        let unknown = ArtifactTemplate::parse("web:{commit}", Some("run-id")).unwrap_err();
        assert!(unknown.contains("unknown placeholder {commit}") && unknown.contains("{short-sha}"), "{unknown}");
        let open = ArtifactTemplate::parse("web:{sha", Some("run-id")).unwrap_err();
        assert!(open.contains("without a closing"), "{open}");
        assert!(ArtifactTemplate::parse("  ", Some("run-id")).unwrap_err().contains("empty"));
        // Each service's run placeholder is its own: a template copied from another fails early.
        let copied = ArtifactTemplate::parse("web:{run-id}", Some("pipeline-id")).unwrap_err();
        assert!(copied.contains("unknown placeholder {run-id}") && copied.contains("{pipeline-id}"), "{copied}");
        assert!(ArtifactTemplate::parse("web:{pipeline-id}", Some("build-number")).unwrap_err().contains("{build-number}"));
    }
}

//! Templates with `{placeholder}`s (an artifact's reference, an Argo CD revision), checked when
//! the provider is built so that a typo fails the release before anything runs.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder(&'static str),
}

impl Template {
    /// `what` names the template in errors ("the artifact template"), `example` says what a
    /// good one looks like, `known` lists the placeholders it may use.
    pub(crate) fn parse(template: &str, what: &str, example: &str, known: &'static [&'static str]) -> Result<Template, String> {
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
    pub(crate) fn render<'v>(&self, value: impl Fn(&'static str) -> &'v str) -> String {
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
pub(crate) fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
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
}

//! Build providers that drive a hosted CI service over its HTTP API, and what they share: the
//! artifact template, the per-request timeout, and turning answers into provider errors that
//! are short, say what to do, and never carry a credential.

pub(crate) mod from_catalog;
pub(crate) mod github_actions;
mod github_app;

pub use github_app::GitHubAppTokens;

use crate::http::request_failed;
use crate::secrets::Secret;
use baton_domain::ports::ProviderError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long one API request may take, connection included, unless the config says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Error texts quote at most this much of an answer: they travel in the execution state.
const QUOTED_CHARS: usize = 300;

/// How a build's artifact is named, from the facts the CI service reports about the run:
/// `ghcr.io/acme/web:{short-sha}` becomes `ghcr.io/acme/web:0123abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArtifactTemplate(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Sha,
    ShortSha,
    Branch,
    RunId,
    ReleaseId,
}

const PLACEHOLDERS: [(&str, Part); 5] =
    [("sha", Part::Sha), ("short-sha", Part::ShortSha), ("branch", Part::Branch), ("run-id", Part::RunId), ("release-id", Part::ReleaseId)];

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
        let known = || PLACEHOLDERS.iter().map(|(name, _)| format!("{{{name}}}")).collect::<Vec<_>>().join(", ");
        if template.trim().is_empty() {
            return Err(format!("the artifact template is empty: expected a reference such as registry/app:{{short-sha}} ({})", known()));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("the artifact template '{template}' has a '{{' without a closing '}}'"));
            };
            let name = &rest[open + 1..open + close];
            let Some((_, part)) = PLACEHOLDERS.iter().find(|(known, _)| *known == name) else {
                return Err(format!(
                    "the artifact template '{template}' has an unknown placeholder {{{name}}}: known ones are {}",
                    known()
                ));
            };
            parts.push(part.clone());
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(ArtifactTemplate(parts))
    }

    pub(crate) fn render(&self, facts: &RunFacts<'_>) -> String {
        self.0
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.as_str(),
                Part::Sha => facts.sha,
                Part::ShortSha => facts.sha.get(..7).unwrap_or(facts.sha),
                Part::Branch => facts.branch,
                Part::RunId => facts.run_id,
                Part::ReleaseId => facts.release_id,
            })
            .collect()
    }
}

/// A request that got no answer (worth retrying unless it could not even be built), saying
/// how long it waited when it timed out.
pub(crate) fn unanswered(error: reqwest::Error, context: &str, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::Unavailable(format!("{context}: no answer within {} ms", timeout.as_millis()));
    }
    request_failed(error, context)
}

/// Reads a 2xx answer's JSON. A body that does not parse is `Unavailable`: the service answered
/// success, so what broke is most likely in between (a proxy's error page, a cut connection),
/// and the caller's retries either get the real answer or end with this message, which names
/// the field at fault.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8], context: &str) -> Result<T, ProviderError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "the body".to_owned() } else { format!("field `{field}`") };
        ProviderError::Unavailable(format!("{context}: unreadable answer, {field}: {}", e.into_inner()))
    })
}

/// Up to [`QUOTED_CHARS`] of an answer's text on one line, with `secret` blanked out should the
/// answer echo it (a debugging proxy might).
pub(crate) fn quote(body: &str, secret: Option<&Secret>) -> String {
    let mut text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(secret) = secret.map(Secret::expose).filter(|value| !value.is_empty()) {
        text = text.replace(secret, "***");
    }
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The standard `Retry-After`, in seconds (the HTTP-date form is not used by the CI APIs).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, RETRY_AFTER.as_str()).map(Duration::from_secs)
}

pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
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

    #[test]
    fn quotes_are_short_single_lines_without_the_secret() {
        let secret = Secret::new("ghs_TOPSECRET".into());
        assert_eq!(quote("echo:\n  Bearer ghs_TOPSECRET ", Some(&secret)), "echo: Bearer ***");
        let long = quote(&"é".repeat(400), None);
        assert_eq!(long.chars().count(), QUOTED_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn unreadable_answers_name_the_field() {
        type Run = std::collections::HashMap<String, u64>;
        let Err(ProviderError::Unavailable(message)) = decode::<Run>(br#"{"id": 1, "status": "x"}"#, "GitHub Actions run 1") else {
            panic!("expected Unavailable")
        };
        assert!(message.starts_with("GitHub Actions run 1: unreadable answer, field `status`: invalid type"), "{message}");
        let Err(ProviderError::Unavailable(message)) = decode::<Run>(b"<html>bad gateway</html>", "GitHub") else {
            panic!("expected Unavailable")
        };
        assert!(message.contains("unreadable answer, the body: expected value"), "{message}");
    }
}

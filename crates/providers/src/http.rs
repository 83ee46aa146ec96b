//! The HTTP client shared by the HTTP health check, the Slack notifiers and the Datadog catalog.

use baton_domain::ports::ProviderError;

/// The process's one HTTPS client ([`baton_http_client::shared`], which the AWS SDK clients use too):
/// a Baton user agent and a connect timeout; request timeouts are set per request by each
/// provider. Clone it freely: clones share one connection pool.
pub fn http_client() -> Result<reqwest::Client, ProviderError> {
    baton_http_client::shared()
        .map(|https| https.client().clone())
        .map_err(|e| ProviderError::Unavailable(format!("cannot set up the HTTP client: {e}")))
}

/// A request error and its causes on one line ("error sending request: ... Connection refused"),
/// without the URL: a Slack webhook URL is a secret.
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        let text = inner.to_string();
        // hyper and reqwest often wrap an error in one that repeats its text.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message
}

/// A request that got no answer: a bad URL cannot get better, anything else might.
pub(crate) fn request_failed(error: reqwest::Error, context: &str) -> ProviderError {
    let permanent = error.is_builder();
    let message = format!("{context}: {}", describe(error));
    if permanent { ProviderError::Rejected(message) } else { ProviderError::Unavailable(message) }
}

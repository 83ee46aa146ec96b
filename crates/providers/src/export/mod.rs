//! Telemetry exporters: a release's events sent where the team already looks (Datadog's DORA
//! metrics and events; CloudWatch metrics as Embedded Metric Format log lines). Each is best
//! effort within bounds its caller also enforces ([`baton_domain::telemetry::EXPORT_BUDGET`]):
//! a request gets [`EXPORT_REQUEST_TIMEOUT`], one more attempt after an outage, and a rate limit
//! longer than a couple of seconds is not waited for.

pub(crate) mod datadog;
pub(crate) mod emf;

use crate::http::{Answer, RateLimits, exchange_limited};
use baton_domain::ports::ProviderError;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use std::time::Duration;

/// How long one export request may take: two attempts, the pause between them and a short
/// rate-limit wait stay within the export budget.
pub const EXPORT_REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Attempts per request: the first, and one after an outage (no answer, 408 or 5xx).
const ATTEMPTS: u32 = 2;
/// The pause before the second attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Sends the request `build` makes through the shared rate-limit holds and answers the 2xx
/// answer; `refusal` turns any other answer into its error. An outage is tried once more; a
/// refusal or a rate limit is not (the holds keep the next export from sending too early).
pub(crate) async fn send_bounded(
    limits: &RateLimits,
    service: &str,
    build: impl Fn() -> RequestBuilder,
    timeout: Duration,
    context: &str,
    wait: impl Fn(&HeaderMap) -> Option<Duration> + Copy,
    refusal: impl Fn(&Answer) -> ProviderError,
) -> Result<Answer, ProviderError> {
    let mut attempt = 1;
    loop {
        let outcome = match exchange_limited(limits, service, &build, timeout, context, wait).await {
            Ok(answer) if answer.status.is_success() => return Ok(answer),
            Ok(answer) => {
                let again = answer.status == StatusCode::REQUEST_TIMEOUT || answer.status.is_server_error();
                (refusal(&answer), again)
            }
            Err(err) => {
                let again = matches!(err, ProviderError::Unavailable { .. }) && err.rate_limit().is_none();
                (err, again)
            }
        };
        match outcome {
            (err, true) if attempt < ATTEMPTS => {
                tracing::debug!(target: "baton::export", attempt, error = %baton_domain::error::chain_text(&err), "{context}: trying again");
                tokio::time::sleep(RETRY_PAUSE).await;
                attempt += 1;
            }
            (err, _) => return Err(err),
        }
    }
}

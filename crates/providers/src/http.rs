//! What the HTTP providers share: the one client, per-request timeouts, answers read to a bound,
//! and errors that are short, say what to do and never carry a credential.

use crate::secrets::Secret;
use baton_domain::error::chain_text;
use baton_domain::ports::{Clock, ProviderError, RateLimited, SystemClock};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long one API request may take, connection included, unless the config says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request that creates something (a build, a pipeline) may take. Longer than
/// [`DEFAULT_REQUEST_TIMEOUT`]: an answer given up on may still have created it, which costs a
/// look for it before the request is sent again; busy CI services take tens of seconds to
/// answer a create at their worst.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Error texts quote at most this much of an answer: they travel in the execution state.
const QUOTED_CHARS: usize = 300;
/// The most of an answer a provider reads: API answers are small, and a broken or hostile
/// server must not make Baton read without end.
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// A rate limit asking for this long or less is waited out inside the call, once: cheaper than
/// a failed task and the state machine's backoff. A longer one is `Unavailable` with a
/// [`RateLimited`] cause, saying until when.
pub(crate) const SHORT_WAIT: Duration = Duration::from_secs(2);
/// How long a 429 that names no time holds its API back.
const UNNAMED_WAIT: Duration = Duration::from_secs(60);
/// The request headers that carry a credential: a rate limit is per credential and API host.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "private-token", "circle-token", "dd-api-key", "x-api-key"];

/// When each credential may next call each API host, as the providers' rate-limit answers said:
/// one hold per credential and host, shared by every call of the process (parallel targets and
/// releases included), so nothing is sent before the time a provider named. Holds are keyed by
/// a hash, never by the credential itself.
pub struct RateLimits {
    clock: Arc<dyn Clock>,
    holds: Mutex<HashMap<u64, DateTime<Utc>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

impl RateLimits {
    /// Holds of their own, on `clock`: for tests, which move time themselves.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<RateLimits> {
        Arc::new(RateLimits { clock, holds: Mutex::new(HashMap::new()) })
    }

    /// The process's holds, on the system clock.
    pub fn shared() -> Arc<RateLimits> {
        static SHARED: OnceLock<Arc<RateLimits>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| RateLimits::new(Arc::new(SystemClock))))
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The key of `request`'s credential and API host. A request that carries no credential
    /// header is keyed by its URL's path too: a Slack webhook's URL is its credential.
    pub(crate) fn key(url: &Url, headers: &HeaderMap) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (url.host_str(), url.port_or_known_default()).hash(&mut hasher);
        let credentials: Vec<_> = CREDENTIAL_HEADERS.iter().map(|name| headers.get(*name).map(|value| value.as_bytes())).collect();
        if credentials.iter().all(Option::is_none) {
            url.path().hash(&mut hasher);
        }
        credentials.hash(&mut hasher);
        hasher.finish()
    }

    /// Until when `key` is held back, if it is.
    pub(crate) fn held(&self, key: u64) -> Option<DateTime<Utc>> {
        let now = self.now();
        self.holds.lock().expect("the rate-limit holds are never poisoned").get(&key).copied().filter(|until| *until > now)
    }

    /// Holds `key` back for `wait` from now (or longer, if it already was); returns until when.
    pub(crate) fn hold(&self, key: u64, wait: Duration) -> DateTime<Utc> {
        self.hold_until(key, after(self.now(), wait))
    }

    /// Holds `key` back until `until` (or longer, if it already was); returns until when.
    pub(crate) fn hold_until(&self, key: u64, until: DateTime<Utc>) -> DateTime<Utc> {
        let mut holds = self.holds.lock().expect("the rate-limit holds are never poisoned");
        let held = holds.entry(key).or_insert(until);
        *held = (*held).max(until);
        *held
    }

    /// Waits out a hold of `key` shorter than [`SHORT_WAIT`]; a longer one is the error to
    /// return instead of sending anything.
    pub(crate) async fn wait_for(&self, key: u64, service: &str, context: &str) -> Result<(), ProviderError> {
        let Some(until) = self.held(key) else { return Ok(()) };
        let left = (until - self.now()).to_std().unwrap_or_default();
        if left <= SHORT_WAIT {
            tokio::time::sleep(left).await;
            return Ok(());
        }
        Err(rate_limited(service, context, until, false))
    }
}

/// `wait` after `now`; a day at most, whatever a header says.
pub(crate) fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    const LONGEST: Duration = Duration::from_secs(24 * 3600);
    now + chrono::Duration::from_std(wait.min(LONGEST)).expect("a day fits")
}

/// The error for a rate limit that holds `service` back until `until`.
pub(crate) fn rate_limited(service: &str, context: &str, until: DateTime<Utc>, answered: bool) -> ProviderError {
    let when = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let how = if answered { "is rate limiting" } else { "is still rate limiting" };
    ProviderError::unavailable(format!("{context}: {service} {how}: nothing is sent to it before {when}")).caused_by(RateLimited {
        service: service.to_owned(),
        until,
        answered,
    })
}

/// The process's one HTTPS client ([`baton_http_client::shared`], which the AWS SDK clients use too):
/// a Baton user agent and a connect timeout; request timeouts are set per request by each
/// provider. Clone it freely: clones share one connection pool.
pub fn http_client() -> Result<reqwest::Client, ProviderError> {
    baton_http_client::shared()
        .map(|https| https.client().clone())
        .map_err(|e| ProviderError::unavailable("cannot set up the HTTP client").caused_by(e))
}

/// A request error and its causes on one line ("error sending request: ... Connection refused"),
/// without the URL: a Slack webhook URL is a secret.
pub(crate) fn describe(error: reqwest::Error) -> String {
    chain_text(&error.without_url())
}

/// A request that got no answer: a bad URL cannot get better, anything else might.
pub(crate) fn request_failed(error: reqwest::Error, context: &str) -> ProviderError {
    let failed = if error.is_builder() { ProviderError::rejected(context) } else { ProviderError::unavailable(context) };
    // Without the URL: a Slack webhook URL is a secret.
    failed.caused_by(error.without_url())
}

/// A request that got no answer (worth retrying unless it could not even be built), saying
/// how long it waited when it timed out.
pub(crate) fn unanswered(error: reqwest::Error, context: &str, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::unavailable(format!("{context}: no answer within {} ms", timeout.as_millis()));
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
        ProviderError::unavailable(format!("{context}: unreadable answer, {field}")).caused_by(e.into_inner())
    })
}

/// Up to [`QUOTED_CHARS`] of a text on one line, with each of `secrets` and every other secret
/// Baton resolved blanked out should the text echo it (a debugging proxy might).
pub(crate) fn quote(body: &str, secrets: &[&Secret]) -> String {
    let mut text = baton_domain::redact::scrub(body).split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets.iter().map(|secret| secret.expose()).filter(|value| !value.is_empty()) {
        text = text.replace(secret, "***");
    }
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The standard `Retry-After`, in seconds (the HTTP-date form is not used by these APIs).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, RETRY_AFTER.as_str()).map(Duration::from_secs)
}

/// How long an API that names its limit's end with `X-RateLimit-Reset` (Datadog, CircleCI) asks
/// to wait: `Retry-After`, else `X-RateLimit-Reset`, read as the seconds until the reset, or as
/// the Unix time of the reset when it is one (a count of seconds that large would be decades).
pub(crate) fn x_rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    const UNIX_TIME_FROM: u64 = 1_000_000_000;
    retry_after(headers).or_else(|| {
        let reset = header_u64(headers, "x-ratelimit-reset")?;
        if reset < UNIX_TIME_FROM {
            return Some(Duration::from_secs(reset));
        }
        Some(Duration::from_secs(reset.saturating_sub(u64::try_from(Utc::now().timestamp()).unwrap_or(0))))
    })
}

pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `text` as an http(s) URL with a host, or why not, for a catalog error.
pub(crate) fn http_url(text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        Ok(url) => Err(format!("'{}' is not an http(s) URL", shown(&url))),
        Err(e) => Err(format!("'{text}' is not a URL: {e}")),
    }
}

/// `base` with `segments` appended, each percent-encoded (a `/` inside one becomes `%2F`).
pub(crate) fn endpoint<'a>(base: &Url, segments: impl IntoIterator<Item = &'a str>) -> Url {
    let mut url = base.clone();
    url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend(segments);
    url
}

/// A URL fit for an error message or a log line: without user, password, query or fragment,
/// where credentials hide.
pub(crate) fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Only URLs that cannot be a base refuse these, and an http(s) URL always can.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// An answer read whole, up to [`MAX_ANSWER_BYTES`].
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// A rate limit's answer: until when the API takes no request with this credential.
    pub limited_until: Option<DateTime<Utc>>,
}

/// What a request was about, for the error its refusal becomes.
pub(crate) struct Refused<'a> {
    /// Who answered: "Argo CD", "Datadog", "the webhook endpoint".
    pub service: &'a str,
    /// What Baton was doing: "syncing Argo CD application web on https://argocd.example.com".
    pub context: &'a str,
    /// What to check when the credentials are refused (401 or 403), naming their references.
    pub credentials: &'a str,
    /// What a 404 most likely means.
    pub missing: &'a str,
    /// Blanked out of anything quoted from the answer.
    pub secrets: &'a [&'a Secret],
}

/// Sends the request `build` makes, with `timeout`, and reads the answer. Nothing is sent while
/// `limits` hold the request's credential and host back (a hold of at most [`SHORT_WAIT`] is
/// waited out; a longer one is the error, a [`RateLimited`] cause naming `service`). A 429
/// holds them back for as long as `wait` reads from its headers; one that asks for at most
/// [`SHORT_WAIT`] is waited out and the request sent once more. `Err` only when no whole
/// answer came, or the request was held back.
pub(crate) async fn exchange(
    limits: &RateLimits,
    service: &str,
    build: impl Fn() -> RequestBuilder,
    timeout: Duration,
    context: &str,
    wait: impl Fn(&HeaderMap) -> Option<Duration>,
) -> Result<Answer, ProviderError> {
    let probe = build().build().map_err(|e| request_failed(e, context))?;
    let key = RateLimits::key(probe.url(), probe.headers());
    limits.wait_for(key, service, context).await?;
    let mut answer = send(build(), timeout, context).await?;
    if answer.status == StatusCode::TOO_MANY_REQUESTS {
        let pause = wait(&answer.headers).unwrap_or(UNNAMED_WAIT);
        let until = limits.hold(key, pause);
        if pause > SHORT_WAIT {
            answer.limited_until = Some(until);
            return Ok(answer);
        }
        tracing::debug!(target: "baton::http", wait_ms = pause.as_millis() as u64, "{context}: rate limited, waiting");
        tokio::time::sleep(pause).await;
        answer = send(build(), timeout, context).await?;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.limited_until = Some(limits.hold(key, wait(&answer.headers).unwrap_or(UNNAMED_WAIT)));
        }
    }
    Ok(answer)
}

async fn send(request: RequestBuilder, timeout: Duration, context: &str) -> Result<Answer, ProviderError> {
    let mut response = request.timeout(timeout).send().await.map_err(|e| unanswered(e, context, timeout))?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unanswered(e, context, timeout))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProviderError::unavailable(format!(
                "{context}: the answer (HTTP {}) is larger than {} KiB, more than any answer this API gives",
                status.as_u16(),
                MAX_ANSWER_BYTES / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, headers, body, limited_until: None })
}

impl Answer {
    /// The error this (non-2xx) answer means; `wait` is how long a rate limit asks to wait.
    pub(crate) fn refusal(&self, refused: &Refused<'_>, wait: Option<Duration>) -> ProviderError {
        let Refused { service, context, credentials, missing, .. } = refused;
        let said = self.said(refused.secrets);
        let code = self.status.as_u16();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                ProviderError::rejected(format!("{context}: {service} refused the credentials (HTTP 401): {credentials}{said}"))
            }
            StatusCode::FORBIDDEN => ProviderError::rejected(format!("{context}: {service} denied it (HTTP 403): {credentials}{said}")),
            StatusCode::NOT_FOUND => ProviderError::rejected(format!("{context}: HTTP 404, {missing}{said}")),
            StatusCode::TOO_MANY_REQUESTS => {
                let when = wait.map(|wait| format!("retry after {} s", wait.as_secs().max(1))).unwrap_or_else(|| "retry later".into());
                self.limited(service, format!("{context}: {service} is rate limiting (HTTP 429), {when}{said}"))
            }
            StatusCode::REQUEST_TIMEOUT => ProviderError::unavailable(format!("{context}: {service} answered HTTP 408{said}")),
            status if status.is_server_error() => ProviderError::unavailable(format!("{context}: {service} answered HTTP {code}{said}")),
            _ => ProviderError::rejected(format!("{context}: {service} answered HTTP {code}{said}")),
        }
    }

    /// The error for this rate limit's answer (`limiting` says what and how long): with a
    /// [`RateLimited`] cause when it holds `service` back until a time.
    pub(crate) fn limited(&self, service: &str, limiting: String) -> ProviderError {
        match self.limited_until {
            Some(until) => {
                let when = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                ProviderError::unavailable(format!("{limiting}; nothing is sent to it before {when}")).caused_by(RateLimited {
                    service: service.to_owned(),
                    until,
                    answered: true,
                })
            }
            None => ProviderError::unavailable(limiting),
        }
    }

    /// What an error answer says, as ": <text>" (empty when it says nothing): its `message`
    /// (Argo CD), `errors` (Datadog), `error` or `reason`, else its text; quoted without `secrets`.
    pub(crate) fn said(&self, secrets: &[&Secret]) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let said = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(json) => error_text(&json).unwrap_or_else(|| text.into_owned()),
            Err(_) => text.into_owned(),
        };
        let said = quote(&said, secrets);
        if said.is_empty() { said } else { format!(": {said}") }
    }
}

fn error_text(json: &serde_json::Value) -> Option<String> {
    let text = |key: &str| json.get(key).and_then(serde_json::Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned);
    let errors = || {
        let errors = json.get("errors")?.as_array()?;
        let texts: Vec<String> = errors.iter().map(|e| e.as_str().map(str::to_owned).unwrap_or_else(|| e.to_string())).collect();
        (!texts.is_empty()).then(|| texts.join("; "))
    };
    text("message").or_else(errors).or_else(|| text("error")).or_else(|| text("reason"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_single_lines_without_the_secrets() {
        let token = Secret::new("ghs_TOPSECRET".into());
        let key = Secret::new("dd-KEY".into());
        assert_eq!(quote("echo:\n  Bearer ghs_TOPSECRET dd-KEY ", &[&token, &key]), "echo: Bearer *** ***");
        let long = quote(&"é".repeat(400), &[]);
        assert_eq!(long.chars().count(), QUOTED_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn unreadable_answers_name_the_field() {
        type Run = std::collections::HashMap<String, u64>;
        let Err(error @ ProviderError::Unavailable { .. }) = decode::<Run>(br#"{"id": 1, "status": "x"}"#, "GitHub Actions run 1") else {
            panic!("expected Unavailable")
        };
        assert_eq!(error.message(), "GitHub Actions run 1: unreadable answer, field `status`");
        let text = chain_text(&error);
        assert!(text.ends_with("field `status`: invalid type: string \"x\", expected u64 at line 1 column 23"), "{text}");
        let Err(error @ ProviderError::Unavailable { .. }) = decode::<Run>(b"<html>bad gateway</html>", "GitHub") else {
            panic!("expected Unavailable")
        };
        let text = chain_text(&error);
        assert!(text.contains("unreadable answer, the body: expected value"), "{text}");
    }

    #[test]
    fn x_rate_limit_reset_is_read_as_seconds_or_as_a_unix_time() {
        let headers = |pairs: &[(&'static str, String)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            headers
        };
        assert_eq!(x_rate_limit_wait(&headers(&[("x-ratelimit-reset", "42".into())])), Some(Duration::from_secs(42)));
        let reset = (Utc::now() + chrono::Duration::seconds(600)).timestamp();
        let wait = x_rate_limit_wait(&headers(&[("x-ratelimit-reset", reset.to_string())])).unwrap();
        assert!((598..=600).contains(&wait.as_secs()), "{wait:?}");
        let both = headers(&[("x-ratelimit-reset", "42".into()), ("retry-after", "7".into())]);
        assert_eq!(x_rate_limit_wait(&both), Some(Duration::from_secs(7)), "Retry-After first");
        assert_eq!(x_rate_limit_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn holds_are_per_credential_and_host_and_per_url_without_a_credential() {
        let url = |text: &str| Url::parse(text).unwrap();
        let bearer = |token: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            headers
        };
        let key = RateLimits::key;
        assert_eq!(key(&url("https://api.example.com/a"), &bearer("t1")), key(&url("https://api.example.com/b"), &bearer("t1")));
        assert_ne!(key(&url("https://api.example.com/a"), &bearer("t1")), key(&url("https://api.example.com/a"), &bearer("t2")));
        assert_ne!(key(&url("https://api.example.com/a"), &bearer("t1")), key(&url("https://other.example.com/a"), &bearer("t1")));
        let none = HeaderMap::new();
        assert_ne!(key(&url("https://hooks.example.com/T1/B1/x"), &none), key(&url("https://hooks.example.com/T1/B2/y"), &none));
        assert_eq!(key(&url("https://hooks.example.com/T1/B1/x?a=1"), &none), key(&url("https://hooks.example.com/T1/B1/x?a=2"), &none));
    }

    #[test]
    fn shown_urls_lose_what_may_hold_credentials() {
        let url = Url::parse("https://user:pw@deploy.example.com:8443/hooks/deploy?token=abc#frag").unwrap();
        assert_eq!(shown(&url), "https://deploy.example.com:8443/hooks/deploy");
    }

    #[test]
    fn error_answers_say_what_their_service_said() {
        let answer = |body: &str| Answer {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            limited_until: None,
        };
        let cases = [
            (
                r#"{"error":"x","code":9,"message":"another operation is already in progress"}"#,
                ": another operation is already in progress",
            ),
            (r#"{"errors":["Forbidden","Bad key"]}"#, ": Forbidden; Bad key"),
            (r#"{"error":"bad signature"}"#, ": bad signature"),
            ("<html>\n oops </html>", ": <html> oops </html>"),
            ("", ""),
        ];
        for (body, expected) in cases {
            assert_eq!(answer(body).said(&[]), expected, "{body}");
        }
    }
}

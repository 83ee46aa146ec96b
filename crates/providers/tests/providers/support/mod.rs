//! What the contract tests of the HTTP providers share.

#![allow(dead_code)] // Each test binary uses its own part.

use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{ProviderError, RunHandle, SecretResolver};
use baton_domain::release::{Artifact, ReleaseId};
use std::collections::BTreeMap;

pub const RELEASE: &str = "rel-web-20260101120000-0123abcd";
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Resolves the `env:` references it was given, and refuses any other.
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    pub fn of(pairs: &[(&str, &str)]) -> std::sync::Arc<Secrets> {
        std::sync::Arc::new(Secrets(pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()))
    }
}

#[async_trait]
impl SecretResolver for Secrets {
    async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
        match secret {
            SecretRef::Env(name) if self.0.contains_key(name) => Ok(self.0[name].clone()),
            _ => Err(ProviderError::rejected(format!("secret {secret} is not set"))),
        }
    }
}

pub fn release_id() -> ReleaseId {
    ReleaseId(RELEASE.into())
}

pub fn artifact() -> Artifact {
    Artifact {
        reference: "ghcr.io/acme/web:0123456".into(),
        sha: SHA.into(),
        branch: "main".into(),
        build_url: Some("https://github.com/acme/web/actions/runs/42".into()),
    }
}

/// A client of its own for one test, as `baton_http_client::shared` advises: each test has its
/// own runtime, wiremock hands out pooled servers (the same ports again), and a pooled
/// connection made on a runtime that has ended fails the next test that reuses it.
pub fn client() -> reqwest::Client {
    baton_http_client::Https::new(None).unwrap().client().clone()
}

/// What a later task invocation sees: the handle after a JSON round trip.
pub fn travelled(handle: &RunHandle) -> RunHandle {
    serde_json::from_str(&serde_json::to_string(handle).unwrap()).unwrap()
}

/// Fails when `secret` shows anywhere in `text` (an error, a serialised handle, a log).
pub fn assert_secret_free(text: &str, secret: &str) {
    assert!(!text.contains(secret), "the secret leaked: {text}");
}

/// Mounts `response` for every `verb` request to `at`.
pub async fn answer(server: &wiremock::MockServer, verb: &str, at: &str, response: wiremock::ResponseTemplate) {
    wiremock::Mock::given(wiremock::matchers::method(verb)).and(wiremock::matchers::path(at)).respond_with(response).mount(server).await;
}

/// Mounts `response` for the next `verb` request to `at` only; later ones fall through to
/// mocks mounted after it.
pub async fn answer_once(server: &wiremock::MockServer, verb: &str, at: &str, response: wiremock::ResponseTemplate) {
    wiremock::Mock::given(wiremock::matchers::method(verb))
        .and(wiremock::matchers::path(at))
        .respond_with(response)
        .up_to_n_times(1)
        .mount(server)
        .await;
}

/// The requests `server` received for `verb` to `at`.
pub async fn received(server: &wiremock::MockServer, verb: &str, at: &str) -> Vec<wiremock::Request> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests.into_iter().filter(|request| request.method.as_str() == verb && request.url.path() == at).collect()
}

/// What a task sees of a build request.
/// The build's span of the release's trace as a `traceparent`: what every build provider hands
/// its run (`telemetry::` checks it names the build span of the trace the `otlp` exporter sends).
pub fn build_span() -> String {
    baton_providers::traceparent(&release_id(), "build")
}

pub fn build_request(sha: Option<&str>) -> baton_domain::ports::BuildRequest {
    baton_domain::ports::BuildRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: release_id(),
        branch: "main".into(),
        sha: sha.map(str::to_owned),
    }
}

/// A forward deploy of the release's artifact to `target`, in wave `canary`.
pub fn deploy_request(target: &str) -> baton_domain::ports::DeployRequest {
    baton_domain::ports::DeployRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: release_id(),
        wave: "canary".into(),
        target: target.into(),
        artifact: artifact(),
        rollback: false,
        undoes: None,
    }
}

/// A clock that moves only when a test says: rate-limit windows of minutes pass at once.
pub struct ManualClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    /// Starting now, on a whole second: a window a test names in whole seconds from now (a
    /// GitHub reset time, in Unix seconds) then lasts exactly that long.
    pub fn new() -> std::sync::Arc<ManualClock> {
        use chrono::Timelike;
        let now = chrono::Utc::now();
        std::sync::Arc::new(ManualClock(std::sync::Mutex::new(now.with_nanosecond(0).unwrap_or(now))))
    }

    pub fn advance(&self, seconds: i64) {
        *self.0.lock().unwrap() += chrono::Duration::seconds(seconds);
    }
}

impl baton_domain::ports::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

/// Rate-limit holds of a test's own: wiremock hands the same ports out again, so the process's
/// holds would leak one test's limit into the next.
pub fn own_limits(clock: std::sync::Arc<ManualClock>) -> std::sync::Arc<baton_providers::RateLimits> {
    baton_providers::RateLimits::new(clock)
}

/// Rate-limit holds of a test's own on the system clock, for tests that do not move time.
pub fn fresh_limits() -> std::sync::Arc<baton_providers::RateLimits> {
    baton_providers::RateLimits::new(std::sync::Arc::new(baton_domain::ports::SystemClock))
}

/// Answers `first` once and then `then` to every `verb` request to `at`, noting when each came.
pub async fn limited_then(
    server: &wiremock::MockServer,
    verb: &str,
    at: &str,
    first: wiremock::ResponseTemplate,
    then: wiremock::ResponseTemplate,
) -> std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>> {
    struct Noted(std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>, wiremock::ResponseTemplate);
    impl wiremock::Respond for Noted {
        fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
            self.0.lock().unwrap().push(std::time::Instant::now());
            self.1.clone()
        }
    }
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let matcher = || wiremock::Mock::given(wiremock::matchers::method(verb)).and(wiremock::matchers::path(at));
    matcher().respond_with(Noted(times.clone(), first)).up_to_n_times(1).with_priority(1).mount(server).await;
    matcher().respond_with(Noted(times.clone(), then)).with_priority(2).mount(server).await;
    times
}

/// The rate-limit contract, for an answer (mounted with [`limited_then`], `times`) that names a
/// window of `window` seconds on `clock`: `call` gets through once the window is over, and no
/// request reaches the provider before. A window of at most 2 s is waited out inside the call
/// (in real time); a longer one is an error naming its end, and the calls made before it send
/// nothing (the clock moves on instead of the test waiting).
pub async fn window_is_obeyed<T: std::fmt::Debug, F: std::future::Future<Output = Result<T, ProviderError>>>(
    window: i64,
    clock: &ManualClock,
    times: &std::sync::Mutex<Vec<std::time::Instant>>,
    call: impl Fn() -> F,
) -> T {
    use baton_domain::ports::Clock;
    let sent = || times.lock().unwrap().len();
    if window <= 2 {
        let answer = call().await.expect("a short window is waited out inside the call");
        let times = times.lock().unwrap();
        assert_eq!(times.len(), 2, "the limited request and the one after the window");
        assert!(times[1] - times[0] >= std::time::Duration::from_secs(window as u64), "sent again {:?} later", times[1] - times[0]);
        return answer;
    }
    let end = clock.now() + chrono::Duration::seconds(window);
    let error = call().await.expect_err("a long window is the caller's to wait out");
    let limit = error.rate_limit().unwrap_or_else(|| panic!("not a rate limit: {error}")).clone();
    assert!(limit.answered && (limit.until - end).num_seconds().abs() <= 1, "{limit:?}, expected about {end}");
    assert!(error.message().contains(&limit.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)), "{error}");
    // Five seconds before the end: more than a call waits out by itself.
    clock.advance(window - 5);
    let held = call().await.expect_err("held back until the window's end");
    assert!(held.rate_limit().is_some_and(|limit| !limit.answered), "{held}");
    assert_eq!(sent(), 1, "nothing is sent inside the window");
    clock.advance(5);
    let answer = call().await.expect("the window is over");
    assert_eq!(sent(), 2);
    answer
}

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
pub fn build_request(sha: Option<&str>) -> baton_domain::ports::BuildRequest {
    baton_domain::ports::BuildRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: release_id(),
        branch: "main".into(),
        sha: sha.map(str::to_owned),
    }
}

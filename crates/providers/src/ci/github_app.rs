//! GitHub App authentication: a JWT signed with the app's private key (RS256) buys an
//! installation token, which the API calls use until shortly before it expires.
//!
//! The signature uses `ring`, which the process already carries for TLS (rustls): RS256 costs
//! no new crate to compile or ship.

use crate::secrets::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_domain::ports::ProviderError;
use chrono::{DateTime, Utc};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// GitHub refuses a JWT whose `exp` is more than 10 minutes ahead; 9 leaves room for clock drift.
const JWT_LIFETIME: chrono::Duration = chrono::Duration::minutes(9);
/// `iat` in the past, so that a GitHub clock slightly behind ours accepts the JWT.
const JWT_BACKDATE: chrono::Duration = chrono::Duration::seconds(60);
/// An installation token (valid an hour) is replaced this long before it expires, so that no
/// request goes out with a token that expires on the way.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// Installation tokens, shared by every provider built with the same cache. Providers are
/// built per task invocation, so the cache must outlive them: keep one per process (next to
/// the HTTP client, in whatever builds the providers) and pass it to each constructor. An
/// explicit value rather than a process-wide static keeps tests and processes that talk to
/// several GitHubs from seeing each other's tokens, and makes the sharing visible at the call.
///
/// Tokens are keyed by (API URL, app id, installation id); each key has its own lock, so
/// concurrent calls for one installation make one exchange and the others wait for its token.
#[derive(Clone, Default)]
pub struct GitHubAppTokens(Arc<Mutex<HashMap<AppKey, Slot>>>);

impl fmt::Debug for GitHubAppTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let installations = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("GitHubAppTokens").field("installations", &installations).finish_non_exhaustive()
    }
}

impl GitHubAppTokens {
    pub fn new() -> GitHubAppTokens {
        GitHubAppTokens::default()
    }

    fn slot(&self, key: AppKey) -> Slot {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default().clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AppKey {
    api_url: String,
    app_id: String,
    installation_id: u64,
}

type Slot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;

/// An installation token and when GitHub said it expires.
#[derive(Debug, Clone)]
pub(crate) struct InstallationToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
}

/// One installation of one app: its signing key and its slot in the shared cache.
pub(crate) struct AppAuth {
    pub app_id: String,
    pub installation_id: u64,
    key: Arc<RsaKeyPair>,
    slot: Slot,
}

impl fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppAuth").field("app_id", &self.app_id).field("installation_id", &self.installation_id).finish_non_exhaustive()
    }
}

impl AppAuth {
    /// `private_key_pem` is the key GitHub hands out (PKCS#1, `BEGIN RSA PRIVATE KEY`) or the
    /// same key as PKCS#8 (`BEGIN PRIVATE KEY`). Errors never quote the key.
    pub(crate) fn new(
        api_url: &str,
        app_id: &str,
        installation_id: u64,
        private_key_pem: &Secret,
        tokens: &GitHubAppTokens,
    ) -> Result<AppAuth, String> {
        if app_id.trim().is_empty() {
            return Err("the GitHub App id is empty: expected the app's id or client id".into());
        }
        let unreadable = |why: String| format!("the private key of GitHub App {app_id} is unusable: {why}");
        let der = PrivateKeyDer::from_pem_slice(private_key_pem.expose().as_bytes())
            .map_err(|e| unreadable(format!("expected a PEM private key ({e:?})")))?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(pkcs1) => RsaKeyPair::from_der(pkcs1.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(pkcs8) => RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()),
            _ => return Err(unreadable("it is not an RSA key (GitHub Apps sign with RSA)".into())),
        }
        .map_err(|e| unreadable(format!("not a usable RSA key: {e}")))?;
        let slot = tokens.slot(AppKey { api_url: api_url.to_owned(), app_id: app_id.to_owned(), installation_id });
        Ok(AppAuth { app_id: app_id.to_owned(), installation_id, key: Arc::new(key), slot })
    }

    /// The app's JWT: RS256, `iss` the app id, valid from a minute ago for nine minutes.
    pub(crate) fn jwt(&self, now: DateTime<Utc>) -> Result<Secret, ProviderError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iat": (now - JWT_BACKDATE).timestamp(),
            "exp": (now + JWT_LIFETIME).timestamp(),
            "iss": self.app_id,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| ProviderError::unavailable(format!("cannot sign the JWT of GitHub App {}", self.app_id)))?;
        Ok(Secret::new(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))))
    }

    /// The cached installation token, or a new one from `exchange` when there is none or it
    /// expires within [`REFRESH_MARGIN`]. A failed exchange leaves the cache as it was.
    pub(crate) async fn token<F, Fut>(&self, exchange: F) -> Result<Secret, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<InstallationToken, ProviderError>>,
    {
        let mut cached = self.slot.lock().await;
        if let Some(token) = cached.as_ref().filter(|token| token.expires_at - REFRESH_MARGIN > Utc::now()) {
            return Ok(token.token.clone());
        }
        let fresh = exchange().await?;
        tracing::debug!(target: "baton::github", app_id = %self.app_id, installation_id = self.installation_id, expires_at = %fresh.expires_at, "new installation token");
        *cached = Some(fresh.clone());
        Ok(fresh.token)
    }

    /// Drops `refused` from the cache (GitHub answered 401 to it: revoked, or the installation
    /// changed), unless another call already replaced it.
    pub(crate) async fn forget(&self, refused: &Secret) {
        let mut cached = self.slot.lock().await;
        if cached.as_ref().is_some_and(|token| token.token == *refused) {
            *cached = None;
        }
    }
}

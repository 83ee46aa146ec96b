//! Provider callbacks read as [`ProviderEvent`]s: each provider's webhook or notification checked
//! under its own scheme (an HMAC over the body, or a shared token compared in constant time),
//! then its body read into the [`WaitKey`] Baton recorded when it started the run. Receivers are
//! pure: no network, no clock but the `now` they are given, no memory of past requests (a replay
//! is recognised by the event's `delivery`, which the caller claims once).
//!
//! A receiver holds every secret the catalog names for its provider (one per block: services may
//! point separate webhooks at Baton), and accepts a request that any of them authenticates.
//! See docs/events.md for pointing each provider at Baton.

pub(crate) mod argo_cd;
pub(crate) mod buildkite;
pub(crate) mod circleci;
pub(crate) mod datadog;
pub(crate) mod github;
pub(crate) mod gitlab;
pub(crate) mod webhook;

use crate::secrets::Secret;
use baton_domain::ports::{InboundRefused, InboundRequest};
use baton_domain::signing::{hmac_sha256_hex, hmac_sha256_matches};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

/// How far a signed timestamp may be from now, either way: Slack's five minutes.
pub const MAX_AGE_SECONDS: i64 = 5 * 60;

/// The header carrying the shared token of the providers that cannot sign (Argo CD's and
/// Datadog's notifications send static headers only).
pub const TOKEN_HEADER: &str = "X-Baton-Token";

/// The secrets a receiver accepts. Debug shows how many, never one.
pub(crate) struct Keys(Vec<Secret>);

impl Keys {
    /// Refuses no secret at all, or an empty one: either would accept what nobody signed.
    pub(crate) fn new(provider: &str, secrets: Vec<Secret>) -> Result<Keys, String> {
        if secrets.is_empty() {
            return Err(format!("no secret for {provider}'s callbacks: name one in a `{provider}` block of the catalog"));
        }
        if secrets.iter().any(|secret| secret.expose().is_empty()) {
            return Err(format!("a secret for {provider}'s callbacks is empty"));
        }
        Ok(Keys(secrets))
    }

    /// Whether one of the keys signs `parts` (joined end to end) as `signature_hex`. Every key is
    /// tried, so the time taken does not tell which one matched.
    pub(crate) fn sign(&self, parts: &[&[u8]], signature_hex: &str) -> bool {
        self.0.iter().fold(false, |found, secret| hmac_sha256_matches(secret.expose().as_bytes(), parts, signature_hex) | found)
    }

    /// Every key, to blank out of text quoted from a request.
    pub(crate) fn all(&self) -> Vec<&Secret> {
        self.0.iter().collect()
    }

    /// Whether `presented` is one of the keys, compared in constant time: both sides are MACed
    /// under one fixed key and the MACs compared, so neither content nor length shows in the time.
    pub(crate) fn token(&self, presented: &str) -> bool {
        const COMPARE: &[u8] = b"baton token comparison";
        let presented = hmac_sha256_hex(COMPARE, &[presented.trim().as_bytes()]);
        self.0.iter().fold(false, |found, secret| hmac_sha256_matches(COMPARE, &[secret.expose().as_bytes()], &presented) | found)
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} secret(s))", self.0.len())
    }
}

pub(crate) fn unauthenticated(why: impl Into<String>) -> InboundRefused {
    InboundRefused::Unauthenticated(why.into())
}

pub(crate) fn malformed(why: impl Into<String>) -> InboundRefused {
    InboundRefused::Malformed(why.into())
}

/// The header `name`, or a refusal naming it: an unsigned request is no one's.
pub(crate) fn required<'r>(request: &'r InboundRequest, name: &str) -> Result<&'r str, InboundRefused> {
    request.header(name).map(str::trim).filter(|value| !value.is_empty()).ok_or_else(|| unauthenticated(format!("missing {name} header")))
}

/// Checks the shared token in `header` against `keys`.
pub(crate) fn token(request: &InboundRequest, header: &str, keys: &Keys) -> Result<(), InboundRefused> {
    if keys.token(required(request, header)?) { Ok(()) } else { Err(unauthenticated(format!("{header} is not the configured secret"))) }
}

/// How a timestamped signature header names its parts: Buildkite's `timestamp`/`signature`,
/// Baton's `t`/`v1`.
pub(crate) struct Timestamped {
    pub(crate) header: &'static str,
    pub(crate) time: &'static str,
    pub(crate) signature: &'static str,
}

impl Timestamped {
    /// Checks `value`, a `<time>=<unix seconds>,<signature>=<hex>` header whose HMAC-SHA256 covers
    /// `<unix seconds>.<body>`: fresh, and signed by one of `keys`. The signed time.
    pub(crate) fn check(&self, value: &str, body: &[u8], keys: &Keys, now: DateTime<Utc>) -> Result<i64, InboundRefused> {
        let Timestamped { header, time, signature } = self;
        let part = |name: &str| value.split(',').find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('='));
        let (Some(t), Some(hex)) = (part(time), part(signature)) else {
            return Err(unauthenticated(format!("{header} is not `{time}=<unix seconds>,{signature}=<hex>`")));
        };
        let seconds = fresh(t, &format!("{header}'s {time}"), now)?;
        if !keys.sign(&[t.as_bytes(), b".", body], hex) {
            return Err(unauthenticated(format!("{header} does not match the request")));
        }
        Ok(seconds)
    }
}

/// The signed Unix time `text` (from `what`), refused when it is more than [`MAX_AGE_SECONDS`]
/// from `now`: a captured request replayed later is stale.
pub(crate) fn fresh(text: &str, what: &str, now: DateTime<Utc>) -> Result<i64, InboundRefused> {
    let seconds: i64 = text.trim().parse().map_err(|_| unauthenticated(format!("{what} is not a Unix time")))?;
    within_window(seconds, what, now)?;
    Ok(seconds)
}

/// Refuses a signed time `seconds` more than [`MAX_AGE_SECONDS`] from `now`.
pub(crate) fn within_window(seconds: i64, what: &str, now: DateTime<Utc>) -> Result<(), InboundRefused> {
    if (now.timestamp() - seconds).abs() > MAX_AGE_SECONDS {
        return Err(unauthenticated(format!("{what} is more than 5 minutes from now (stale or replayed)")));
    }
    Ok(())
}

/// The body read as `T`; `what` says what was expected, for the refusal.
pub(crate) fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, InboundRefused> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader).map_err(|err| {
        let path = err.path().to_string();
        malformed(format!("not {what}: {} at `{path}`", err.into_inner()))
    })
}

/// A delivery id for a body that carries none: its digest, so a replayed body is the same delivery.
pub(crate) fn digest(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!("sha256:{}", digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect::<String>())
}

/// A number that a template may render as JSON text (`"1234"`) or as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Number(pub(crate) String);

impl<'de> serde::Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Number, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Whole(u64),
        }
        match Either::deserialize(deserializer)? {
            Either::Whole(n) => Ok(Number(n.to_string())),
            Either::Text(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Number(text)),
            Either::Text(text) => Err(serde::de::Error::custom(format!("expected a whole number, found '{}'", text.escape_debug()))),
        }
    }
}

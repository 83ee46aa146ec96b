//! The `webhook` deployer's callback: the team's endpoint reports a run's end to the
//! `callback_url` Baton put in the deploy request (see the `webhook` module's contract), whose
//! path `/webhook/<release>/<target>` names the release and target, signed under Baton's own
//! scheme with the block's `secret`: `X-Baton-Signature: t=<unix seconds>, v1=<hex HMAC-SHA256 of
//! "<t>.<path>.<body>">`, refused when `t` is more than 5 minutes from now. The signature covers
//! the path, so a callback signed for one release cannot be sent to another's URL. The body,
//! `{"id", "state", "reason"?}`, is the status URL's answer plus the run's id, the id the deployer
//! keeps; a replayed request is the same delivery (the digest of its path and body).

use super::{Keys, Timestamped, json, required};
use crate::http::quote;
use crate::secrets::Secret;
use crate::webhook::{PROVIDER, State, Status, callback_key};
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::signing::hmac_sha256_hex;
use baton_domain::waits::{Happened, ProviderEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The callback's signature header.
pub const SIGNATURE_HEADER: &str = "X-Baton-Signature";
const SIGNED: Timestamped = Timestamped { header: SIGNATURE_HEADER, time: "t", signature: "v1" };

/// Receives the `webhook` deployer's callbacks.
#[derive(Debug)]
pub struct WebhookCallbacks {
    keys: Keys,
}

impl WebhookCallbacks {
    /// `secrets`: each `webhook` block's `secret`, which signs both ways.
    pub fn new(secrets: Vec<Secret>) -> Result<WebhookCallbacks, String> {
        Ok(WebhookCallbacks { keys: Keys::new(PROVIDER, secrets)? })
    }
}

/// The `X-Baton-Signature` value for `body` sent to `path` (the callback URL's) at Unix time `t`
/// under `secret`: what an endpoint sends (and tests and tools sign with).
pub fn callback_signature(secret: &[u8], t: i64, path: &str, body: &[u8]) -> String {
    let t = t.to_string();
    format!("t={t},v1={}", hmac_sha256_hex(secret, &[t.as_bytes(), b".", path.as_bytes(), b".", body]))
}

/// The release and target a callback path names, as [`crate::webhook::callback_path`] encoded them.
fn release_and_target(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?.strip_prefix(PROVIDER)?.strip_prefix('/')?;
    let (release, target) = rest.split_once('/')?;
    (!release.is_empty() && !target.is_empty() && !target.contains('/')).then_some((release, target))
}

#[derive(Deserialize)]
struct Callback {
    id: String,
    #[serde(flatten)]
    status: Status,
}

impl EventReceiver for WebhookCallbacks {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
        let signature = required(request, SIGNATURE_HEADER)?;
        let signed = [request.path.as_bytes(), b".", &request.body].concat();
        let seconds = SIGNED.check(signature, &signed, &self.keys, now)?;
        let Some((release, target)) = release_and_target(&request.path) else {
            return Err(super::malformed(format!(
                "the callback's path {} is not /{PROVIDER}/<release>/<target>: post to the callback_url the deploy request gave",
                quote(&request.path, &[])
            )));
        };
        let callback: Callback = json(&request.body, "a webhook callback (id, state: running, succeeded or failed, reason)")?;
        if callback.id.is_empty() {
            return Err(super::malformed("the callback names no run (`id` is empty)"));
        }
        let happened = match callback.status.state {
            State::Succeeded => Happened::Succeeded,
            State::Running => Happened::Progress,
            State::Failed => {
                let why = callback.status.reason.map(|reason| quote(&reason, &self.keys.all())).filter(|reason| !reason.is_empty());
                Happened::Failed(format!(
                    "the webhook reports run {} failed: {}",
                    callback.id,
                    why.as_deref().unwrap_or("it gave no reason")
                ))
            }
        };
        let key = callback_key(release, target, &callback.id);
        let at = DateTime::from_timestamp(seconds, 0).unwrap_or(now);
        Ok(vec![ProviderEvent { key, happened, delivery: super::digest(&signed), at }])
    }
}

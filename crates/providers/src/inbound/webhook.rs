//! The `webhook` deployer's callback: the team's endpoint reports a run's end to the
//! `callback_url` Baton put in the deploy request (see the `webhook` module's contract), signed
//! under Baton's own scheme with the block's `secret`: `X-Baton-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256 of "<t>.<body>">`, refused when `t` is more than 5 minutes from now. The
//! body, `{"id", "state", "reason"?}`, is the status URL's answer plus the run's id, the id the
//! deployer keeps; a replayed body is the same delivery (its digest).

use super::{Keys, Timestamped, json, required};
use crate::http::quote;
use crate::secrets::Secret;
use crate::webhook::{PROVIDER, State, Status};
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::signing::hmac_sha256_hex;
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
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

/// The `X-Baton-Signature` value for `body` at Unix time `t` under `secret`: what an endpoint
/// sends (and tests and tools sign with).
pub fn callback_signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    format!("t={t},v1={}", hmac_sha256_hex(secret, &[t.as_bytes(), b".", body]))
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
        let seconds = SIGNED.check(signature, &request.body, &self.keys, now)?;
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
        let key = WaitKey::new(WaitKind::Rollout, PROVIDER, callback.id);
        let at = DateTime::from_timestamp(seconds, 0).unwrap_or(now);
        Ok(vec![ProviderEvent { key, happened, delivery: super::digest(&request.body), at }])
    }
}

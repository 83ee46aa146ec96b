//! Argo CD notifications (a `webhook` service of argocd-notifications-cm with Baton's template,
//! docs/events.md). Argo CD's notification webhooks send static headers only and sign nothing, so
//! the service sends the shared secret as `X-Baton-Token`, compared in constant time; no
//! timestamp is signed, and a replayed body is the same delivery (its digest).
//!
//! The body Baton's template renders: `{"app", "namespace", "revision", "phase", "sync",
//! "health", "finished_at"}` (the application's name and namespace, its synced revision, the last
//! operation's phase, the sync and health statuses, when the operation finished). It reads as the
//! `argo-cd` provider's polls read an application. The key is the deploy target as the catalog
//! writes it, `name` or `namespace/name`: both are given, one event each.

use super::{Keys, TOKEN_HEADER, json, token};
use crate::argo_cd::{PROVIDER, Settled, settled};
use crate::secrets::Secret;
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Receives the `argo-cd` provider's notifications.
#[derive(Debug)]
pub struct ArgoCdNotifications {
    keys: Keys,
}

impl ArgoCdNotifications {
    /// `secrets`: the tokens the webhook services send (each `argo-cd` block's `events-secret`).
    pub fn new(secrets: Vec<Secret>) -> Result<ArgoCdNotifications, String> {
        Ok(ArgoCdNotifications { keys: Keys::new(PROVIDER, secrets)? })
    }
}

#[derive(Deserialize)]
struct Notification {
    app: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    sync: String,
    #[serde(default)]
    health: String,
    /// Empty while the operation runs.
    #[serde(default)]
    finished_at: String,
}

impl EventReceiver for ArgoCdNotifications {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
        token(request, TOKEN_HEADER, &self.keys)?;
        let note: Notification = json(&request.body, "Baton's Argo CD notification (app, namespace, revision, phase, sync, health)")?;
        if note.app.is_empty() {
            return Err(super::malformed("the notification names no app"));
        }
        let label = format!("the sync of Argo CD application {} to {}", note.app, note.revision);
        let happened = match settled(&note.phase, &note.sync, &note.health) {
            Settled::Succeeded => Happened::Succeeded,
            Settled::Ended => Happened::Failed(format!("{label} ended {}", note.phase)),
            Settled::Degraded => Happened::Failed(format!("{label} was applied, and the application is Degraded")),
            Settled::Running => Happened::Progress,
        };
        let at = note.finished_at.parse::<DateTime<Utc>>().unwrap_or(now);
        let digest = super::digest(&request.body);
        let mut targets = vec![note.app.clone()];
        if !note.namespace.is_empty() {
            targets.push(format!("{}/{}", note.namespace, note.app));
        }
        Ok(targets
            .into_iter()
            .map(|target| ProviderEvent {
                delivery: format!("{digest}#{target}"),
                key: WaitKey::new(WaitKind::Rollout, PROVIDER, target),
                happened: happened.clone(),
                at,
            })
            .collect())
    }
}

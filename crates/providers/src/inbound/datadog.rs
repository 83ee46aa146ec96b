//! Datadog monitor notifications (a Webhooks integration webhook with Baton's payload and custom
//! header, docs/events.md, named in the monitors' messages as `@webhook-baton`). Datadog sends
//! the custom headers as configured and signs nothing: the shared secret travels as
//! `X-Baton-Token`, compared in constant time, and no timestamp is signed. The payload's `id`
//! (`$ID`, the notification's event) names the delivery.
//!
//! The body Baton's payload template renders: `{"id": "$ID", "monitor": "$ALERT_ID",
//! "transition": "$ALERT_TRANSITION", "date": "$DATE"}`. A monitor entering Alert (`Triggered`,
//! `Re-Triggered`) fails the bakes waiting on it; any other transition (`Recovered`, `Warn`,
//! `No Data`, `Renotify`) is progress: a gate that also fails on Warn or No Data finds those at its
//! next sample. The key is [`monitor_key`], the one the `datadog` gate's monitors give.

use super::{Keys, Number, TOKEN_HEADER, json, token};
use crate::datadog_monitors::{DATADOG, monitor_key};
use crate::secrets::Secret;
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::waits::{Happened, ProviderEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The catalog's name of the gate whose monitors these are.
const PROVIDER: &str = DATADOG.name;

/// Receives the `datadog` gate's monitor notifications.
#[derive(Debug)]
pub struct DatadogMonitorEvents {
    keys: Keys,
}

impl DatadogMonitorEvents {
    /// `secrets`: the tokens the webhooks send (each `datadog` gate's `events-secret`).
    pub fn new(secrets: Vec<Secret>) -> Result<DatadogMonitorEvents, String> {
        Ok(DatadogMonitorEvents { keys: Keys::new(PROVIDER, secrets)? })
    }
}

#[derive(Deserialize)]
struct Notification {
    id: Number,
    monitor: Number,
    transition: String,
    /// Milliseconds since the Unix epoch.
    date: Number,
}

impl EventReceiver for DatadogMonitorEvents {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
        token(request, TOKEN_HEADER, &self.keys)?;
        let note: Notification = json(&request.body, "Baton's Datadog monitor notification (id, monitor, transition, date)")?;
        let monitor: i64 = note.monitor.0.parse().map_err(|_| super::malformed(format!("monitor {} is out of range", note.monitor.0)))?;
        let happened = if ["Triggered", "Re-Triggered"].iter().any(|alert| note.transition.eq_ignore_ascii_case(alert)) {
            Happened::Failed(format!("Datadog monitor #{monitor} entered Alert ({})", note.transition))
        } else {
            Happened::Progress
        };
        let at = note.date.0.parse().ok().and_then(DateTime::from_timestamp_millis).unwrap_or(now);
        Ok(vec![ProviderEvent { key: monitor_key(monitor), happened, delivery: format!("datadog:{}", note.id.0), at }])
    }
}

//! record-metrics: closes the release record and adds it to the day's DORA rollups (the
//! rules are in [`baton_domain::rules::dora`]), then tells the telemetry exporters the release
//! finished (best effort: see [`baton_domain::telemetry`]).

use baton_domain::error::TaskError;
use baton_domain::flow::{Done, RecordMetricsRequest};
use baton_domain::ports::TelemetryKind;
use baton_domain::release::{EventKind, Stage};
use baton_domain::rules::{dora, timeline};
use baton_domain::support::{Ports, call_json, close_release};
use baton_domain::telemetry;

/// How far back the figures sent to the exporters look for the previous deployment, as the
/// close does.
const FIGURES_HISTORY: usize = 50;

pub const NAME: &str = "record-metrics";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| record(ports, request)).await
}

pub async fn record(ports: &Ports, request: RecordMetricsRequest) -> Result<Done, TaskError> {
    let context = &request.release;
    // The record and its rollup are written in one transaction, so a retried task finds either
    // both done or neither.
    let closed = close_release(ports.store.as_ref(), &context.id, &request.outcome, ports.clock.now()).await?;
    let Some(ending) = EventKind::ending(closed.status) else { return Ok(Done {}) };
    // A task given up on that no state after its Catch told (the paths straight to MarkFailed).
    if let Some(gave_up) = request.outcome.error.as_ref().and_then(timeline::gave_up)
        && !ports.store.events(&context.id).await?.iter().any(|event| event.kind == EventKind::GaveUp)
    {
        let stage = ports.release(context).await?.stage;
        ports.record_event(context, stage, None, EventKind::GaveUp, gave_up).await?;
    }
    // A retry after a close that landed but whose answer was lost finds the release closed and
    // its timeline perhaps without the ending; a retry after the ending was written adds none.
    let ended = !closed.now
        && ports.store.events(&context.id).await?.last().is_some_and(|event| event.stage == Stage::Done && event.kind == ending);
    if !ended {
        // Exported before the ending is written, so the ending stays the timeline's last event
        // (an export that failed is recorded before it).
        let release = ports.release(context).await?;
        let history = ports.store.list_releases(&release.service, Some(&release.environment), FIGURES_HISTORY).await?;
        let figures = dora::rollup_delta(&release, &history);
        let entry = ports.entry(context).await?;
        telemetry::export(ports, context, &entry, &release, TelemetryKind::ReleaseFinished { figures }).await?;
        ports.record_event(context, Stage::Done, None, ending, format!("release {}", closed.status)).await?;
    }
    Ok(Done {})
}

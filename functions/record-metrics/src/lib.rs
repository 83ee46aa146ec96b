//! record-metrics: closes the release record and adds it to the day's DORA rollups (the
//! rules are in [`baton_domain::rules::dora`]).

use baton_domain::error::TaskError;
use baton_domain::flow::{Done, RecordMetricsRequest};
use baton_domain::release::{EventKind, RollupKey, Stage};
use baton_domain::rules::dora;
use baton_domain::support::{Ports, call_json};

pub const NAME: &str = "record-metrics";

/// How far back time to restore looks for the previous deployment.
const RECENT_RELEASES: usize = 50;

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| record(ports, request)).await
}

pub async fn record(ports: &Ports, request: RecordMetricsRequest) -> Result<Done, TaskError> {
    let context = &request.release;
    let outcome = &request.outcome;
    let now = ports.clock.now();
    // The record and its rollup are written in one transaction, so a retried task finds either
    // both done or neither.
    let closed = ports
        .write_release(context, move |mut release| async move {
            if release.status.is_terminal() {
                return Ok(None);
            }
            dora::close(&mut release, outcome, now);
            let history = ports.store.list_releases(&release.service, Some(&release.environment), RECENT_RELEASES).await?;
            let delta = dora::rollup_delta(&release, &history);
            let day = RollupKey { service: release.service.clone(), environment: release.environment.clone(), day: now.date_naive() };
            ports.store.close_release(&release, &day, &delta).await?;
            Ok(Some(release.status))
        })
        .await?;
    if let Some(status) = closed
        && let Some(ending) = EventKind::ending(status)
    {
        ports.record_event(context, Stage::Done, None, ending, format!("release {status}")).await?;
    }
    Ok(Done {})
}

//! record-metrics: closes the release record and adds it to the day's DORA rollups (the
//! rules are in [`baton_domain::rules::dora`]).

use baton_domain::error::TaskError;
use baton_domain::flow::{Done, RecordMetricsRequest};
use baton_domain::release::{EventKind, Rollup, RollupKey, Stage};
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
    let now = ports.clock.now();
    let mut release = ports.release(context).await?;
    if release.status.is_terminal() {
        // A retried task after a successful write: the rollups were already added.
        return Ok(Done {});
    }
    dora::close(&mut release, &request.outcome, now);
    ports.store.put_release(&release).await?;
    if let Some(ending) = EventKind::ending(release.status) {
        ports.record_event(context, Stage::Done, None, ending, format!("release {}", release.status)).await?;
    }

    let history = ports.store.list_releases(&release.service, Some(&release.environment), RECENT_RELEASES).await?;
    let delta = dora::rollup_delta(&release, &history);
    if delta != Rollup::default() {
        let key = RollupKey { service: release.service.clone(), environment: release.environment.clone(), day: now.date_naive() };
        ports.store.add_rollup(&key, &delta).await?;
    }
    Ok(Done {})
}

//! record-metrics: closes the release record and adds it to the day's DORA rollups.
//!
//! A deployment is a release that changed production (at least one wave began); it failed
//! when it rolled back or failed after a wave began. Lead time runs from the change
//! (merge or commit time) to the release's end; time to restore from the previous failed
//! deployment's end to the next successful one.

use baton_domain::error::TaskError;
use baton_domain::flow::{Done, OutcomeStatus, RecordMetricsRequest};
use baton_domain::release::{Failure, Release, ReleaseStatus, Rollup, RollupKey, Stage, WaveStatus};
use baton_domain::support::{Ports, call_json};

pub const NAME: &str = "record-metrics";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| record(ports, request)).await
}

pub async fn record(ports: &Ports, request: RecordMetricsRequest) -> Result<Done, TaskError> {
    let context = &request.release;
    let outcome = &request.outcome;
    let now = ports.clock.now();
    let mut release = ports.release(context).await?;
    if release.status.is_terminal() {
        // A retried task after a successful write: the rollups were already added.
        return Ok(Done {});
    }
    release.status = match outcome.status {
        OutcomeStatus::Succeeded => ReleaseStatus::Succeeded,
        OutcomeStatus::Failed => ReleaseStatus::Failed,
        OutcomeStatus::RolledBack => ReleaseStatus::RolledBack,
    };
    release.failure = outcome.error.as_ref().map(|e| Failure { error: e.error.clone(), cause: e.message(), stage: Some(release.stage) });
    release.stage = Stage::Done;
    release.finished_at = Some(now);
    if outcome.status == OutcomeStatus::RolledBack {
        for wave in release.waves.iter_mut().filter(|w| w.status != WaveStatus::Pending) {
            wave.status = WaveStatus::RolledBack;
        }
    }
    ports.store.put_release(&release).await?;
    ports.record_event(context, Stage::Done, None, release.status.as_str(), format!("release {}", release.status)).await?;

    let history = ports.store.list_releases(&release.service, Some(&release.environment), 50).await?;
    let delta = rollup_delta(&release, &history);
    if delta != Rollup::default() {
        let key = RollupKey { service: release.service.clone(), environment: release.environment.clone(), day: now.date_naive() };
        ports.store.add_rollup(&key, &delta).await?;
    }
    Ok(Done {})
}

fn reached_production(release: &Release) -> bool {
    release.waves.iter().any(|w| w.started_at.is_some())
}

/// What this finished release adds to its day's counters. `history` is the service's
/// releases in this environment, newest first (it may include `release` itself).
pub fn rollup_delta(release: &Release, history: &[Release]) -> Rollup {
    let mut delta = Rollup::default();
    if !reached_production(release) {
        return delta;
    }
    let Some(finished) = release.finished_at else { return delta };
    delta.deployments = 1;
    match release.status {
        ReleaseStatus::Succeeded => {
            if let Some(changed) = release.changed_at {
                delta.lead_time_seconds_total = (finished - changed).num_seconds().max(0) as u64;
                delta.lead_time_samples = 1;
            }
            let previous = history
                .iter()
                .filter(|r| r.id != release.id && r.finished_at.is_some_and(|f| f <= finished) && reached_production(r))
                .max_by_key(|r| r.finished_at);
            if let Some(previous) = previous.filter(|r| matches!(r.status, ReleaseStatus::Failed | ReleaseStatus::RolledBack)) {
                let failed_at = previous.finished_at.unwrap_or(finished);
                delta.restore_seconds_total = (finished - failed_at).num_seconds().max(0) as u64;
                delta.restores = 1;
            }
        }
        ReleaseStatus::RolledBack => {
            delta.failed_deployments = 1;
            delta.rollbacks = 1;
        }
        ReleaseStatus::Failed => delta.failed_deployments = 1,
        ReleaseStatus::Queued | ReleaseStatus::Running | ReleaseStatus::Superseded => delta.deployments = 0,
    }
    delta
}

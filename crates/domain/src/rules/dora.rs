//! How a release ends and what it adds to the DORA counters.
//!
//! A deployment is a release that changed production (at least one wave began); it failed when
//! it rolled back or failed after a wave began. Lead time runs from the change (merge or commit
//! time) to the release's end; time to restore from the previous failed deployment's end to the
//! next successful one's.

use crate::flow::{Outcome, OutcomeStatus};
use crate::release::{Failure, Release, ReleaseStatus, Rollup, Stage, WaveStatus};
use chrono::{DateTime, Utc};

/// Closes `release` with the execution's outcome: its status, why it failed, its waves
/// marked rolled back when it rolled back, and a build it still waited for cancelled.
pub fn close(release: &mut Release, outcome: &Outcome, now: DateTime<Utc>) {
    release.status = match outcome.status {
        OutcomeStatus::Succeeded => ReleaseStatus::Succeeded,
        OutcomeStatus::Failed => ReleaseStatus::Failed,
        OutcomeStatus::RolledBack => ReleaseStatus::RolledBack,
        OutcomeStatus::RollbackFailed => ReleaseStatus::RollbackFailed,
    };
    release.failure = outcome.error.as_ref().map(|e| Failure { error: e.error.clone(), cause: e.message(), stage: Some(release.stage) });
    release.stage = Stage::Done;
    release.finished_at = Some(now);
    crate::rules::builds::stop_following(release, now);
    if outcome.status == OutcomeStatus::RolledBack {
        // A wave whose every target refused its deploy changed nothing: it failed, and no
        // rollback undid it.
        for wave in release.waves.iter_mut().filter(|w| w.status != WaveStatus::Pending) {
            wave.status = if crate::rules::waves::changed_any(wave) { WaveStatus::RolledBack } else { WaveStatus::Failed };
        }
    }
}

fn reached_production(release: &Release) -> bool {
    release.waves.iter().any(|w| w.started_at.is_some())
}

/// What a finished release adds to its day's counters. `history` is the service's releases in
/// the environment, in any order (it may include `release` itself).
pub fn rollup_delta(release: &Release, history: &[Release]) -> Rollup {
    let mut delta = Rollup::default();
    let Some(finished) = release.finished_at.filter(|_| reached_production(release)) else { return delta };
    match release.status {
        ReleaseStatus::Succeeded => {
            delta.deployments = 1;
            if let Some(changed) = release.changed_at {
                delta.lead_time_seconds_total = seconds_between(changed, finished);
                delta.lead_time_samples = 1;
            }
            let previous = history
                .iter()
                .filter(|r| r.id != release.id && r.finished_at.is_some_and(|f| f <= finished) && reached_production(r))
                .max_by_key(|r| r.finished_at);
            if let Some(failed_at) = previous.filter(|r| is_failed_deployment(r.status)).and_then(|r| r.finished_at) {
                delta.restore_seconds_total = seconds_between(failed_at, finished);
                delta.restores = 1;
            }
        }
        ReleaseStatus::RolledBack | ReleaseStatus::RollbackFailed => {
            delta.deployments = 1;
            delta.failed_deployments = 1;
            delta.rollbacks = 1;
        }
        ReleaseStatus::Failed => {
            delta.deployments = 1;
            delta.failed_deployments = 1;
        }
        ReleaseStatus::Queued | ReleaseStatus::Running | ReleaseStatus::Interrupted | ReleaseStatus::Superseded => {}
    }
    delta
}

fn is_failed_deployment(status: ReleaseStatus) -> bool {
    matches!(status, ReleaseStatus::Failed | ReleaseStatus::RolledBack | ReleaseStatus::RollbackFailed)
}

/// Whole seconds from `from` to `to`; a clock that went backwards counts as zero.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_seconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::CaughtError;
    use crate::release::{BuildStatus, RunHandle};
    use crate::rules::fixtures::{minutes, release};
    use ReleaseStatus::*;

    fn rollup(deployments: u64, failed: u64, rollbacks: u64, lead: Option<u64>, restore: Option<u64>) -> Rollup {
        Rollup {
            deployments,
            failed_deployments: failed,
            rollbacks,
            lead_time_seconds_total: lead.unwrap_or(0),
            lead_time_samples: u64::from(lead.is_some()),
            restore_seconds_total: restore.unwrap_or(0),
            restores: u64::from(restore.is_some()),
        }
    }

    #[test]
    fn each_ending_adds_its_counts() {
        // (status, reached production, changed minutes before the end, expected delta)
        let cases: &[(ReleaseStatus, bool, Option<i64>, Rollup)] = &[
            (Succeeded, true, None, rollup(1, 0, 0, None, None)),
            (Succeeded, true, Some(30), rollup(1, 0, 0, Some(1800), None)),
            (RolledBack, true, Some(30), rollup(1, 1, 1, None, None)),
            (Failed, true, None, rollup(1, 1, 0, None, None)),
            (RollbackFailed, true, None, rollup(1, 1, 1, None, None)),
            // Nothing reached production: not a deployment, whatever the ending.
            (Failed, false, None, Rollup::default()),
            (Succeeded, false, Some(30), Rollup::default()),
            (Superseded, false, None, Rollup::default()),
            (Superseded, true, None, Rollup::default()),
        ];
        for (status, deployed, changed_before, expected) in cases {
            let mut finished = release("rel-me", 60, *status, Some(100), *deployed);
            finished.changed_at = changed_before.map(|m| minutes(100 - m));
            assert_eq!(&rollup_delta(&finished, &[]), expected, "{status:?} deployed={deployed} changed={changed_before:?}");
        }
    }

    #[test]
    fn lead_time_from_a_change_after_the_end_is_zero() {
        let mut finished = release("rel-me", 60, Succeeded, Some(100), true);
        finished.changed_at = Some(minutes(101));
        assert_eq!(rollup_delta(&finished, &[]), rollup(1, 0, 0, Some(0), None));
    }

    type Earlier = &'static [(&'static str, ReleaseStatus, i64, bool)];

    #[test]
    fn a_success_after_a_failed_deployment_restores_service() {
        // (the service's earlier releases as (id, status, finished minute, reached production), restore seconds)
        let cases: &[(Earlier, Option<u64>)] = &[
            (&[], None),
            (&[("rel-a", RolledBack, 40, true)], Some(3600)),
            (&[("rel-a", Failed, 70, true)], Some(1800)),
            (&[("rel-a", RollbackFailed, 70, true)], Some(1800)),
            (&[("rel-a", Succeeded, 70, true)], None),
            // The latest deployment before this one decides.
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Succeeded, 70, true)], None),
            (&[("rel-b", Succeeded, 40, true), ("rel-a", RolledBack, 70, true)], Some(1800)),
            // Releases that never reached production are not deployments, failed or not.
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Failed, 70, false)], Some(3600)),
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Superseded, 70, false)], Some(3600)),
            // A release that ended after this one is not before it.
            (&[("rel-a", RolledBack, 120, true)], None),
        ];
        for (earlier, restore) in cases {
            let finished = release("rel-me", 60, Succeeded, Some(100), true);
            let mut history: Vec<Release> =
                earlier.iter().map(|(id, status, at, deployed)| release(id, 0, *status, Some(*at), *deployed)).collect();
            history.push(finished.clone());
            assert_eq!(rollup_delta(&finished, &history), rollup(1, 0, 0, None, *restore), "{earlier:?}");
        }
    }

    #[test]
    fn closing_sets_status_failure_and_rolled_back_waves() {
        let caught = CaughtError { error: "Baton.HealthCheckFailed".into(), cause: r#"{"errorMessage":"wave rest is unhealthy"}"#.into() };
        let cases = [
            (OutcomeStatus::Succeeded, Succeeded, None),
            (OutcomeStatus::RolledBack, RolledBack, Some(caught.clone())),
            (OutcomeStatus::Failed, Failed, Some(caught.clone())),
            (OutcomeStatus::RollbackFailed, RollbackFailed, Some(caught)),
        ];
        for (outcome_status, status, error) in cases {
            let mut running = release("rel-me", 0, Running, None, true);
            running.stage = Stage::Deploy;
            let run = RunHandle { provider: "command".into(), id: "7".into(), url: None, state: serde_json::Value::Null };
            crate::rules::builds::record_start(&mut running, &run, minutes(1));
            let outcome = Outcome { status: outcome_status, error: error.clone(), action_needed: None };
            close(&mut running, &outcome, minutes(9));
            assert_eq!((running.status, running.stage, running.finished_at), (status, Stage::Done, Some(minutes(9))));
            let failure = running.failure.as_ref().map(|f| (f.error.as_str(), f.cause.as_str(), f.stage));
            assert_eq!(failure, error.as_ref().map(|_| ("Baton.HealthCheckFailed", "wave rest is unhealthy", Some(Stage::Deploy))));
            let rolled_back = running.waves[0].status == WaveStatus::RolledBack;
            assert_eq!(rolled_back, status == RolledBack, "only a rollback marks begun waves");
            assert_eq!(running.waves[1].status, WaveStatus::Pending, "waves that never began stay pending");
            let build = running.build.as_ref().map(|b| (b.status, b.finished_at));
            assert_eq!(build, Some((BuildStatus::Unfollowed, Some(minutes(9)))), "a build still running is no longer followed");
        }
    }
}

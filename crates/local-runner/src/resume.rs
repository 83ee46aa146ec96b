//! Picking up a release whose local run stopped: killed (its heartbeat went silent), or stopped on
//! purpose (a signal, a cancel). It runs on from its journal's last checkpoint, or rolls back and
//! closes through the definition's own rollback and closing states.

use crate::LocalBaton;
use crate::journal::{Journaled, ResumePoint, Run};
use baton_asl::ResumeAt;
use baton_domain::error::{ErrorName, TaskError};
use baton_domain::ports::StoreError;
use baton_domain::release::{EventKind, Release, ReleaseStatus, StageEvent};
use baton_domain::support::update_release;
use chrono::Utc;
use serde_json::json;
use std::time::Duration;

/// How often a local run tells the store it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// A run silent for this long is taken as dead: a few heartbeats, so a busy machine's late beat is
/// no false alarm, short enough that the next command after a crash waits little.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);

/// What to do with a stopped release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumption {
    /// Run it on from its last checkpoint (that state runs again: tasks are at-least-once).
    RunOn,
    /// Roll back what it deployed and close it, failed with `Baton.Interrupted` and this cause.
    RollBack { why: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("release {id} is {status}: there is nothing to resume")]
    Ended { id: String, status: ReleaseStatus },
    #[error("release {id} is running in another process (its heartbeat goes on)")]
    Alive { id: String },
    #[error("release {id} names no execution to resume")]
    NoExecution { id: String },
    #[error("release {id}: its execution {execution} was not journaled (run by an older Baton, or on AWS)")]
    NotJournaled { id: String, execution: String },
    #[error("release {id}: its journal says execution {execution} ended, yet the record says {status}")]
    JournalEnded { id: String, execution: String, status: ReleaseStatus },
    #[error("release {id} stopped while it was being registered: it can be resumed, not rolled back")]
    NotRegistered { id: String },
    #[error("release {id}: cannot update the record")]
    Record { id: String, source: TaskError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The states before any wave deployed: a rollback there has nothing to undo and closes the
/// release failed.
const BEFORE_DEPLOY: [&str; 5] = ["Acquire", "NotifyStarted", "TriggerBuild", "WaitForBuild", "NotifyBuilt"];

/// Where a rollback of a release stopped at `point` starts. The caught error the definition's
/// closing states record is `Baton.Interrupted` with `why`; a release already rolling back or
/// closing runs on as it was.
fn rollback_point(id: &str, point: ResumePoint, why: &str) -> Result<ResumePoint, ResumeError> {
    let into = match point.at.state.as_str() {
        "Register" => return Err(ResumeError::NotRegistered { id: id.to_owned() }),
        // The build it followed is cancelled on the way (CancelBuild goes on to MarkFailed).
        "WaitForBuild" => "CancelBuild",
        state if BEFORE_DEPLOY.contains(&state) => "MarkFailed",
        "DeployWaves" => "NotifyRollingBack",
        _ => return Ok(point),
    };
    let mut input = point.at.input;
    input["error"] = json!({"Error": ErrorName::Interrupted.as_str(), "Cause": why});
    Ok(ResumePoint { at: ResumeAt { state: into.to_owned(), input }, ..point })
}

impl LocalBaton {
    /// Whether a live process runs `execution`: its heartbeat is on record and goes on. A run
    /// whose beat is recent is watched until it would have beaten again (up to [`SILENT_AFTER`]),
    /// so a resume right after a crash waits a moment rather than refusing.
    pub async fn running_elsewhere(&self, execution: &str) -> Result<bool, StoreError> {
        let Some(store) = &self.journal else { return Ok(false) };
        let Some(beat) = store.run_beat_at(execution).await? else { return Ok(false) };
        let silent = (Utc::now() - beat).to_std().unwrap_or_default();
        if silent >= SILENT_AFTER {
            return Ok(false);
        }
        tokio::time::sleep(SILENT_AFTER - silent).await;
        Ok(store.run_beat_at(execution).await? != Some(beat))
    }

    /// Asks the live run of `execution` to stop: its heartbeat hears `why`, and that process rolls
    /// the release back.
    pub async fn request_cancel(&self, execution: &str, why: &str) -> Result<bool, StoreError> {
        match &self.journal {
            Some(store) => store.run_cancel(execution, why).await,
            None => Ok(false),
        }
    }

    /// Picks up `release`, stopped or killed, from its journal: runs it on, or rolls it back. The
    /// record says `running` again and its timeline who resumed it, how and from which state.
    pub async fn resume_release(&self, release: &Release, how: &Resumption, person: &str) -> Result<(Run, String), ResumeError> {
        let id = release.id.to_string();
        if release.status.is_terminal() {
            return Err(ResumeError::Ended { id, status: release.status });
        }
        let execution = release.execution.clone().ok_or_else(|| ResumeError::NoExecution { id: id.clone() })?;
        if self.running_elsewhere(&execution).await? {
            return Err(ResumeError::Alive { id });
        }
        let point = match self.journaled(&execution).await? {
            Journaled::Resumable(point) => point,
            Journaled::Nothing => return Err(ResumeError::NotJournaled { id, execution }),
            Journaled::Ended => return Err(ResumeError::JournalEnded { id, execution, status: release.status }),
        };
        let (point, message) = match how {
            Resumption::RunOn => {
                let message = format!("{person} resumed the release at {}", point.at.state);
                (point, message)
            }
            Resumption::RollBack { why } => {
                let stopped_at = point.at.state.clone();
                let point = rollback_point(&id, point, why)?;
                (point.clone(), format!("{person} is rolling the release back from {stopped_at} (at {}): {why}", point.at.state))
            }
        };
        self.record(release, ReleaseStatus::Running, EventKind::Resumed, message).await?;
        let state = point.at.state.clone();
        Ok((self.resume(&execution, point), state))
    }

    /// Records that `release`'s run stopped before its end, and why; it keeps its lock for the
    /// resume, so nothing else deploys over its half-done waves.
    pub async fn mark_interrupted(&self, release: &Release, why: &str) -> Result<(), ResumeError> {
        self.record(release, ReleaseStatus::Interrupted, EventKind::Interrupted, why.to_owned()).await
    }

    async fn record(&self, release: &Release, status: ReleaseStatus, kind: EventKind, message: String) -> Result<(), ResumeError> {
        let store = self.ports().store.as_ref();
        let id = release.id.clone();
        let recorded = |source: TaskError| ResumeError::Record { id: id.to_string(), source };
        let updated = update_release(store, &id, |r| {
            if !r.status.is_terminal() {
                r.status = status;
            }
        })
        .await
        .map_err(recorded)?;
        let event = StageEvent { release_id: id.clone(), at: Utc::now(), stage: updated.stage, wave: None, target: None, kind, message };
        store.append_event(&event).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(state: &str) -> ResumePoint {
        ResumePoint {
            input: json!({"signal": 1}),
            at: ResumeAt { state: state.into(), input: json!({"release": {"id": "r"}}) },
            journaled: 9,
        }
    }

    #[test]
    fn a_rollback_closes_a_release_before_its_waves_undoes_them_during_and_runs_on_after() {
        assert_eq!(rollback_point("r", point("WaitForBuild"), "x").unwrap().at.state, "CancelBuild");
        let failed = rollback_point("r", point("TriggerBuild"), "stopped by ann").unwrap();
        assert_eq!(failed.at.state, "MarkFailed");
        assert_eq!(failed.at.input["error"], json!({"Error": "Baton.Interrupted", "Cause": "stopped by ann"}));
        assert_eq!((failed.input, failed.journaled), (json!({"signal": 1}), 9));
        assert_eq!(rollback_point("r", point("DeployWaves"), "x").unwrap().at.state, "NotifyRollingBack");
        assert_eq!(rollback_point("r", point("RollbackWaves"), "x").unwrap(), point("RollbackWaves"));
        assert_eq!(rollback_point("r", point("NotifyFinished"), "x").unwrap(), point("NotifyFinished"));
        assert!(matches!(rollback_point("r", point("Register"), "x"), Err(ResumeError::NotRegistered { .. })));
    }

    #[test]
    fn every_named_state_is_a_top_level_state_of_the_definition() {
        let machine = baton_asl::StateMachine::from_json(&crate::substituted_definition()).unwrap();
        let states: Vec<&str> = machine.top_level_states().collect();
        for state in BEFORE_DEPLOY.iter().chain(&["Register", "DeployWaves", "CancelBuild", "MarkFailed", "NotifyRollingBack"]) {
            assert!(states.contains(state), "{state} is not a top-level state of the release definition");
        }
    }
}

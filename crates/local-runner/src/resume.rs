//! Picking up a release whose local run stopped: killed (its heartbeat went silent), or stopped on
//! purpose (a signal, a cancel). It runs on from its journal's last checkpoint, or rolls back and
//! closes through the definition's own rollback and closing states.

use crate::LocalBaton;
use crate::journal::{Journaled, ResumePoint, Run};
use crate::owner::{Owned, describe};
use baton_asl::ResumeAt;
use baton_domain::error::{ErrorName, TaskError};
use baton_domain::ports::{Claim, StoreError};
use baton_domain::release::{EventKind, Release, ReleaseId, ReleaseStatus, StageEvent};
use baton_domain::support::{RUN_SILENT_AFTER, update_release};
use chrono::Utc;
use serde_json::json;

/// What to do with a stopped release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumption {
    /// Run it on from its last checkpoint (that state runs again: tasks are at-least-once).
    RunOn,
    /// Roll back what it deployed and close it `cancelled`, with `Baton.Interrupted` and this cause.
    RollBack { why: String },
    /// Close it `cancelled` with `Baton.Interrupted` and this cause, touching no target: newer work
    /// has deployed since, which neither running it on nor rolling it back may undo.
    Close { why: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("release {id} is {status}: there is nothing to resume")]
    Ended { id: String, status: ReleaseStatus },
    #[error("release {id} is run by another process: {owner}")]
    Owned { id: String, owner: String },
    #[error("release {id} is no longer in the store")]
    Vanished { id: String },
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

/// `err`, once the claim taken for nothing is given up.
async fn giving_up(owned: Owned, err: ResumeError) -> ResumeError {
    if let Err(ended) = owned.give_up().await {
        tracing::warn!(error = %baton_domain::error::chain_text(&ended), "cannot give the run's claim up (it lapses in seconds)");
    }
    err
}

/// The states before any wave deployed: a rollback there has nothing to undo and closes the
/// release failed.
const BEFORE_DEPLOY: [&str; 7] =
    ["Acquire", "QueuedBehindFreeze", "WaitForLockAfterFreeze", "NotifyStarted", "TriggerBuild", "WaitForBuild", "NotifyBuilt"];

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
    Ok(enter(point, into, why))
}

/// `point` moved to state `into`, with the caught error the closing states record.
fn enter(point: ResumePoint, into: &str, why: &str) -> ResumePoint {
    let mut input = point.at.input;
    input["error"] = json!({"Error": ErrorName::Interrupted.as_str(), "Cause": why});
    ResumePoint { at: ResumeAt { state: into.to_owned(), input }, ..point }
}

/// Where a release stopped at `point` is closed without touching a target: straight to its
/// closing states, unless it is there already.
fn close_point(id: &str, point: ResumePoint, why: &str) -> Result<ResumePoint, ResumeError> {
    match point.at.state.as_str() {
        "Register" => Err(ResumeError::NotRegistered { id: id.to_owned() }),
        "MarkFailed" | "MarkRolledBack" | "StoppedByAPerson" | "MarkCancelled" | "MarkRollbackFailed" | "RecordMetrics"
        | "NotifyFinished" | "Unlock" => Ok(point),
        _ => Ok(enter(point, "MarkFailed", why)),
    }
}

impl LocalBaton {
    /// Picks up `release`, stopped or killed, from its journal: runs it on, rolls it back or
    /// closes it. Its run is claimed first: a live owner (another process running, resuming or
    /// cancelling it) wins, and this touches nothing. The record says `running` again and its
    /// timeline who resumed it, how and from which state.
    pub async fn resume_release(&self, release: &Release, how: &Resumption, person: &str) -> Result<(Run, String), ResumeError> {
        let id = release.id.to_string();
        if release.status.is_terminal() {
            return Err(ResumeError::Ended { id, status: release.status });
        }
        let execution = release.execution.clone().ok_or_else(|| ResumeError::NoExecution { id: id.clone() })?;
        let owned = match self.claim(&execution).await? {
            Ok(owned) => owned,
            Err(owner) => return Err(ResumeError::Owned { id, owner: describe(&owner) }),
        };
        self.run_claimed(&release.id, owned, how, person).await
    }

    /// Picks up release `id` as [`resume_release`](Self::resume_release) does, under a claim this
    /// process holds already (a run it stopped itself, on a person's cancel). The claim is renewed
    /// first, which clears the cancel request it acts on.
    pub async fn resume_claimed(
        &self,
        id: &ReleaseId,
        mut owned: Owned,
        how: &Resumption,
        person: &str,
    ) -> Result<(Run, String), ResumeError> {
        match self.ports().store.claim_run(&owned.execution, &self.owner, Utc::now(), RUN_SILENT_AFTER).await? {
            Claim::Claimed { fence } => owned.fence = fence,
            Claim::OwnedBy(owner) => return Err(ResumeError::Owned { id: id.to_string(), owner: describe(&owner) }),
        }
        self.run_claimed(id, owned, how, person).await
    }

    async fn run_claimed(&self, id: &ReleaseId, owned: Owned, how: &Resumption, person: &str) -> Result<(Run, String), ResumeError> {
        let execution = owned.execution.clone();
        match self.resume_point_of(id, &execution, how, person).await {
            Ok((point, message)) => {
                let state = point.at.state.clone();
                match self.record(id, ReleaseStatus::Running, EventKind::Resumed, message).await {
                    Ok(()) => Ok((self.resume(owned, point), state)),
                    Err(err) => Err(giving_up(owned, err).await),
                }
            }
            Err(err) => Err(giving_up(owned, err).await),
        }
    }

    /// Where the claimed release resumes, read once the claim is held (another process may have
    /// closed it while this one waited), and what its timeline says about it.
    async fn resume_point_of(
        &self,
        id: &ReleaseId,
        execution: &str,
        how: &Resumption,
        person: &str,
    ) -> Result<(ResumePoint, String), ResumeError> {
        let release = self.ports().store.get_release(id).await?.ok_or_else(|| ResumeError::Vanished { id: id.to_string() })?;
        let id = id.to_string();
        if release.status.is_terminal() {
            return Err(ResumeError::Ended { id, status: release.status });
        }
        let point = match self.journaled(execution).await? {
            Journaled::Resumable(point) => point,
            Journaled::Nothing => return Err(ResumeError::NotJournaled { id, execution: execution.to_owned() }),
            Journaled::Ended => return Err(ResumeError::JournalEnded { id, execution: execution.to_owned(), status: release.status }),
        };
        let stopped_at = point.at.state.clone();
        Ok(match how {
            Resumption::RunOn => {
                let message = format!("{person} resumed the release at {stopped_at}");
                (point, message)
            }
            Resumption::RollBack { why } => {
                let point = rollback_point(&id, point, why)?;
                let message = format!("{person} is rolling the release back from {stopped_at} (at {}): {why}", point.at.state);
                (point, message)
            }
            Resumption::Close { why } => {
                let point = close_point(&id, point, why)?;
                let message =
                    format!("{person} is closing the release from {stopped_at} (at {}), touching no target: {why}", point.at.state);
                (point, message)
            }
        })
    }

    /// Records that `release`'s run stopped before its end, and why; it keeps its lock for the
    /// resume, so nothing else deploys over its half-done waves.
    pub async fn mark_interrupted(&self, release: &Release, why: &str) -> Result<(), ResumeError> {
        self.record(&release.id, ReleaseStatus::Interrupted, EventKind::Interrupted, why.to_owned()).await
    }

    async fn record(&self, id: &ReleaseId, status: ReleaseStatus, kind: EventKind, message: String) -> Result<(), ResumeError> {
        let store = self.ports().store.as_ref();
        let id = id.clone();
        let recorded = |source: TaskError| ResumeError::Record { id: id.to_string(), source };
        // A release that closed meanwhile keeps its status: the lifecycle refuses the change.
        let updated = update_release(store, &id, |r| {
            let _ = r.move_to(status);
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
    fn a_close_goes_straight_to_the_closing_states_from_anywhere_but_registration() {
        for state in ["TriggerBuild", "WaitForBuild", "DeployWaves", "NotifyRollingBack", "RollbackWaves"] {
            let closed = close_point("r", point(state), "newer work deployed").unwrap();
            assert_eq!(closed.at.state, "MarkFailed", "{state}");
            assert_eq!(closed.at.input["error"]["Cause"], "newer work deployed");
        }
        assert_eq!(close_point("r", point("NotifyFinished"), "x").unwrap(), point("NotifyFinished"));
        assert!(matches!(close_point("r", point("Register"), "x"), Err(ResumeError::NotRegistered { .. })));
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

//! The data that flows between the release definition's states and the handlers.
//!
//! Each handler takes one of these requests as its Lambda payload and answers one
//! of these responses; `statemachines/release.asl.json` places them in the
//! execution's state (`$.release`, `$.build`, `$.artifact`, `$.waves`, ...).

use crate::catalog::{ApprovalSpec, OnTimeout, WaveSpec};
use crate::error::{ErrorName, TaskError};
use crate::release::{Artifact, ReleaseId, RunHandle, TaskToken};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What every task after registration knows about its release (`$.release`). The catalog entry
/// is not in it: registration keeps the entry in the store under the release's id, and each task
/// reads it from there ([`crate::support::Ports::entry`]), so the same configuration applies
/// throughout even if the catalog changes mid-release, and a large entry never makes a state's
/// payload outgrow Step Functions' 256 KiB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseContext {
    pub id: ReleaseId,
    pub service: String,
    pub environment: String,
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
}

/// One wave as the definition's Map iterates it (`$.waves[*]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WavePlan {
    /// Position among the release's waves, from 0.
    pub index: usize,
    /// How many waves the release has, for "wave 2 of 3".
    pub total: usize,
    pub name: String,
    pub targets: Vec<String>,
    pub bake_seconds: u64,
    /// How long the targets may take to deploy (or to roll back): the wave fails past it.
    #[serde(default = "WavePlan::default_deploy_timeout")]
    pub deploy_timeout_seconds: u64,
    /// Set when a person must approve the wave before it deploys: the definition parks on a
    /// task token for at most `timeout_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPlan>,
}

/// What the definition needs of a wave's approval gate; who may approve stays in the kept entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPlan {
    pub timeout_seconds: u64,
    pub on_timeout: OnTimeout,
}

impl WavePlan {
    pub fn from_specs(specs: &[WaveSpec]) -> Vec<WavePlan> {
        specs
            .iter()
            .enumerate()
            .map(|(index, wave)| WavePlan {
                index,
                total: specs.len(),
                name: wave.name.clone(),
                targets: wave.targets.clone(),
                bake_seconds: wave.bake.0,
                deploy_timeout_seconds: wave.deploy_timeout.0,
                approval: ApprovalSpec::required(wave.approval.as_ref())
                    .map(|spec| ApprovalPlan { timeout_seconds: spec.timeout.0, on_timeout: spec.on_timeout }),
            })
            .collect()
    }

    fn default_deploy_timeout() -> u64 {
        WaveSpec::DEFAULT_DEPLOY_TIMEOUT.0
    }
}

/// load-catalog's three jobs: register a signal, take the release lock, give it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum LoadCatalogRequest {
    /// Normalise whatever started the execution, load and validate the catalog entry,
    /// and record the release (or find the one an identical signal already started).
    Register {
        /// The execution's input as it arrived: a CLI or console request, an EventBridge
        /// merge event, or a schedule's payload.
        input: serde_json::Value,
        /// `$$.Execution.Name`: identifies console starts and this execution's own retries.
        execution: String,
    },
    /// Take the service's lock, or raise `Baton.LockHeld` (retried) or `Baton.Superseded`, or
    /// (the lock held while a freeze window is in force at `now`, `$$.State.EnteredTime`) answer
    /// a [`FreezeVerdict`] to wait for the window's end.
    Acquire {
        release: ReleaseContext,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        now: Option<DateTime<Utc>>,
    },
    /// Give the lock back; a no-op when this release does not hold it.
    Unlock { release: ReleaseContext },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub release: ReleaseContext,
    pub waves: Vec<WavePlan>,
    /// True when an identical signal already started this release: the execution ends here.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerBuildRequest {
    pub release: ReleaseContext,
    /// When the execution entered the state (`$$.State.EnteredTime`, the same across the
    /// task's retries): the build's deadline runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<DateTime<Utc>>,
}

/// What trigger-build answers (`$.build`): the build to follow, and when it must have finished
/// (its `build-timeout` after the request), which the definition compares with each poll's time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStarted {
    pub run: RunHandle,
    pub deadline: DateTime<Utc>,
    /// With the catalog's `events.wait`: how long the build parks on its provider's event before
    /// its safety-net poll. Absent, the definition polls it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_seconds: Option<u64>,
}

/// A task parked on its provider's event (`.waitForTaskToken`): the token that resumes it, and
/// its timeout (`seconds` from `now`), after which the definition polls all the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Park {
    pub token: TaskToken,
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollBuildRequest {
    pub release: ReleaseContext,
    pub build: RunHandle,
    /// Cancel the build instead of polling it: the release stopped following it (the
    /// definition's `CancelBuild`, after `WaitForBuild` gave up or failed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// With `cancel`: why the release stopped following the build (what `WaitForBuild`'s Catch
    /// handed on), for the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
    /// Park on the build's events instead of answering a poll (the definition's `ParkBuild`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park: Option<Park>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum DeployWaveRequest {
    /// Start deploying `artifact` (or, with `rollback`, the previous artifact) to every target
    /// of the wave that has not started yet; the runs are kept in the release record.
    Start {
        release: ReleaseContext,
        wave: WavePlan,
        artifact: Artifact,
        #[serde(default)]
        rollback: bool,
        /// When the execution entered the state (`$$.State.EnteredTime`, the same across the
        /// state's retries): the wave's deadline runs from it, on the clock the definition
        /// compares it with (virtual in tests). Absent, the handler's own clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        now: Option<DateTime<Utc>>,
    },
    /// Whether a freeze window holds the wave at `now` (`$$.State.EnteredTime`), and until when.
    CheckFreeze {
        release: ReleaseContext,
        wave: WavePlan,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        now: Option<DateTime<Utc>>,
    },
    /// Poll every target still rolling out; raise `Baton.DeployPending` until all are done.
    Poll {
        release: ReleaseContext,
        wave: WavePlan,
        #[serde(default)]
        rollback: bool,
    },
    /// Park on the rollouts of the wave's targets still running (the definition's `ParkWave`):
    /// records the waits, then polls them once; when none runs any more, answers its own token.
    Park { release: ReleaseContext, wave: WavePlan, park: Park },
    /// The waves to roll back: every wave that began deploying, last first. `error` is what
    /// failed the deploy (the Catch's), for the timeline.
    PlanRollback {
        release: ReleaseContext,
        waves: Vec<WavePlan>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<CaughtError>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckHealthRequest {
    pub release: ReleaseContext,
    pub wave: WavePlan,
    pub artifact: Artifact,
    /// When the execution entered the state (`$$.State.EnteredTime`): the bake is measured on
    /// the execution's clock, the one its Wait states follow (virtual in tests). Absent, the
    /// handler's own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<DateTime<Utc>>,
    /// Park on the gates' alarms instead of sampling them (the definition's `ParkBake`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park: Option<Park>,
}

/// One look at a wave's gates: `done` when the wave is healthy (an unhealthy wave fails the task
/// instead); otherwise the definition waits `wait_seconds` and asks again, or, with
/// `park_seconds`, parks on the gates' alarms that long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchReport {
    pub wave: String,
    pub done: bool,
    pub wait_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_seconds: Option<u64>,
    /// What the gates saw last, one line per gate.
    pub detail: String,
}

/// The moments the team hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    Started,
    Built,
    WaveHealthy,
    RollingBack,
    /// The release ended; the outcome says how.
    Finished,
    /// A wave waits for a person's approval: the request is recorded with the task token
    /// that answers it.
    ApprovalRequested,
    /// Nobody answered the wave's approval before its deadline.
    ApprovalExpired,
}

/// An ASL error as a Catch hands it on (`{"Error": ..., "Cause": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl CaughtError {
    /// Lambda-style causes are JSON (`{"errorMessage": ..., "errorType": ...}`); people want the message.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| self.cause.clone())
    }
}

/// How a release ended (`$.outcome`), set by the definition before the finishing chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
    /// Set when a person must act (a rollback that failed, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_needed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeStatus {
    Succeeded,
    Failed,
    RolledBack,
    RollbackFailed,
    /// A person stopped it (`Baton.Interrupted`) and it failed before any wave or rolled back
    /// cleanly (the definition's `MarkCancelled`).
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyRequest {
    pub release: ReleaseContext,
    pub event: NotifyEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<WavePlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// With `approval-requested`: what answers the waiting task (`$$.Task.Token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TaskToken>,
    /// When the state was entered (`$$.State.EnteredTime`): an approval's deadline runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordMetricsRequest {
    pub release: ReleaseContext,
    pub outcome: Outcome,
    /// The execution's ARN (`$$.Execution.Id`), whose history prices the release on AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
}

/// What starting a wave (or its rollback) answers: when its targets must have finished, which the
/// definition compares with the time of each poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveStarted {
    pub deadline: DateTime<Utc>,
    /// With the catalog's `events.wait`: how long the wave parks on its rollouts' events before
    /// its safety-net poll. Absent, the definition polls them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub park_seconds: Option<u64>,
}

/// What checking a wave for freeze windows answers (and Acquire, for a release queued behind a
/// lock while a window is in force): `frozen` with the instant the definition's Wait holds it to
/// (`until`, past every window in force and those chained to them), else open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeVerdict {
    pub frozen: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// Handlers answer `{}` when the definition discards their result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// The release a task payload is about (`release.id`), for logging before the payload is parsed;
/// `None` for registration, which creates it.
pub fn release_id_in(payload: &serde_json::Value) -> Option<&str> {
    payload.get("release")?.get("id")?.as_str()
}

/// Turns a payload into a handler's request, naming what was wrong.
pub fn parse_request<T: serde::de::DeserializeOwned>(handler: &str, payload: serde_json::Value) -> Result<T, TaskError> {
    serde_json::from_value(payload)
        .map_err(|err| TaskError::new(ErrorName::InputInvalid, format!("{handler}: the task input does not match its contract: {err}")))
}

/// What plan-rollback answers (`$.rollback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// Waves that began deploying, last first.
    pub waves: Vec<WavePlan>,
    /// The artifact to put back: what was live before, or an empty reference when nothing was.
    pub artifact: Artifact,
}

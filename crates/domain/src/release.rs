//! Releases, the signals that start them, and what the store records about them.

use crate::sketch::Sketch;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseId(pub String);

impl ReleaseId {
    /// `rel-<service>-<yyyymmddHHMMSS>-<8 hex>`: sortable by time within a service, unique across.
    pub fn generate(service: &str, at: DateTime<Utc>) -> ReleaseId {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        ReleaseId(format!("rel-{service}-{}-{}", at.format("%Y%m%d%H%M%S"), &suffix[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The merge event on Baton's EventBridge bus: `source`, `detail-type`, and `detail` below.
pub const MERGE_SOURCE: &str = "baton.github";
pub const MERGE_DETAIL_TYPE: &str = "Pull Request Merged";

/// `detail` of a merge event: a pull request merged into `branch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeEvent {
    /// Repository name without its owner; by convention the catalog service of the same name.
    pub repository: String,
    /// `owner/name` (GitHub's `repository.full_name`): admission releases the service only if its
    /// catalog entry links this repository, so a same-named repository of another owner releases nothing.
    pub full_name: String,
    /// The base branch the pull request merged into.
    pub branch: String,
    /// The merge commit.
    pub sha: String,
    /// Pull request number.
    pub pull_request: u64,
    /// Login of the pull request's author.
    pub author: String,
    pub merged_at: DateTime<Utc>,
}

/// What started a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    /// A merged pull request (EventBridge merge event).
    Merge,
    /// An EventBridge Scheduler schedule from the catalog.
    Schedule,
    /// The `baton` CLI.
    Cli,
    /// A person starting an execution in the Step Functions console.
    Console,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Merge => "merge",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Cli => "cli",
            TriggerKind::Console => "console",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// Identifies this signal among others of its kind: a pull request number, a schedule
    /// firing time, a CLI invocation id, or the execution name for console starts.
    pub id: String,
    /// Who or what sent it (PR author, schedule name, local user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The repository (`owner/name`) a merge came from, matched against the catalog entry's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The sender released a branch that is neither the entry's release branch nor its feature
    /// branch, on purpose (`baton release --allow-any-branch`); kept on the release for review.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub branch_override: bool,
    /// Why the sender released through the freeze windows (`baton release --override-freeze
    /// --reason`, a hotfix); who did is `actor`. Kept on the release for review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_override: Option<String>,
}

impl Trigger {
    /// A trigger from no repository, releasing only the catalog's branches.
    pub fn new(kind: TriggerKind, id: String, actor: Option<String>) -> Trigger {
        Trigger { kind, id, actor, repository: None, branch_override: false, freeze_override: None }
    }
}

/// A request to release one service, whatever its source, once normalised by load-catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub service: String,
    /// Defaults to the catalog entry's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// Defaults to the catalog entry's release branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub trigger: Trigger,
    /// When the change was made (merge time or commit time): the start of DORA lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
}

impl Signal {
    /// Two signals with the same key are the same request: the second starts nothing.
    pub fn idempotency_key(&self) -> String {
        format!("{}#{}#{}:{}", self.service, self.sha.as_deref().unwrap_or("HEAD"), self.trigger.kind.as_str(), self.trigger.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Waiting for the service's lock.
    Queued,
    Running,
    Succeeded,
    /// Failed before any wave changed production (build failure, bad catalog...).
    Failed,
    /// A wave was unhealthy or failed; completed waves were rolled back.
    RolledBack,
    /// A wave failed and its rollback failed too: a person must act.
    RollbackFailed,
    /// A newer signal for the same service and environment ran instead.
    Superseded,
    /// A scheduled release that fired inside a freeze window: closed before it ran (its
    /// timeline's `frozen` event names the window and its end). Neither a deployment nor a
    /// change failure.
    Skipped,
    /// A person stopped it (`baton cancel`, Ctrl-C on `baton release`) and what it had deployed
    /// was rolled back cleanly: neither a deployment nor a change failure. A cancel whose
    /// rollback failed ends `rollback-failed` instead.
    Cancelled,
    /// Its local run was stopped (SIGINT, SIGTERM, `baton cancel`) or killed: it holds its lock
    /// and waits for `baton resume`, which runs it on or rolls it back.
    Interrupted,
}

impl ReleaseStatus {
    pub fn is_terminal(self) -> bool {
        !Self::OPEN.contains(&self)
    }

    /// The statuses of a release that may still change; every other one is terminal.
    pub const OPEN: [ReleaseStatus; 3] = [ReleaseStatus::Queued, ReleaseStatus::Running, ReleaseStatus::Interrupted];

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Queued => "queued",
            ReleaseStatus::Running => "running",
            ReleaseStatus::Succeeded => "succeeded",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::RolledBack => "rolled-back",
            ReleaseStatus::RollbackFailed => "rollback-failed",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::Skipped => "skipped",
            ReleaseStatus::Cancelled => "cancelled",
            ReleaseStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An artifact's `sha` when the build reports no commit and the release named none (a local
/// build outside a git checkout, a CodeBuild source without commits).
pub const UNKNOWN_SHA: &str = "unknown";

/// What a build produced; kept to the end of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Image digest, package version, file path: whatever the deploy provider takes.
    pub reference: String,
    pub sha: String,
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Queued,
    Build,
    Deploy,
    Rollback,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaveStatus {
    Pending,
    Deploying,
    Baking,
    Healthy,
    Unhealthy,
    Failed,
    RolledBack,
}

impl WaveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WaveStatus::Pending => "pending",
            WaveStatus::Deploying => "deploying",
            WaveStatus::Baking => "baking",
            WaveStatus::Healthy => "healthy",
            WaveStatus::Unhealthy => "unhealthy",
            WaveStatus::Failed => "failed",
            WaveStatus::RolledBack => "rolled back",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveRecord {
    pub name: String,
    pub targets: Vec<String>,
    pub status: WaveStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_url: Option<String>,
    /// Each target's latest deploy in this wave: the forward one, then its rollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploys: Vec<TargetDeploy>,
    /// The first sample of the gates, once every target was deployed: the bake starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_started_at: Option<DateTime<Utc>>,
    /// Each health gate's samples so far, in the catalog's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateRecord>,
}

/// What one health gate has shown during a wave's bake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// What the gate watches ("CloudWatch alarms web-*").
    pub gate: String,
    pub samples: u32,
    pub healthy_in_a_row: u32,
    pub unhealthy_in_a_row: u32,
    /// What the latest sample saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
    /// The latest samples, oldest first, at most [`GateSample::KEPT`] of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<GateSample>,
}

/// One sample of a gate, for the release page's chart. Gates answer healthy or not with a
/// text (no number and threshold to plot), so that is what is kept; the text of the latest is
/// [`GateRecord::last`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSample {
    pub at: DateTime<Utc>,
    pub healthy: bool,
}

impl GateSample {
    /// How many samples a gate keeps. The whole release is one DynamoDB item (400 KB at most)
    /// and a watch may take up to 2,000 samples: 120 of about 50 bytes is 6 KB a gate, so ten
    /// waves of five gates stay well within the item with the rest of the record.
    pub const KEPT: usize = 120;
}

/// One target's deploy (or rollback) in a wave, as the provider started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetDeploy {
    pub target: String,
    /// True when this deploy puts the previous artifact back.
    #[serde(default)]
    pub rollback: bool,
    /// None when the provider refused to start it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunHandle>,
    pub status: DeployStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStatus {
    Running,
    Succeeded,
    Failed,
}

/// A started run (build or deploy) and everything needed to find it again in a later task
/// invocation: it travels in the execution's state and the record, so it must stay small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHandle {
    pub provider: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub state: serde_json::Value,
}

impl RunHandle {
    /// The id of a handle whose provider accepted the request but shows no run for it yet (a
    /// GitHub dispatch answered without the run): polls keep looking for the run.
    pub const UNLOCATED: &'static str = "pending";

    /// Whether the provider has a run for this handle: until then the build has not started.
    pub fn located(&self) -> bool {
        self.id != RunHandle::UNLOCATED
    }
}

/// The CI build of a release, as Baton saw it: one per release, the latest start of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub provider: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When Baton asked the provider for the build (trigger-build's clock): it waits in the
    /// provider's queue from here.
    pub queued_at: DateTime<Utc>,
    /// When the build began to run, if the provider said; `None` when it does not tell (the
    /// build port reports no start time yet), never a guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When Baton saw the build end (a poll, so up to one poll interval late), or stopped
    /// following it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub status: BuildStatus,
    /// How many times a build was started for this release: more than 1 when trigger-build ran
    /// again after a start (its record write failed, and the definition retried it).
    pub attempts: u32,
    /// Why the build failed, as the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the provider needs to find the run again (its handle's state), so a trigger-build
    /// run again after a crash follows the recorded run instead of starting another.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub state: serde_json::Value,
}

impl BuildRecord {
    /// The handle poll-build follows the recorded run with.
    pub fn handle(&self) -> RunHandle {
        RunHandle { provider: self.provider.clone(), id: self.run_id.clone(), url: self.url.clone(), state: self.state.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildStatus {
    /// Baton asked the provider for a build and has no answer yet (the request timed out, or the
    /// task died before recording it): before asking again it looks for the build this release
    /// may have started.
    Requested,
    Running,
    Succeeded,
    Failed,
    /// Baton cancelled the build at the provider (the release stopped following it).
    Cancelled,
    /// The release ended while the build ran and Baton could not cancel it: it stopped following
    /// it, whatever the provider did with it afterwards.
    Unfollowed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Requested => "requested",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
            BuildStatus::Unfollowed => "no longer followed",
        }
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a release ended other than in success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
}

/// The release record: one per signal that was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: ReleaseId,
    pub service: String,
    pub environment: String,
    pub status: ReleaseStatus,
    pub stage: Stage,
    pub trigger: Trigger,
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Its CI build; `None` until one started (and in records written before builds were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
    /// What was live before this release: the rollback target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_artifact: Option<Artifact>,
    #[serde(default)]
    pub waves: Vec<WaveRecord>,
    pub created_at: DateTime<Utc>,
    /// While the release waits for the lock: its latest attempt at it, renewed by each one, so
    /// a newer waiter whose process died stops holding older ones back (`rules::queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Execution id or ARN of the state machine run that carries this release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// A person asked for the release to stop and roll back, and why (`baton cancel --remote`,
    /// or the record's `cancel_requested` attribute set by hand): every task that moves the
    /// release forward raises `Baton.Interrupted` once it is set ([`ReleaseStore::request_cancel`]).
    ///
    /// [`ReleaseStore::request_cancel`]: crate::ports::ReleaseStore::request_cancel
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<String>,
    /// The approvals its waves asked for, oldest first, with their answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// The commits it carried to its environment, each the start of a lead time: set by
    /// record-metrics when a deployment succeeds ([`crate::rules::dora::carried`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// What its execution cost on AWS (state transitions, task invocations, dollars at public
    /// prices: [`crate::rules::cost`]), from its history once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::rules::cost::Cost>,
    /// Per-notifier state, such as a Slack message's channel and ts, keyed by notifier name.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub notifier_state: serde_json::Map<String, serde_json::Value>,
    /// How many times the store has rewritten this record: a write names the version it read and
    /// fails if another write came in between, so parallel writers never overwrite each other.
    /// Records written before versions existed read as 0.
    #[serde(default)]
    pub version: u64,
}

/// The commits a successful deployment carried: every commit between the previous deployment's
/// and its own, each measured from its change's time to the release's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The previous deployment's commit the release was compared with; `None` for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The commits whose lead times count, oldest first (merge commits left out).
    pub commits: Vec<Change>,
    /// How many commits the range held: more than `commits` when merges were left out or the
    /// range was longer than Baton reads ([`crate::ports::MAX_COMPARED`]).
    pub total: u64,
    /// Why only the release's own commit counts (a force push dropped `since`, the history could
    /// not be read, a first deployment): the flag on its lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// One commit a release carried, and when its change was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub sha: String,
    pub at: DateTime<Utc>,
}

impl Release {
    pub fn lock_key(&self) -> LockKey {
        LockKey::new(&self.service, &self.environment)
    }

    /// The approval the release waits for: the last one asked, while nobody answered it.
    pub fn pending_approval(&self) -> Option<&Approval> {
        self.approvals.last().filter(|approval| approval.decision.is_none())
    }

    /// The record as people may read it: without the task tokens that answer its approvals.
    pub fn for_display(&self) -> Release {
        let mut shown = self.clone();
        for approval in &mut shown.approvals {
            approval.token = None;
        }
        shown
    }
}

/// What answers a task waiting on `.waitForTaskToken` (Step Functions' token, or the embedded
/// executor's). Kept on the record so whoever approves can answer it; never logged or shown
/// ([`Release::for_display`]), and its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskToken(pub String);

impl TaskToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskToken(***)")
    }
}

/// A wave's request for a person's approval, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub wave: String,
    pub requested_at: DateTime<Utc>,
    /// Past it the release stops waiting (`approval-expired`).
    pub deadline: DateTime<Utc>,
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub four_eyes: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TaskToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ApprovalDecision>,
}

/// Who answered an approval, how, when, from where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub verdict: Verdict,
    /// The person (none when the deadline passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub via: Via,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the waiting task has heard the answer (it is recorded first, then sent).
    #[serde(default)]
    pub delivered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Granted,
    Rejected,
    Expired,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Granted => "approved",
            Verdict::Rejected => "rejected",
            Verdict::Expired => "expired",
        }
    }
}

/// Where an approval's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Slack,
    Cli,
    /// Nobody answered before the deadline.
    Deadline,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Slack => "Slack",
            Via::Cli => "the CLI",
            Via::Deadline => "the deadline",
        }
    }
}

/// One line of a release's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEvent {
    pub release_id: ReleaseId,
    pub at: DateTime<Utc>,
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    /// The deploy target an event is about, within its wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub kind: EventKind,
    pub message: String,
}

/// What a timeline event says happened to its stage, wave or target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The signal was accepted and the release waits for the service's lock.
    Queued,
    Started,
    Succeeded,
    Failed,
    /// The release ended rolled back (the last event of such a release).
    RolledBack,
    /// The release's rollback failed (the last event of such a release).
    RollbackFailed,
    /// A newer signal ran instead (the last event of such a release).
    Superseded,
    /// A person freed the release's lock by hand (`baton unlock`), saying why.
    Unlocked,
    /// Its local run stopped before the end (a signal, a cancel); the release waits to be resumed.
    Interrupted,
    /// An interrupted or killed run was picked up again (run on, or rolled back).
    Resumed,
    /// A person asked the release to stop (`baton cancel`, Ctrl-C), saying why; also the last
    /// event of a release that ended `cancelled`.
    Cancelled,
    /// A provider call got no answer or was rate limited, and is tried again (the message says
    /// why, and until when it waits).
    Retrying,
    /// A telemetry exporter could not deliver an event (the release went on without it).
    ExportFailed,
    /// Baton asked a provider for a build, which accepted it and shows no run for it yet; the
    /// build is `started` once it does.
    Requested,
    /// The definition stopped retrying a task (its retry budget is spent); the message names
    /// the last error and its cause.
    GaveUp,
    /// A wave waits for a person's approval (the message names who may give it, and until when).
    AwaitingApproval,
    /// A person approved the wave.
    Approved,
    /// A person rejected the wave.
    Rejected,
    /// Nobody answered the wave's approval before its deadline.
    ApprovalExpired,
    /// The commits a successful deployment carried (their lead times), or why only its own
    /// commit counts.
    Carried,
    /// A freeze window held a wave until its end, or was overridden (the message names the
    /// window, its reason and end, and who overrode it and why).
    Frozen,
    /// The release's cost could not be worked out (its execution history could not be read);
    /// the record keeps no cost.
    CostUnknown,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Started => "started",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::RolledBack => "rolled-back",
            EventKind::RollbackFailed => "rollback-failed",
            EventKind::Superseded => "superseded",
            EventKind::Unlocked => "unlocked",
            EventKind::Interrupted => "interrupted",
            EventKind::Resumed => "resumed",
            EventKind::Retrying => "retrying",
            EventKind::Cancelled => "cancelled",
            EventKind::ExportFailed => "export-failed",
            EventKind::Requested => "requested",
            EventKind::GaveUp => "gave-up",
            EventKind::AwaitingApproval => "awaiting-approval",
            EventKind::Approved => "approved",
            EventKind::Rejected => "rejected",
            EventKind::ApprovalExpired => "approval-expired",
            EventKind::Carried => "carried",
            EventKind::Frozen => "frozen",
            EventKind::CostUnknown => "cost-unknown",
        }
    }

    /// The last event of a release that ended with `status`; `None` while it has not ended.
    pub fn ending(status: ReleaseStatus) -> Option<EventKind> {
        match status {
            ReleaseStatus::Queued | ReleaseStatus::Running | ReleaseStatus::Interrupted => None,
            ReleaseStatus::Succeeded => Some(EventKind::Succeeded),
            ReleaseStatus::Failed => Some(EventKind::Failed),
            ReleaseStatus::RolledBack => Some(EventKind::RolledBack),
            ReleaseStatus::RollbackFailed => Some(EventKind::RollbackFailed),
            ReleaseStatus::Superseded => Some(EventKind::Superseded),
            // The `frozen` event that names the window is a skipped release's last.
            ReleaseStatus::Skipped => Some(EventKind::Frozen),
            ReleaseStatus::Cancelled => Some(EventKind::Cancelled),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one-release-at-a-time lock of a service in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LockKey(pub String);

impl LockKey {
    pub fn new(service: &str, environment: &str) -> LockKey {
        LockKey(format!("{service}#{environment}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub holder: ReleaseId,
    pub expires_at: DateTime<Utc>,
}

/// DORA counters for one service, environment and UTC day. Adding is commutative,
/// so record-metrics can add a delta without reading first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    pub deployments: u64,
    pub failed_deployments: u64,
    pub rollbacks: u64,
    pub lead_time_seconds_total: u64,
    pub lead_time_samples: u64,
    pub restore_seconds_total: u64,
    pub restores: u64,
    /// Successful deployments that put back a version production had run before (a person's
    /// rollback by redeploying): deployments, but not changes, so out of the change failure rate.
    #[serde(default)]
    pub redeployments: u64,
    /// Successful deployments whose lead time fell back to their own commit (a force push, a
    /// first deployment, a repository that could not be read): each sample of theirs is an
    /// approximation, from one commit for all they carried.
    #[serde(default)]
    pub lead_time_fallbacks: u64,
    /// Lead times (seconds), as a sketch whose quantiles survive merging days and services.
    #[serde(default)]
    pub lead_times: Sketch,
    /// Times to restore (seconds), likewise.
    #[serde(default)]
    pub restore_times: Sketch,
}

impl std::ops::AddAssign<&Rollup> for Rollup {
    fn add_assign(&mut self, other: &Rollup) {
        self.deployments += other.deployments;
        self.failed_deployments += other.failed_deployments;
        self.rollbacks += other.rollbacks;
        self.lead_time_seconds_total += other.lead_time_seconds_total;
        self.lead_time_samples += other.lead_time_samples;
        self.restore_seconds_total += other.restore_seconds_total;
        self.restores += other.restores;
        self.redeployments += other.redeployments;
        self.lead_time_fallbacks += other.lead_time_fallbacks;
        self.lead_times.merge(&other.lead_times);
        self.restore_times.merge(&other.restore_times);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupKey {
    pub service: String,
    pub environment: String,
    pub day: NaiveDate,
}

// ---------------------------------------------------------------- lifecycle

/// A state change the lifecycle refuses: the record keeps the state it has (a stale retry, or a
/// record another task moved on first). Which changes are allowed is said once, by
/// [`ReleaseStatus::may_become`], [`Stage::may_become`] and [`WaveStatus::may_become`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} cannot go from {from} to {to}")]
pub struct Refused {
    /// "the release", "the stage", "wave canary".
    pub what: String,
    pub from: &'static str,
    pub to: &'static str,
}

impl ReleaseStatus {
    /// Whether a release in this status may take `next`: an open release runs, is interrupted
    /// (a local run stopped) or closes; an interrupted one runs on; a closed one never changes.
    /// Taking the status it has is no change, and allowed.
    pub fn may_become(self, next: ReleaseStatus) -> bool {
        use ReleaseStatus::*;
        self == next
            || match (self, next) {
                (Queued | Interrupted, Running) => true,
                (Queued | Running, Interrupted) => true,
                (from, to) => !from.is_terminal() && to.is_terminal(),
            }
    }
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Build => "build",
            Stage::Deploy => "deploy",
            Stage::Rollback => "rollback",
            Stage::Done => "done",
        }
    }

    /// Whether a release at this stage may move to `next`: forward only (queued, build, deploy),
    /// to a rollback from any stage before it ends, and to done from any.
    pub fn may_become(self, next: Stage) -> bool {
        use Stage::*;
        self == next
            || matches!(
                (self, next),
                (Queued, Build)
                    | (Queued | Build, Deploy)
                    | (Queued | Build | Deploy, Rollback)
                    | (Queued | Build | Deploy | Rollback, Done)
            )
    }
}

impl WaveStatus {
    /// Whether a wave in this status may take `next`: pending, deploying, baking, then healthy
    /// or unhealthy; failed from any step once it began (a target refused or failed, or the
    /// release closed with the wave having changed nothing); rolled back once it began. A wave
    /// that was rolled back stays so, and nothing goes back to pending.
    pub fn may_become(self, next: WaveStatus) -> bool {
        use WaveStatus::*;
        self == next
            || matches!(
                (self, next),
                (Pending, Deploying)
                    | (Deploying, Baking)
                    | (Baking, Healthy | Unhealthy)
                    | (Deploying | Baking | Healthy | Unhealthy, Failed)
                    | (Deploying | Baking | Healthy | Unhealthy | Failed, RolledBack)
            )
    }
}

impl Release {
    /// The release took its lock: running, at its build, started now (or when a first attempt
    /// did), putting back `previous_artifact` should it roll back.
    pub fn begin(&mut self, now: DateTime<Utc>, previous_artifact: Option<Artifact>) -> Result<(), Refused> {
        self.check_status(ReleaseStatus::Running)?;
        self.check_stage(Stage::Build)?;
        self.status = ReleaseStatus::Running;
        self.stage = Stage::Build;
        self.started_at.get_or_insert(now);
        self.previous_artifact = previous_artifact;
        Ok(())
    }

    /// The release moves to `stage`.
    pub fn enter(&mut self, stage: Stage) -> Result<(), Refused> {
        self.check_stage(stage)?;
        self.stage = stage;
        Ok(())
    }

    /// The release takes `status` (interrupted, running on, closed).
    pub fn move_to(&mut self, status: ReleaseStatus) -> Result<(), Refused> {
        self.check_status(status)?;
        self.status = status;
        Ok(())
    }

    fn check_status(&self, next: ReleaseStatus) -> Result<(), Refused> {
        match self.status.may_become(next) {
            true => Ok(()),
            false => Err(Refused { what: format!("release {}", self.id), from: self.status.as_str(), to: next.as_str() }),
        }
    }

    fn check_stage(&self, next: Stage) -> Result<(), Refused> {
        match self.stage.may_become(next) {
            true => Ok(()),
            false => Err(Refused { what: format!("the stage of release {}", self.id), from: self.stage.as_str(), to: next.as_str() }),
        }
    }
}

impl WaveRecord {
    /// The wave takes `status`.
    pub fn move_to(&mut self, status: WaveStatus) -> Result<(), Refused> {
        if !self.status.may_become(status) {
            return Err(Refused { what: format!("wave {}", self.name), from: self.status.as_str(), to: status.as_str() });
        }
        self.status = status;
        Ok(())
    }

    /// The wave's deploy begins now, if it has not begun: whether this call began it.
    pub fn begin_deploy(&mut self, now: DateTime<Utc>) -> bool {
        if self.status != WaveStatus::Pending || self.move_to(WaveStatus::Deploying).is_err() {
            return false;
        }
        self.started_at.get_or_insert(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [ReleaseStatus; 9] = [
        ReleaseStatus::Queued,
        ReleaseStatus::Running,
        ReleaseStatus::Succeeded,
        ReleaseStatus::Failed,
        ReleaseStatus::RolledBack,
        ReleaseStatus::RollbackFailed,
        ReleaseStatus::Superseded,
        ReleaseStatus::Cancelled,
        ReleaseStatus::Interrupted,
    ];
    const STAGES: [Stage; 5] = [Stage::Queued, Stage::Build, Stage::Deploy, Stage::Rollback, Stage::Done];
    const WAVES: [WaveStatus; 7] = [
        WaveStatus::Pending,
        WaveStatus::Deploying,
        WaveStatus::Baking,
        WaveStatus::Healthy,
        WaveStatus::Unhealthy,
        WaveStatus::Failed,
        WaveStatus::RolledBack,
    ];

    #[test]
    fn release_statuses_allow_and_refuse() {
        use ReleaseStatus::*;
        for (from, to, allowed) in [
            (Queued, Running, true),
            (Queued, Superseded, true),
            (Queued, Failed, true),
            (Running, Succeeded, true),
            (Running, RolledBack, true),
            (Running, RollbackFailed, true),
            (Running, Cancelled, true),
            (Running, Interrupted, true),
            (Interrupted, Running, true),
            (Interrupted, Cancelled, true),
            (Running, Running, true),
            (Running, Queued, false),
            (Interrupted, Queued, false),
            (Succeeded, Running, false),
            (Failed, Succeeded, false),
            (Cancelled, Interrupted, false),
            (Superseded, Running, false),
            (RolledBack, RolledBack, true),
        ] {
            assert_eq!(from.may_become(to), allowed, "{from} -> {to}");
        }
        for (from, to) in STATUSES.into_iter().flat_map(|from| STATUSES.map(|to| (from, to))) {
            if from.is_terminal() && from != to {
                assert!(!from.may_become(to), "a closed release stays closed: {from} -> {to}");
            }
            if to == Queued && from != Queued {
                assert!(!from.may_become(to), "nothing queues again: {from} -> {to}");
            }
        }
    }

    #[test]
    fn stages_move_forward_to_a_rollback_or_the_end() {
        use Stage::*;
        for (from, to, allowed) in [
            (Queued, Build, true),
            (Build, Deploy, true),
            (Queued, Deploy, true),
            (Deploy, Rollback, true),
            (Build, Rollback, true),
            (Rollback, Done, true),
            (Queued, Done, true),
            (Deploy, Deploy, true),
            (Deploy, Build, false),
            (Rollback, Deploy, false),
            (Done, Deploy, false),
            (Done, Rollback, false),
            (Build, Queued, false),
        ] {
            assert_eq!(from.may_become(to), allowed, "{} -> {}", from.as_str(), to.as_str());
        }
        assert!(STAGES.iter().all(|&from| from.may_become(Done)), "every stage can end");
    }

    #[test]
    fn waves_deploy_bake_and_are_judged_then_fail_or_roll_back() {
        use WaveStatus::*;
        for (from, to, allowed) in [
            (Pending, Deploying, true),
            (Deploying, Baking, true),
            (Baking, Healthy, true),
            (Baking, Unhealthy, true),
            (Deploying, Failed, true),
            (Unhealthy, RolledBack, true),
            (Healthy, RolledBack, true),
            (Failed, RolledBack, true),
            (Baking, Baking, true),
            (Pending, Baking, false),
            (Pending, Failed, false),
            (Pending, RolledBack, false),
            (Baking, Deploying, false),
            (Healthy, Deploying, false),
            (Healthy, Unhealthy, false),
            (Failed, Baking, false),
            (RolledBack, Failed, false),
            (RolledBack, Deploying, false),
        ] {
            assert_eq!(from.may_become(to), allowed, "{} -> {}", from.as_str(), to.as_str());
        }
        assert!(WAVES.iter().all(|&from| from == Pending || !from.may_become(Pending)), "nothing goes back to pending");
    }

    #[test]
    fn a_refused_change_leaves_the_record_as_it_was() {
        let mut release = crate::rules::fixtures::release("r1", 0, ReleaseStatus::Succeeded, Some(30), true);
        let before = release.clone();
        let refused = release.begin(chrono::Utc::now(), None).unwrap_err();
        assert_eq!((refused.from, refused.to), ("succeeded", "running"));
        assert_eq!(release.move_to(ReleaseStatus::Interrupted).unwrap_err().to, "interrupted");
        assert_eq!(release, before);

        let mut wave = before.waves[0].clone();
        let refused = wave.move_to(WaveStatus::Pending).unwrap_err();
        assert_eq!(refused.to_string(), format!("wave {} cannot go from {} to pending", wave.name, wave.status.as_str()));
        assert_eq!(wave, before.waves[0]);
    }

    #[test]
    fn a_queued_release_begins_once_and_a_pending_wave_begins_deploying_once() {
        let mut release = crate::rules::fixtures::release("r1", 0, ReleaseStatus::Queued, None, false);
        let (first, later) = (crate::rules::fixtures::minutes(1), crate::rules::fixtures::minutes(2));
        release.begin(first, None).unwrap();
        release.begin(later, None).unwrap();
        assert_eq!((release.status, release.stage, release.started_at), (ReleaseStatus::Running, Stage::Build, Some(first)));

        let mut wave = release.waves[0].clone();
        assert_eq!((wave.status, wave.started_at), (WaveStatus::Pending, None));
        assert!(wave.begin_deploy(first));
        assert!(!wave.begin_deploy(later), "a retry finds it begun");
        assert_eq!((wave.status, wave.started_at), (WaveStatus::Deploying, Some(first)));
    }

    #[test]
    fn idempotency_key_names_service_commit_and_trigger() {
        let signal = Signal {
            service: "payments-api".into(),
            environment: None,
            sha: Some("abc123".into()),
            branch: None,
            trigger: Trigger::new(TriggerKind::Merge, "pr-42".into(), None),
            changed_at: None,
        };
        assert_eq!(signal.idempotency_key(), "payments-api#abc123#merge:pr-42");
    }

    #[test]
    fn generated_ids_are_unique_and_carry_the_service() {
        let now = Utc::now();
        let a = ReleaseId::generate("web", now);
        let b = ReleaseId::generate("web", now);
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("rel-web-"));
    }
}

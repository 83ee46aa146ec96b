//! The ports: what the handlers need from the outside world. Adapters implement
//! them (SQLite and DynamoDB stores; command, HTTP and Slack providers; AWS
//! services), and each port has a contract suite every implementation passes.

use crate::catalog::{Diagnostic, GateSpec, ProviderBlock, ServiceEntry};
use crate::error::Cause;
pub use crate::release::RunHandle;
use crate::release::{Artifact, LockInfo, LockKey, Release, ReleaseId, Rollup, RollupKey, StageEvent};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

// ---------------------------------------------------------------- store

/// Every port error is a message saying what was being done, what failed and what was expected,
/// plus the lower-level error behind it when there is one (`cause`, the error's `source`):
/// callers act on the variant, people read the chain ([`crate::error::chain_text`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing store did not answer or throttled: worth retrying.
    #[error("release store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The store refused the request (access denied, a validation error, a missing table):
    /// retrying will not help until someone fixes the permissions or the configuration.
    #[error("release store refused the request: {message}")]
    Refused {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// A record could not be read back (schema drift, hand edits).
    #[error("release store holds an unreadable record: {message}")]
    Corrupt {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// A write's precondition failed (the record changed underneath, or does not exist).
    #[error("release store conflict: {message}")]
    Conflict {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl StoreError {
    pub fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError::Unavailable { message: message.into(), cause: None }
    }

    pub fn refused(message: impl Into<String>) -> StoreError {
        StoreError::Refused { message: message.into(), cause: None }
    }

    pub fn corrupt(message: impl Into<String>) -> StoreError {
        StoreError::Corrupt { message: message.into(), cause: None }
    }

    pub fn conflict(message: impl Into<String>) -> StoreError {
        StoreError::Conflict { message: message.into(), cause: None }
    }

    /// The same error, with `error` kept as the lower-level error behind it.
    pub fn caused_by(mut self, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        let (StoreError::Unavailable { cause, .. }
        | StoreError::Refused { cause, .. }
        | StoreError::Corrupt { cause, .. }
        | StoreError::Conflict { cause, .. }) = &mut self;
        *cause = Some(Cause::new(error));
        self
    }

    /// What was being done and what failed, without the variant's words or the cause.
    pub fn message(&self) -> &str {
        let (StoreError::Unavailable { message, .. }
        | StoreError::Refused { message, .. }
        | StoreError::Corrupt { message, .. }
        | StoreError::Conflict { message, .. }) = self;
        message
    }
}

/// The result of [`ReleaseStore::create_release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// This call created the release.
    New(ReleaseId),
    /// A release with the same idempotency key exists: nothing was written.
    Existing(ReleaseId),
}

/// Who runs a release's execution now, as [`ReleaseStore::claim_run`] recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOwner {
    /// Who claimed it, for people ("baton resume by ann, pid 4242 on build-1").
    pub owner: String,
    /// Greater than every earlier claim's: a writer holding an older fence lost the run.
    pub fence: u64,
    /// The owner's latest heartbeat.
    pub beat_at: DateTime<Utc>,
    /// A person's request that the owner stop and roll the release back (`baton cancel`).
    pub cancel: Option<String>,
}

/// The result of [`ReleaseStore::claim_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller owns the run now, under this fence.
    Claimed { fence: u64 },
    /// Another owner beats for it.
    OwnedBy(RunOwner),
}

/// The result of [`ReleaseStore::beat_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Still the owner; `cancel` is a person's request to stop, when one was made.
    Owned { cancel: Option<String> },
    /// Another claim took the run (this owner was silent too long), or it was ended: stop at once.
    Lost(Option<RunOwner>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    Acquired,
    /// Held by another release whose lease has not expired.
    HeldBy(LockInfo),
}

/// Where releases parked on a task token wait for a provider's event
/// ([`crate::waits`]): the store keeps them beside the releases.
#[async_trait]
pub trait WaitRegistry: Send + Sync {
    /// Records that `wait.release` waits on `wait.key` with `wait.token`, until `wait.until` at
    /// the latest. A release parks once per key: parking again (a new token after a timeout or
    /// a retry) replaces its earlier wait. Other releases parked on the same key stay.
    async fn park(&self, wait: &crate::waits::Parked) -> Result<(), StoreError>;
    /// Removes and answers every wait parked on `key`, atomically: of two takers of one key,
    /// each wait goes to one. Waits past their `until` at `now` are dropped, not answered (their
    /// tasks have timed out).
    async fn take(&self, key: &crate::waits::WaitKey, now: DateTime<Utc>) -> Result<Vec<crate::waits::Parked>, StoreError>;
}

/// Releases, their timelines, locks, idempotency keys and DORA rollups.
#[async_trait]
pub trait ReleaseStore: WaitRegistry {
    /// Stores a new release unless `idempotency_key` was used before, atomically.
    async fn create_release(&self, release: &Release, idempotency_key: &str) -> Result<Created, StoreError>;
    async fn get_release(&self, id: &ReleaseId) -> Result<Option<Release>, StoreError>;
    /// Keeps the catalog entry release `id` was registered with, unless one is kept already (the
    /// first stays: a retried registration after a catalog change still releases what it
    /// started with). Tasks read it back with [`kept_entry`](Self::kept_entry) rather than carry
    /// it in the execution's state, whose payloads Step Functions caps at 256 KiB.
    async fn keep_entry(&self, id: &ReleaseId, entry: &ServiceEntry) -> Result<(), StoreError>;
    /// The entry kept for release `id`; `None` when none was (a release registered before entries were kept).
    async fn kept_entry(&self, id: &ReleaseId) -> Result<Option<ServiceEntry>, StoreError>;
    /// Replaces an existing release record if it is still at `release.version` (the version it
    /// was read at), and returns its new version. `Conflict` when another write changed it since,
    /// or when it does not exist: [`crate::support::write_release`] reads again and retries.
    async fn put_release(&self, release: &Release) -> Result<u64, StoreError>;
    /// A service's releases, newest first; `environment` narrows them. With an environment the
    /// list reflects every write that returned before the call (a strongly consistent read), as
    /// the decisions that move production need (the rollback target, the supersede check, the
    /// DORA history); without one, it may lag the latest writes briefly (history for people).
    async fn list_releases(&self, service: &str, environment: Option<&str>, limit: usize) -> Result<Vec<Release>, StoreError>;
    /// A service's releases created at or after `since`, newest first; `environment` narrows them.
    /// Reports over a time window read this (a limit would cut a busy window short silently); it
    /// is as consistent as [`list_releases`](Self::list_releases) with the same `environment`.
    async fn releases_since(&self, service: &str, environment: Option<&str>, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError>;
    /// Every open release (not [terminal](crate::release::ReleaseStatus::is_terminal)), however
    /// old, and every release created at or after `since`, of any service and environment, in no
    /// particular order: what the Now view reads, in a few requests whatever the number of
    /// services. It may lag the latest writes briefly (a view for people).
    async fn open_or_created_since(&self, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError>;
    async fn append_event(&self, event: &StageEvent) -> Result<(), StoreError>;
    /// A release's timeline, oldest first.
    async fn events(&self, id: &ReleaseId) -> Result<Vec<StageEvent>, StoreError>;
    /// Takes the lock for `holder` if it is free, expired, or already held by `holder` (which renews the lease).
    async fn try_lock(&self, key: &LockKey, holder: &ReleaseId, now: DateTime<Utc>, lease: Duration) -> Result<LockOutcome, StoreError>;
    /// Frees the lock if `holder` holds it; returns whether it did.
    async fn unlock(&self, key: &LockKey, holder: &ReleaseId) -> Result<bool, StoreError>;
    async fn lock_holder(&self, key: &LockKey, now: DateTime<Utc>) -> Result<Option<LockInfo>, StoreError>;
    /// Adds `delta` to the day's counters (creating them at zero).
    async fn add_rollup(&self, key: &RollupKey, delta: &Rollup) -> Result<(), StoreError>;
    /// Writes the closed `release` as [`put_release`](Self::put_release) does (conditioned on
    /// `release.version`), adds `delta` to `rollup`'s counters and frees the service's lock
    /// (`LockKey::new(service, environment)`) when this release holds it, in one transaction: all
    /// land or none, so a close that is retried never loses a count nor adds it twice, and no
    /// crash between closing and unlocking keeps the lock. An all-zero `delta` adds nothing.
    /// Returns the record's new version.
    async fn close_release(&self, release: &Release, rollup: &RollupKey, delta: &Rollup) -> Result<u64, StoreError>;
    /// Asks release `id` to stop and roll back, for `reason`: sets its
    /// [`cancel_requested`](Release::cancel_requested) unless it was set before (the first
    /// reason stays), so that a writer holding an older read of the record cannot drop it.
    /// Returns false, writing nothing, when there is no such release or it is closed.
    async fn request_cancel(&self, id: &ReleaseId, reason: &str) -> Result<bool, StoreError>;
    /// Rollups for `from..=to`, by day, days without any omitted.
    async fn rollups(
        &self,
        service: &str,
        environment: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Rollup)>, StoreError>;

    // A release's run: which process executes it. Step Functions runs one execution at a time
    // on AWS; on a machine, `baton release`, `resume` and `cancel` claim the run here first, so
    // at most one process runs a release at any moment. `run` is the release's execution name.

    /// Makes `owner` the owner of `run`, with a new fence and its heartbeat at `now`, if nobody
    /// owns it, its owner's last beat is `stale_after` or more before `now` (the owner died), or
    /// `owner` owns it already (renewed, same fence). Atomic: of racing claims, one wins. A claim
    /// clears a pending cancel request: the new owner acts on what it was asked to do.
    async fn claim_run(&self, run: &str, owner: &str, now: DateTime<Utc>, stale_after: Duration) -> Result<Claim, StoreError>;
    /// The owner's heartbeat at `now`, if the run is still its under `fence`.
    async fn beat_run(&self, run: &str, fence: u64, now: DateTime<Utc>) -> Result<Beat, StoreError>;
    /// Who owns `run`, if anyone (a dead owner is still named: its beat says how long ago it was seen).
    async fn run_owner(&self, run: &str) -> Result<Option<RunOwner>, StoreError>;
    /// Asks the owner of `run` to stop, for `reason`; false when nobody owns it.
    async fn cancel_run(&self, run: &str, reason: &str) -> Result<bool, StoreError>;
    /// Gives `run` up, if still owned under `fence`; returns whether it did. The fence is kept:
    /// the next claim's is greater.
    async fn end_run(&self, run: &str, fence: u64) -> Result<bool, StoreError>;
}

// ---------------------------------------------------------------- catalog

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("service '{service}' is not in the catalog ({searched})")]
    NotFound { service: String, searched: String },
    #[error("the catalog entry is invalid:\n{}", format_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("catalog unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl CatalogError {
    pub fn unavailable(message: impl Into<String>) -> CatalogError {
        CatalogError::Unavailable { message: message.into(), cause: None }
    }

    /// The same error, with `error` kept as the lower-level error behind it: only an
    /// unavailable catalog has one (the others are Baton's own verdicts).
    pub fn caused_by(mut self, error: impl std::error::Error + Send + Sync + 'static) -> CatalogError {
        if let CatalogError::Unavailable { cause, .. } = &mut self {
            *cause = Some(Cause::new(error));
        }
        self
    }
}

fn format_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
}

/// Where load-catalog finds a service's definition.
#[async_trait]
pub trait CatalogSource: Send + Sync {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError>;
}

// ---------------------------------------------------------------- providers

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Network error, timeout, 5xx or 429: worth retrying.
    #[error("provider unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The provider refused the request (bad credentials, unknown pipeline, bad config): retrying will not help.
    #[error("provider rejected the request: {message}")]
    Rejected {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl ProviderError {
    pub fn unavailable(message: impl Into<String>) -> ProviderError {
        ProviderError::Unavailable { message: message.into(), cause: None }
    }

    pub fn rejected(message: impl Into<String>) -> ProviderError {
        ProviderError::Rejected { message: message.into(), cause: None }
    }

    /// The same error, with `error` kept as the lower-level error behind it.
    pub fn caused_by(mut self, error: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
        let (ProviderError::Unavailable { cause, .. } | ProviderError::Rejected { cause, .. }) = &mut self;
        *cause = Some(Cause::new(error));
        self
    }

    /// What was being done and what failed, without the variant's words or the cause.
    pub fn message(&self) -> &str {
        let (ProviderError::Unavailable { message, .. } | ProviderError::Rejected { message, .. }) = self;
        message
    }

    /// The provider's rate limit this error waits for, when that is what it is.
    pub fn rate_limit(&self) -> Option<&RateLimited> {
        let ProviderError::Unavailable { cause: Some(cause), .. } = self else { return None };
        cause.downcast_ref()
    }
}

/// The cause of an `Unavailable` error that is a provider's rate limit: nothing is sent to that
/// API with that credential before `until`, which is for the caller to wait out (a poll stays
/// pending; a start is retried by the definition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} takes no request with this credential before {until}")]
pub struct RateLimited {
    /// "GitHub", "Buildkite", "Argo CD".
    pub service: String,
    pub until: DateTime<Utc>,
    /// True when the provider answered with the limit just now; false when Baton held the
    /// request back because an earlier answer named a time not reached yet.
    pub answered: bool,
}

impl RateLimited {
    /// `until` for people (the timeline, Slack): to the second, rounded up, so the time shown
    /// is never before the end of the hold.
    pub fn until_text(&self) -> String {
        let whole = self.until.with_nanosecond(0).unwrap_or(self.until);
        let shown = if whole < self.until { whole + chrono::Duration::seconds(1) } else { whole };
        shown.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRequest {
    pub service: String,
    pub environment: String,
    pub release_id: ReleaseId,
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BuildProgress {
    Running,
    Succeeded { artifact: Artifact },
    Failed { reason: String },
}

/// What a poll of a build says: how it is going, and when it began to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildPoll {
    pub progress: BuildProgress,
    /// When the build left the provider's queue and began to run, from the provider's own
    /// field; `None` while it waits, or when the provider does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// The run a poll of an unlocated handle ([`RunHandle::located`]) found: the build the
    /// release follows from then on. `None` when the handle already named its run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunHandle>,
}

/// A poll that knows no start time: the build waits in the provider's queue, or was never found.
impl From<BuildProgress> for BuildPoll {
    fn from(progress: BuildProgress) -> BuildPoll {
        BuildPoll { progress, started_at: None, run: None }
    }
}

#[async_trait]
pub trait BuildProvider: Send + Sync {
    /// Asks the provider for a build. It must carry the release's id where [`find`](Self::find)
    /// can see it (a dispatch input, build metadata, an environment variable, an idempotency
    /// token): a request whose answer is lost may still have created the build.
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError>;
    /// The build this release already asked for (at or after `since`, Baton's clock), if the
    /// provider shows one: trigger-build asks before sending a request again after one whose
    /// answer never came, so a release gets one build whatever the network does.
    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError>;
    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError>;
    /// Stops the run if it is still going; a run that already finished is not an error.
    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError>;
    /// The key the provider's events name `run` by, which the build parks on: by default the
    /// run's id. `None` when no event ever names it (a local command): the build is polled.
    fn wait_key(&self, run: &RunHandle) -> Option<crate::waits::WaitKey> {
        Some(crate::waits::WaitKey::of_run(crate::waits::WaitKind::Build, run))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub service: String,
    pub environment: String,
    pub release_id: ReleaseId,
    pub wave: String,
    pub target: String,
    /// What to deploy. On a rollback it is the previous artifact; when nothing was live
    /// before this release its `reference` is empty, meaning "remove what this release put there".
    pub artifact: Artifact,
    /// True when this deploy puts back the previous artifact.
    pub rollback: bool,
    /// On a rollback, the forward run it undoes (when that one started): providers keep in its
    /// state what they replaced (an ECS task definition, a Lambda version) and put that back. A
    /// forward run may still be going (its task was killed mid-wave): the rollback must end it
    /// or supersede it, never race it (a command is killed; ECS, Lambda and Argo CD apply the
    /// latest request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<RunHandle>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum DeployProgress {
    Running,
    Succeeded,
    Failed { reason: String },
}

#[async_trait]
pub trait Deployer: Send + Sync {
    /// Whether what it deploys names the artifact's commit (an Argo CD sync to `{sha}`): such a
    /// deployer cannot deploy an artifact whose commit is unknown
    /// ([`rules::revision::deployable`](crate::rules::revision::deployable)).
    fn takes_revision(&self) -> bool {
        false
    }
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError>;
    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError>;
    /// The key the provider's events name `run` by, which a wave parks on: by default the run's
    /// id ([`WaitKey::of_run`](crate::waits::WaitKey::of_run)). `None` when no event names it
    /// (a deploy that is over when `start` answers, a handle an older Baton kept): the wave
    /// polls it instead of parking.
    fn wait_key(&self, run: &RunHandle) -> Option<crate::waits::WaitKey> {
        Some(crate::waits::WaitKey::of_run(crate::waits::WaitKind::Rollout, run))
    }
}

/// What a gate is asked about: one sample of one wave's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRequest {
    pub service: String,
    pub environment: String,
    pub release_id: ReleaseId,
    pub wave: String,
    pub targets: Vec<String>,
    pub artifact: Artifact,
}

/// One sample of a gate, with what it saw (alarm names and states, monitor ids and states, an
/// HTTP status), which goes to the release record and the team's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reading", rename_all = "kebab-case")]
pub enum GateReading {
    Healthy { saw: String },
    Unhealthy { saw: String },
}

/// A health gate, sampled through a wave's bake.
#[async_trait]
pub trait HealthGate: Send + Sync {
    /// What the gate watches, for people ("CloudWatch alarms web-*").
    fn describe(&self) -> String;
    async fn sample(&self, request: &HealthRequest) -> Result<GateReading, ProviderError>;
    /// The keys a bake can park on instead of sampling this gate: one per thing whose provider
    /// event says it turned bad (an alarm, a monitor), computed by the function the provider's
    /// receiver uses too. `None` (the default) when the gate can only be sampled: what it
    /// watches sends no event Baton receives, or is a selection (a prefix, a query) whose
    /// members may change during the bake.
    async fn bake_keys(&self) -> Result<Option<Vec<crate::waits::WaitKey>>, ProviderError> {
        Ok(None)
    }
}

/// What happened, for the people watching the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub release: Release,
    /// One-line summary of the current stage ("Deploying wave canary (1/3)").
    pub headline: String,
    /// When set, someone must act: notifiers that can thread post this as a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_needed: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Stable name, the key of this notifier's state in [`Release::notifier_state`].
    fn name(&self) -> &str;
    /// Sends or updates the release's message. `state` is what the previous call returned for
    /// this release; the result replaces it.
    async fn notify(
        &self,
        notification: &Notification,
        state: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ProviderError>;
}

/// What happened to a release that its telemetry exporters hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum TelemetryKind {
    /// The release record was closed; `figures` is what it added to the day's DORA counters
    /// (a deployment, a failed one, its lead time and time to restore).
    ReleaseFinished { figures: Rollup },
    /// The CI build Baton followed ended (the record's `build` says how).
    BuildFinished,
    /// The wave's first target began deploying.
    WaveStarted { wave: String },
    /// The wave's gates held through its bake.
    WaveHealthy { wave: String },
    /// The wave's targets were put back on the previous artifact.
    WaveRolledBack { wave: String },
}

impl TelemetryKind {
    /// "release finished", "wave canary started": for the timeline and error messages.
    pub fn describe(&self) -> String {
        match self {
            TelemetryKind::ReleaseFinished { .. } => "release finished".into(),
            TelemetryKind::BuildFinished => "build finished".into(),
            TelemetryKind::WaveStarted { wave } => format!("wave {wave} started"),
            TelemetryKind::WaveHealthy { wave } => format!("wave {wave} healthy"),
            TelemetryKind::WaveRolledBack { wave } => format!("wave {wave} rolled back"),
        }
    }

    pub fn wave(&self) -> Option<&str> {
        match self {
            TelemetryKind::WaveStarted { wave } | TelemetryKind::WaveHealthy { wave } | TelemetryKind::WaveRolledBack { wave } => {
                Some(wave)
            }
            TelemetryKind::ReleaseFinished { .. } | TelemetryKind::BuildFinished => None,
        }
    }
}

/// One event for the exporters: what happened, the release record as it stands after it, and
/// the catalog's facts exporters tag it with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryEvent {
    pub kind: TelemetryKind,
    pub release: Release,
    /// The service's team (the Baton block's, else the catalog's).
    pub team: Option<String>,
    /// The service's source repository as a URL, when the catalog names one.
    pub repository_url: Option<String>,
    pub at: DateTime<Utc>,
}

/// Sends a release's events to a telemetry backend (Datadog, CloudWatch). An export is best
/// effort: its caller bounds it in time and records a failure on the release's timeline, and a
/// release never waits on, nor fails for, an exporter.
#[async_trait]
pub trait TelemetryExporter: Send + Sync {
    /// Names the exporter on the timeline ("datadog", "cloudwatch-emf").
    fn name(&self) -> &str;
    /// Delivers what this exporter sends for `event` (often nothing): at most a couple of
    /// attempts, each with a short timeout.
    async fn export(&self, event: &TelemetryEvent) -> Result<(), ProviderError>;
}

// ---------------------------------------------------------------- change history

/// A commit, as the repository's history tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    /// When the change was written (git's author date): kept when the commit is rebased,
    /// cherry-picked or squashed locally.
    pub authored_at: DateTime<Utc>,
    /// When the commit was made where it is now (git's committer date): a rebase or a hosted
    /// squash merge sets it to that moment.
    pub committed_at: DateTime<Utc>,
    /// How many parents it has: more than one is a merge commit.
    pub parents: usize,
}

/// What [`ChangeHistory::compare`] found between a base and a head commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// `head` descends from `base` (or is it): the commits reachable from `head` and not from
    /// `base`, oldest first, at most [`MAX_COMPARED`] of them; `total` is how many the range holds.
    Carried { commits: Vec<Commit>, total: u64 },
    /// `base` is not in `head`'s history (a force push dropped it, or the branch diverged) or not
    /// in the repository at all; the text says which.
    Unrelated(String),
}

/// The most commits one comparison reads (the oldest of the range first): a release carrying
/// more records how many it carried and measures these.
pub const MAX_COMPARED: usize = 1000;

/// A repository's history, read to find the commits a release carried (their lead times):
/// `git` in the service's checkout locally, the repository provider's API on AWS.
#[async_trait]
pub trait ChangeHistory: Send + Sync {
    /// What it reads, for the timeline ("git in /src/web", "GitHub acme/web").
    fn describe(&self) -> String;
    async fn compare(&self, base: &str, head: &str) -> Result<Compared, ProviderError>;
    /// One commit; `None` when the repository has no such commit.
    async fn commit(&self, sha: &str) -> Result<Option<Commit>, ProviderError>;
}

/// Where a release's execution history comes from, in the shape Step Functions'
/// GetExecutionHistory gives it (the embedded executor's journal keeps that shape too): the
/// dashboard's release pages, and the cost record-metrics puts on a record on AWS.
#[async_trait]
pub trait ExecutionHistories: Send + Sync {
    /// The first `limit` events of `execution` (the release record's name for it, or its ARN),
    /// oldest first; empty when none are kept.
    async fn history(&self, execution: &str, limit: usize) -> Result<Vec<serde_json::Value>, StoreError>;
}

/// Builds provider adapters from catalog specs. The handlers are generic over it, so the
/// embedded run, the Lambdas and the tests each pass their own.
pub trait Providers: Send + Sync {
    fn build(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError>;
    fn deployer(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError>;
    fn gate(&self, spec: &GateSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError>;
    /// Every notifier of the entry (its `notify` blocks), the always-on ones included.
    fn notifiers(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError>;
    /// Every telemetry exporter of the entry (its `telemetry` blocks); none unless a factory
    /// knows exporters.
    fn exporters(&self, _entry: &ServiceEntry) -> Result<Vec<Box<dyn TelemetryExporter>>, ProviderError> {
        Ok(Vec::new())
    }
    /// Where the entry's commits can be read (its lead times); `None` when nowhere Baton knows
    /// how to read with the entry's credentials.
    fn changes(&self, _entry: &ServiceEntry) -> Result<Option<Box<dyn ChangeHistory>>, ProviderError> {
        Ok(None)
    }
}

// ---------------------------------------------------------------- approvals

/// Answers a task parked on `.waitForTaskToken` (Step Functions' `SendTaskSuccess` and
/// `SendTaskFailure`, or the embedded executor's).
#[async_trait]
pub trait TaskTokens: Send + Sync {
    async fn succeed(&self, token: &crate::release::TaskToken, output: &serde_json::Value) -> Result<(), ProviderError>;
    async fn fail(&self, token: &crate::release::TaskToken, error: crate::error::ErrorName, cause: &str) -> Result<(), ProviderError>;
}

/// A request from outside (a provider's callback, Slack's interactivity request) as it arrived:
/// its path (as sent, percent-encoding kept; empty where the door does not pass it on: Slack's
/// requests are read by their signed body alone), its headers (names lower-case) and its raw body,
/// which signatures cover byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl InboundRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// A provider's signed callback (a CI system's webhook, an Argo CD or Datadog notification, the
/// `webhook` deploy provider's callback): checks who sent it under the provider's own signature
/// scheme, and reads the events it carries.
pub trait EventReceiver: Send + Sync {
    /// The provider whose callbacks this receives (the catalog's provider name).
    fn provider(&self) -> &str;
    /// The events of a verified request (none when it carries nothing a release waits for). An
    /// unsigned, forged or stale request is refused before its body is read as anything.
    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<crate::waits::ProviderEvent>, InboundRefused>;
}

/// What a verified request asks: a person's answer to a release's pending approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub release: ReleaseId,
    pub verdict: crate::release::Verdict,
    pub person: crate::rules::approval::Person,
    pub reason: Option<String>,
    /// Where to answer the person later (Slack's `response_url`), when the channel has one.
    pub respond_to: Option<String>,
}

/// Why an inbound request is refused before it can change anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundRefused {
    /// No signature, a wrong one, a stale timestamp or a replay: the sender is not who it claims.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Signed, but not a request this port understands.
    #[error("malformed: {0}")]
    Malformed(String),
}

/// What a chat tool knows of the people pressing its buttons: who is in a user group (Slack's
/// `S…` ids), for approvers that name one, and a person's email, for four-eyes against the
/// release's author. An answer it cannot get is an error, never an empty group or no email: a
/// press it cannot judge is refused.
#[async_trait]
pub trait ChatDirectory: Send + Sync {
    async fn members(&self, group: &str) -> Result<Vec<String>, ProviderError>;
    /// The person's email, `None` when their profile shows none.
    async fn email(&self, person: &str) -> Result<Option<String>, ProviderError>;
}

/// Verified inbound interactions: checks a request's signature, freshness and uniqueness, then
/// reads what it asks. Slack's signing secret today; another chat tool plugs in beside it.
pub trait InboundInteractions: Send + Sync {
    fn verify(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Interaction, InboundRefused>;
}

/// Resolves a secret reference to its value. Values never reach a log line.
#[async_trait]
pub trait SecretResolver: Send + Sync {
    async fn resolve(&self, secret: &crate::catalog::SecretRef) -> Result<String, ProviderError>;
}

/// Wall-clock time, injectable so lock leases and timelines can be tested.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_s_end_is_shown_to_the_second_never_before_it() {
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        let limit = |until: &str| RateLimited { service: "GitHub".into(), until: at(until), answered: true };
        assert_eq!(limit("2026-01-01T13:00:00Z").until_text(), "2026-01-01T13:00:00Z");
        assert_eq!(limit("2026-01-01T13:00:00.001Z").until_text(), "2026-01-01T13:00:01Z");
        assert_eq!(limit("2026-01-01T23:59:59.75Z").until_text(), "2026-01-02T00:00:00Z");
    }
}

//! What every handler does the same way: reach its ports, read and write the release
//! record, keep the lock's lease fresh, and turn port errors into the error vocabulary.

use crate::catalog::ServiceEntry;
use crate::error::{ErrorName, TaskError, chain_text};
use crate::flow::{CaughtError, Outcome, OutcomeStatus, ReleaseContext};
use crate::ports::{CatalogError, CatalogSource, Claim, Clock, ProviderError, Providers, ReleaseStore, StoreError};
use crate::release::{EventKind, LockKey, Release, ReleaseId, ReleaseStatus, RollupKey, Stage, StageEvent};
use crate::retry::{Backoff, retry};
use crate::rules::dora;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a lock is held without being renewed. Every task that moves the release forward
/// renews it, polls and health samples included, and none is further apart than a few minutes
/// (the definition's longest retry delay is 2 minutes, a health interval at most half the lease),
/// so only a release whose executor died lets it lapse, and the next release waits minutes for it,
/// not hours.
pub const LOCK_LEASE: Duration = Duration::from_secs(15 * 60);

/// How often a local run renews its claim on its release's run ([`ReleaseStore::beat_run`]).
pub const RUN_HEARTBEAT: Duration = Duration::from_millis(500);

/// A run silent for this long is taken as dead: a few heartbeats, so a busy machine's late beat is
/// no false alarm, short enough that whoever waits for it after a crash waits seconds.
pub const RUN_SILENT_AFTER: Duration = Duration::from_secs(3);

/// The ports a handler reaches, built once per process (per Lambda cold start).
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn ReleaseStore>,
    pub catalog: Arc<dyn CatalogSource>,
    pub providers: Arc<dyn Providers>,
    pub clock: Arc<dyn Clock>,
}

tokio::task_local! {
    static INVOCATION_DEADLINE: tokio::time::Instant;
}

/// Runs `invocation` with `deadline` as the instant its runtime ends it (Lambda's context
/// deadline), so a handler that starts many things can stop starting before it is killed.
pub async fn with_invocation_deadline<F: Future>(deadline: tokio::time::Instant, invocation: F) -> F::Output {
    INVOCATION_DEADLINE.scope(deadline, invocation).await
}

/// The deadline of the invocation running this task, if its runtime has one (the embedded
/// executor's in-process calls have none).
pub fn invocation_deadline() -> Option<tokio::time::Instant> {
    INVOCATION_DEADLINE.try_with(|deadline| *deadline).ok()
}

/// How many times [`write_release`] reads and writes before it gives up on a record that keeps
/// changing. Parallel writers each succeed in turn, so this bounds the writers of one record.
const WRITE_ATTEMPTS: u32 = 12;
/// The first retry of a conflicting write waits up to this long, each further one up to twice
/// as long as the one before (at most [`WRITE_BACKOFF_CAP`]); the wait is drawn at random so
/// that writers which collided once do not collide again.
const WRITE_BACKOFF: Duration = Duration::from_millis(10);
const WRITE_BACKOFF_CAP: Duration = Duration::from_millis(400);

/// Reads release `id` and hands it to `write`, which changes it and writes it back through a
/// store call conditioned on the version it read (`put_release`, `close_release`). When another
/// writer came first (`Conflict`) it reads the record again and retries, with a short jittered
/// backoff, up to [`WRITE_ATTEMPTS`] times: parallel writers never overwrite each other, and each
/// change applies to what the others wrote. `write` runs once per attempt, so it must not have
/// effects outside the store.
///
/// (`write` returns a future rather than being an async closure: the futures of async closures
/// cannot be proven `Send`, and the handlers' must be.)
pub async fn write_release<T, Fut>(store: &dyn ReleaseStore, id: &ReleaseId, write: impl Fn(Release) -> Fut) -> Result<T, TaskError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let write = &write;
    let backoff = Backoff::doubling(WRITE_BACKOFF, WRITE_BACKOFF_CAP).attempts(WRITE_ATTEMPTS).jittered();
    let attempt = |_| async move {
        let release = store.get_release(id).await?.ok_or(WriteFailed::NoRecord)?;
        Ok(write(release).await?)
    };
    let is_conflict = |failed: &WriteFailed| matches!(failed, WriteFailed::Store(StoreError::Conflict { .. }));
    retry(backoff, attempt, is_conflict).await.map_err(|failed| match failed {
        // Contention, not a bug: the definition retries the task.
        WriteFailed::Store(StoreError::Conflict { message: cause, .. }) => TaskError::new(
            ErrorName::StoreUnavailable,
            format!("release {id} kept changing under concurrent writes ({WRITE_ATTEMPTS} attempts): {cause}"),
        ),
        WriteFailed::Store(err) => TaskError::from(err),
        WriteFailed::NoRecord => no_record(id),
    })
}

/// Why one attempt of [`write_release`] failed.
enum WriteFailed {
    Store(StoreError),
    NoRecord,
}

impl From<StoreError> for WriteFailed {
    fn from(err: StoreError) -> WriteFailed {
        WriteFailed::Store(err)
    }
}

fn no_record(id: &ReleaseId) -> TaskError {
    TaskError::new(ErrorName::Internal, format!("release {id} has no record in the store"))
}

/// Reads release `id`, applies `change` and writes the record back when `change` changed it,
/// retrying on conflict as [`write_release`] does.
pub async fn update_release(store: &dyn ReleaseStore, id: &ReleaseId, change: impl Fn(&mut Release)) -> Result<Release, TaskError> {
    let change = &change;
    write_release(store, id, move |mut release| async move {
        let read = release.clone();
        change(&mut release);
        // Parallel tasks often make the same change (the first target of a wave marks it begun):
        // the ones that find it made write nothing.
        if release != read {
            release.version = store.put_release(&release).await?;
        }
        Ok(release)
    })
    .await
}

/// How far back closing a release looks among the service's releases for the previous
/// deployment (its time to restore).
const CLOSE_HISTORY: usize = 50;

/// A release's status after [`close_release`], and whether that call closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub status: ReleaseStatus,
    /// False when an earlier call had closed it (a retry).
    pub now: bool,
}

/// Closes release `id` as `outcome` says and adds it to the DORA rollup of `now`'s day, in one
/// store transaction ([`ReleaseStore::close_release`]). A release already closed is left as it
/// is, so retrying after a close that failed counts it once, and after a close that landed but
/// whose answer was lost, adds nothing.
pub async fn close_release(store: &dyn ReleaseStore, id: &ReleaseId, outcome: &Outcome, now: DateTime<Utc>) -> Result<Closed, TaskError> {
    write_release(store, id, move |mut release| async move {
        if release.status.is_terminal() {
            return Ok(Closed { status: release.status, now: false });
        }
        dora::close(&mut release, outcome, now);
        let history = store.list_releases(&release.service, Some(&release.environment), CLOSE_HISTORY).await?;
        let delta = dora::rollup_delta(&release, &history);
        let day = RollupKey { service: release.service.clone(), environment: release.environment.clone(), day: now.date_naive() };
        store.close_release(&release, &day, &delta).await?;
        Ok(Closed { status: release.status, now: true })
    })
    .await
}

/// `Baton.Interrupted` when a person asked `release` to stop and roll back
/// ([`Release::cancel_requested`]): the definition catches it as any failure of the stage.
pub fn stop_if_cancelled(release: &Release) -> Result<(), TaskError> {
    match &release.cancel_requested {
        Some(reason) => Err(TaskError::new(ErrorName::Interrupted, format!("release {} was cancelled: {reason}", release.id))),
        None => Ok(()),
    }
}

/// What [`ask_to_cancel`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelAsked {
    /// The record carries the request now (the first one's reason, if it was asked before).
    Asked(Box<Release>),
    Missing,
    /// It had closed, with this status: nothing to cancel.
    Closed(ReleaseStatus),
}

/// `person` asks release `id` to stop and roll back, for `reason`, wherever it runs: the request
/// goes on its record, where its next task finds it and raises `Baton.Interrupted` (the
/// definition rolls back, cancels a build it follows, notifies and unlocks), and in its timeline.
/// What `baton cancel --remote` does; one UpdateItem by hand does the first half (docs/aws.md).
pub async fn ask_to_cancel(
    store: &dyn ReleaseStore,
    id: &ReleaseId,
    person: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<CancelAsked, StoreError> {
    let why = format!("{person} cancelled the release: {reason}");
    if !store.request_cancel(id, &why).await? {
        return Ok(match store.get_release(id).await? {
            Some(release) => CancelAsked::Closed(release.status),
            None => CancelAsked::Missing,
        });
    }
    let release =
        store.get_release(id).await?.ok_or_else(|| StoreError::corrupt(format!("release {id} vanished after its cancel request")))?;
    let event = StageEvent {
        release_id: id.clone(),
        at: now,
        stage: release.stage,
        wave: None,
        target: None,
        kind: EventKind::Cancelled,
        message: why,
    };
    store.append_event(&event).await?;
    Ok(CancelAsked::Asked(Box::new(release)))
}

/// Closes release `holder`, the holder of a lock `taker` waits for, when the process that ran it
/// stopped beating ([`RUN_SILENT_AFTER`]): its lease would keep every newer release waiting for
/// minutes, and running it on later would deploy its older commit over newer work. The run is
/// claimed first, so a `baton resume` of it at the same moment either wins (and this waits on)
/// or finds it closed. The close frees the lock. Returns whether it closed it. A holder that no
/// process ever claimed (one running on AWS) is never taken for dead.
pub async fn close_dead_holder(
    store: &dyn ReleaseStore,
    holder: &ReleaseId,
    taker: &ReleaseId,
    now: DateTime<Utc>,
) -> Result<bool, TaskError> {
    let Some(release) = store.get_release(holder).await? else { return Ok(false) };
    let Some(run) = release.execution.as_deref() else { return Ok(false) };
    let Some(owner) = store.run_owner(run).await? else { return Ok(false) };
    let silent_after = TimeDelta::from_std(RUN_SILENT_AFTER).unwrap_or(TimeDelta::MAX);
    if release.status.is_terminal() || now - owner.beat_at < silent_after {
        return Ok(false);
    }
    let Claim::Claimed { fence } =
        store.claim_run(run, &format!("release {taker}, closing a dead lock holder"), now, RUN_SILENT_AFTER).await?
    else {
        return Ok(false);
    };
    let why = format!(
        "its process ({}) stopped beating at {}; the newer release {taker} takes the service over (what it deployed stays until {taker} deploys over it)",
        owner.owner,
        owner.beat_at.to_rfc3339()
    );
    let closed = close_interrupted(store, &release, why, now).await;
    let ended = store.end_run(run, fence).await;
    let closed = closed?;
    ended?;
    Ok(closed)
}

/// Closes `release`, whose execution is gone, as failed with `Baton.Interrupted` and `why` (in
/// its failure and its timeline). Returns whether this call closed it.
async fn close_interrupted(store: &dyn ReleaseStore, release: &Release, why: String, now: DateTime<Utc>) -> Result<bool, TaskError> {
    let outcome = Outcome {
        status: OutcomeStatus::Failed,
        error: Some(CaughtError { error: ErrorName::Interrupted.as_str().to_owned(), cause: why.clone() }),
        action_needed: None,
    };
    let closed = close_release(store, &release.id, &outcome, now).await?;
    if closed.now {
        let event = StageEvent {
            release_id: release.id.clone(),
            at: now,
            stage: release.stage,
            wave: None,
            target: None,
            kind: EventKind::Interrupted,
            message: why,
        };
        store.append_event(&event).await?;
    }
    Ok(closed.now)
}

/// Closes `lapsed`, a release still `running` whose lock `holder` took after its lease lapsed
/// ([`crate::rules::queue::lapsed_holders`]): its execution ended without closing it (on AWS, a
/// StopExecution). Returns whether this call closed it.
pub async fn close_lapsed_holder(
    store: &dyn ReleaseStore,
    lapsed: &Release,
    holder: &ReleaseId,
    now: DateTime<Utc>,
) -> Result<bool, TaskError> {
    let why = format!(
        "its execution ended without closing it (stopped, timed out or gone) and let its lock lapse; the newer release {holder} \
         took the service over (what it deployed stays until {holder} deploys over it)"
    );
    close_interrupted(store, lapsed, why, now).await
}

/// Frees the lock of `key` whoever holds it, for a person settling a release whose executor
/// died (its lease would free the lock anyway, within [`LOCK_LEASE`]); the holder's timeline
/// says who did it and why. A holder that is alive after all takes the lock back at its next
/// step if no other release took it meanwhile, and stops if one did. Returns the holder it freed.
pub async fn unlock_by_hand(
    store: &dyn ReleaseStore,
    key: &LockKey,
    person: &str,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<crate::release::LockInfo>, StoreError> {
    let Some(held) = store.lock_holder(key, now).await? else { return Ok(None) };
    if !store.unlock(key, &held.holder).await? {
        return Ok(None); // freed between the two calls
    }
    let stage = store.get_release(&held.holder).await?.map(|release| release.stage).unwrap_or(Stage::Deploy);
    let message = format!("{person} released the lock by hand: {reason}");
    let event =
        StageEvent { release_id: held.holder.clone(), at: now, stage, wave: None, target: None, kind: EventKind::Unlocked, message };
    store.append_event(&event).await?;
    Ok(Some(held))
}

impl From<StoreError> for TaskError {
    fn from(err: StoreError) -> TaskError {
        let name = match err {
            StoreError::Unavailable { .. } => ErrorName::StoreUnavailable,
            StoreError::Refused { .. } | StoreError::Corrupt { .. } | StoreError::Conflict { .. } => ErrorName::Internal,
        };
        TaskError::new(name, chain_text(&err))
    }
}

impl From<CatalogError> for TaskError {
    fn from(err: CatalogError) -> TaskError {
        let name = match err {
            CatalogError::Unavailable { .. } => ErrorName::ProviderUnavailable,
            CatalogError::NotFound { .. } | CatalogError::Invalid(_) => ErrorName::CatalogInvalid,
        };
        TaskError::new(name, chain_text(&err))
    }
}

/// A provider error, with `permanent` naming the failure a refusal means for this stage.
pub fn provider_error(err: ProviderError, permanent: ErrorName) -> TaskError {
    let name = match err {
        ProviderError::Unavailable { .. } => ErrorName::ProviderUnavailable,
        ProviderError::Rejected { .. } => permanent,
    };
    TaskError::new(name, chain_text(&err))
}

/// Decodes a JSON payload, runs the handler and encodes its answer: the one shape the
/// Lambda runtime and the embedded executor both call.
pub async fn call_json<Req, Res, F, Fut>(handler: &str, payload: serde_json::Value, run: F) -> Result<serde_json::Value, TaskError>
where
    Req: DeserializeOwned,
    Res: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Res, TaskError>>,
{
    let request = crate::flow::parse_request::<Req>(handler, payload)?;
    let response = run(request).await?;
    serde_json::to_value(response).map_err(|err| TaskError::new(ErrorName::Internal, format!("{handler}: cannot encode the answer: {err}")))
}

impl Ports {
    pub async fn release(&self, context: &ReleaseContext) -> Result<Release, TaskError> {
        self.store.get_release(&context.id).await?.ok_or_else(|| no_record(&context.id))
    }

    /// The catalog entry the release was registered with, as kept in the store. A release
    /// registered before entries were kept (an execution that ran across the upgrade) falls
    /// back to the catalog's current entry.
    pub async fn entry(&self, context: &ReleaseContext) -> Result<ServiceEntry, TaskError> {
        if let Some(entry) = self.store.kept_entry(&context.id).await? {
            return Ok(entry);
        }
        Ok(self.catalog.service(&context.service).await?)
    }

    /// Reads the record, applies `change`, writes it back; see [`update_release`].
    pub async fn update_release(&self, context: &ReleaseContext, change: impl Fn(&mut Release)) -> Result<Release, TaskError> {
        update_release(self.store.as_ref(), &context.id, change).await
    }

    pub async fn record_event(
        &self,
        context: &ReleaseContext,
        stage: Stage,
        wave: Option<&str>,
        kind: EventKind,
        message: impl Into<String>,
    ) -> Result<(), TaskError> {
        self.append(context, stage, wave, None, kind, message.into()).await
    }

    /// [`Self::record_event`], unless the timeline already has an event of `kind` saying
    /// `message`: for news that more than one task may tell (a task given up on is told by the
    /// state its Catch leads to, and by record-metrics should that state not have), and that a
    /// retried task tells again.
    pub async fn record_event_once(
        &self,
        context: &ReleaseContext,
        stage: Stage,
        kind: EventKind,
        message: String,
    ) -> Result<(), TaskError> {
        if self.store.events(&context.id).await?.iter().any(|event| event.kind == kind && event.message == message) {
            return Ok(());
        }
        self.record_event(context, stage, None, kind, message).await
    }

    /// An event about one deploy target of a wave.
    pub async fn record_target_event(
        &self,
        context: &ReleaseContext,
        stage: Stage,
        wave: &str,
        target: &str,
        kind: EventKind,
        message: impl Into<String>,
    ) -> Result<(), TaskError> {
        self.append(context, stage, Some(wave), Some(target), kind, message.into()).await
    }

    async fn append(
        &self,
        context: &ReleaseContext,
        stage: Stage,
        wave: Option<&str>,
        target: Option<&str>,
        kind: EventKind,
        message: String,
    ) -> Result<(), TaskError> {
        let event = StageEvent {
            release_id: context.id.clone(),
            at: self.clock.now(),
            stage,
            wave: wave.map(str::to_owned),
            target: target.map(str::to_owned),
            kind,
            message,
        };
        self.store.append_event(&event).await?;
        Ok(())
    }

    /// Reads the record and raises `Baton.Interrupted` if a person asked the release to stop
    /// ([`stop_if_cancelled`]). Every task that moves a release forward calls it first (or reads
    /// the record and calls [`stop_if_cancelled`]); the definition then rolls the release back.
    pub async fn stop_if_cancelled(&self, context: &ReleaseContext) -> Result<Release, TaskError> {
        let release = self.release(context).await?;
        stop_if_cancelled(&release)?;
        Ok(release)
    }

    /// Renews this release's lock; fails if another release took it after the lease lapsed,
    /// because two releases must never deploy one service at once.
    pub async fn renew_lock(&self, context: &ReleaseContext) -> Result<(), TaskError> {
        self.renew_lock_for(context, LOCK_LEASE).await
    }

    /// [`Self::renew_lock`] for `lease` (a release that waits out a freeze holds it that long).
    pub async fn renew_lock_for(&self, context: &ReleaseContext, lease: Duration) -> Result<(), TaskError> {
        let key = LockKey::new(&context.service, &context.environment);
        match self.store.try_lock(&key, &context.id, self.clock.now(), lease).await? {
            crate::ports::LockOutcome::Acquired => Ok(()),
            crate::ports::LockOutcome::HeldBy(info) => Err(TaskError::new(
                ErrorName::Internal,
                format!(
                    "release {} lost its lock to {} (the lease lapsed); stopping so two releases never deploy at once",
                    context.id, info.holder
                ),
            )),
        }
    }
}

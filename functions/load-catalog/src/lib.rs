//! load-catalog: the first and last task of every release.
//!
//! `register` turns whatever started the execution into a [`Signal`], loads and
//! validates the service's catalog entry and records the release (idempotently);
//! `acquire` takes the service's lock or says to wait or stop; `unlock` gives it back.

mod signal;

use baton_domain::catalog::ApprovalSpec;
use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::{Done, FreezeVerdict, LoadCatalogRequest, Registered, ReleaseContext};
use baton_domain::ports::CatalogError;
use baton_domain::ports::{Created, LockOutcome};
use baton_domain::release::Signal;
use baton_domain::release::TriggerKind;
use baton_domain::release::{EventKind, LockInfo, LockKey, Refused, Release, ReleaseId, Stage};
use baton_domain::rules::freeze::{self, Occurrence};
use baton_domain::rules::plan::{self, Verdict};
use baton_domain::rules::{queue, rollback};
use baton_domain::support::{LOCK_LEASE, Ports, close_dead_holder, close_lapsed_holder};

use chrono::{DateTime, Utc};

pub use signal::normalise;

pub const NAME: &str = "load-catalog";

/// How far back the queue and the rollback target look among a service's releases.
const RECENT_RELEASES: usize = 50;

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    let request = baton_domain::flow::parse_request::<LoadCatalogRequest>(NAME, payload)?;
    let answer = match request {
        LoadCatalogRequest::Register { input, execution } => serde_json::to_value(register(ports, &input, &execution).await?),
        LoadCatalogRequest::Acquire { release, now } => serde_json::to_value(acquire(ports, &release, now).await?),
        LoadCatalogRequest::Unlock { release } => serde_json::to_value(unlock(ports, &release).await?),
    };
    answer.map_err(|err| TaskError::new(ErrorName::Internal, format!("{NAME}: cannot encode the answer: {err}")))
}

pub async fn register(ports: &Ports, input: &serde_json::Value, execution: &str) -> Result<Registered, TaskError> {
    let signal = normalise(input, execution)?;
    let entry = match ports.catalog.service(&signal.service).await {
        // Every merge on the bus is routed here: a repository outside the catalog is no error.
        Err(err @ CatalogError::NotFound { .. }) if signal.trigger.kind == TriggerKind::Merge => {
            return Err(TaskError::new(ErrorName::Ignored, err.to_string()));
        }
        entry => entry?,
    };
    // The organisation's default approval joins the entry the release keeps, so every task and
    // every approver reads the same gate.
    let mut entry = entry;
    let default = ApprovalSpec::organisation_default().map_err(|message| TaskError::new(ErrorName::CatalogInvalid, message))?;
    ApprovalSpec::apply_default(&mut entry.delivery, default.as_ref());
    let now = ports.clock.now();
    let admitted =
        plan::admit(&signal, &entry, ReleaseId::generate(&entry.name, now), execution, now).map_err(|refusal| match refusal {
            plan::Refusal::Invalid(message) => TaskError::new(ErrorName::InputInvalid, message),
            plan::Refusal::NotReleased(message) => TaskError::new(ErrorName::Ignored, message),
            plan::Refusal::CatalogInvalid(message) => TaskError::new(ErrorName::CatalogInvalid, message),
        })?;
    let release = admitted.release;
    match admitted.verdict {
        Verdict::Allowed => {}
        Verdict::Refused { reason } => return Err(TaskError::new(ErrorName::InputInvalid, reason)),
        Verdict::Skipped { window } => return Err(skip(ports, &signal, &release, &window).await?),
    }
    let mut waves = admitted.waves;
    match ports.store.create_release(&release, &signal.idempotency_key()).await? {
        Created::New(id) => {
            ports.store.keep_entry(&id, &entry).await?;
            let context = context_of(id, &release);
            let accepted = format!("{} signal {} accepted", signal.trigger.kind.as_str(), signal.trigger.id);
            ports.record_event(&context, Stage::Queued, None, EventKind::Queued, accepted).await?;
            tracing::info!(release = %context.id, service = %context.service, "release registered");
            Ok(Registered { release: context, waves, duplicate: false })
        }
        Created::Existing(id) => {
            let existing = ports.store.get_release(&id).await?.ok_or_else(|| {
                TaskError::new(ErrorName::Internal, format!("idempotency key points at release {id}, which has no record"))
            })?;
            // The same execution retrying registration is not a duplicate signal; its first
            // attempt may have stopped before keeping the entry. A kept one stays, and its waves
            // are the release's even if the catalog changed since.
            let duplicate = existing.execution.as_deref() != Some(execution);
            if duplicate {
                tracing::info!(release = %id, "duplicate signal: the release already exists");
            } else {
                ports.store.keep_entry(&id, &entry).await?;
                if let Some(kept) = ports.store.kept_entry(&id).await? {
                    waves = plan::waves(&kept);
                }
            }
            Ok(Registered { release: context_of(id, &existing), waves, duplicate })
        }
    }
}

/// Records a scheduled release that fired inside a freeze window as `skipped`: the release is
/// closed before it ran (nothing changed, nothing counts) and its timeline names the window; the
/// execution ends quietly through `Baton.Ignored`.
async fn skip(ports: &Ports, signal: &Signal, release: &Release, window: &Occurrence) -> Result<TaskError, TaskError> {
    let id = match ports.store.create_release(release, &signal.idempotency_key()).await? {
        Created::New(id) | Created::Existing(id) => id,
    };
    let context = context_of(id, release);
    let now = ports.clock.now();
    close_before_it_ran(ports, &context, now, queue::skip).await?;
    let message = format!("scheduled release skipped: it fired inside {window}");
    ports.record_event_once(&context, Stage::Queued, EventKind::Frozen, message.clone()).await?;
    tracing::info!(release = %context.id, "scheduled release skipped inside a freeze window");
    Ok(TaskError::new(ErrorName::Ignored, format!("release {}: {message}", context.id)))
}

/// Closes the release as superseded (one that closed meanwhile stays as it closed).
/// Closes a release before it ran with `close` (superseded or skipped); a closed one stays as it is.
async fn close_before_it_ran(
    ports: &Ports,
    context: &ReleaseContext,
    now: DateTime<Utc>,
    close: fn(&mut Release, DateTime<Utc>) -> Result<(), Refused>,
) -> Result<Release, TaskError> {
    let refused = |refused| tracing::warn!(release = %context.id, %refused, "state change refused");
    ports.update_release(context, |r| close(r, now).unwrap_or_else(refused)).await
}

fn context_of(id: ReleaseId, release: &Release) -> ReleaseContext {
    ReleaseContext {
        id,
        service: release.service.clone(),
        environment: release.environment.clone(),
        branch: release.branch.clone(),
        sha: release.sha.clone(),
    }
}

/// Takes the service's lock (answering not frozen), or says to wait: `Baton.LockHeld` to retry,
/// or, held while a freeze window is in force at `entered`, frozen until the window's end.
pub async fn acquire(ports: &Ports, context: &ReleaseContext, entered: Option<DateTime<Utc>>) -> Result<FreezeVerdict, TaskError> {
    // A release cancelled while it waits for the lock stops waiting.
    ports.stop_if_cancelled(context).await?;
    let key = LockKey::new(&context.service, &context.environment);
    let now = ports.clock.now();
    let holds_it = ports.store.lock_holder(&key, now).await?.is_some_and(|info| info.holder == context.id);
    if !holds_it {
        // Each attempt is this waiter's heartbeat: newer waiters that stop making them stop
        // superseding older ones.
        let mine = ports.update_release(context, |r| r.heartbeat_at = Some(now)).await?;
        let recent = ports.store.list_releases(&context.service, Some(&context.environment), RECENT_RELEASES).await?;
        // Judged as of the listing, not the attempt's start: a waiter that registered while this
        // task was held up is seen with its true silence, not as fresher than it is.
        if let Some(newer) = queue::newer_signal(&mine, &recent, ports.clock.now()) {
            close_before_it_ran(ports, context, now, queue::supersede).await?;
            let why = format!("superseded by the newer release {newer}");
            ports.record_event(context, Stage::Queued, None, EventKind::Superseded, why).await?;
            return Err(TaskError::new(
                ErrorName::Superseded,
                format!("release {} was superseded by the newer release {newer}", context.id),
            ));
        }
        let mut taken = ports.store.try_lock(&key, &context.id, now, LOCK_LEASE).await?;
        if let LockOutcome::HeldBy(info) = &taken
            && close_dead_holder(ports.store.as_ref(), &info.holder, &context.id, now).await?
        {
            tracing::warn!(release = %context.id, dead = %info.holder, "the lock holder's process is dead: closed it, taking the lock");
            taken = ports.store.try_lock(&key, &context.id, now, LOCK_LEASE).await?;
        }
        if let LockOutcome::HeldBy(info) = taken {
            if let Some(until) = queued_behind_freeze(ports, context, &mine, &info, entered).await? {
                return Ok(FreezeVerdict { frozen: true, until: Some(until) });
            }
            return Err(TaskError::new(
                ErrorName::LockHeld,
                format!(
                    "release {} of {} in {} is running (lock held until {}); waiting",
                    info.holder,
                    context.service,
                    context.environment,
                    info.expires_at.to_rfc3339()
                ),
            ));
        }
    }
    // Read again now the lock is held: the previous holder closed its release while this
    // attempt waited for the store, and this one must not seem to start before that one ended.
    let started = ports.clock.now();
    let recent = ports.store.list_releases(&context.service, Some(&context.environment), RECENT_RELEASES).await?;
    let live = rollback::rollback_target(&context.id, &recent);
    ports
        .update_release(context, |r| {
            r.begin(started, live.clone())
                .unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"));
        })
        .await?;
    ports.record_event(context, Stage::Build, None, EventKind::Started, "lock taken; release running").await?;
    for lapsed in queue::lapsed_holders(&context.id, &recent) {
        if close_lapsed_holder(ports.store.as_ref(), lapsed, &context.id, started).await? {
            tracing::warn!(release = %context.id, lapsed = %lapsed.id, "a release whose execution ended without closing it let its lock lapse: closed it");
        }
    }
    Ok(FreezeVerdict { frozen: false, until: None })
}

/// When the release waiting for a held lock should try again if a freeze window is in force:
/// with the lock it would only be held by the window, and its lock retries (hours) would run
/// out behind a holder waiting out the same window (days). So it waits for the window's end in
/// one Wait state, its heartbeat set to that end so other waiters still see it alive (the
/// newest still wins). A hotfix that overrides the freeze keeps trying for the lock.
async fn queued_behind_freeze(
    ports: &Ports,
    context: &ReleaseContext,
    mine: &Release,
    holder: &LockInfo,
    entered: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, TaskError> {
    if mine.trigger.freeze_override.is_some() {
        return Ok(None);
    }
    // The state's entered time stays that of the first attempt through every retry: the later
    // of it and the clock (the executor's time runs ahead of the clock on a virtual clock).
    let now = ports.clock.now();
    let at = entered.map_or(now, |entered| entered.max(now));
    let entry = ports.entry(context).await?;
    let windows = entry.delivery.freeze.rules().map_err(|why| TaskError::new(ErrorName::CatalogInvalid, why))?;
    let Some(until) = freeze::held_until(&windows, &context.environment, at)
        .map_err(|frozen| TaskError::new(ErrorName::CatalogInvalid, frozen.to_string()))?
    else {
        return Ok(None);
    };
    let first = freeze::in_force(&windows, &context.environment, at).into_iter().next().map_or_else(String::new, |w| w.to_string());
    ports.update_release(context, |r| r.heartbeat_at = Some(until)).await?;
    let message = format!("queued behind release {} during {first}: tries for the lock again at {}", holder.holder, until.to_rfc3339());
    ports.record_event_once(context, Stage::Queued, EventKind::Frozen, message).await?;
    tracing::info!(release = %context.id, holder = %holder.holder, until = %until, "queued behind a freeze window");
    Ok(Some(until))
}

pub async fn unlock(ports: &Ports, context: &ReleaseContext) -> Result<Done, TaskError> {
    let key = LockKey::new(&context.service, &context.environment);
    if ports.store.unlock(&key, &context.id).await? {
        tracing::info!(release = %context.id, "lock released");
    }
    Ok(Done {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_contract::fakes::FakePorts;
    use baton_domain::ports::Clock;
    use baton_domain::release::ReleaseStatus;
    use std::sync::Arc;

    fn fake() -> FakePorts {
        FakePorts::new(Arc::new(baton_store_sqlite::SqliteStore::in_memory().unwrap()))
    }

    #[tokio::test]
    async fn a_queued_release_takes_the_free_lock_and_runs_from_its_build() {
        let fake = fake();
        let context = fake.registered().await;
        fake.clock.advance(5);

        acquire(&fake.ports, &context, None).await.unwrap();

        let release = fake.ports.release(&context).await.unwrap();
        assert_eq!((release.status, release.stage, release.started_at), (ReleaseStatus::Running, Stage::Build, Some(fake.clock.now())));
        let holder = fake.ports.store.lock_holder(&release.lock_key(), fake.clock.now()).await.unwrap().map(|info| info.holder);
        assert_eq!(holder, Some(context.id.clone()));
        let events = fake.ports.store.events(&context.id).await.unwrap();
        assert!(events.iter().any(|e| e.kind == EventKind::Started && e.message == "lock taken; release running"), "{events:?}");
    }

    #[tokio::test]
    async fn a_release_waits_while_another_holds_the_lock() {
        let fake = fake();
        let context = fake.registered().await;
        let other = ReleaseId("rel-web-0".into());
        let key = LockKey::new(&context.service, &context.environment);
        fake.ports.store.try_lock(&key, &other, fake.clock.now(), LOCK_LEASE).await.unwrap();

        let waiting = acquire(&fake.ports, &context, None).await.unwrap_err();

        assert_eq!(waiting.error, ErrorName::LockHeld);
        assert!(waiting.cause.starts_with("release rel-web-0 of web in production is running"), "{}", waiting.cause);
        let release = fake.ports.release(&context).await.unwrap();
        assert_eq!((release.status, release.stage, release.heartbeat_at), (ReleaseStatus::Queued, Stage::Queued, Some(fake.clock.now())));
    }
}

//! load-catalog: the first and last task of every release.
//!
//! `register` turns whatever started the execution into a [`Signal`], loads and
//! validates the service's catalog entry and records the release (idempotently);
//! `acquire` takes the service's lock or says to wait or stop; `unlock` gives it back.

mod signal;

use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::{Done, LoadCatalogRequest, Registered, ReleaseContext, WavePlan};
use baton_domain::ports::{Created, LockOutcome};
use baton_domain::release::{LockKey, Release, ReleaseId, ReleaseStatus, Stage, TriggerKind, WaveRecord, WaveStatus};
use baton_domain::support::{LOCK_LEASE, Ports};

pub use signal::normalise;

pub const NAME: &str = "load-catalog";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    let request = baton_domain::flow::parse_request::<LoadCatalogRequest>(NAME, payload)?;
    let answer = match request {
        LoadCatalogRequest::Register { input, execution } => serde_json::to_value(register(ports, &input, &execution).await?),
        LoadCatalogRequest::Acquire { release } => serde_json::to_value(acquire(ports, &release).await?),
        LoadCatalogRequest::Unlock { release } => serde_json::to_value(unlock(ports, &release).await?),
    };
    answer.map_err(|err| TaskError::new(ErrorName::Internal, format!("{NAME}: cannot encode the answer: {err}")))
}

pub async fn register(ports: &Ports, input: &serde_json::Value, execution: &str) -> Result<Registered, TaskError> {
    let signal = normalise(input, execution)?;
    let entry = ports.catalog.service(&signal.service).await?;
    let delivery = &entry.delivery;

    let environment = match &signal.environment {
        Some(env) if env != &delivery.environment => {
            return Err(TaskError::new(
                ErrorName::InputInvalid,
                format!(
                    "service '{}' releases to environment '{}' (catalog {}), not '{env}'",
                    entry.name, delivery.environment, entry.source
                ),
            ));
        }
        _ => delivery.environment.clone(),
    };
    let branch = signal.branch.clone().unwrap_or_else(|| delivery.release_branch.clone());
    let allowed = branch == delivery.release_branch || delivery.feature_branch.as_deref() == Some(branch.as_str());
    if signal.trigger.kind == TriggerKind::Merge && !allowed {
        return Err(TaskError::new(
            ErrorName::InputInvalid,
            format!("a merge to '{branch}' does not release '{}': its release branch is '{}'", entry.name, delivery.release_branch),
        ));
    }

    let now = ports.clock.now();
    let release = Release {
        id: ReleaseId::generate(&entry.name, now),
        service: entry.name.clone(),
        environment: environment.clone(),
        status: ReleaseStatus::Queued,
        stage: Stage::Queued,
        trigger: signal.trigger.clone(),
        branch: branch.clone(),
        sha: signal.sha.clone(),
        changed_at: signal.changed_at,
        artifact: None,
        // Known only once the lock is taken: a release ahead in the queue may still change it.
        previous_artifact: None,
        waves: delivery
            .deploy
            .waves
            .iter()
            .map(|w| WaveRecord {
                name: w.name.clone(),
                targets: w.targets.clone(),
                status: WaveStatus::Pending,
                started_at: None,
                finished_at: None,
                deploy_url: None,
            })
            .collect(),
        created_at: now,
        started_at: None,
        finished_at: None,
        failure: None,
        execution: Some(execution.to_owned()),
        notifier_state: Default::default(),
    };

    let waves = WavePlan::from_specs(&delivery.deploy.waves);
    match ports.store.create_release(&release, &signal.idempotency_key()).await? {
        Created::New(id) => {
            let context = ReleaseContext { id, service: entry.name.clone(), environment, branch, sha: signal.sha.clone(), entry };
            ports
                .record_event(
                    &context,
                    Stage::Queued,
                    None,
                    "queued",
                    format!("{} signal {} accepted", signal.trigger.kind.as_str(), signal.trigger.id),
                )
                .await?;
            tracing::info!(release = %context.id, service = %context.service, "release registered");
            Ok(Registered { release: context, waves, duplicate: false })
        }
        Created::Existing(id) => {
            let existing = ports.store.get_release(&id).await?.ok_or_else(|| {
                TaskError::new(ErrorName::Internal, format!("idempotency key points at release {id}, which has no record"))
            })?;
            // The same execution retrying registration is not a duplicate signal.
            let duplicate = existing.execution.as_deref() != Some(execution);
            let context = ReleaseContext {
                id: existing.id.clone(),
                service: existing.service.clone(),
                environment: existing.environment.clone(),
                branch: existing.branch.clone(),
                sha: existing.sha.clone(),
                entry,
            };
            if duplicate {
                tracing::info!(release = %id, "duplicate signal: the release already exists");
            }
            Ok(Registered { release: context, waves, duplicate })
        }
    }
}

pub async fn acquire(ports: &Ports, context: &ReleaseContext) -> Result<Done, TaskError> {
    let key = LockKey::new(&context.service, &context.environment);
    let now = ports.clock.now();
    let holds_it = ports.store.lock_holder(&key, now).await?.is_some_and(|info| info.holder == context.id);
    if !holds_it {
        let mine = ports.release(context).await?;
        if let Some(newer) = newer_signal(ports, &mine).await? {
            ports
                .update_release(context, |r| {
                    r.status = ReleaseStatus::Superseded;
                    r.stage = Stage::Done;
                    r.finished_at = Some(now);
                })
                .await?;
            ports.record_event(context, Stage::Queued, None, "superseded", format!("superseded by the newer release {newer}")).await?;
            return Err(TaskError::new(
                ErrorName::Superseded,
                format!("release {} was superseded by the newer release {newer}", context.id),
            ));
        }
        if let LockOutcome::HeldBy(info) = ports.store.try_lock(&key, &context.id, now, LOCK_LEASE).await? {
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
    let live = live_artifact(ports, context).await?;
    ports
        .update_release(context, |r| {
            r.status = ReleaseStatus::Running;
            r.stage = Stage::Build;
            r.started_at.get_or_insert(now);
            r.previous_artifact = live;
        })
        .await?;
    ports.record_event(context, Stage::Build, None, "started", "lock taken; release running").await?;
    Ok(Done {})
}

/// What runs now: the artifact of the service's last successful release in this environment,
/// the rollback target.
async fn live_artifact(ports: &Ports, context: &ReleaseContext) -> Result<Option<baton_domain::release::Artifact>, TaskError> {
    let recent = ports.store.list_releases(&context.service, Some(&context.environment), 50).await?;
    Ok(recent
        .into_iter()
        .filter(|r| r.id != context.id && r.status == ReleaseStatus::Succeeded)
        .max_by_key(|r| r.finished_at)
        .and_then(|r| r.artifact))
}

/// The newest release created after `mine` for the same service and environment, if any:
/// when several signals wait, only the newest runs.
async fn newer_signal(ports: &Ports, mine: &Release) -> Result<Option<ReleaseId>, TaskError> {
    let recent = ports.store.list_releases(&mine.service, Some(&mine.environment), 50).await?;
    Ok(recent
        .into_iter()
        .filter(|r| r.id != mine.id && (r.created_at, &r.id) > (mine.created_at, &mine.id))
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
        .map(|r| r.id))
}

pub async fn unlock(ports: &Ports, context: &ReleaseContext) -> Result<Done, TaskError> {
    let key = LockKey::new(&context.service, &context.environment);
    if ports.store.unlock(&key, &context.id).await? {
        tracing::info!(release = %context.id, "lock released");
    }
    Ok(Done {})
}

//! deploy-wave: starts every target of a wave, polls them until the wave is deployed (or rolled
//! back), and plans the rollback of the waves that began. The runs live in the release record
//! between invocations (the rules are in [`baton_domain::rules::waves`]). Under the catalog's
//! `events.wait` a wave parks on its rollouts' events instead of polling (`park`).

use baton_domain::catalog::ServiceEntry;
use baton_domain::error::{ErrorName, TaskError, chain_text};
use baton_domain::flow::{CaughtError, DeployWaveRequest, Done, FreezeVerdict, Park, ReleaseContext, RollbackPlan, WavePlan, WaveStarted};
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle, TaskTokens, TelemetryKind};
use baton_domain::release::{Artifact, EventKind, Release, Stage, WaveRecord, WaveStatus};
use baton_domain::rules::waves::{self, WaveDeploy};
use baton_domain::rules::{freeze, rollback, timeline};
use baton_domain::support::{LOCK_LEASE, Ports, invocation_deadline, provider_error, stop_if_cancelled};
use baton_domain::telemetry;
use baton_domain::text::counted;
use baton_domain::waits::Parked;
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use std::time::Duration;

pub const NAME: &str = "deploy-wave";

/// How many targets one task starts or polls at a time: enough for a wide wave to move in one
/// invocation, few enough not to trip a provider's rate limit.
const TARGETS_AT_ONCE: usize = 16;

/// No target starts once the invocation has less than this left: a start is a few provider
/// calls of seconds each (an SDK call is bounded at 45 s, a Lambda code update waited for 10 s),
/// and one cut off by the runtime leaves a deploy the record does not know about.
const START_CUTOFF: Duration = Duration::from_secs(30);

/// `tokens` answer a parked task's own token; only `park` needs them.
pub async fn handle(ports: &Ports, tokens: Option<&dyn TaskTokens>, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    let request = baton_domain::flow::parse_request::<DeployWaveRequest>(NAME, payload)?;
    let answer = match request {
        DeployWaveRequest::Start { release, wave, artifact, rollback, now } => {
            serde_json::to_value(start(ports, &release, &wave, &artifact, rollback, now).await?)
        }
        DeployWaveRequest::CheckFreeze { release, wave, now } => serde_json::to_value(check_freeze(ports, &release, &wave, now).await?),
        DeployWaveRequest::Poll { release, wave, rollback } => serde_json::to_value(poll(ports, &release, &wave, rollback).await?),
        DeployWaveRequest::Park { release, wave, park } => {
            let tokens = tokens.ok_or_else(|| TaskError::new(ErrorName::Internal, format!("{NAME}: asked to park without task tokens")))?;
            park_wave(ports, tokens, &release, &wave, park).await?;
            Ok(serde_json::Value::Null)
        }
        DeployWaveRequest::PlanRollback { release, waves, error } => {
            serde_json::to_value(plan_rollback(ports, &release, &waves, error.as_ref()).await?)
        }
    };
    answer.map_err(|err| TaskError::new(ErrorName::Internal, format!("{NAME}: cannot encode the answer: {err}")))
}

/// Whether a freeze window of the release's entry holds the wave at `entered` (the definition's
/// time, virtual in tests): if so, until the first instant outside every window, which the
/// definition waits for in one Wait state. The lock's lease is stretched past that instant in
/// the same breath, since no task renews it while the release waits. A release whose trigger
/// overrides the freeze goes on, and its timeline says who overrode which window and why.
pub async fn check_freeze(
    ports: &Ports,
    context: &ReleaseContext,
    wave: &WavePlan,
    entered: Option<DateTime<Utc>>,
) -> Result<FreezeVerdict, TaskError> {
    ports.stop_if_cancelled(context).await?;
    let now = entered.unwrap_or_else(|| ports.clock.now());
    let entry = ports.entry(context).await?;
    let windows = entry.delivery.freeze.rules().map_err(|why| TaskError::new(ErrorName::CatalogInvalid, why))?;
    let in_force = freeze::in_force(&windows, &context.environment, now);
    let Some(first) = in_force.first() else {
        return Ok(FreezeVerdict { frozen: false, until: None });
    };
    let release = ports
        .store
        .get_release(&context.id)
        .await?
        .ok_or_else(|| TaskError::new(ErrorName::Internal, format!("release {} has no record", context.id)))?;
    if let Some(reason) = &release.trigger.freeze_override {
        let who = release.trigger.actor.as_deref().unwrap_or("an unnamed sender");
        let message = format!("wave {} starts inside {first}: freeze overridden by {who}: {reason}", wave.name);
        ports.record_event(context, Stage::Deploy, Some(&wave.name), EventKind::Frozen, message).await?;
        return Ok(FreezeVerdict { frozen: false, until: None });
    }
    let until = freeze::held_until(&windows, &context.environment, now)
        .map_err(|frozen| TaskError::new(ErrorName::CatalogInvalid, frozen.to_string()))?
        .unwrap_or(now);
    ports.renew_lock_for(context, (until - now).to_std().unwrap_or_default() + LOCK_LEASE).await?;
    let message = format!("wave {} held by {first}; starts at {}", wave.name, until.to_rfc3339());
    ports.record_event(context, Stage::Deploy, Some(&wave.name), EventKind::Frozen, message).await?;
    Ok(FreezeVerdict { frozen: true, until: Some(until) })
}

fn stage(rollback: bool) -> Stage {
    if rollback { Stage::Rollback } else { Stage::Deploy }
}

fn deployer(ports: &Ports, entry: &ServiceEntry) -> Result<Box<dyn Deployer>, TaskError> {
    ports.providers.deployer(&entry.delivery.deploy.target, entry).map_err(|e| provider_error(e, ErrorName::DeployFailed))
}

fn wave_record<'a>(release: &'a mut Release, wave: &WavePlan) -> Option<&'a mut WaveRecord> {
    release.waves.iter_mut().find(|w| w.name == wave.name)
}

fn no_record(context: &ReleaseContext, wave: &WavePlan) -> TaskError {
    TaskError::new(ErrorName::Internal, format!("release {} has no wave '{}' in its record", context.id, wave.name))
}

/// Starts every target of the wave that has no run yet, so a retried task starts only what is
/// missing. Each run is saved as its target starts, after the wave is marked begun: a task
/// killed mid-start leaves a record whose rollback covers every target it touched. It starts
/// no target once the invocation has less than [`START_CUTOFF`] left and answers
/// `Baton.DeployPending` instead (the retry starts the rest). A forward deploy fails on a
/// refused target; a rollback goes on past it. Answers the time the wave's deploys (or its
/// rollback) must have finished by, which the definition holds its polls to: the wave's deploy
/// timeout after `entered` (the execution's time of entering the state, the same for every retry);
/// under the catalog's `events.wait`, how long to park, when an event names each of its runs.
pub async fn start(
    ports: &Ports,
    context: &ReleaseContext,
    wave: &WavePlan,
    artifact: &Artifact,
    rollback: bool,
    entered: Option<DateTime<Utc>>,
) -> Result<WaveStarted, TaskError> {
    ports.renew_lock(context).await?;
    if !rollback {
        // A cancelled release starts no more targets: it rolls back what it started.
        ports.stop_if_cancelled(context).await?;
    }
    let entry = &ports.entry(context).await?;
    let deployer = deployer(ports, entry)?;
    let now = ports.clock.now();
    let mut release = ports
        .update_release(context, |r| {
            if rollback {
                return;
            }
            r.enter(Stage::Deploy).unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"));
            if let Some(record) = wave_record(r, wave) {
                record.begin_deploy(now);
            }
        })
        .await?;
    let record = wave_record(&mut release, wave).ok_or_else(|| no_record(context, wave))?;
    // This call began the wave (a retry finds it begun earlier): the exporters hear of it once.
    let began = !rollback && record.started_at == Some(now);
    let deadline = waves::deploy_deadline(wave, entered.unwrap_or(now));
    // On a rollback, each target's forward run: what it replaced is in its state.
    let to_start: Vec<(String, Option<RunHandle>)> = waves::targets_to_start(record, wave, rollback)
        .into_iter()
        .map(|target| (target.to_owned(), if rollback { waves::forward_run(record, target).cloned() } else { None }))
        .collect();
    let cutoff = invocation_deadline().map(|deadline| deadline.checked_sub(START_CUTOFF).unwrap_or(deadline));
    let deployer = deployer.as_ref();
    // The wave parks only when an event names each of its runs: one that none names (a Lambda
    // alias update, over when `start` answers) is polled, and the wave with it.
    let mut evented = waves::running(record, rollback).iter().all(|(_, run)| deployer.wait_key(run).is_some());
    let mut starts = stream::iter(to_start)
        .map(|(target, undoes)| async move {
            // Checked as each start begins, not when the task does: a wide wave starts in turns.
            if cutoff.is_some_and(|cutoff| tokio::time::Instant::now() >= cutoff) {
                return (target, None);
            }
            let request = DeployRequest {
                service: context.service.clone(),
                environment: context.environment.clone(),
                release_id: context.id.clone(),
                wave: wave.name.clone(),
                target: target.clone(),
                artifact: artifact.clone(),
                rollback,
                undoes,
            };
            let run = deployer.start(&request).await;
            (target, Some(run))
        })
        .buffer_unordered(TARGETS_AT_ONCE);

    let what = if rollback { "rolling back" } else { "deploying" };
    let (mut refused, mut unavailable, mut deferred) = (None, None, 0);
    // How many targets a rate limit held back, and the last limit's words.
    let (mut held, mut held_by) = (0, String::new());
    while let Some((target, run)) = starts.next().await {
        let Some(run) = run else {
            deferred += 1;
            continue;
        };
        save_start(ports, context, wave, &target, rollback, &run).await?;
        // Recorded as each target starts, so the timeline shows the targets that did start even
        // when another was refused or the task was cut short.
        match run {
            Ok(run) => {
                evented &= deployer.wait_key(&run).is_some();
                let message = format!("{what} {target} ({} {})", run.provider, run.id);
                ports.record_target_event(context, stage(rollback), &wave.name, &target, EventKind::Started, message).await?;
            }
            Err(ProviderError::Rejected { message: reason, .. }) => {
                let message = format!("{target}: the deploy was refused: {reason}");
                ports.record_target_event(context, stage(rollback), &wave.name, &target, EventKind::Failed, message).await?;
                if !rollback {
                    refused.get_or_insert_with(|| {
                        TaskError::new(ErrorName::DeployFailed, format!("wave {} target {target}: {reason}", wave.name))
                    });
                }
            }
            // Held back by the provider's rate limit: nothing was sent, and the target starts
            // on a retry after the limit's end (the definition's wait, not this task's).
            Err(err) if err.rate_limit().is_some() => {
                let limit = err.rate_limit().expect("a rate limit");
                let until = limit.until_text();
                if limit.answered {
                    let message = format!("{target}: waiting for {}'s rate limit until {until}", limit.service);
                    ports.record_target_event(context, stage(rollback), &wave.name, &target, EventKind::Retrying, message).await?;
                }
                held += 1;
                held_by = format!("{}'s rate limit until {until}", limit.service);
            }
            Err(err @ ProviderError::Unavailable { .. }) => unavailable = Some(provider_error(err, ErrorName::DeployFailed)),
        }
    }
    if began {
        telemetry::export(ports, context, entry, &release, TelemetryKind::WaveStarted { wave: wave.name.clone() }).await?;
    }
    // A refusal fails the wave now (the rollback covers the rest); an outage is retried, and so
    // are the targets a rate limit holds back and those left for the next invocation, the
    // definition waiting for them (`Baton.DeployPending` has a budget of about an hour).
    let limited = (held > 0).then(|| {
        TaskError::new(ErrorName::DeployPending, format!("wave {}: {held} targets held back by {held_by}; starting them then", wave.name))
    });
    let deferred = (deferred > 0).then(|| {
        TaskError::new(
            ErrorName::DeployPending,
            format!("wave {}: {deferred} targets left to start when the invocation's time ran short; starting them next", wave.name),
        )
    });
    match refused.or(unavailable).or(limited).or(deferred) {
        Some(error) => Err(error),
        None => Ok(WaveStarted { deadline, park_seconds: entry.delivery.events.park_seconds().filter(|_| evented) }),
    }
}

/// Saves what starting `target` gave: its run, or why the provider refused it. An outage saves
/// nothing, so the retried task starts it again.
async fn save_start(
    ports: &Ports,
    context: &ReleaseContext,
    wave: &WavePlan,
    target: &str,
    rollback: bool,
    run: &Result<RunHandle, ProviderError>,
) -> Result<(), TaskError> {
    let started = match run {
        Ok(run) => Ok(run.clone()),
        Err(ProviderError::Rejected { message: reason, .. }) => Err(reason.clone()),
        Err(ProviderError::Unavailable { .. }) => return Ok(()),
    };
    let now = ports.clock.now();
    ports
        .update_release(context, |r| {
            if let Some(record) = wave_record(r, wave) {
                waves::started(record, target, rollback, started.clone(), now);
                // A refused target fails the wave now: its record says so, not `deploying`.
                if !rollback && matches!(waves::wave_deploy(record, wave, false), WaveDeploy::Failed(_)) {
                    record
                        .move_to(WaveStatus::Failed)
                        .unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"));
                }
            }
        })
        .await?;
    Ok(())
}

/// Polls every target still rolling out, records what finished, and answers when the wave is
/// done: `Baton.DeployPending` while any target runs (the definition's Retry waits),
/// `Baton.DeployFailed` naming the targets that failed.
/// Parks the wave on each running rollout's event for `park.seconds`, then polls them once
/// without recording: when none runs any more, the task answers its own token, and the
/// definition's one poll after the park records them, as it does after an event or a timeout.
pub async fn park_wave(
    ports: &Ports,
    tokens: &dyn TaskTokens,
    context: &ReleaseContext,
    wave: &WavePlan,
    park: Park,
) -> Result<(), TaskError> {
    ports.renew_lock(context).await?;
    let entry = &ports.entry(context).await?;
    let deployer = deployer(ports, entry)?;
    let mut release = ports.release(context).await?;
    stop_if_cancelled(&release)?;
    let record = wave_record(&mut release, wave).ok_or_else(|| no_record(context, wave))?;
    let running = waves::running(record, false);
    let until = ports.clock.now() + chrono::TimeDelta::seconds(i64::try_from(park.seconds).unwrap_or(i64::MAX / 1_000_000));
    let deployer = deployer.as_ref();
    // A run no event names (a handle an older Baton kept) is left to the safety net's poll.
    for key in running.iter().filter_map(|(_, run)| deployer.wait_key(run)) {
        ports.store.park(&Parked { key, release: context.id.clone(), token: park.token.clone(), until }).await?;
    }
    let still: Vec<bool> = stream::iter(running.into_iter().map(|(_, run)| run))
        .map(|run| async move { !matches!(deployer.poll(&run).await, Ok(DeployProgress::Succeeded | DeployProgress::Failed { .. })) })
        .buffer_unordered(TARGETS_AT_ONCE)
        .collect()
        .await;
    if still.contains(&true) {
        return Ok(());
    }
    // Every rollout ended before its event could be waited for: the task answers itself.
    tokens
        .succeed(&park.token, &serde_json::json!({ "settled-before-the-park": wave.name }))
        .await
        .map_err(|err| provider_error(err, ErrorName::DeployFailed))
}

pub async fn poll(ports: &Ports, context: &ReleaseContext, wave: &WavePlan, rollback: bool) -> Result<Done, TaskError> {
    ports.renew_lock(context).await?;
    let entry = &ports.entry(context).await?;
    let deployer = deployer(ports, entry)?;
    let mut release = ports.release(context).await?;
    if !rollback {
        stop_if_cancelled(&release)?;
    }
    let record = wave_record(&mut release, wave).ok_or_else(|| no_record(context, wave))?;
    let was_rolled_back = record.status == WaveStatus::RolledBack;
    let deployer = deployer.as_ref();
    let results: Vec<(String, Result<DeployProgress, ProviderError>)> = stream::iter(waves::running(record, rollback))
        .map(|(target, run)| async move { (target, deployer.poll(&run).await) })
        .buffer_unordered(TARGETS_AT_ONCE)
        .collect()
        .await;

    let now = ports.clock.now();
    let release = ports
        .update_release(context, |r| {
            let Some(record) = wave_record(r, wave) else { return };
            for (target, progress) in &results {
                if let Ok(progress) = progress {
                    waves::settle(record, target, rollback, progress, now);
                }
            }
            let moved = match (waves::wave_deploy(record, wave, rollback), rollback) {
                (WaveDeploy::Succeeded, false) => record.move_to(WaveStatus::Baking),
                (WaveDeploy::Succeeded, true) => record.move_to(WaveStatus::RolledBack),
                (WaveDeploy::Failed(_), false) => record.move_to(WaveStatus::Failed),
                _ => Ok(()),
            };
            moved.unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"));
        })
        .await?;

    let (done, failed) = if rollback { ("rolled back", "rollback failed") } else { ("deployed", "failed") };
    let mut unavailable = 0;
    for (target, progress) in &results {
        let (kind, message) = match progress {
            Ok(DeployProgress::Succeeded) => (EventKind::Succeeded, format!("{done} {target}")),
            Ok(DeployProgress::Failed { reason }) => (EventKind::Failed, format!("{target} {failed}: {reason}")),
            Ok(DeployProgress::Running) => continue,
            // A rate limit the provider just answered with is news for the timeline; the wave
            // polls on after it (nothing is sent before its end).
            Err(err) if err.rate_limit().is_some_and(|limit| limit.answered) => {
                unavailable += 1;
                let limit = err.rate_limit().expect("a rate limit");
                (EventKind::Retrying, format!("{target}: waiting for {}'s rate limit until {}", limit.service, limit.until_text()))
            }
            Err(err) => {
                tracing::warn!(target_name = %target, error = %chain_text(&err), "deploy status unavailable; polling again");
                unavailable += 1;
                continue;
            }
        };
        ports.record_target_event(context, stage(rollback), &wave.name, target, kind, message).await?;
    }

    let record = release.waves.iter().find(|w| w.name == wave.name).ok_or_else(|| no_record(context, wave))?;
    let direction = if rollback { "rollback" } else { "deploy" };
    match waves::wave_deploy(record, wave, rollback) {
        WaveDeploy::Succeeded => {
            if rollback && !was_rolled_back {
                telemetry::export(ports, context, entry, &release, TelemetryKind::WaveRolledBack { wave: wave.name.clone() }).await?;
            }
            Ok(Done {})
        }
        WaveDeploy::Running => {
            let running = waves::running(record, rollback).len();
            let unanswered = if unavailable > 0 { format!(" ({unavailable} did not answer)") } else { String::new() };
            Err(TaskError::new(
                ErrorName::DeployPending,
                format!("wave {}: {running} of {} still rolling out{unanswered}", wave.name, counted(wave.targets.len(), "target")),
            ))
        }
        WaveDeploy::Failed(targets) => {
            let list: Vec<String> = targets.iter().map(|(target, reason)| format!("{target}: {reason}")).collect();
            Err(TaskError::new(ErrorName::DeployFailed, format!("wave {} {direction} failed on {}", wave.name, list.join("; "))))
        }
        WaveDeploy::NotStarted(targets) => Err(TaskError::new(
            ErrorName::Internal,
            format!("wave {}: targets {} were never started; the {direction} cannot finish", wave.name, targets.join(", ")),
        )),
    }
}

/// Every wave that began deploying, last first, with what to put back. `error` is what failed
/// the deploy: the timeline says so first when it is a task given up on.
pub async fn plan_rollback(
    ports: &Ports,
    context: &ReleaseContext,
    waves: &[WavePlan],
    error: Option<&CaughtError>,
) -> Result<RollbackPlan, TaskError> {
    if let Some(gave_up) = error.and_then(timeline::gave_up) {
        ports.record_event_once(context, Stage::Deploy, EventKind::GaveUp, gave_up).await?;
    }
    let release = ports
        .update_release(context, |r| {
            r.enter(Stage::Rollback).unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"))
        })
        .await?;
    let plan = rollback::plan_rollback(&release, waves);
    let names: Vec<&str> = plan.waves.iter().map(|w| w.name.as_str()).collect();
    let to = if plan.artifact.reference.is_empty() { "nothing (first release)" } else { plan.artifact.reference.as_str() };
    let message = format!("rolling back waves [{}] to {to}", names.join(", "));
    ports.record_event(context, Stage::Rollback, None, EventKind::Started, message).await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_contract::fakes::{FakePorts, artifact};
    use baton_domain::ports::Clock;
    use std::sync::Arc;

    fn fake() -> FakePorts {
        FakePorts::new(Arc::new(baton_store_sqlite::SqliteStore::in_memory().unwrap()))
    }

    async fn release(fake: &FakePorts, context: &ReleaseContext) -> Release {
        fake.ports.release(context).await.unwrap()
    }

    #[tokio::test]
    async fn a_wave_deploys_its_targets_then_bakes() {
        let fake = fake();
        let context = fake.built().await;
        let wave = fake.wave();
        fake.script.deploy(DeployProgress::Running);
        fake.script.deploy(DeployProgress::Succeeded);

        start(&fake.ports, &context, &wave, &artifact(), false, None).await.unwrap();
        let deploying = release(&fake, &context).await;
        assert_eq!((deploying.stage, deploying.waves[0].status), (Stage::Deploy, WaveStatus::Deploying));
        assert_eq!(deploying.waves[0].started_at, Some(fake.clock.now()));

        assert_eq!(poll(&fake.ports, &context, &wave, false).await.unwrap_err().error, ErrorName::DeployPending);
        poll(&fake.ports, &context, &wave, false).await.unwrap();

        assert_eq!(release(&fake, &context).await.waves[0].status, WaveStatus::Baking);
        let calls = fake.script.calls();
        assert_eq!(calls[1..], ["deploy web-1 ghcr.io/acme/web:0123456", "poll deploy web-1", "poll deploy web-1"]);
    }

    #[tokio::test]
    async fn a_failed_target_fails_the_wave_and_its_rollback_rolls_it_back() {
        let fake = fake();
        let context = fake.built().await;
        let wave = fake.wave();
        fake.script.deploy(DeployProgress::Failed { reason: "image not found".into() });
        fake.script.deploy(DeployProgress::Succeeded);

        start(&fake.ports, &context, &wave, &artifact(), false, None).await.unwrap();
        let failed = poll(&fake.ports, &context, &wave, false).await.unwrap_err();
        assert_eq!(failed.error, ErrorName::DeployFailed);
        assert_eq!(release(&fake, &context).await.waves[0].status, WaveStatus::Failed);

        let plan = plan_rollback(&fake.ports, &context, std::slice::from_ref(&wave), None).await.unwrap();
        assert_eq!(release(&fake, &context).await.stage, Stage::Rollback);
        start(&fake.ports, &context, &wave, &plan.artifact, true, None).await.unwrap();
        poll(&fake.ports, &context, &wave, true).await.unwrap();

        assert_eq!(release(&fake, &context).await.waves[0].status, WaveStatus::RolledBack);
    }
}

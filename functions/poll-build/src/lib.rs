//! poll-build: asks the CI provider how the build is doing. While it runs, the task fails
//! with `Baton.BuildPending` and the definition's Retry waits, backing off. Asked to `cancel`
//! (the definition's `CancelBuild`, once the release stops following the build), it cancels it.
//! Asked to `park` (the definition's `ParkBuild`, with the catalog's `events.wait`), it records
//! the release as waiting for the build's event, then polls once: a build that finished before
//! the park answers its own token, so no event is missed between the two.

use baton_domain::catalog::ServiceEntry;
use baton_domain::error::{ErrorName, TaskError, chain_text};
use baton_domain::flow::{Park, PollBuildRequest, ReleaseContext};
use baton_domain::ports::{BuildPoll, BuildProgress, ProviderError, RunHandle, TaskTokens, TelemetryKind};
use baton_domain::release::{Artifact, EventKind, Stage};
use baton_domain::rules::{builds, revision, timeline};
use baton_domain::support::{Ports, call_json, provider_error};
use baton_domain::telemetry;
use baton_domain::waits::Parked;

pub const NAME: &str = "poll-build";

/// `tokens` answer a parked task's own token (Step Functions' on AWS, the embedded executor's
/// locally); only `park` needs them.
pub async fn handle(ports: &Ports, tokens: Option<&dyn TaskTokens>, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request: PollBuildRequest| async move {
        if let Some(park) = request.park.clone() {
            let tokens = tokens.ok_or_else(|| TaskError::new(ErrorName::Internal, format!("{NAME}: asked to park without task tokens")))?;
            park_build(ports, tokens, request, park).await.map(|()| serde_json::Value::Null)
        } else if request.cancel {
            cancel_build(ports, request).await.map(|()| serde_json::Value::Null)
        } else {
            poll_build(ports, request).await.and_then(|artifact| {
                serde_json::to_value(artifact).map_err(|err| TaskError::new(ErrorName::Internal, format!("{NAME}: {err}")))
            })
        }
    })
    .await
}

/// Cancels a build the release stopped following, so no CI run outlives its release unnoticed.
/// A provider that is unreachable fails the task (the definition retries it); one that refuses
/// is recorded, and the release goes on to close: the build is then shown as no longer followed.
pub async fn cancel_build(ports: &Ports, request: PollBuildRequest) -> Result<(), TaskError> {
    let context = &request.release;
    let run = &recorded_run(ports, context, request.build.clone()).await?;
    let entry = ports.entry(context).await?;
    let provider = ports.providers.build(&entry.delivery.build, &entry).map_err(|e| provider_error(e, ErrorName::BuildFailed))?;
    let why = "the release stopped following it";
    if let Some(gave_up) = request.error.as_ref().and_then(timeline::gave_up) {
        ports.record_event_once(context, Stage::Build, EventKind::GaveUp, format!("build {}: {gave_up}", run.id)).await?;
    }
    match provider.cancel(run).await {
        Ok(()) => {
            ports.update_release(context, |release| builds::record_cancelled(release, run, ports.clock.now(), why)).await?;
            ports.record_event(context, Stage::Build, None, EventKind::Failed, format!("cancelled build {}: {why}", run.id)).await
        }
        Err(err @ ProviderError::Unavailable { .. }) => Err(provider_error(err, ErrorName::BuildFailed)),
        Err(err) => {
            let message = format!("could not cancel build {} ({why}); it may still run: {}", run.id, chain_text(&err));
            ports.record_event(context, Stage::Build, None, EventKind::Failed, message).await
        }
    }
}

/// Parks the release on its build's event for `park.seconds` (the definition's timeout on the
/// task), then polls once. Nothing is recorded of a finished build here: the task's end, by
/// event, by this poll or by timeout, leads to the definition's one poll that records it.
pub async fn park_build(ports: &Ports, tokens: &dyn TaskTokens, request: PollBuildRequest, park: Park) -> Result<(), TaskError> {
    let context = &request.release;
    ports.renew_lock(context).await?;
    ports.stop_if_cancelled(context).await?;
    let entry = &ports.entry(context).await?;
    let provider = ports.providers.build(&entry.delivery.build, entry).map_err(|e| provider_error(e, ErrorName::BuildFailed))?;
    let mut run = recorded_run(ports, context, request.build).await?;
    let until = ports.clock.now() + chrono::TimeDelta::seconds(i64::try_from(park.seconds).unwrap_or(i64::MAX / 1_000_000));
    let park_on = async |run: &RunHandle| -> Result<(), TaskError> {
        // A run no event names (trigger-build asks for no park then) is left to the safety net.
        let Some(key) = provider.wait_key(run) else { return Ok(()) };
        Ok(ports.store.park(&Parked { key, release: context.id.clone(), token: park.token.clone(), until }).await?)
    };
    if run.located() {
        park_on(&run).await?;
    }
    let poll = match provider.poll(&run).await {
        Ok(poll) => poll,
        // The safety net polls again at the park's end.
        Err(err @ ProviderError::Unavailable { .. }) => {
            tracing::info!(release = %context.id, build = %run.id, error = %chain_text(&err), "parked without a first poll");
            return Ok(());
        }
        Err(err) => return Err(provider_error(err, ErrorName::BuildFailed)),
    };
    if let Some(located) = poll.run.as_ref().filter(|located| located.id != run.id || !run.located()) {
        run = follow_located(ports, context, located).await?;
        park_on(&run).await?;
    }
    if matches!(poll.progress, BuildProgress::Running) {
        return Ok(());
    }
    // Finished before its event could be waited for: the task answers itself. Its wait stays
    // until it expires; an event that takes it finds the task ended and changes nothing.
    tokens
        .succeed(&park.token, &serde_json::json!({ "finished-before-the-park": run.id }))
        .await
        .map_err(|err| provider_error(err, ErrorName::BuildFailed))
}

/// Answers the artifact (`$.artifact`), which the rest of the release deploys.
pub async fn poll_build(ports: &Ports, mut request: PollBuildRequest) -> Result<Artifact, TaskError> {
    let context = &request.release.clone();
    ports.renew_lock(context).await?;
    ports.stop_if_cancelled(context).await?;
    let entry = &ports.entry(context).await?;
    let provider = ports.providers.build(&entry.delivery.build, entry).map_err(|e| provider_error(e, ErrorName::BuildFailed))?;
    request.build = recorded_run(ports, context, request.build).await?;
    let poll = match provider.poll(&request.build).await {
        Ok(poll) => poll,
        // A rate limit is waited out by the poll's own Retry: nothing is sent before its end.
        Err(err) if err.rate_limit().is_some() => {
            let limit = err.rate_limit().expect("a rate limit");
            let message = format!("build {} waits for {}'s rate limit until {}", request.build.id, limit.service, limit.until_text());
            if limit.answered {
                ports.record_event(context, Stage::Build, None, EventKind::Retrying, message.clone()).await?;
            }
            return Err(TaskError::new(ErrorName::BuildPending, message));
        }
        Err(err) => return Err(provider_error(err, ErrorName::BuildFailed)),
    };
    let run = match &poll.run {
        Some(located) => follow_located(ports, context, located).await?,
        None => request.build.clone(),
    };
    request.build = run;
    let seen_at = ports.clock.now();
    match &poll.progress {
        BuildProgress::Running => {
            // The start time is news once; later polls find it recorded and write nothing.
            if poll.started_at.is_some() {
                ports.update_release(context, |release| builds::record_progress(release, &request.build, &poll, seen_at)).await?;
            }
            Err(TaskError::new(ErrorName::BuildPending, format!("build {} is still running", request.build.id)))
        }
        BuildProgress::Failed { reason } => {
            let release = ports.update_release(context, |release| builds::record_progress(release, &request.build, &poll, seen_at)).await?;
            ports
                .record_event(context, Stage::Build, None, EventKind::Failed, format!("build {} failed: {reason}", request.build.id))
                .await?;
            telemetry::export(ports, context, entry, &release, TelemetryKind::BuildFinished).await?;
            Err(TaskError::new(ErrorName::BuildFailed, format!("build {} failed: {reason}", request.build.id)))
        }
        BuildProgress::Succeeded { artifact } => {
            let artifact = Artifact { build_url: artifact.build_url.clone().or_else(|| request.build.url.clone()), ..artifact.clone() };
            refuse_unknown_revision(ports, entry, &request, &poll, &artifact).await?;
            let release = ports
                .update_release(context, |release| {
                    builds::record_progress(release, &request.build, &poll, seen_at);
                    release.artifact = Some(artifact.clone());
                    release.sha.get_or_insert_with(|| artifact.sha.clone());
                    release
                        .enter(Stage::Deploy)
                        .unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"));
                })
                .await?;
            ports
                .record_event(
                    context,
                    Stage::Build,
                    None,
                    EventKind::Succeeded,
                    format!("built {} from {} at {}", artifact.reference, artifact.branch, artifact.sha),
                )
                .await?;
            telemetry::export(ports, context, entry, &release, TelemetryKind::BuildFinished).await?;
            Ok(artifact)
        }
    }
}

/// The run `build` is: itself, or for a handle that named no run (it travels on unchanged in
/// the definition's state), the run an earlier poll found, which the record follows.
async fn recorded_run(ports: &Ports, context: &ReleaseContext, build: RunHandle) -> Result<RunHandle, TaskError> {
    if build.located() {
        return Ok(build);
    }
    Ok(builds::followed_build(&ports.release(context).await?).filter(RunHandle::located).unwrap_or(build))
}

/// The run a poll found for a request the provider had accepted without naming its run: the
/// record follows it, and the build has started (news once: later polls find it recorded).
async fn follow_located(ports: &Ports, context: &ReleaseContext, run: &RunHandle) -> Result<RunHandle, TaskError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let news = AtomicBool::new(false);
    ports.update_release(context, |release| news.store(builds::record_located(release, run), Ordering::Relaxed)).await?;
    if news.load(Ordering::Relaxed) {
        let link = run.url.as_deref().map(|url| format!(" ({url})")).unwrap_or_default();
        let message = format!("{} build {} started{link}", run.provider, run.id);
        ports.record_event(context, Stage::Build, None, EventKind::Started, message).await?;
    }
    Ok(run.clone())
}

/// A build whose commit is unknown cannot go to a deployer that deploys a revision: the release
/// is refused here, before any wave, asking for `--sha`.
async fn refuse_unknown_revision(
    ports: &Ports,
    entry: &ServiceEntry,
    request: &PollBuildRequest,
    poll: &BuildPoll,
    artifact: &Artifact,
) -> Result<(), TaskError> {
    let context = &request.release;
    let deployer =
        ports.providers.deployer(&entry.delivery.deploy.target, entry).map_err(|e| provider_error(e, ErrorName::DeployFailed))?;
    let Err(why) = revision::deployable(&artifact.sha, deployer.takes_revision()) else { return Ok(()) };
    let message = format!("the deploy was refused before any wave: {} built {}, but {why}", request.build.id, artifact.reference);
    let seen_at = ports.clock.now();
    ports.update_release(context, |release| builds::record_progress(release, &request.build, poll, seen_at)).await?;
    ports.record_event(context, Stage::Deploy, None, EventKind::Failed, message.clone()).await?;
    Err(TaskError::new(ErrorName::BuildFailed, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_contract::fakes::{FakePorts, artifact};
    use baton_domain::release::{BuildStatus, ReleaseStatus};
    use std::sync::Arc;

    fn fake() -> FakePorts {
        FakePorts::new(Arc::new(baton_store_sqlite::SqliteStore::in_memory().unwrap()))
    }

    fn poll(context: &ReleaseContext, build: &RunHandle) -> PollBuildRequest {
        PollBuildRequest { release: context.clone(), build: build.clone(), cancel: false, error: None, park: None }
    }

    #[tokio::test]
    async fn a_finished_build_gives_the_release_its_artifact_and_moves_it_to_deploy() {
        let fake = fake();
        let (context, build) = fake.building().await;
        fake.script.build(BuildProgress::Succeeded { artifact: artifact() });

        let built = poll_build(&fake.ports, poll(&context, &build)).await.unwrap();

        assert_eq!(built.build_url, build.url, "the run's page, when the provider names none");
        let release = fake.ports.release(&context).await.unwrap();
        assert_eq!((release.status, release.stage), (ReleaseStatus::Running, Stage::Deploy));
        assert_eq!(release.artifact, Some(built));
        assert_eq!(release.build.map(|build| build.status), Some(BuildStatus::Succeeded));
        assert_eq!(fake.script.calls(), ["start build", "poll build 7"]);
    }

    #[tokio::test]
    async fn a_running_build_is_pending_and_a_failed_one_fails_the_release_at_its_build() {
        let fake = fake();
        let (context, build) = fake.building().await;
        fake.script.build(BuildProgress::Running);
        fake.script.build(BuildProgress::Failed { reason: "tests failed".into() });

        let pending = poll_build(&fake.ports, poll(&context, &build)).await.unwrap_err();
        assert_eq!(pending.error, ErrorName::BuildPending);
        let failed = poll_build(&fake.ports, poll(&context, &build)).await.unwrap_err();
        assert_eq!((failed.error, failed.cause.as_str()), (ErrorName::BuildFailed, "build 7 failed: tests failed"));

        let release = fake.ports.release(&context).await.unwrap();
        assert_eq!((release.stage, release.artifact), (Stage::Build, None));
        let events = fake.ports.store.events(&context.id).await.unwrap();
        assert!(events.iter().any(|e| e.kind == EventKind::Failed && e.message == "build 7 failed: tests failed"), "{events:?}");
    }

    #[tokio::test]
    async fn a_build_that_ends_after_its_release_began_rolling_back_leaves_the_stage_alone() {
        let fake = fake();
        let (context, build) = fake.building().await;
        fake.ports.update_release(&context, |release| release.enter(Stage::Rollback).unwrap()).await.unwrap();
        fake.script.build(BuildProgress::Succeeded { artifact: artifact() });

        poll_build(&fake.ports, poll(&context, &build)).await.unwrap();

        assert_eq!(fake.ports.release(&context).await.unwrap().stage, Stage::Rollback, "the lifecycle refuses rollback -> deploy");
    }

    #[tokio::test]
    async fn a_cancel_stops_the_build_at_its_provider_and_records_it() {
        let fake = fake();
        let (context, build) = fake.building().await;

        cancel_build(&fake.ports, PollBuildRequest { cancel: true, ..poll(&context, &build) }).await.unwrap();

        assert_eq!(fake.script.calls(), ["start build", "cancel build 7"]);
        let release = fake.ports.release(&context).await.unwrap();
        assert_eq!(release.build.map(|build| build.status), Some(BuildStatus::Cancelled));
    }
}

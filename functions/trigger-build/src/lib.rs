//! trigger-build: starts the service's CI build for the release's branch and commit, once.
//!
//! A request whose answer never came (a timeout, a reset connection, a 5xx after the provider
//! may have acted) leaves the record's build `requested`: the definition retries the task, and
//! the retry first asks the provider for the build this release started
//! ([`BuildProvider::find`](baton_domain::ports::BuildProvider::find)) and follows it; only when
//! there is none does it ask again.

use baton_domain::catalog::ServiceEntry;
use baton_domain::error::{ErrorName, TaskError, chain_text};
use baton_domain::flow::{BuildStarted, ReleaseContext, TriggerBuildRequest};
use baton_domain::ports::{BuildRequest, ProviderError, RunHandle};
use baton_domain::release::{EventKind, Stage};
use baton_domain::rules::{builds, deadline_after};
use baton_domain::support::{Ports, call_json, provider_error};

pub const NAME: &str = "trigger-build";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request: TriggerBuildRequest| async move {
        let entry = ports.entry(&request.release).await?;
        let asked = request.now.unwrap_or_else(|| ports.clock.now());
        let run = trigger_build(ports, &entry, request).await?;
        // A build no event names (a local command) is polled, whatever `events.wait` says.
        let named_by_events = ports.providers.build(&entry.delivery.build, &entry).is_ok_and(|provider| provider.wait_key(&run).is_some());
        Ok(BuildStarted {
            park_seconds: entry.delivery.events.park_seconds().filter(|_| named_by_events),
            run,
            deadline: deadline_after(asked, entry.delivery.build_timeout.0),
        })
    })
    .await
}

/// Answers the run handle that poll-build needs to find the build again (`$.build`): the build
/// the release already follows or started when there is one (this task ran before, and its
/// answer was lost), else a new one.
pub async fn trigger_build(ports: &Ports, entry: &ServiceEntry, request: TriggerBuildRequest) -> Result<RunHandle, TaskError> {
    let context = &request.release;
    ports.renew_lock(context).await?;
    // Before a build starts: a release cancelled meanwhile starts none.
    ports.stop_if_cancelled(context).await?;
    let spec = &entry.delivery.build;
    let provider = ports.providers.build(spec, entry).map_err(|e| provider_error(e, ErrorName::BuildFailed))?;
    let build = BuildRequest {
        service: context.service.clone(),
        environment: context.environment.clone(),
        release_id: context.id.clone(),
        branch: context.branch.clone(),
        sha: context.sha.clone(),
    };
    let release = ports.release(context).await?;
    if let Some(run) = builds::followed_build(&release) {
        return Ok(run);
    }
    if let Some(asked_at) = builds::unanswered_request(&release) {
        let found = match provider.find(&build, asked_at).await {
            Ok(found) => found,
            Err(err) => return Err(failed(ports, context, err, "the look for the build an unanswered request may have started").await?),
        };
        if let Some(run) = found {
            return started(ports, context, run, "found the build an unanswered request started:").await;
        }
        let message = format!("{} found no build from the unanswered request; asking again", spec.provider);
        ports.record_event(context, Stage::Build, None, EventKind::Retrying, message).await?;
    }
    let requested_at = ports.clock.now();
    ports.update_release(context, |release| builds::record_request(release, &spec.provider, requested_at)).await?;
    match provider.start(&build).await {
        Ok(run) => started(ports, context, run, "").await,
        Err(err) => Err(failed(ports, context, err, &format!("the request for a {} build", spec.provider)).await?),
    }
}

/// What a failed call to the provider (`what`) becomes: a timeline event with its cause, and
/// the task's error. A rate limit is `Baton.BuildPending` (the definition waits, and nothing is
/// sent before the time the provider named); an outage is retried, and the retry looks for the
/// build first; a refusal fails the build.
async fn failed(ports: &Ports, context: &ReleaseContext, err: ProviderError, what: &str) -> Result<TaskError, TaskError> {
    if let Some(limit) = err.rate_limit() {
        let message = format!("{what} waits for {}'s rate limit until {}", limit.service, limit.until_text());
        if limit.answered {
            ports.record_event(context, Stage::Build, None, EventKind::Retrying, message.clone()).await?;
        }
        return Ok(TaskError::new(ErrorName::BuildPending, format!("{message}: {}", chain_text(&err))));
    }
    let (kind, outcome) = match &err {
        ProviderError::Unavailable { .. } => (EventKind::Retrying, "got no answer; the retry looks for the build first"),
        ProviderError::Rejected { .. } => (EventKind::Failed, "failed"),
    };
    ports.record_event(context, Stage::Build, None, kind, format!("{what} {outcome}: {}", chain_text(&err))).await?;
    Ok(provider_error(err, ErrorName::BuildFailed))
}

/// Records `run` as the release's build and its start in the timeline (`how` says how it was
/// had, when not simply started). A run the provider does not show yet (a dispatch accepted
/// without its run) is only `requested`: poll-build says `started` once it finds the run.
async fn started(ports: &Ports, context: &ReleaseContext, run: RunHandle, how: &str) -> Result<RunHandle, TaskError> {
    let now = ports.clock.now();
    ports.update_release(context, |release| builds::record_start(release, &run, now)).await?;
    if !run.located() {
        let message = format!("{} accepted the request for a build and shows no run for it yet; following it once it does", run.provider);
        ports.record_event(context, Stage::Build, None, EventKind::Requested, message).await?;
        return Ok(run);
    }
    let link = run.url.as_deref().map(|url| format!(" ({url})")).unwrap_or_default();
    let how = if how.is_empty() { String::new() } else { format!("{how} ") };
    ports
        .record_event(context, Stage::Build, None, EventKind::Started, format!("{how}{} build {} started{link}", run.provider, run.id))
        .await?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_contract::fakes::FakePorts;
    use baton_domain::release::BuildStatus;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_build_is_requested_once_and_a_retry_follows_the_same_one() {
        let fake = FakePorts::new(Arc::new(baton_store_sqlite::SqliteStore::in_memory().unwrap()));
        let context = fake.running().await;
        let request = || TriggerBuildRequest { release: context.clone(), now: None };

        let run = trigger_build(&fake.ports, &fake.entry, request()).await.unwrap();
        let again = trigger_build(&fake.ports, &fake.entry, request()).await.unwrap();

        assert_eq!((run.id.as_str(), &again), ("7", &run));
        assert_eq!(fake.script.calls(), ["start build"], "the retry starts no second build");
        let build = fake.ports.release(&context).await.unwrap().build.unwrap();
        assert_eq!((build.run_id.as_str(), build.status), ("7", BuildStatus::Running));
    }
}

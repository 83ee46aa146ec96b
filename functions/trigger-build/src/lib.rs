//! trigger-build: starts the service's CI build for the release's branch and commit.

use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::TriggerBuildRequest;
use baton_domain::ports::{BuildRequest, RunHandle};
use baton_domain::release::{EventKind, Stage};
use baton_domain::rules::builds;
use baton_domain::support::{Ports, call_json, provider_error};

pub const NAME: &str = "trigger-build";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| trigger_build(ports, request)).await
}

/// Answers the run handle that poll-build needs to find the build again (`$.build`): the build
/// the release already follows when there is one (this task ran before, and its answer was lost).
pub async fn trigger_build(ports: &Ports, request: TriggerBuildRequest) -> Result<RunHandle, TaskError> {
    let context = &request.release;
    ports.renew_lock(context).await?;
    let provider =
        ports.providers.build(&context.entry.delivery.build, &context.entry).map_err(|e| provider_error(e, ErrorName::BuildFailed))?;
    let build = BuildRequest {
        service: context.service.clone(),
        environment: context.environment.clone(),
        release_id: context.id.clone(),
        branch: context.branch.clone(),
        sha: context.sha.clone(),
    };
    if let Some(run) = builds::followed_build(&ports.release(context).await?) {
        return Ok(run);
    }
    let requested_at = ports.clock.now();
    let run = provider.start(&build).await.map_err(|e| provider_error(e, ErrorName::BuildFailed))?;
    ports.update_release(context, |release| builds::record_start(release, &run, requested_at)).await?;
    let link = run.url.as_deref().map(|url| format!(" ({url})")).unwrap_or_default();
    ports.record_event(context, Stage::Build, None, EventKind::Started, format!("{} build {} started{link}", run.provider, run.id)).await?;
    Ok(run)
}

//! deploy-wave: deploys one target of a wave (the definition fans a wave's targets out in
//! parallel), polls it until done, and plans the rollback of the waves that began.

use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::{DeployWaveRequest, ReleaseContext, RollbackPlan, WavePlan};
use baton_domain::ports::{DeployProgress, DeployRequest, RunHandle};
use baton_domain::release::{Artifact, EventKind, Stage, WaveStatus};
use baton_domain::rules::{rollback, waves};
use baton_domain::support::{Ports, provider_error};

pub const NAME: &str = "deploy-wave";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    let request = baton_domain::flow::parse_request::<DeployWaveRequest>(NAME, payload)?;
    let answer = match request {
        DeployWaveRequest::Start { release, wave, target, artifact, rollback } => {
            serde_json::to_value(start(ports, &release, &wave, &target, artifact, rollback).await?)
        }
        DeployWaveRequest::Poll { release, wave, target, run, rollback } => {
            poll(ports, &release, &wave, &target, &run, rollback).await?;
            Ok(serde_json::json!({}))
        }
        DeployWaveRequest::PlanRollback { release, waves } => serde_json::to_value(plan_rollback(ports, &release, &waves).await?),
    };
    answer.map_err(|err| TaskError::new(ErrorName::Internal, format!("{NAME}: cannot encode the answer: {err}")))
}

fn stage(rollback: bool) -> Stage {
    if rollback { Stage::Rollback } else { Stage::Deploy }
}

pub async fn start(
    ports: &Ports,
    context: &ReleaseContext,
    wave: &WavePlan,
    target: &str,
    artifact: Artifact,
    rollback: bool,
) -> Result<RunHandle, TaskError> {
    ports.renew_lock(context).await?;
    let deployer = ports
        .providers
        .deployer(&context.entry.delivery.deploy.target, &context.entry)
        .map_err(|e| provider_error(e, ErrorName::DeployFailed))?;
    if !rollback {
        // Targets of a wave start together; whichever comes first marks the wave begun.
        let now = ports.clock.now();
        ports
            .update_release(context, |release| {
                if let Some(record) = release.waves.iter_mut().find(|w| w.name == wave.name && w.status == WaveStatus::Pending) {
                    record.status = WaveStatus::Deploying;
                    record.started_at.get_or_insert(now);
                    release.stage = Stage::Deploy;
                }
            })
            .await?;
    }
    let request = DeployRequest {
        service: context.service.clone(),
        environment: context.environment.clone(),
        release_id: context.id.clone(),
        wave: wave.name.clone(),
        target: target.to_owned(),
        artifact,
        rollback,
    };
    let run = deployer.start(&request).await.map_err(|e| provider_error(e, ErrorName::DeployFailed))?;
    let what = if rollback { "rolling back" } else { "deploying" };
    ports
        .record_target_event(
            context,
            stage(rollback),
            &wave.name,
            target,
            EventKind::Started,
            format!("{what} {target} ({} {})", run.provider, run.id),
        )
        .await?;
    Ok(run)
}

pub async fn poll(
    ports: &Ports,
    context: &ReleaseContext,
    wave: &WavePlan,
    target: &str,
    run: &RunHandle,
    rollback: bool,
) -> Result<(), TaskError> {
    let deployer = ports
        .providers
        .deployer(&context.entry.delivery.deploy.target, &context.entry)
        .map_err(|e| provider_error(e, ErrorName::DeployFailed))?;
    match deployer.poll(run).await.map_err(|e| provider_error(e, ErrorName::DeployFailed))? {
        DeployProgress::Running => {
            Err(TaskError::new(ErrorName::DeployPending, format!("deploy {} of {target} is still rolling out", run.id)))
        }
        DeployProgress::Succeeded => {
            let what = if rollback { "rolled back" } else { "deployed" };
            ports
                .record_target_event(context, stage(rollback), &wave.name, target, EventKind::Succeeded, format!("{what} {target}"))
                .await?;
            if !rollback {
                mark_baking_when_all_deployed(ports, context, wave).await?;
            }
            Ok(())
        }
        DeployProgress::Failed { reason } => {
            ports
                .record_target_event(context, stage(rollback), &wave.name, target, EventKind::Failed, format!("{target}: {reason}"))
                .await?;
            if !rollback {
                ports
                    .update_release(context, |r| {
                        if let Some(record) = r.waves.iter_mut().find(|w| w.name == wave.name) {
                            record.status = WaveStatus::Failed;
                        }
                    })
                    .await?;
            }
            Err(TaskError::new(ErrorName::DeployFailed, format!("wave {} target {target}: {reason}", wave.name)))
        }
    }
}

/// The wave bakes once every target reports deployed. Targets finish in parallel, so each
/// looks at the timeline; of two finishing at once, the second finds the change made.
async fn mark_baking_when_all_deployed(ports: &Ports, context: &ReleaseContext, wave: &WavePlan) -> Result<(), TaskError> {
    let timeline = ports.store.events(&context.id).await?;
    if waves::all_targets_deployed(wave, &timeline) {
        ports
            .update_release(context, |r| {
                if let Some(record) = r.waves.iter_mut().find(|w| w.name == wave.name && w.status == WaveStatus::Deploying) {
                    record.status = WaveStatus::Baking;
                }
            })
            .await?;
    }
    Ok(())
}

/// Every wave that began deploying, last first, with what to put back.
pub async fn plan_rollback(ports: &Ports, context: &ReleaseContext, waves: &[WavePlan]) -> Result<RollbackPlan, TaskError> {
    let release = ports.update_release(context, |r| r.stage = Stage::Rollback).await?;
    let plan = rollback::plan_rollback(&release, waves);
    let names: Vec<&str> = plan.waves.iter().map(|w| w.name.as_str()).collect();
    let to = if plan.artifact.reference.is_empty() { "nothing (first release)" } else { plan.artifact.reference.as_str() };
    let message = format!("rolling back waves [{}] to {to}", names.join(", "));
    ports.record_event(context, Stage::Rollback, None, EventKind::Started, message).await?;
    Ok(plan)
}

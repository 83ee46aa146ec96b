//! check-health: after a wave's bake, asks the health provider whether the service is well.
//! An unhealthy wave fails the task with `Baton.HealthCheckFailed`, which rolls the release back.

use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::{CheckHealthRequest, HealthReport};
use baton_domain::ports::{HealthRequest, HealthVerdict};
use baton_domain::release::{EventKind, Stage, WaveStatus};
use baton_domain::support::{Ports, call_json, provider_error};

pub const NAME: &str = "check-health";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| check_health(ports, request)).await
}

pub async fn check_health(ports: &Ports, request: CheckHealthRequest) -> Result<HealthReport, TaskError> {
    let context = &request.release;
    let wave = &request.wave;
    ports.renew_lock(context).await?;
    let checker = ports
        .providers
        .health(&context.entry.delivery.health, &context.entry)
        .map_err(|e| provider_error(e, ErrorName::HealthCheckFailed))?;
    let health = HealthRequest {
        service: context.service.clone(),
        environment: context.environment.clone(),
        release_id: context.id.clone(),
        wave: wave.name.clone(),
        targets: wave.targets.clone(),
        artifact: request.artifact.clone(),
    };
    let verdict = checker.check(&health).await.map_err(|e| provider_error(e, ErrorName::HealthCheckFailed))?;
    let now = ports.clock.now();
    let (status, kind, text) = match &verdict {
        HealthVerdict::Healthy { detail } => (WaveStatus::Healthy, EventKind::Succeeded, detail.clone()),
        HealthVerdict::Unhealthy { reason } => (WaveStatus::Unhealthy, EventKind::Failed, reason.clone()),
    };
    ports
        .update_release(context, |r| {
            if let Some(record) = r.waves.iter_mut().find(|w| w.name == wave.name) {
                record.status = status;
                record.finished_at = Some(now);
            }
        })
        .await?;
    ports.record_event(context, Stage::Deploy, Some(&wave.name), kind, format!("health: {text}")).await?;
    match verdict {
        HealthVerdict::Healthy { detail } => Ok(HealthReport { wave: wave.name.clone(), detail }),
        HealthVerdict::Unhealthy { reason } => Err(TaskError::new(
            ErrorName::HealthCheckFailed,
            format!("wave {} ({}/{}) is unhealthy: {reason}", wave.name, wave.index + 1, wave.total),
        )),
    }
}

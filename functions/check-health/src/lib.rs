//! check-health: takes one sample of every health gate of a wave, from the end of its deploy to
//! the end of its bake, and judges the wave by [`baton_domain::rules::watch`]. It answers when to
//! look again (the definition waits, then calls it again); an unhealthy wave fails the task with
//! `Baton.HealthCheckFailed` at once, which rolls the release back. A wave whose gates all
//! declare event keys ([`HealthGate::bake_keys`]: named CloudWatch alarms, Datadog monitors named
//! by id), under the catalog's `events.wait`, parks instead of waiting (`park_seconds`): the
//! definition's `ParkBake` calls this with `park`, which records the release as waiting on each
//! key, then samples once (an alarm that fired before the park answers the task's own token); an
//! alarm's or monitor's event, or the park's timeout, brings the definition back to a sample here.

use baton_domain::catalog::GateSpec;
use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::{CheckHealthRequest, Park, WatchReport};
use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError, TaskTokens, TelemetryKind};
use baton_domain::release::{EventKind, GateRecord, Release, Stage, WaveRecord, WaveStatus};
use baton_domain::rules::watch::{self, Watch};
use baton_domain::support::{Ports, call_json, provider_error};
use baton_domain::telemetry;
use baton_domain::waits::{self, Parked};
use futures_util::future::join_all;

pub const NAME: &str = "check-health";

/// `tokens` answer a parked task's own token; only `park` needs them.
pub async fn handle(ports: &Ports, tokens: Option<&dyn TaskTokens>, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request: CheckHealthRequest| async move {
        match request.park.clone() {
            Some(park) => {
                let tokens =
                    tokens.ok_or_else(|| TaskError::new(ErrorName::Internal, format!("{NAME}: asked to park without task tokens")))?;
                park_bake(ports, tokens, request, park).await.map(|()| serde_json::Value::Null)
            }
            None => check_health(ports, request).await.and_then(|report| {
                serde_json::to_value(report).map_err(|err| TaskError::new(ErrorName::Internal, format!("{NAME}: {err}")))
            }),
        }
    })
    .await
}

/// The wave's gates, and what one sample of them asks.
fn gates_of(
    ports: &Ports,
    entry: &baton_domain::catalog::ServiceEntry,
    request: &CheckHealthRequest,
) -> Result<(Vec<Box<dyn HealthGate>>, HealthRequest), TaskError> {
    let context = &request.release;
    let gates = entry
        .delivery
        .health
        .gates
        .iter()
        .map(|spec| ports.providers.gate(spec, entry))
        .collect::<Result<_, _>>()
        .map_err(|e| provider_error(e, ErrorName::HealthCheckFailed))?;
    let sample = HealthRequest {
        service: context.service.clone(),
        environment: context.environment.clone(),
        release_id: context.id.clone(),
        wave: request.wave.name.clone(),
        targets: request.wave.targets.clone(),
        artifact: request.artifact.clone(),
    };
    Ok((gates, sample))
}

/// Parks the bake on each of its alarms for `park.seconds`, then samples once without recording:
/// an alarm already in ALARM fails the task's own token, and the definition's next sample
/// records it. A gate that cannot answer now leaves the park to its timeout.
pub async fn park_bake(ports: &Ports, tokens: &dyn TaskTokens, request: CheckHealthRequest, park: Park) -> Result<(), TaskError> {
    let context = &request.release;
    ports.renew_lock(context).await?;
    ports.stop_if_cancelled(context).await?;
    let entry = &ports.entry(context).await?;
    let (gates, sample) = gates_of(ports, entry, &request)?;
    // A gate that cannot name its keys now fails the park: Retry takes it if passing, else the
    // Catch sends the wave to its next sample.
    let keys = waits::bake_keys(&gates).await.map_err(|e| provider_error(e, ErrorName::HealthCheckFailed))?.ok_or_else(|| {
        TaskError::new(ErrorName::Internal, format!("{NAME}: wave {} has gates that can only be sampled, not parked on", request.wave.name))
    })?;
    let until = ports.clock.now() + chrono::TimeDelta::seconds(i64::try_from(park.seconds).unwrap_or(i64::MAX / 1_000_000));
    for key in keys {
        ports.store.park(&Parked { key, release: context.id.clone(), token: park.token.clone(), until }).await?;
    }
    let readings = join_all(gates.iter().map(|gate| gate.sample(&sample))).await;
    let unhealthy = readings.iter().zip(&gates).find_map(|(reading, gate)| match reading {
        Ok(GateReading::Unhealthy { saw }) => Some(format!("{}: {saw}", gate.describe())),
        _ => None,
    });
    let Some(saw) = unhealthy else { return Ok(()) };
    tokens.fail(&park.token, ErrorName::HealthCheckFailed, &saw).await.map_err(|err| provider_error(err, ErrorName::HealthCheckFailed))
}

pub async fn check_health(ports: &Ports, request: CheckHealthRequest) -> Result<WatchReport, TaskError> {
    let context = &request.release;
    let wave = &request.wave;
    ports.renew_lock(context).await?;
    ports.stop_if_cancelled(context).await?;
    let entry = &ports.entry(context).await?;
    let health = &entry.delivery.health;
    let (gates, sample) = gates_of(ports, entry, &request)?;
    let readings = join_all(gates.iter().map(|gate| gate.sample(&sample))).await;
    // A gate that cannot answer decides nothing: the task fails and its Retry samples again.
    let readings: Vec<GateReading> = readings
        .into_iter()
        .zip(&gates)
        .map(|(reading, gate)| reading.map_err(|e| gate_error(e, gate.as_ref())))
        .collect::<Result<_, _>>()?;

    let now = request.now.unwrap_or_else(|| ports.clock.now());
    let names: Vec<String> = gates.iter().map(|gate| gate.describe()).collect();
    let judge = |record: &WaveRecord| {
        let bake_started_at = record.bake_started_at.unwrap_or(now);
        let pairs: Vec<(&GateRecord, &GateSpec)> = record.gates.iter().zip(&health.gates).collect();
        watch::judge(&pairs, bake_started_at, wave.bake_seconds, health.interval.0, now)
    };
    let release = ports
        .update_release(context, |r| {
            let Some(record) = wave_record(r, &wave.name) else { return };
            record.bake_started_at.get_or_insert(now);
            if record.gates.len() != names.len() {
                record.gates = names.iter().map(|gate| GateRecord { gate: gate.clone(), ..GateRecord::default() }).collect();
            }
            for (gate, reading) in record.gates.iter_mut().zip(&readings) {
                watch::record_sample(gate, reading, now);
            }
            let judged = match judge(record) {
                Watch::Continue { .. } => Ok(()),
                Watch::Healthy => record.move_to(WaveStatus::Healthy),
                Watch::Unhealthy { .. } => record.move_to(WaveStatus::Unhealthy),
            };
            judged.unwrap_or_else(|refused| tracing::warn!(release = %context.id, %refused, "state change refused"));
            if !matches!(record.status, WaveStatus::Baking) {
                record.finished_at.get_or_insert(now);
            }
        })
        .await?;
    let record = find_wave(&release, &wave.name)
        .ok_or_else(|| TaskError::new(ErrorName::Internal, format!("release {} has no wave '{}' in its record", context.id, wave.name)))?;
    let first_sample = record.gates.first().is_some_and(|gate| gate.samples == 1);
    let detail = sight(record);

    match judge(record) {
        Watch::Continue { wait_seconds } => {
            if first_sample {
                let message = format!("watching {} through a {}s bake", names.join(", "), wave.bake_seconds);
                ports.record_event(context, Stage::Deploy, Some(&wave.name), EventKind::Started, message).await?;
            }
            let rest = record.bake_started_at.map_or(0, |started| {
                let ends = started + chrono::TimeDelta::seconds(i64::try_from(wave.bake_seconds).unwrap_or(i64::MAX / 1_000_000));
                u64::try_from((ends - now).num_seconds()).unwrap_or(0)
            });
            let park_seconds = match entry.delivery.events.park_seconds() {
                Some(safety_net) if parkable(&gates, &context.id).await => waits::bake_park_seconds(safety_net, rest),
                _ => None,
            };
            Ok(WatchReport { wave: wave.name.clone(), done: false, wait_seconds, park_seconds, detail })
        }
        Watch::Healthy => {
            let message = format!("healthy: {detail}");
            ports.record_event(context, Stage::Deploy, Some(&wave.name), EventKind::Succeeded, message).await?;
            telemetry::export(ports, context, entry, &release, TelemetryKind::WaveHealthy { wave: wave.name.clone() }).await?;
            Ok(WatchReport { wave: wave.name.clone(), done: true, wait_seconds: 0, park_seconds: None, detail })
        }
        Watch::Unhealthy { gate, saw } => {
            let message = format!("unhealthy: {gate}: {saw}");
            ports.record_event(context, Stage::Deploy, Some(&wave.name), EventKind::Failed, message).await?;
            Err(TaskError::new(
                ErrorName::HealthCheckFailed,
                format!("wave {} ({}/{}) is unhealthy: {gate}: {saw}", wave.name, wave.index + 1, wave.total),
            ))
        }
    }
}

/// Whether every gate declares the keys of a park; a gate that cannot say now samples.
async fn parkable(gates: &[Box<dyn HealthGate>], release: &baton_domain::release::ReleaseId) -> bool {
    match waits::bake_keys(gates).await {
        Ok(keys) => keys.is_some(),
        Err(err) => {
            tracing::warn!(%release, error = %baton_domain::error::chain_text(&err), "the gates' event keys are unknown for now: the bake samples");
            false
        }
    }
}

fn gate_error(error: ProviderError, gate: &dyn HealthGate) -> TaskError {
    let error = match error {
        ProviderError::Unavailable { message, .. } => ProviderError::unavailable(format!("{}: {message}", gate.describe())),
        ProviderError::Rejected { message, .. } => ProviderError::rejected(format!("{}: {message}", gate.describe())),
    };
    provider_error(error, ErrorName::HealthCheckFailed)
}

fn wave_record<'a>(release: &'a mut Release, name: &str) -> Option<&'a mut WaveRecord> {
    release.waves.iter_mut().find(|w| w.name == name)
}

fn find_wave<'a>(release: &'a Release, name: &str) -> Option<&'a WaveRecord> {
    release.waves.iter().find(|w| w.name == name)
}

/// What every gate saw last, one gate per line.
fn sight(record: &WaveRecord) -> String {
    let lines: Vec<String> =
        record.gates.iter().map(|gate| format!("{}: {}", gate.gate, gate.last.as_deref().unwrap_or("not sampled"))).collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_contract::fakes::{FakePorts, artifact};
    use baton_domain::flow::ReleaseContext;
    use baton_domain::ports::Clock;
    use std::sync::Arc;

    fn fake() -> FakePorts {
        FakePorts::new(Arc::new(baton_store_sqlite::SqliteStore::in_memory().unwrap()))
    }

    fn request(fake: &FakePorts, context: &ReleaseContext) -> CheckHealthRequest {
        CheckHealthRequest { release: context.clone(), wave: fake.wave(), artifact: artifact(), now: None, park: None }
    }

    async fn wave(fake: &FakePorts, context: &ReleaseContext) -> WaveRecord {
        fake.ports.release(context).await.unwrap().waves.remove(0)
    }

    #[tokio::test]
    async fn a_wave_healthy_through_its_bake_becomes_healthy_at_its_end() {
        let fake = fake();
        let context = fake.baking().await;
        fake.script.reading(GateReading::Healthy { saw: "200 OK".into() });
        fake.script.reading(GateReading::Healthy { saw: "200 OK".into() });

        let watching = check_health(&fake.ports, request(&fake, &context)).await.unwrap();
        assert!(!watching.done && watching.wait_seconds > 0, "{watching:?}");
        assert_eq!(wave(&fake, &context).await.status, WaveStatus::Baking, "the bake has not ended");

        fake.clock.advance(60);
        let done = check_health(&fake.ports, request(&fake, &context)).await.unwrap();

        assert!(done.done, "{done:?}");
        let record = wave(&fake, &context).await;
        assert_eq!((record.status, record.finished_at), (WaveStatus::Healthy, Some(fake.clock.now())));
        assert_eq!(fake.script.calls().iter().filter(|call| *call == "sample canary").count(), 2);
    }

    #[tokio::test]
    async fn an_unhealthy_sample_fails_the_wave_and_the_task() {
        let fake = fake();
        let context = fake.baking().await;
        fake.script.reading(GateReading::Unhealthy { saw: "503 Service Unavailable".into() });

        let failed = check_health(&fake.ports, request(&fake, &context)).await.unwrap_err();

        assert_eq!(failed.error, ErrorName::HealthCheckFailed);
        assert!(failed.cause.ends_with("the scripted gate: 503 Service Unavailable"), "{}", failed.cause);
        assert_eq!(wave(&fake, &context).await.status, WaveStatus::Unhealthy);
    }

    #[tokio::test]
    async fn a_gate_that_cannot_answer_decides_nothing() {
        let fake = fake();
        let context = fake.baking().await;

        let failed = check_health(&fake.ports, request(&fake, &context)).await.unwrap_err();

        assert_eq!(failed.error, ErrorName::ProviderUnavailable);
        let record = wave(&fake, &context).await;
        assert_eq!((record.status, record.gates.len()), (WaveStatus::Baking, 0), "no sample recorded");
    }
}

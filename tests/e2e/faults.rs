//! Faults inside a release: a task that panics fails its task, and the definition's Catch
//! still takes the release through rollback, its record and Unlock; a store that loses the
//! answer to a close has the close retried, counted and ended once.

use async_trait::async_trait;
use baton_asl::{EventType, ExecutionStatus};
use baton_domain::catalog::{GateSpec, ProviderBlock, ServiceEntry, SlackSpec};
use baton_contract::ClosesFailOnce;
use baton_domain::ports::{
    BuildProvider, DeployProgress, DeployRequest, Deployer, HealthGate, Notifier, ProviderError, Providers, RunHandle,
};
use baton_domain::release::{EventKind, ReleaseStatus, Rollup, Stage, WaveStatus};
use baton_e2e::*;
use baton_local_runner::LocalBaton;
use baton_providers::{EnvSecretResolver, LocalProviders};
use std::sync::Arc;

/// The wave whose forward deploys panic.
const PANICKING_WAVE: &str = "one-region";

/// The local providers, except that starting a forward deploy of [`PANICKING_WAVE`] panics.
struct PanickingDeploys(LocalProviders);

struct PanickingDeployer(Box<dyn Deployer>);

#[async_trait]
impl Deployer for PanickingDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        if request.wave == PANICKING_WAVE && !request.rollback {
            panic!("index out of bounds: the len is 0 but the index is 0");
        }
        self.0.start(request).await
    }
    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        self.0.poll(run).await
    }
}

impl Providers for PanickingDeploys {
    fn build(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
        self.0.build(spec, entry)
    }
    fn deployer(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
        Ok(Box::new(PanickingDeployer(self.0.deployer(spec, entry)?)))
    }
    fn gate(&self, spec: &GateSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError> {
        self.0.gate(spec, entry)
    }
    fn notifiers(&self, slack: Option<&SlackSpec>, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
        self.0.notifiers(slack, entry)
    }
}

#[tokio::test]
async fn a_panicking_deployer_fails_its_wave_and_the_release_rolls_back_and_unlocks() {
    let fixture = Fixture::new();
    let local = LocalProviders::new(fixture.state_dir().join("workspace"), None, Arc::new(EnvSecretResolver), None).unwrap();
    let mut ports = fixture.baton().ports().clone();
    ports.providers = Arc::new(PanickingDeploys(local));
    let baton = LocalBaton::new(ports, baton_asl::Clock::Virtual).unwrap();

    let outcome = baton.run("exec-panic", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    let release = release_of(&baton, "exec-panic").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack, "{release:#?}");
    let failure = release.failure.clone().expect("the failure is recorded");
    assert_eq!(failure.error, "Baton.Internal");
    assert!(failure.cause.contains("panicked") && failure.cause.contains("index out of bounds"), "the panic is the cause: {failure:?}");
    let waves: Vec<_> = release.waves.iter().map(|w| (w.name.as_str(), w.status)).collect();
    assert_eq!(waves[0], ("canary", WaveStatus::RolledBack), "the wave before the panic is put back: {waves:?}");
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "the first release rolls back to nothing");
    let unlocked = outcome.history.iter().any(|e| e.details.as_ref().and_then(|d| d.name.as_deref()) == Some("Unlock"));
    assert!(unlocked, "the release reached Unlock");
    // Closed, its timeline ended, and no lock left held.
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_close_whose_answer_was_lost_is_retried_and_the_release_counted_and_ended_once() {
    let fixture = Fixture::new();
    let mut ports = fixture.baton().ports().clone();
    ports.store = Arc::new(ClosesFailOnce::new(ports.store.clone(), true));
    let baton = LocalBaton::new(ports, baton_asl::Clock::Virtual).unwrap();

    let outcome = baton.run("exec-lost", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let store_failures = outcome
        .history
        .iter()
        .filter(|e| e.event_type == EventType::LambdaFunctionFailed)
        .filter(|e| e.details.as_ref().and_then(|d| d.more.as_ref()).and_then(|m| m.error.as_deref()) == Some("Baton.StoreUnavailable"))
        .count();
    assert_eq!(store_failures, 1, "the lost answer failed RecordMetrics once, and its Retry ran it again");
    let release = release_of(&baton, "exec-lost").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    // The timeline ends with the outcome once, and the lock is free.
    assert_consistent(&baton, &release).await;
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let endings = events.iter().filter(|e| e.stage == Stage::Done && Some(e.kind) == EventKind::ending(release.status)).count();
    assert_eq!(endings, 1, "{events:#?}");
    let day = release.finished_at.unwrap().date_naive();
    let rollups = baton.ports().store.rollups(SERVICE, ENVIRONMENT, day, day).await.unwrap();
    assert_eq!(rollups, vec![(day, Rollup { deployments: 1, ..Rollup::default() })], "counted once");
}

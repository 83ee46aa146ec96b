//! The release definition's history budget: a large service's release must stay well inside
//! Step Functions' 25,000-event execution history, which the executor enforces as AWS does.
//!
//! 200 targets across 4 waves, and 500 targets in the waves their topology gives, every target's
//! deploy and rollback pending for 40 polls, the last wave unhealthy so that all roll back. Run
//! with `--nocapture` for the figures.

use async_trait::async_trait;
use baton_asl::{Clock, EventType};
use baton_domain::catalog::{FsCatalog, GateSpec, ProviderBlock, ServiceEntry};
use baton_domain::ports::{
    BuildProvider, DeployProgress, DeployRequest, Deployer, HealthGate, Notifier, ProviderError, Providers, RunHandle, SystemClock,
};
use baton_domain::release::ReleaseStatus;
use baton_domain::support::Ports;
use baton_e2e::*;
use baton_local_runner::LocalBaton;
use baton_providers::{EnvSecretResolver, LocalProviders};
use baton_store_sqlite::SqliteStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const WAVES: usize = 4;
const TARGETS_PER_WAVE: usize = 50;
const PENDING_POLLS: u32 = 40;
/// Step Functions' quota on an execution's history.
const HISTORY_QUOTA: usize = 25_000;

/// A deployer whose every run (deploy or rollback) answers Running `PENDING_POLLS` times.
#[derive(Default)]
struct SlowDeployer {
    polls: Mutex<HashMap<String, u32>>,
}

#[async_trait]
impl Deployer for SlowDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let id = format!("{}-{}-{}", request.wave, request.target, request.rollback);
        Ok(RunHandle { provider: "slow".into(), id, url: None, state: serde_json::Value::Null })
    }

    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        let mut polls = self.polls.lock().unwrap();
        let count = polls.entry(run.id.clone()).or_default();
        *count += 1;
        Ok(if *count > PENDING_POLLS { DeployProgress::Succeeded } else { DeployProgress::Running })
    }
}

/// The local providers, with deploys answered by one shared [`SlowDeployer`].
struct SlowDeploys {
    local: LocalProviders,
    deployer: Arc<SlowDeployer>,
}

struct SharedDeployer(Arc<SlowDeployer>);

#[async_trait]
impl Deployer for SharedDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        self.0.start(request).await
    }
    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        self.0.poll(run).await
    }
}

impl Providers for SlowDeploys {
    fn build(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
        self.local.build(spec, entry)
    }
    fn deployer(&self, _spec: &ProviderBlock, _entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
        Ok(Box::new(SharedDeployer(self.deployer.clone())))
    }
    fn gate(&self, spec: &GateSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError> {
        self.local.gate(spec, entry)
    }
    fn notifiers(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
        self.local.notifiers(entry)
    }
}

#[tokio::test]
async fn a_large_release_with_a_full_rollback_stays_well_inside_the_history_quota() {
    let waves: Vec<(String, Vec<String>)> =
        (1..=WAVES).map(|w| (format!("w{w}"), (1..=TARGETS_PER_WAVE).map(|t| format!("w{w}-t{t:03}")).collect())).collect();
    let fixture = Fixture::with_waves(&waves);
    let events = release_rolled_back_in_full(&fixture, &format!("w{WAVES}"), WAVES * TARGETS_PER_WAVE).await;
    eprintln!("history budget: {WAVES} waves x {TARGETS_PER_WAVE} targets, {PENDING_POLLS} pending polls per run, full rollback: {events}");
    assert!(events.count < HISTORY_QUOTA / 5, "{events}: the definition must stay well inside {HISTORY_QUOTA}");
}

/// 500 targets over 6 regions, their waves computed from the topology (one target, its zone, half
/// its region, the other regions half by half: 5 waves), the last unhealthy so that all roll back.
#[tokio::test]
async fn a_500_target_topology_release_with_a_full_rollback_stays_within_a_quarter_of_the_history_quota() {
    let fixture = Fixture::new();
    let regions: &[&[usize]] = &[&[50, 50], &[50, 50], &[50, 50], &[50, 50], &[25, 25], &[25, 25]];
    let targets = crate::topology::placed(regions);
    assert_eq!(targets.len(), 500);
    let policy = "        order: [one, az, region, rest]\n        max-share: {region: 50%}\n        bake: 10m\n";
    crate::topology::write_topology(&fixture, &targets, policy);
    let events = release_rolled_back_in_full(&fixture, "rest-2", targets.len()).await;
    eprintln!("history budget: 500 topology targets in 5 waves, {PENDING_POLLS} pending polls per run, full rollback: {events}");
    assert!(events.count < HISTORY_QUOTA / 4, "{events}: a 500-target topology release must stay within a quarter of {HISTORY_QUOTA}");
}

/// What a release's execution history cost.
struct HistoryCost {
    count: usize,
    transitions: usize,
    invocations: usize,
}

impl std::fmt::Display for HistoryCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = 100.0 * self.count as f64 / HISTORY_QUOTA as f64;
        write!(
            f,
            "{} events ({share:.1} % of {HISTORY_QUOTA}), {} state transitions, {} Lambda invocations",
            self.count, self.transitions, self.invocations
        )
    }
}

/// Releases the fixture's service with every deploy and rollback pending for [`PENDING_POLLS`]
/// polls and `unhealthy` (the last wave) failing its health check, checks that all `targets`
/// were put back, and answers what the history cost.
async fn release_rolled_back_in_full(fixture: &Fixture, unhealthy: &str, targets: usize) -> HistoryCost {
    fixture.set(&format!("unhealthy-{unhealthy}"));
    let local = LocalProviders::new(fixture.state_dir().join("workspace"), None, Arc::new(EnvSecretResolver), None).unwrap();
    let ports = Ports {
        store: Arc::new(SqliteStore::open(&baton_store_sqlite::database_path(&fixture.state_dir())).unwrap()),
        catalog: Arc::new(FsCatalog::open(baton_providers::registry(), fixture.catalog()).unwrap()),
        providers: Arc::new(SlowDeploys { local, deployer: Arc::default() }),
        clock: Arc::new(SystemClock),
    };
    let baton = LocalBaton::new(ports, Clock::Virtual).unwrap();

    let outcome = baton.run("exec-large", cli_input("cli-1")).await;
    assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");

    let release = release_of(&baton, "exec-large").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(release.waves.last().map(|w| w.name.as_str()), Some(unhealthy), "the last wave failed");
    let rolled_back = release.waves.iter().flat_map(|w| &w.deploys).filter(|d| d.rollback).count();
    assert_eq!(rolled_back, targets, "every target was put back");

    HistoryCost {
        count: outcome.history.len(),
        transitions: outcome.history.iter().filter(|e| e.event_type.as_str().ends_with("StateEntered")).count(),
        invocations: outcome.history.iter().filter(|e| e.event_type == EventType::LambdaFunctionScheduled).count(),
    }
}

//! In-memory stand-ins for the ports a task handler takes, for the handlers' own tests (one
//! set, shared by every function crate): a catalog of one entry, a clock that moves when told,
//! and providers whose builds, deploys and gates answer what the test scripted, noting each
//! call. The store is a real one the caller passes (SQLite in memory passes the store contract).

use async_trait::async_trait;
use baton_domain::catalog::{Delivery, DeploySpec, HealthSpec, ProviderBlock, SchemaVersion, ServiceEntry, WaveSpec};
use baton_domain::flow::{ReleaseContext, WavePlan};
use baton_domain::ports::{
    BuildPoll, BuildProgress, BuildProvider, BuildRequest, CatalogError, CatalogSource, Clock, DeployProgress, DeployRequest, Deployer,
    GateReading, HealthGate, HealthRequest, Notification, Notifier, ProviderError, Providers, ReleaseStore,
};
use baton_domain::release::{Artifact, ReleaseId, RunHandle, Signal, Stage, Trigger, TriggerKind, WaveStatus};
use baton_domain::rules::{admission, builds};
use baton_domain::support::Ports;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The provider name of the entry's blocks: [`FakeProviders`] builds every one of them.
pub const SCRIPTED: &str = "scripted";

/// A catalog holding one entry.
pub struct OneEntry(pub ServiceEntry);

#[async_trait]
impl CatalogSource for OneEntry {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError> {
        match name == self.0.name {
            true => Ok(self.0.clone()),
            false => Err(CatalogError::NotFound { service: name.into(), searched: "the test's one entry".into() }),
        }
    }
}

/// A clock that stands still until a test moves it.
pub struct StoppedClock(Mutex<DateTime<Utc>>);

impl StoppedClock {
    pub fn at(now: DateTime<Utc>) -> StoppedClock {
        StoppedClock(Mutex::new(now))
    }

    pub fn advance(&self, seconds: i64) {
        *self.0.lock().unwrap() += TimeDelta::seconds(seconds);
    }
}

impl Clock for StoppedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// What the providers answer, in order, and what they were asked. An exhausted script answers
/// `Unavailable`, as a provider that stopped answering would.
#[derive(Default)]
pub struct Script {
    builds: Mutex<VecDeque<BuildProgress>>,
    deploys: Mutex<VecDeque<DeployProgress>>,
    readings: Mutex<VecDeque<GateReading>>,
    calls: Mutex<Vec<String>>,
}

impl Script {
    pub fn build(&self, progress: BuildProgress) {
        self.builds.lock().unwrap().push_back(progress);
    }

    pub fn deploy(&self, progress: DeployProgress) {
        self.deploys.lock().unwrap().push_back(progress);
    }

    pub fn reading(&self, reading: GateReading) {
        self.readings.lock().unwrap().push_back(reading);
    }

    /// Every call so far: `start build`, `poll build 7`, `cancel build 7`, `deploy web-1 <artifact>`,
    /// `poll deploy web-1`, `sample canary`, `notify <headline>`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn next<T>(&self, answers: &Mutex<VecDeque<T>>, what: &str) -> Result<T, ProviderError> {
        answers.lock().unwrap().pop_front().ok_or_else(|| ProviderError::unavailable(format!("the test scripted no more {what}")))
    }
}

/// Builds every block of the entry (whatever its provider) on one [`Script`].
pub struct FakeProviders(pub Arc<Script>);

struct Scripted(Arc<Script>);

fn handle(kind: &str, id: &str) -> RunHandle {
    RunHandle {
        provider: SCRIPTED.into(),
        id: id.into(),
        url: Some(format!("https://ci.example/{kind}/{id}")),
        state: serde_json::Value::Null,
    }
}

#[async_trait]
impl BuildProvider for Scripted {
    async fn start(&self, _request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        self.0.note("start build".into());
        Ok(handle("builds", "7"))
    }

    async fn find(&self, _request: &BuildRequest, _since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        Ok(None)
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        self.0.note(format!("poll build {}", run.id));
        Ok(self.0.next(&self.0.builds, "builds")?.into())
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        self.0.note(format!("cancel build {}", run.id));
        Ok(())
    }
}

#[async_trait]
impl Deployer for Scripted {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        self.0.note(format!("deploy {} {}", request.target, request.artifact.reference));
        Ok(handle("deploys", &request.target))
    }

    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        self.0.note(format!("poll deploy {}", run.id));
        self.0.next(&self.0.deploys, "deploys")
    }
}

#[async_trait]
impl HealthGate for Scripted {
    fn describe(&self) -> String {
        "the scripted gate".into()
    }

    async fn sample(&self, request: &HealthRequest) -> Result<GateReading, ProviderError> {
        self.0.note(format!("sample {}", request.wave));
        self.0.next(&self.0.readings, "gate readings")
    }
}

#[async_trait]
impl Notifier for Scripted {
    fn name(&self) -> &str {
        SCRIPTED
    }

    async fn notify(
        &self,
        notification: &Notification,
        _state: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        self.0.note(format!("notify {}", notification.headline));
        Ok(None)
    }
}

impl Providers for FakeProviders {
    fn build(&self, _spec: &ProviderBlock, _entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
        Ok(Box::new(Scripted(Arc::clone(&self.0))))
    }

    fn deployer(&self, _spec: &ProviderBlock, _entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
        Ok(Box::new(Scripted(Arc::clone(&self.0))))
    }

    fn gate(&self, _spec: &baton_domain::catalog::GateSpec, _entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError> {
        Ok(Box::new(Scripted(Arc::clone(&self.0))))
    }

    fn notifiers(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
        Ok(entry.delivery.notify.iter().map(|_| Box::new(Scripted(Arc::clone(&self.0))) as Box<dyn Notifier>).collect())
    }
}

/// Service `web` releasing `main` to production in one wave, `canary` (`web-1`), baked 60 s and
/// judged by one gate sampled every 30 s; one notifier. Every block is [`SCRIPTED`].
pub fn entry() -> ServiceEntry {
    let scripted = || ProviderBlock::new(SCRIPTED, serde_json::json!({}));
    let wave = WaveSpec {
        name: "canary".into(),
        targets: vec!["web-1".into()],
        bake: baton_domain::catalog::Seconds(60),
        deploy_timeout: WaveSpec::DEFAULT_DEPLOY_TIMEOUT,
        approval: None,
    };
    ServiceEntry {
        name: "web".into(),
        schema: SchemaVersion::V2_2,
        team: Some("web-team".into()),
        links: Vec::new(),
        source: "web.yaml".into(),
        delivery: Delivery {
            environment: "production".into(),
            release_branch: "main".into(),
            feature_branch: None,
            schedule: None,
            team: None,
            on_call: None,
            build: scripted(),
            build_timeout: Delivery::DEFAULT_BUILD_TIMEOUT,
            deploy: DeploySpec { target: scripted(), waves: vec![wave], topology: None },
            health: HealthSpec::single(scripted()),
            notify: vec![scripted()],
            telemetry: Vec::new(),
            freeze: Default::default(),
            events: Default::default(),
        },
    }
}

/// The ports a handler takes, over `store`, with [`entry`], a [`StoppedClock`] and a [`Script`].
pub struct FakePorts {
    pub ports: Ports,
    pub script: Arc<Script>,
    pub clock: Arc<StoppedClock>,
    pub entry: ServiceEntry,
}

impl FakePorts {
    pub fn new(store: Arc<dyn ReleaseStore>) -> FakePorts {
        let (script, clock, entry) = (Arc::new(Script::default()), Arc::new(StoppedClock::at(crate::changes::t0())), entry());
        let ports = Ports {
            store,
            catalog: Arc::new(OneEntry(entry.clone())),
            providers: Arc::new(FakeProviders(Arc::clone(&script))),
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
        };
        FakePorts { ports, script, clock, entry }
    }

    /// A release of the entry as load-catalog registers it (queued, its entry kept with it).
    pub async fn registered(&self) -> ReleaseContext {
        let signal = Signal {
            service: self.entry.name.clone(),
            environment: None,
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            branch: None,
            trigger: Trigger::new(TriggerKind::Cli, "cli-1".into(), None),
            changed_at: None,
        };
        let id = ReleaseId("rel-web-1".into());
        let release = admission::admit(&signal, &self.entry, id.clone(), "exec-1", self.clock.now()).expect("the signal is admitted");
        self.ports.store.create_release(&release, &signal.idempotency_key()).await.expect("the release is stored");
        self.ports.store.keep_entry(&id, &self.entry).await.expect("the entry is kept");
        ReleaseContext { id, service: release.service, environment: release.environment, branch: release.branch, sha: release.sha }
    }

    /// A release that took its lock (as load-catalog leaves it).
    pub async fn running(&self) -> ReleaseContext {
        let context = self.registered().await;
        let now = self.clock.now();
        self.ports
            .update_release(&context, |release| release.begin(now, None).expect("a queued release begins"))
            .await
            .expect("the release is updated");
        context
    }

    /// A release whose build runs (as trigger-build leaves it), with the build's handle.
    pub async fn building(&self) -> (ReleaseContext, RunHandle) {
        let context = self.running().await;
        let build = self.ports.providers.build(&self.entry.delivery.build, &self.entry).expect("a scripted build");
        let run = build.start(&build_request(&context)).await.expect("the scripted build starts");
        let now = self.clock.now();
        self.ports
            .update_release(&context, |release| {
                builds::record_request(release, SCRIPTED, now);
                builds::record_start(release, &run, now);
            })
            .await
            .expect("the release is updated");
        (context, run)
    }

    /// A release whose build gave [`artifact`] (as poll-build leaves it), deploying.
    pub async fn built(&self) -> ReleaseContext {
        let (context, _) = self.building().await;
        self.ports
            .update_release(&context, |release| {
                release.artifact = Some(artifact());
                release.enter(Stage::Deploy).expect("a building release deploys");
            })
            .await
            .expect("the release is updated");
        context
    }

    /// A release whose one wave deployed and bakes (as deploy-wave leaves it).
    pub async fn baking(&self) -> ReleaseContext {
        let context = self.built().await;
        let now = self.clock.now();
        self.ports
            .update_release(&context, |release| {
                release.waves[0].begin_deploy(now);
                release.waves[0].move_to(WaveStatus::Baking).expect("a deploying wave bakes");
            })
            .await
            .expect("the release is updated");
        context
    }

    /// The entry's one wave, as the definition iterates it.
    pub fn wave(&self) -> WavePlan {
        WavePlan::from_specs(&self.entry.delivery.deploy.waves).remove(0)
    }
}

/// What the scripted build builds.
pub fn artifact() -> Artifact {
    Artifact {
        reference: "ghcr.io/acme/web:0123456".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        branch: "main".into(),
        build_url: None,
    }
}

fn build_request(context: &ReleaseContext) -> BuildRequest {
    BuildRequest {
        service: context.service.clone(),
        environment: context.environment.clone(),
        release_id: context.id.clone(),
        branch: context.branch.clone(),
        sha: context.sha.clone(),
    }
}

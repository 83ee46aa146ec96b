//! Faults inside a release: a task that panics fails its task, and the definition's Catch
//! still takes the release through rollback, its record and Unlock; a store that loses the
//! answer to a close has the close retried, counted and ended once.

use async_trait::async_trait;
use baton_asl::{EventType, ExecutionOutcome, ExecutionStart, ExecutionStatus, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use baton_contract::ClosesFailOnce;
use baton_domain::catalog::{GateSpec, ProviderBlock, ServiceEntry};
use baton_domain::ports::{
    BuildProvider, DeployProgress, DeployRequest, Deployer, HealthGate, Notifier, ProviderError, Providers, RunHandle,
};
use baton_domain::release::{EventKind, ReleaseStatus, Rollup, Stage, WaveStatus};
use baton_e2e::*;
use baton_local_runner::{HandlerInvoker, LocalBaton, substituted_definition};
use baton_providers::{EnvSecretResolver, LocalProviders};
use std::sync::Arc;

/// The wave whose forward deploys panic.
const PANICKING_WAVE: &str = "one-region";

/// What a test puts around each deployer.
type DeployerWrap = Box<dyn Fn(Box<dyn Deployer>) -> Box<dyn Deployer> + Send + Sync>;

/// The local providers with each deployer wrapped by `wrap`: a test changes what deploys do
/// and nothing else.
struct WrappedDeploys {
    local: LocalProviders,
    wrap: DeployerWrap,
}

impl WrappedDeploys {
    fn new(fixture: &Fixture, wrap: impl Fn(Box<dyn Deployer>) -> Box<dyn Deployer> + Send + Sync + 'static) -> WrappedDeploys {
        let local = LocalProviders::new(fixture.state_dir().join("workspace"), None, Arc::new(EnvSecretResolver), None).unwrap();
        WrappedDeploys { local, wrap: Box::new(wrap) }
    }
}

impl Providers for WrappedDeploys {
    fn build(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
        self.local.build(spec, entry)
    }
    fn deployer(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
        Ok((self.wrap)(self.local.deployer(spec, entry)?))
    }
    fn gate(&self, spec: &GateSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError> {
        self.local.gate(spec, entry)
    }
    fn notifiers(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
        self.local.notifiers(entry)
    }
}

/// Starting a forward deploy of [`PANICKING_WAVE`] panics.
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

#[tokio::test]
async fn a_panicking_deployer_fails_its_wave_and_the_release_rolls_back_and_unlocks() {
    let fixture = Fixture::new();
    let mut ports = fixture.baton().ports().clone();
    ports.providers = Arc::new(WrappedDeploys::new(&fixture, |inner| Box::new(PanickingDeployer(inner))));
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

/// The target whose forward start hangs until the invocation is killed, in [`HUNG_WAVE`].
const HUNG_TARGET: &str = "use1-b";
const HUNG_WAVE: &str = "one-region";

/// The forward start of [`HUNG_TARGET`] never answers: it waits until the wave's other target is
/// saved as started (or a few seconds, for a deploy-wave that saves nothing before every target
/// answers), then asks the invoker to kill the invocation.
struct HangingDeployer {
    inner: Box<dyn Deployer>,
    store: Arc<dyn baton_domain::ports::ReleaseStore>,
    kill: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Deployer for HangingDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        if request.target != HUNG_TARGET || request.wave != HUNG_WAVE || request.rollback {
            return self.inner.start(request).await;
        }
        for _ in 0..250 {
            let release = self.store.get_release(&request.release_id).await.unwrap().unwrap();
            let wave = release.waves.iter().find(|w| w.name == HUNG_WAVE).unwrap();
            if wave.deploys.iter().any(|d| d.target != HUNG_TARGET) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.kill.notify_one();
        std::future::pending().await
    }
    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        self.inner.poll(run).await
    }
}

/// The handlers, except that an invocation is ended the way Lambda ends one that runs past its
/// timeout (the future dropped mid-flight, `Sandbox.Timedout`) when `kill` is notified.
struct TimingOut {
    handlers: HandlerInvoker,
    kill: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl TaskInvoker for TimingOut {
    async fn invoke(&self, call: TaskCall) -> Result<serde_json::Value, TaskFailure> {
        tokio::select! {
            answer = self.handlers.invoke(call) => answer,
            () = self.kill.notified() => Err(TaskFailure::new("Sandbox.Timedout", "Task timed out after 60.00 seconds")),
        }
    }
}

#[tokio::test]
async fn a_deploy_wave_killed_mid_start_has_every_started_target_rolled_back() {
    let fixture = Fixture::new();
    let first = fixture.baton();
    assert_status(&first.run("exec-v1", cli_input("cli-1")).await, ExecutionStatus::Succeeded);
    let v1 = release_of(&first, "exec-v1").await.artifact.unwrap().reference;

    let kill = Arc::new(tokio::sync::Notify::new());
    let mut ports = first.ports().clone();
    let (store, hang_kill) = (ports.store.clone(), kill.clone());
    ports.providers = Arc::new(WrappedDeploys::new(&fixture, move |inner| {
        Box::new(HangingDeployer { inner, store: store.clone(), kill: hang_kill.clone() })
    }));
    let invoker = Arc::new(TimingOut { handlers: HandlerInvoker::new(ports.clone()), kill });
    let machine = Arc::new(StateMachine::from_json(&substituted_definition()).unwrap());
    let executor = Executor::new(invoker, baton_asl::Clock::Virtual);
    let outcome = executor.run(machine, ExecutionStart::new("exec-v2", cli_input("cli-2"))).await;

    assert_status(&outcome, ExecutionStatus::Failed);
    let release = release_of(&first, "exec-v2").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack, "{release:#?}");
    assert_eq!(release.failure.as_ref().map(|f| f.error.as_str()), Some("Sandbox.Timedout"));
    let waves: Vec<_> = release.waves.iter().map(|w| (w.name.as_str(), w.status)).collect();
    assert_eq!(waves[..2], [("canary", WaveStatus::RolledBack), (HUNG_WAVE, WaveStatus::RolledBack)], "{waves:?}");
    for target in ["box-1", "use1-a", HUNG_TARGET] {
        assert_eq!(fixture.deployed(SERVICE, target).as_deref(), Some(v1.as_str()), "{target} is back on the previous artifact");
    }
    assert_consistent(&first, &release).await;
}

/// The forward deploys of the first wave ("canary") answer `Running` to their first `slow_polls`
/// polls (all of them with `None`).
struct SlowDeployer {
    inner: Box<dyn Deployer>,
    slow_polls: Option<usize>,
    polls: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

#[async_trait]
impl Deployer for SlowDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let run = self.inner.start(request).await?;
        if request.wave == "canary" && !request.rollback {
            self.polls.lock().unwrap().insert(run.id.clone(), 0);
        }
        Ok(run)
    }
    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        if let Some(polls) = self.polls.lock().unwrap().get_mut(&run.id)
            && self.slow_polls.is_none_or(|slow| *polls < slow)
        {
            *polls += 1;
            return Ok(DeployProgress::Running);
        }
        self.inner.poll(run).await
    }
}

/// The fixture's service with `deploy-timeout: <timeout>` on every wave, released with the canary's
/// deploy answering `Running` to `slow_polls` polls (`None`: for ever).
async fn slow_canary_release(timeout: Option<&str>, slow_polls: Option<usize>) -> (Fixture, LocalBaton, ExecutionOutcome, usize) {
    let fixture = Fixture::new();
    if let Some(timeout) = timeout {
        let file = fixture.catalog().join(format!("{SERVICE}.yaml"));
        let text =
            std::fs::read_to_string(&file).unwrap().replace("bake: 10m\n", &format!("bake: 10m\n          deploy-timeout: {timeout}\n"));
        std::fs::write(file, text).unwrap();
    }
    let polls = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut ports = fixture.baton().ports().clone();
    let shared = polls.clone();
    ports.providers =
        Arc::new(WrappedDeploys::new(&fixture, move |inner| Box::new(SlowDeployer { inner, slow_polls, polls: shared.clone() })));
    let baton = LocalBaton::new(ports, baton_asl::Clock::Virtual).unwrap();
    let outcome = baton.run("exec-slow", cli_input("cli-1")).await;
    let polled = polls.lock().unwrap().values().sum();
    (fixture, baton, outcome, polled)
}

#[tokio::test]
async fn a_slow_deploy_within_its_deploy_timeout_succeeds_however_many_polls_it_takes() {
    // 130 polls take about 40 minutes of (virtual) time: more polls than any retry count would
    // allow, well within the default hour.
    let (_fixture, baton, outcome, polled) = slow_canary_release(None, Some(130)).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    assert_eq!(polled, 130);
    let release = release_of(&baton, "exec-slow").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_deploy_past_its_deploy_timeout_fails_its_wave_and_the_release_rolls_back() {
    let (fixture, baton, outcome, _) = slow_canary_release(Some("10m"), None).await;
    assert_outcome(&outcome, "rolled-back", "Baton.DeployFailed");

    let release = release_of(&baton, "exec-slow").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack, "{release:#?}");
    let failure = release.failure.clone().expect("the failure is recorded");
    assert_eq!(failure.error, "Baton.DeployFailed");
    assert!(failure.cause.contains("deploy-timeout") && failure.cause.contains("still rolling out"), "{failure:?}");
    // Ten minutes of polling, not an hour: the deadline, not a count, ended it.
    let entered = |event_type: EventType, state: &str| {
        let named = |e: &&baton_asl::HistoryEvent| e.details.as_ref().and_then(|d| d.name.as_deref()) == Some(state);
        outcome.history.iter().filter(|e| e.event_type == event_type).find(named).map(|e| e.timestamp).unwrap()
    };
    let started = entered(EventType::TaskStateEntered, "StartWave");
    let failed_at = entered(EventType::FailStateEntered, "WaveDeployTimedOut");
    let waited = failed_at - started;
    assert!(waited >= chrono::TimeDelta::minutes(10) && waited < chrono::TimeDelta::minutes(13), "{waited:?}");
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "the first release rolls back to nothing");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_deploy_wave_short_of_time_starts_no_target_and_its_retry_starts_them() {
    use baton_domain::support::with_invocation_deadline;
    use std::time::Duration;
    let fixture = Fixture::new();
    let baton = fixture.baton();
    let ports = baton.ports().clone();
    let registered = baton_load_catalog::register(&ports, &cli_input("cli-1"), "exec-short").await.unwrap();
    let wave = registered.waves[1].clone();
    let artifact = baton_domain::release::Artifact {
        reference: "checkout-v2.tar.gz".into(),
        sha: "4f2a9c1e".into(),
        branch: "main".into(),
        build_url: None,
    };
    let payload =
        serde_json::json!({"action": "start", "rollback": false, "release": registered.release, "wave": wave, "artifact": artifact});
    let wave_now = || async {
        let release = ports.store.get_release(&registered.release.id).await.unwrap().unwrap();
        release.waves.into_iter().find(|w| w.name == wave.name).unwrap()
    };

    // Less time left than a start may take: nothing starts, and the retry is asked for.
    let short = tokio::time::Instant::now() + Duration::from_secs(20);
    let error = with_invocation_deadline(short, baton_deploy_wave::handle(&ports, None, payload.clone())).await.unwrap_err();
    assert_eq!(error.error, baton_domain::error::ErrorName::DeployPending, "{error:?}");
    assert!(error.cause.contains("2 targets left to start"), "{error:?}");
    let begun = wave_now().await;
    assert_eq!((begun.status, begun.deploys.len()), (WaveStatus::Deploying, 0), "begun, so a rollback covers it; nothing started");

    // The retry has the time: both targets start, and the wave's deadline comes back.
    let ample = tokio::time::Instant::now() + Duration::from_secs(120);
    let answer = with_invocation_deadline(ample, baton_deploy_wave::handle(&ports, None, payload)).await.unwrap();
    assert!(answer["deadline"].is_string(), "{answer}");
    assert_eq!(wave_now().await.deploys.len(), 2);
}

/// Starts of `target`'s forward deploys: held back by a rate limit for the first `limited`
/// starts (answered by the provider at the first, held back by Baton after), unavailable for
/// ever when `limited` is `None`.
struct LimitedDeployer {
    inner: Box<dyn Deployer>,
    target: &'static str,
    limited: Option<usize>,
    /// Shared by the deployers of every task call.
    starts: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl Deployer for LimitedDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        if request.target != self.target || request.rollback {
            return self.inner.start(request).await;
        }
        let start = self.starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Some(limited) = self.limited else {
            return Err(ProviderError::unavailable(format!("syncing {}: Argo CD answered HTTP 503", request.target)));
        };
        if start >= limited {
            return self.inner.start(request).await;
        }
        let until = chrono::DateTime::parse_from_rfc3339(LIMITED_UNTIL).unwrap().with_timezone(&chrono::Utc);
        let limit = baton_domain::ports::RateLimited { service: "Argo CD".into(), until, answered: start == 0 };
        Err(ProviderError::unavailable(format!("syncing {}: Argo CD is rate limiting", request.target)).caused_by(limit))
    }
    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        self.inner.poll(run).await
    }
}

const LIMITED_UNTIL: &str = "2026-01-01T13:00:00Z";

fn limited_baton(fixture: &Fixture, limited: Option<usize>) -> LocalBaton {
    let mut ports = fixture.baton().ports().clone();
    let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    ports.providers = Arc::new(WrappedDeploys::new(fixture, move |inner| {
        Box::new(LimitedDeployer { inner, target: "box-1", limited, starts: starts.clone() })
    }));
    LocalBaton::new(ports, baton_asl::Clock::Virtual).unwrap()
}

#[tokio::test]
async fn a_deploy_provider_s_rate_limit_is_waited_out_by_the_wave_not_failed() {
    let fixture = Fixture::new();
    // Thirty starts held back: more than the outage budget (6) and the old start budget (20).
    let baton = limited_baton(&fixture, Some(30));
    let outcome = baton.run("exec-limited", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-limited").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded, "{:#?}", release.failure);
    assert_eq!(fixture.deployed(SERVICE, "box-1"), release.artifact.as_ref().map(|artifact| artifact.reference.clone()));
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let waiting: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Retrying && e.target.as_deref() == Some("box-1"))
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(waiting, vec!["box-1: waiting for Argo CD's rate limit until 2026-01-01T13:00:00Z"], "told once, with until when");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_deploy_start_given_up_is_told_before_the_rollback() {
    let fixture = Fixture::new();
    let baton = limited_baton(&fixture, None);
    let outcome = baton.run("exec-gave-up", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    let release = release_of(&baton, "exec-gave-up").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack, "{:#?}", release.failure);
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let gave_up = events.iter().position(|e| e.kind == EventKind::GaveUp).expect("the give-up is in the timeline");
    assert!(
        events[gave_up].message.starts_with("gave up after its retries: Baton.ProviderUnavailable")
            && events[gave_up].message.contains("Argo CD answered HTTP 503"),
        "{events:#?}"
    );
    let rolling_back = events.iter().position(|e| e.stage == Stage::Rollback && e.kind == EventKind::Started).expect("a rollback");
    assert!(gave_up < rolling_back, "told when it happened, not at the end: {events:#?}");
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::GaveUp).count(), 1, "record-metrics does not tell it again");
    assert_consistent(&baton, &release).await;
}

//! `baton plan`'s work: the [`Plan`] of a release from the catalog and the store's records, and
//! what the release is expected to cost, polled and parked on its providers' events, each counted
//! by running the real release definition on the embedded executor's virtual clock with
//! simulated task answers: the build ends after its expected time, each wave deploys in its
//! expected time, every gate is healthy, every approval is given at once, and a provider's event
//! comes the moment its run ends. The definition stays the one source of the flow (its states,
//! Retry back-offs and pauses): a change to it changes the plan's counts with no edit here.
//! Nothing is written and no provider is called.

use crate::{LocalError, STATE_MACHINE_NAME, substituted_definition};
use async_trait::async_trait;
use baton_asl::{
    Clock, ExecutionStart, ExecutionStatus, Executor, HistoryEvent, StateMachine, TaskCall, TaskFailure, TaskInvoker, WeakExecutor,
};
use baton_domain::catalog::{ApprovalSpec, GateSpec, ServiceEntry};
use baton_domain::error::ErrorName;
use baton_domain::flow::{
    BuildStarted, CheckHealthRequest, DeployWaveRequest, Done, FreezeVerdict, NotifyEvent, NotifyRequest, Park, PollBuildRequest,
    Registered, ReleaseContext, TriggerBuildRequest, WatchReport, WavePlan, WaveStarted,
};
use baton_domain::ports::{CatalogError, CatalogSource, GateReading, ReleaseStore, StoreError};
use baton_domain::release::{Artifact, GateRecord, ReleaseId, RunHandle, Signal};
use baton_domain::rules::cost::{self, Estimate, ProviderCalls, Usage};
use baton_domain::rules::freeze::{self, Window};
use baton_domain::rules::plan::{self, Plan, PlanRequest, Verdict};
use baton_domain::rules::{deadline_after, watch};
use baton_domain::waits;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::broadcast;

/// How many of the service's latest releases the durations and the rollback target come from.
const RECENT_RELEASES: usize = 50;

/// A release planned: the entry as registration resolves it, the plan, and its expected cost.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub entry: ServiceEntry,
    pub plan: Plan,
    /// `None` when admission refuses the release: nothing would run.
    pub cost: Option<Forecast>,
}

/// What a release is expected to cost, polled and parked on its providers' events, so an operator
/// sees what `events: {wait: true}` saves (or costs) for this entry.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    /// The entry's `events.wait`: which of the two its releases run.
    pub waits_for_events: bool,
    /// How long a park waits for its event before the safety net's poll (`events.safety-net`).
    pub safety_net_seconds: u64,
    /// Whether the bakes park too (every gate a CloudWatch gate naming its alarms); otherwise
    /// they sample at the health interval either way.
    pub bakes_park: bool,
    pub polling: Estimate,
    pub events: Estimate,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signal or the entry cannot make a release: another environment, a bad branch or
    /// commit, freeze windows or an approval default that cannot be read.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The simulated release did not succeed: the definition and the simulation disagree.
    #[error("the simulated release of {service} ended {status:?}: {why}")]
    Simulation { service: String, status: ExecutionStatus, why: String },
}

/// Plans the release an execution `input` (any shape a release starts from) asks for at `now`,
/// from `catalog` and (when there is one) the `store`'s records of the service.
pub async fn plan_release(
    catalog: &dyn CatalogSource,
    store: Option<&dyn ReleaseStore>,
    input: &Value,
    now: DateTime<Utc>,
) -> Result<Planned, PlanError> {
    let signal = &baton_load_catalog::normalise(input, "plan").map_err(|refused| PlanError::Invalid(refused.cause))?;
    let mut entry = catalog.service(&signal.service).await?;
    let default = ApprovalSpec::organisation_default().map_err(PlanError::Invalid)?;
    ApprovalSpec::apply_default(&mut entry.delivery, default.as_ref());
    let recent = match store {
        Some(store) => store.list_releases(&entry.name, Some(&entry.delivery.environment), RECENT_RELEASES).await?,
        None => Vec::new(),
    };
    let plan = plan::plan(&PlanRequest { signal, entry: &entry, recent: &recent, now }).map_err(|refusal| match refusal {
        plan::Refusal::Invalid(why) | plan::Refusal::NotReleased(why) | plan::Refusal::CatalogInvalid(why) => PlanError::Invalid(why),
    })?;
    let cost = match plan.admission {
        Verdict::Allowed => Some(forecast(&plan, &entry, signal, input, now).await?),
        Verdict::Refused { .. } | Verdict::Skipped { .. } => None,
    };
    Ok(Planned { entry, plan, cost })
}

/// The release run both ways, whichever the entry chose.
async fn forecast(plan: &Plan, entry: &ServiceEntry, signal: &Signal, input: &Value, now: DateTime<Utc>) -> Result<Forecast, PlanError> {
    let events = entry.delivery.events;
    let polling = estimate(Simulated::new(plan, entry, signal, None)?, input, now).await?;
    let parked = estimate(Simulated::new(plan, entry, signal, Some(events.safety_net.0))?, input, now).await?;
    Ok(Forecast {
        waits_for_events: events.wait,
        safety_net_seconds: events.safety_net.0,
        bakes_park: bakes_park(&entry.delivery.health.gates),
        polling,
        events: parked,
    })
}

/// Whether a wave's bake parks: every gate declares it can ([`baton_providers::gate_parks_bake`]),
/// as check-health's `waits::bake_keys` decides from the built gates.
fn bakes_park(gates: &[GateSpec]) -> bool {
    !gates.is_empty() && gates.iter().all(|spec| baton_providers::gate_parks_bake(&spec.gate))
}

/// The `simulated` release's usage priced, and the provider calls its tasks made.
async fn estimate(simulated: Simulated, input: &Value, now: DateTime<Utc>) -> Result<Estimate, PlanError> {
    let (usage, provider_calls) = expected_usage(simulated, input, now).await?;
    Ok(Estimate { cost: cost::estimate(&usage, cost::BATON_FUNCTIONS, &cost::PUBLIC_PRICES), provider_calls })
}

/// What the release `input` starts uses, counted from the history of the release definition run
/// with `simulated` answers, and the provider calls those answers stand for. Lambda time is not
/// foreseen: the simulated tasks take none.
async fn expected_usage(simulated: Simulated, input: &Value, now: DateTime<Utc>) -> Result<(Usage, ProviderCalls), PlanError> {
    let machine = StateMachine::from_json(&substituted_definition()).map_err(|err| LocalError::Definition(err.to_string()))?;
    let service = simulated.context.service.clone();
    let simulated = Arc::new(simulated);
    let executor = Executor::new(simulated.clone(), Clock::Virtual);
    let _ = simulated.executor.set(executor.downgrade());
    let name = format!("plan-{service}-{}", now.timestamp());
    let handle = executor.start(
        Arc::new(machine),
        ExecutionStart { state_machine_name: STATE_MACHINE_NAME.to_owned(), ..ExecutionStart::new(&name, input.clone()) },
    );
    let (_, events) = handle.subscribe();
    let _ = simulated.events.set(Mutex::new(events));
    let outcome = handle.outcome().await;
    // A release that does not ship ends its execution SUCCEEDED too (`NotReleased`): the plan is
    // of one that does.
    let shipped = outcome.output.as_ref().and_then(|output| output.pointer("/outcome/status")).is_some_and(|status| status == "succeeded");
    if outcome.status != ExecutionStatus::Succeeded || !shipped {
        let why = outcome.cause.or(outcome.error).or(outcome.output.map(|output| output.to_string())).unwrap_or_default();
        return Err(PlanError::Simulation { service, status: outcome.status, why });
    }
    let history: Vec<Value> = outcome.history.iter().filter_map(|event| serde_json::to_value(event).ok()).collect();
    let calls = simulated.progress().calls;
    Ok((cost::usage(&history), calls))
}

/// Answers the definition's tasks as a release that goes to plan would.
struct Simulated {
    context: ReleaseContext,
    waves: Vec<WavePlan>,
    gates: Vec<GateSpec>,
    interval_seconds: u64,
    build_timeout_seconds: u64,
    /// When the build and each wave's deploy are expected to end, after their start; a poll sees
    /// one ended when it ends within the poll's patience ([`baton_providers::poll_patience`]).
    build_seconds: u64,
    deploy_seconds: u64,
    build_patience: u64,
    deploy_patience: u64,
    /// The safety net when the release parks on its providers' events; `None`: it polls.
    park_seconds: Option<u64>,
    /// Whether a bake parks on its gates' alarms (with `park_seconds`).
    bakes_park: bool,
    /// The entry's freeze windows, which hold a wave as check-freeze holds it, unless the
    /// signal overrides them.
    windows: Vec<Window>,
    overridden: bool,
    /// The execution's events as they happen: the latest one's time is the calling branch's
    /// virtual now (a poll's payload carries no time).
    events: OnceLock<Mutex<broadcast::Receiver<HistoryEvent>>>,
    executor: OnceLock<WeakExecutor>,
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    now: Option<DateTime<Utc>>,
    build_started: Option<DateTime<Utc>>,
    /// Each wave's deploy start, and its gates' records and bake start.
    deploys: HashMap<String, DateTime<Utc>>,
    watches: HashMap<String, (DateTime<Utc>, Vec<GateRecord>)>,
    /// How long the parks lasted: the virtual clock cannot wait for a token (nothing answers in
    /// virtual time), so a park is answered at once and the release's time moved on by its
    /// length here, as the event or the safety net's timeout would have ended it.
    parked: TimeDelta,
    calls: ProviderCalls,
}

impl Simulated {
    /// The release of `plan`, parked on its events with `park_seconds`, else polled.
    fn new(plan: &Plan, entry: &ServiceEntry, signal: &Signal, park_seconds: Option<u64>) -> Result<Simulated, PlanError> {
        let expected = &plan.expected;
        Ok(Simulated {
            context: ReleaseContext {
                id: ReleaseId(format!("planned-{}", plan.service)),
                service: plan.service.clone(),
                environment: plan.environment.clone(),
                branch: plan.branch.clone(),
                sha: plan.sha.clone(),
            },
            waves: plan.waves.iter().map(|wave| wave.wave.clone()).collect(),
            gates: plan.gates.clone(),
            interval_seconds: plan.health_interval_seconds,
            build_timeout_seconds: plan.build_timeout_seconds,
            build_seconds: expected.build.map_or(0, |build| build.p50_seconds),
            deploy_seconds: expected.deploy.map_or(0, |deploy| deploy.p50_seconds),
            build_patience: baton_providers::poll_patience(&plan.build.provider).as_secs(),
            deploy_patience: baton_providers::poll_patience(&plan.deploy.provider).as_secs(),
            park_seconds,
            bakes_park: bakes_park(&plan.gates),
            windows: entry.delivery.freeze.rules().map_err(PlanError::Invalid)?,
            overridden: signal.trigger.freeze_override.is_some(),
            events: OnceLock::new(),
            executor: OnceLock::new(),
            progress: Mutex::default(),
        })
    }

    /// The calling branch's time: that of the latest event (this task's start), after the parks.
    async fn now(&self) -> DateTime<Utc> {
        let events = loop {
            match self.events.get() {
                Some(events) => break events,
                None => tokio::task::yield_now().await,
            }
        };
        let mut events = events.lock().unwrap_or_else(PoisonError::into_inner);
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match events.try_recv() {
                Ok(event) => progress.now = Some(event.timestamp),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        progress.now.unwrap_or_else(Utc::now) + progress.parked
    }

    /// A state's entered time (`$$.State.EnteredTime`, the virtual clock's) after the parks.
    fn entered(&self, entered: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        entered.map_or(now, |entered| entered + self.progress().parked)
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn answer(&self, call: TaskCall) -> Result<Value, ErrorName> {
        let function = call.function.as_deref().unwrap_or(&call.resource);
        let handler = function.rsplit(":function:baton-").next().unwrap_or(function);
        let payload = call.payload;
        let now = self.now().await;
        let done = || to_value(&Done {});
        match handler {
            baton_load_catalog::NAME if payload["action"] == "register" => {
                Ok(to_value(&Registered { release: self.context.clone(), waves: self.waves.clone(), duplicate: false }))
            }
            // A plan assumes the lock is free: nothing queues it behind another release.
            baton_load_catalog::NAME if payload["action"] == "acquire" => Ok(to_value(&FreezeVerdict { frozen: false, until: None })),
            baton_load_catalog::NAME | baton_record_metrics::NAME => Ok(done()),
            baton_notify::NAME => {
                let request: NotifyRequest = parse(payload)?;
                if let (NotifyEvent::ApprovalRequested, Some(token)) = (request.event, call.task_token.as_deref()) {
                    self.approve(token)?;
                }
                Ok(done())
            }
            baton_trigger_build::NAME => {
                let request: TriggerBuildRequest = parse(payload)?;
                let started = self.entered(request.now, now);
                let mut progress = self.progress();
                progress.build_started = Some(started);
                progress.calls.build += 1;
                let run = RunHandle { provider: "planned".into(), id: "planned".into(), url: None, state: Value::Null };
                let deadline = deadline_after(started, self.build_timeout_seconds);
                Ok(to_value(&BuildStarted { run, deadline, park_seconds: self.park_seconds }))
            }
            baton_poll_build::NAME => {
                let request: PollBuildRequest = parse(payload)?;
                let ends = {
                    let mut progress = self.progress();
                    progress.calls.build += 1;
                    deadline_after(progress.build_started.unwrap_or(now), self.build_seconds)
                };
                if let Some(park) = request.park {
                    return self.end_park(&park, now, Some(ends), self.build_patience).map(|()| Value::Null);
                }
                if deadline_after(now, self.build_patience) < ends {
                    return Err(ErrorName::BuildPending);
                }
                let context = &self.context;
                let sha = context.sha.clone().unwrap_or_default();
                Ok(to_value(&Artifact {
                    reference: format!("{}@planned", context.service),
                    sha,
                    branch: context.branch.clone(),
                    build_url: None,
                }))
            }
            baton_deploy_wave::NAME => match parse(payload)? {
                DeployWaveRequest::CheckFreeze { now: entered, .. } => {
                    let held = match self.overridden {
                        true => None,
                        false => freeze::held_until(&self.windows, &self.context.environment, self.entered(entered, now))
                            .map_err(|_| ErrorName::CatalogInvalid)?,
                    };
                    // WaitOutFreeze waits on the virtual clock, which the parks did not move on.
                    let until = held.map(|until| until - self.progress().parked);
                    Ok(to_value(&FreezeVerdict { frozen: held.is_some(), until }))
                }
                DeployWaveRequest::Start { wave, now: entered, .. } => {
                    let started = self.entered(entered, now);
                    self.progress().deploys.insert(wave.name.clone(), started);
                    let deadline = deadline_after(started, wave.deploy_timeout_seconds);
                    Ok(to_value(&WaveStarted { deadline, park_seconds: self.park_seconds }))
                }
                DeployWaveRequest::Poll { wave, .. } => {
                    let ends = self.polled_rollouts(&wave, now);
                    if deadline_after(now, self.deploy_patience) < ends {
                        return Err(ErrorName::DeployPending);
                    }
                    Ok(done())
                }
                DeployWaveRequest::Park { wave, park, .. } => {
                    let ends = self.polled_rollouts(&wave, now);
                    self.end_park(&park, now, Some(ends), self.deploy_patience).map(|()| Value::Null)
                }
                // The plan is of a release whose gates stay healthy: nothing is rolled back.
                DeployWaveRequest::PlanRollback { .. } => Err(ErrorName::Internal),
            },
            baton_check_health::NAME => {
                let request: CheckHealthRequest = parse(payload)?;
                self.progress().calls.gate_samples += self.gates.len() as u64;
                match &request.park {
                    // The park samples once, healthy: only its timeout ends it.
                    Some(park) => self.end_park(park, now, None, 0).map(|()| Value::Null),
                    None => self.watch(&request.wave, self.entered(request.now, now)).map(|report| to_value(&report)),
                }
            }
            _ => Err(ErrorName::Internal),
        }
    }

    /// One healthy sample of every gate, judged as check-health judges it.
    fn watch(&self, wave: &WavePlan, now: DateTime<Utc>) -> Result<WatchReport, ErrorName> {
        let mut progress = self.progress();
        let blank = || self.gates.iter().map(|_| GateRecord::default()).collect();
        let (bake_started, records) = progress.watches.entry(wave.name.clone()).or_insert_with(|| (now, blank()));
        let healthy = GateReading::Healthy { saw: "planned".into() };
        for record in records.iter_mut() {
            watch::record_sample(record, &healthy, now);
        }
        let pairs: Vec<(&GateRecord, &GateSpec)> = records.iter().zip(&self.gates).collect();
        let (done, wait_seconds) = match watch::judge(&pairs, *bake_started, wave.bake_seconds, self.interval_seconds, now) {
            watch::Watch::Continue { wait_seconds } => (false, wait_seconds),
            watch::Watch::Healthy => (true, 0),
            watch::Watch::Unhealthy { .. } => return Err(ErrorName::HealthCheckFailed),
        };
        // As check-health parks: until the bake's end or the safety net, whichever comes first.
        let rest = u64::try_from((deadline_after(*bake_started, wave.bake_seconds) - now).num_seconds()).unwrap_or(0);
        let park_seconds =
            self.park_seconds.filter(|_| self.bakes_park && !done).and_then(|safety_net| waits::bake_park_seconds(safety_net, rest));
        Ok(WatchReport { wave: wave.name.clone(), done, wait_seconds, park_seconds, detail: String::new() })
    }

    /// A poll of `wave`'s rollouts, one call per target: when they end.
    fn polled_rollouts(&self, wave: &WavePlan, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut progress = self.progress();
        progress.calls.rollout_polls += wave.targets.len() as u64;
        deadline_after(progress.deploys.get(&wave.name).copied().unwrap_or(now), self.deploy_seconds)
    }

    /// Ends the park that began at `now` on what `ends` at that time (nothing: a healthy bake),
    /// as it would end: by its own poll when the run ended within the poll's `patience`, by the
    /// run's event when it comes within the park, else by the safety net's timeout.
    fn end_park(&self, park: &Park, now: DateTime<Utc>, ends: Option<DateTime<Utc>>, patience: u64) -> Result<(), ErrorName> {
        let executor = self.executor()?;
        let timeout = deadline_after(now, park.seconds);
        let answered = match ends.filter(|ends| *ends <= timeout) {
            Some(ends) => {
                let own_poll = ends <= deadline_after(now, patience);
                if !own_poll {
                    self.progress().parked += ends - now;
                }
                executor.send_task_success(park.token.expose(), Value::Null)
            }
            None => {
                self.progress().parked += timeout - now;
                executor.send_task_failure(park.token.expose(), "States.Timeout", Some("simulated by baton plan: the safety net"))
            }
        };
        answered.map_err(|_| ErrorName::Internal)
    }

    /// Gives the approval `token` waits for: the executor holds the token before it invokes the
    /// task, and reads the answer once the invocation returned, as a person's comes.
    fn approve(&self, token: &str) -> Result<(), ErrorName> {
        self.executor()?.send_task_success(token, Value::Object(Default::default())).map_err(|_| ErrorName::Internal)
    }

    /// The executor running the simulated release, which holds its task tokens.
    fn executor(&self) -> Result<Executor, ErrorName> {
        self.executor.get().and_then(WeakExecutor::upgrade).ok_or(ErrorName::Internal)
    }
}

#[async_trait]
impl TaskInvoker for Simulated {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        self.answer(call).await.map_err(|error| TaskFailure::new(error.as_str(), "simulated by baton plan"))
    }
}

fn to_value<T: Serialize>(answer: &T) -> Value {
    serde_json::to_value(answer).unwrap_or(Value::Null)
}

fn parse<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, ErrorName> {
    serde_json::from_value(payload).map_err(|_| ErrorName::InputInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::catalog::FsCatalog;
    use baton_domain::rules::plan::Percentiles;

    /// Issue 29's standard release: a CodeBuild build, three waves of one ECS service each with
    /// 10-minute bakes sampled every 30 s, behind `gate`, `events` as given.
    fn standard(gate: &str, events: &str) -> String {
        let waves: String = (1..=3).map(|n| format!("        - {{name: w{n}, targets: [web-{n}], bake: 10m}}\n")).collect();
        format!(
            "schema-version: v2.2\ndd-service: web\nteam: web\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    events: {events}\n    build:\n      provider: codebuild\n      project: web\n      artifact: \"web:{{sha}}\"\n    deploy:\n      provider: ecs\n      cluster: web\n      container: web\n      region: us-east-1\n      waves:\n{waves}    health:\n      interval: 30s\n      gates:\n        - {gate}\n"
        )
    }

    /// The forecast of `entry` for a build of `build` seconds and deploys of `deploy` seconds.
    async fn forecast_of(entry: &str, build: u64, deploy: u64) -> Forecast {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), entry).unwrap();
        let catalog = FsCatalog::open(baton_providers::registry(), dir.path()).unwrap();
        let input = serde_json::json!({"service": "web", "sha": "4f2a9c1e", "trigger": {"kind": "cli", "id": "t", "actor": "test"}});
        let now = Utc::now();
        let Planned { entry, mut plan, .. } = plan_release(&catalog, None, &input, now).await.unwrap();
        plan.expected.build = Some(Percentiles { p50_seconds: build, p90_seconds: build });
        plan.expected.deploy = Some(Percentiles { p50_seconds: deploy, p90_seconds: deploy });
        let signal = baton_load_catalog::normalise(&input, "plan").unwrap();
        forecast(&plan, &entry, &signal, &input, now).await.unwrap()
    }

    /// (transitions, invocations, build calls, rollout polls, gate samples)
    fn counts(estimate: &Estimate) -> (u64, u64, u64, u64, u64) {
        let (cost, calls) = (&estimate.cost, &estimate.provider_calls);
        (cost.transitions, cost.invocations, calls.build, calls.rollout_polls, calls.gate_samples)
    }

    /// Worked by hand from the definition. Every release: 15 states and 8 tasks outside the
    /// build and the waves; each wave 5 states (2 tasks) before its deploy and 2 (1) after its
    /// bake. Polled, a 20-minute build is polled at 0, 15, 37.5, 71.25, 121.9, 197.8 and 311.7 s
    /// (WaitForBuild's Retry: 15 s ×1.5, 6 retries), then BuildOverdue and a 60 s BuildPause begin
    /// the next round: the 26th poll, at 1237 s, sees it done (10 states, 22 retries). A 5-minute
    /// rollout: rounds of 7 polls from 0 to 103.9 s (5 s ×1.5) and a 30 s pause: the 19th poll,
    /// at 308.4 s, sees it (7 states, 16 retries). A 10-minute bake: 21 samples, 62 states. On
    /// events with a 5-minute safety net: the build parks 4 times (its event ends the 4th) and is
    /// polled once (8 states: 4 parks, 3 BuildOverdue, CheckBuild); a rollout parks once and is
    /// polled once; a bake parked on its alarms samples at 0, 5 and 10 minutes and parks twice
    /// (each park samples once): 8 states, 5 samples. Samples of an HTTP gate go on every 30 s.
    #[tokio::test]
    async fn the_standard_release_costs_what_the_definition_counts_worked_by_hand() {
        let cloudwatch = "provider: cloudwatch\n          alarms: [web-5xx]";
        let http = "provider: http\n          url: https://web.example.com/health";
        let polled = (15 + 32 + 3 * (5 + 23 + 62 + 2), 8 + 26 + 3 * (2 + 19 + 21 + 1), 27, 57, 63);
        let parked = (15 + 8 + 3 * (5 + 2 + 8 + 2), 8 + 5 + 3 * (2 + 2 + 5 + 1), 6, 6, 15);
        // (gate, events block, polled counts, counts on events, bakes park)
        let cases = [
            (cloudwatch, "{wait: false}", polled, parked, true),
            (cloudwatch, "{wait: true, safety-net: 5m}", polled, parked, true),
            (http, "{wait: true}", polled, (15 + 8 + 3 * (5 + 2 + 62 + 2), 8 + 5 + 3 * (2 + 2 + 21 + 1), 6, 6, 63), false),
        ];
        for (gate, events, polling, parked, bakes_park) in cases {
            let forecast = forecast_of(&standard(gate, events), 1200, 300).await;
            let case = format!("{gate} {events}");
            assert_eq!((counts(&forecast.polling), counts(&forecast.events)), (polling, parked), "{case}");
            assert_eq!((forecast.waits_for_events, forecast.bakes_park), (events.contains("wait: true"), bakes_park), "{case}");
            assert_eq!(forecast.safety_net_seconds, 300, "{case}");
        }
        // Priced as a release that ran: $0.025 a thousand transitions, $0.20 a million requests.
        let forecast = forecast_of(&standard(cloudwatch, "{wait: true}"), 1200, 300).await;
        assert!((forecast.polling.cost.dollars - (323.0 * 0.025 / 1000.0 + 163.0 * 0.2 / 1e6)).abs() < 1e-12, "{forecast:?}");
    }

    #[tokio::test]
    async fn a_longer_safety_net_parks_fewer_times_and_a_finished_build_is_read_at_once() {
        let cloudwatch = "provider: cloudwatch\n          alarms: [web-5xx]";
        // A 10-minute safety net: the build parks twice (timeout at 10, its event at 20), a bake
        // once (to its end): build calls 1 + 2 + 1, bake samples 3 a wave.
        let forecast = forecast_of(&standard(cloudwatch, "{wait: true, safety-net: 10m}"), 1200, 300).await;
        let calls = forecast.events.provider_calls;
        assert_eq!((calls.build, calls.rollout_polls, calls.gate_samples), (4, 6, 9), "{forecast:?}");
        // A build done before its first poll: polled, one poll; on events, the park's own poll
        // answers it and CheckBuild reads it (two).
        let forecast = forecast_of(&standard(cloudwatch, "{wait: true}"), 0, 0).await;
        assert_eq!((forecast.polling.provider_calls.build, forecast.events.provider_calls.build), (2, 3), "{forecast:?}");
    }
}

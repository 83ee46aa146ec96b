//! Every sample in `events/` is a valid input of the function it is named after, so
//! `sam local invoke -e` and `cargo lambda invoke --data-file` get what the handlers take.

use baton_aws::AwsError;
use baton_domain::flow::*;
use baton_domain::release::{MERGE_DETAIL_TYPE, MERGE_SOURCE, MergeEvent};
use baton_github_webhook::{
    DELIVERY_RETENTION, FunctionUrlRequest, MemoryDeliveryLog, MemoryWaits, MergePublisher, Webhook, WebhookSecret,
};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The secret `events/github-webhook.json` is signed with (`BATON_WEBHOOK_SECRET` to replay it).
const SAMPLE_WEBHOOK_SECRET: &str = "baton-sample-secret";

/// The merge events a webhook published.
#[derive(Default, Clone)]
pub(crate) struct Published(pub(crate) Arc<Mutex<Vec<MergeEvent>>>);

#[async_trait::async_trait]
impl MergePublisher for Published {
    async fn publish(&self, event: &MergeEvent) -> Result<String, AwsError> {
        self.0.lock().unwrap().push(event.clone());
        Ok("event-1".into())
    }
}

/// The webhook sample is signed, accepted, and what it publishes starts a release of hello-web.
async fn check_webhook_sample(path: &Path, value: serde_json::Value) {
    let request: FunctionUrlRequest = serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let published = Published::default();
    let webhook = Webhook::new(
        WebhookSecret::new(SAMPLE_WEBHOOK_SECRET).unwrap(),
        published.clone(),
        MemoryDeliveryLog::new(DELIVERY_RETENTION),
        Arc::new(MemoryWaits::default()).ports(),
    );
    let response = webhook.handle(&request).await;
    assert_eq!(response.status_code, 202, "{}: {}", path.display(), response.body);
    let event = published.0.lock().unwrap().pop().expect("one merge event published");
    let envelope = serde_json::json!({"source": MERGE_SOURCE, "detail-type": MERGE_DETAIL_TYPE, "detail": event});
    let signal = baton_load_catalog::normalise(&envelope, "sample-execution").unwrap();
    assert_eq!((signal.service.as_str(), signal.branch.as_deref()), ("hello-web", Some("main")));
    assert_eq!(signal.trigger.repository.as_deref(), Some("acme/hello-web"), "the repository the example catalog links");
}

fn parse_as<T: serde::de::DeserializeOwned>(file: &Path, value: serde_json::Value) {
    if let Err(err) = serde_json::from_value::<T>(value) {
        panic!("{}: does not match {}: {err}", file.display(), std::any::type_name::<T>());
    }
}

#[tokio::test]
async fn every_sample_event_is_a_valid_handler_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("events/") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        match name.split('.').next().unwrap() {
            n if n.starts_with("load-catalog") => parse_as::<LoadCatalogRequest>(&path, value),
            "trigger-build" => parse_as::<TriggerBuildRequest>(&path, value),
            "poll-build" => parse_as::<PollBuildRequest>(&path, value),
            n if n.starts_with("deploy-wave") => parse_as::<DeployWaveRequest>(&path, value),
            "check-health" => parse_as::<CheckHealthRequest>(&path, value),
            n if n.starts_with("notify") => parse_as::<NotifyRequest>(&path, value),
            "record-metrics" => parse_as::<RecordMetricsRequest>(&path, value),
            "github-webhook" => check_webhook_sample(&path, value).await,
            // EventBridge's events for the releases parked on them: each names a wait.
            n if n.starts_with("provider-events") => {
                assert_eq!(baton_provider_events::from_eventbridge(&value).len(), 1, "{name}: one event a release waits for");
            }
            // Slack's presses; their signatures are checked in functions/interactions' tests.
            n if n.starts_with("interactions") => parse_as::<baton_interactions::FunctionUrlRequest>(&path, value),
            // Execution inputs: whatever starts the state machine must normalise to a signal.
            "eventbridge-merge" | "scheduler-schedule" | "console-start" => {
                let signal = baton_load_catalog::normalise(&value, "sample-execution").unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(signal.service, "hello-web", "{name}");
            }
            other => panic!("{name}: no handler named {other}; name samples after the function they feed"),
        }
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} samples found in {}", dir.display());
}

// ------------------------------------------------------------------ event-driven waits (issue 29)

/// Releases that park on their providers' events, run by the real definition on the scaled
/// clock: stand-in providers (a CodeBuild-like build, a rollout, CloudWatch-like alarms) run for
/// their expected time and, as the real ones do, emit their event when they finish or fire,
/// which reaches the release through [`LocalBaton::deliver`] (the provider-events function's
/// work on AWS). Every provider call is counted.
pub(crate) mod standins {
    use async_trait::async_trait;
    use baton_asl::Clock;
    use baton_domain::catalog::{FsCatalog, GateSpec, ProviderBlock, ServiceEntry};
    use baton_domain::ports::{
        BuildPoll, BuildProgress, BuildProvider, BuildRequest, DeployProgress, DeployRequest, Deployer, GateReading, HealthGate,
        HealthRequest, Notifier, ProviderError, Providers, RunHandle,
    };
    use baton_domain::release::Artifact;
    use baton_domain::support::Ports;
    use baton_domain::waits::{Delivered, Happened, ProviderEvent, WaitKey, WaitKind};
    use baton_e2e::ScaledClock;
    use baton_local_runner::LocalBaton;
    use baton_providers::{EnvSecretResolver, LocalProviders};
    use baton_store_sqlite::SqliteStore;
    use chrono::{DateTime, TimeDelta, Utc};
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// One service's release as the stand-ins play it.
    #[derive(Debug, Clone)]
    pub struct Script {
        pub service: String,
        pub build_minutes: i64,
        pub rollout_minutes: i64,
        /// `false`: no event names its rollouts (a Lambda alias update, over when it starts).
        pub rollout_events: bool,
        pub bake: &'static str,
        /// `true`: the catalog's `events.wait`.
        pub events: bool,
        pub safety_net: &'static str,
        /// Its provider events never arrive (a lost webhook).
        pub lost: bool,
        /// The wave whose first gate's alarm or monitor turns bad this many minutes into its bake.
        pub alarm: Option<(&'static str, i64)>,
        pub gates: Gates,
    }

    /// The health gates of a script's waves.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Gates {
        /// One CloudWatch alarm, named.
        Alarm,
        /// One Datadog monitor, named by id, its webhook received.
        Monitor,
        /// The monitor and an HTTP gate, which can only be sampled.
        MonitorAndHttp,
    }

    impl Script {
        pub fn new(service: &str, build_minutes: i64) -> Script {
            Script {
                service: service.into(),
                build_minutes,
                rollout_minutes: 1,
                rollout_events: true,
                bake: "2m",
                events: true,
                safety_net: "10m",
                lost: false,
                alarm: None,
                gates: Gates::Alarm,
            }
        }

        pub fn alarm_name(&self) -> String {
            format!("{}-5xx", self.service)
        }

        /// The id of the service's Datadog monitor.
        pub fn monitor_id(&self) -> i64 {
            4000 + self.service.len() as i64
        }
    }

    /// Where the stand-in alarms live: the account and region of Baton's own credentials.
    pub const ACCOUNT: &str = "123456789012";
    pub const REGION: &str = "us-east-1";

    /// What the providers saw and sent.
    #[derive(Default)]
    pub struct Seen {
        /// Every provider API call, as `<service> <what>`.
        pub calls: Vec<String>,
        /// Each delivered event's outcome.
        pub delivered: Vec<Delivered>,
        /// From each event's emission to the release's next call to that provider (real time).
        pub latencies: Vec<Duration>,
    }

    pub struct World {
        scripts: HashMap<String, Script>,
        clock: Arc<ScaledClock>,
        factor: u32,
        baton: OnceLock<LocalBaton>,
        /// When each build or rollout ends (handler time), by run id.
        ends: Mutex<HashMap<String, DateTime<Utc>>>,
        /// When an alarm enters ALARM (handler time), by alarm name.
        alarms: Mutex<HashMap<String, DateTime<Utc>>>,
        /// Events emitted and not yet followed by a call, by the thing they are about.
        emitted: Mutex<HashMap<String, Instant>>,
        started_alarms: Mutex<HashSet<String>>,
        pub seen: Mutex<Seen>,
    }

    impl World {
        fn call(&self, service: &str, what: String, about: &str) {
            let mut seen = self.seen.lock().unwrap();
            seen.calls.push(format!("{service} {what}"));
            if let Some(at) = self.emitted.lock().unwrap().remove(about) {
                seen.latencies.push(at.elapsed());
            }
        }

        /// Emits `event` when `at` (handler time) comes, unless the service's events are lost.
        fn emit_at(self: &Arc<Self>, service: &str, at: DateTime<Utc>, about: String, event: ProviderEvent) {
            if self.scripts[service].lost {
                return;
            }
            let world = self.clone();
            let wait = (at - self.clock_now()).to_std().unwrap_or_default() / self.factor;
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let Some(baton) = world.baton.get() else { return };
                world.emitted.lock().unwrap().insert(about, Instant::now());
                let delivered = baton.deliver(&[event]).await.expect("delivered");
                world.seen.lock().unwrap().delivered.push(delivered);
            });
        }

        fn clock_now(&self) -> DateTime<Utc> {
            baton_domain::ports::Clock::now(self.clock.as_ref())
        }
    }

    fn event(key: WaitKey, happened: Happened, at: DateTime<Utc>) -> ProviderEvent {
        let delivery = format!("{key}@{}", at.timestamp_micros());
        ProviderEvent { key, happened, delivery, at }
    }

    struct Build(Arc<World>);

    #[async_trait]
    impl BuildProvider for Build {
        async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
            let world = &self.0;
            let script = &world.scripts[&request.service];
            // CodeBuild's ids are `project:uuid`.
            let id = format!("{}:{}", request.service, request.release_id);
            world.call(&request.service, "start build".into(), &id);
            let ends = world.clock_now() + TimeDelta::minutes(script.build_minutes);
            world.ends.lock().unwrap().insert(id.clone(), ends);
            let key = WaitKey::new(WaitKind::Build, "codebuild", &id);
            world.emit_at(&request.service, ends, id.clone(), event(key, Happened::Succeeded, ends));
            Ok(RunHandle { provider: "codebuild".into(), id, url: None, state: serde_json::Value::Null })
        }
        async fn find(&self, _: &BuildRequest, _: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
            Ok(None)
        }
        async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
            let world = &self.0;
            let service = run.id.split(':').next().unwrap_or_default();
            world.call(service, "poll build".into(), &run.id);
            let ends = world.ends.lock().unwrap()[&run.id];
            if world.clock_now() < ends {
                return Ok(BuildProgress::Running.into());
            }
            let artifact =
                Artifact { reference: format!("{service}:{}", run.id), sha: "4f2a9c1e".into(), branch: "main".into(), build_url: None };
            Ok(BuildProgress::Succeeded { artifact }.into())
        }
        async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
            Err(ProviderError::rejected(format!("build {} was not expected to be cancelled", run.id)))
        }
    }

    struct Rollout(Arc<World>);

    #[async_trait]
    impl Deployer for Rollout {
        async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
            let world = &self.0;
            let id = format!("{}/{}/{}/{}", request.service, request.release_id, request.target, request.rollback);
            world.call(&request.service, "start rollout".into(), &id);
            let ends = world.clock_now() + TimeDelta::minutes(world.scripts[&request.service].rollout_minutes);
            world.ends.lock().unwrap().insert(id.clone(), ends);
            if world.scripts[&request.service].rollout_events {
                let key = WaitKey::new(WaitKind::Rollout, "ecs", &id);
                world.emit_at(&request.service, ends, id.clone(), event(key, Happened::Succeeded, ends));
            }
            Ok(RunHandle { provider: "ecs".into(), id, url: None, state: serde_json::Value::Null })
        }
        fn wait_key(&self, run: &RunHandle) -> Option<WaitKey> {
            let service = run.id.split('/').next().unwrap_or_default();
            self.0.scripts[service].rollout_events.then(|| WaitKey::of_run(WaitKind::Rollout, run))
        }
        async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
            let world = &self.0;
            let service = run.id.split('/').next().unwrap_or_default();
            world.call(service, "poll rollout".into(), &run.id);
            let ends = world.ends.lock().unwrap()[&run.id];
            Ok(if world.clock_now() < ends { DeployProgress::Running } else { DeployProgress::Succeeded })
        }
    }

    /// A gate watching one thing (an alarm, a monitor, an endpoint) named `name`; `key` is the
    /// key of the events its provider sends about it, `None` for a gate that can only be sampled.
    struct Watched {
        world: Arc<World>,
        name: String,
        key: Option<WaitKey>,
    }

    #[async_trait]
    impl HealthGate for Watched {
        fn describe(&self) -> String {
            self.name.clone()
        }
        async fn sample(&self, request: &HealthRequest) -> Result<GateReading, ProviderError> {
            let world = &self.world;
            let script = &world.scripts[&request.service];
            world.call(&request.service, format!("sample {}", request.wave), &self.name);
            let now = world.clock_now();
            if let Some(key) = &self.key
                && let Some((wave, minutes)) = script.alarm
                && wave == request.wave
                && world.started_alarms.lock().unwrap().insert(wave.to_owned())
            {
                let fires = now + TimeDelta::minutes(minutes);
                world.alarms.lock().unwrap().insert(self.name.clone(), fires);
                let event = event(key.clone(), Happened::Failed(format!("{} in ALARM", self.name)), fires);
                world.emit_at(&request.service, fires, self.name.clone(), event);
            }
            let firing = world.alarms.lock().unwrap().get(&self.name).is_some_and(|fires| *fires <= now);
            Ok(match firing {
                true => GateReading::Unhealthy { saw: format!("{} in ALARM", self.name) },
                false => GateReading::Healthy { saw: format!("{} OK", self.name) },
            })
        }
        async fn bake_keys(&self) -> Result<Option<Vec<WaitKey>>, ProviderError> {
            Ok(self.key.clone().map(|key| vec![key]))
        }
    }

    struct Standins {
        world: Arc<World>,
        local: LocalProviders,
    }

    impl Providers for Standins {
        fn build(&self, _: &ProviderBlock, _: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
            Ok(Box::new(Build(self.world.clone())))
        }
        fn deployer(&self, _: &ProviderBlock, _: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
            Ok(Box::new(Rollout(self.world.clone())))
        }
        /// The gate its block describes, keyed as the real provider keys its events.
        fn gate(&self, spec: &GateSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError> {
            let first = |field: &str| spec.gate.settings.get(field).and_then(|a| a.as_array()).and_then(|a| a.first()).cloned();
            let (name, key) = match spec.gate.provider.as_str() {
                "cloudwatch" => {
                    let alarm = first("alarms").and_then(|a| a.as_str().map(str::to_owned)).unwrap_or_else(|| entry.name.clone());
                    let key = baton_aws::cloudwatch::alarm_key(ACCOUNT, REGION, &alarm);
                    (alarm, Some(key))
                }
                "datadog" => {
                    let id = first("monitors").and_then(|id| id.as_i64()).expect("the stand-in monitors are named by id");
                    (format!("monitor #{id}"), Some(baton_providers::monitor_key(id)))
                }
                other => (format!("{other} gate of {}", entry.name), None),
            };
            Ok(Box::new(Watched { world: self.world.clone(), name, key }))
        }
        fn notifiers(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
            self.local.notifiers(entry)
        }
    }

    fn catalog_entry(script: &Script) -> String {
        let alarm = format!("        - provider: cloudwatch\n          alarms: [{}]\n", script.alarm_name());
        let monitor = format!(
            "        - provider: datadog\n          monitors: [{}]\n          api-key: env:DD_API_KEY\n          app-key: env:DD_APP_KEY\n          events-secret: env:DD_HOOK\n",
            script.monitor_id()
        );
        let http = format!("        - provider: http\n          url: https://{}.example.com/health\n", script.service);
        let gates = match script.gates {
            Gates::Alarm => alarm,
            Gates::Monitor => monitor,
            Gates::MonitorAndHttp => monitor + &http,
        };
        let waves: String = (1..=3)
            .map(|n| format!("        - name: w{n}\n          targets: [{}-t{n}]\n          bake: {}\n", script.service, script.bake))
            .collect();
        format!(
            "schema-version: v2.2\ndd-service: {service}\nteam: payments\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    events: {{wait: {events}, safety-net: {net}}}\n    build:\n      provider: codebuild\n      project: {service}\n      artifact: \"{service}:{{sha}}\"\n    deploy:\n      provider: command\n      command: [\"true\"]\n      waves:\n{waves}    health:\n      interval: 30s\n      gates:\n{gates}",
            service = script.service,
            events = script.events,
            net = script.safety_net,
        )
    }

    /// A local Baton on time `factor` times faster than the wall clock, its providers playing `scripts`.
    pub fn baton(dir: &std::path::Path, factor: u32, scripts: &[Script]) -> (LocalBaton, Arc<World>) {
        let catalog = dir.join("catalog");
        std::fs::create_dir_all(&catalog).unwrap();
        for script in scripts {
            std::fs::write(catalog.join(format!("{}.yaml", script.service)), catalog_entry(script)).unwrap();
        }
        let clock = Arc::new(ScaledClock::new(factor));
        let world = Arc::new(World {
            scripts: scripts.iter().map(|s| (s.service.clone(), s.clone())).collect(),
            clock: clock.clone(),
            factor,
            baton: OnceLock::new(),
            ends: Mutex::default(),
            alarms: Mutex::default(),
            emitted: Mutex::default(),
            started_alarms: Mutex::default(),
            seen: Mutex::default(),
        });
        let local = LocalProviders::new(dir.join("workspace"), None, Arc::new(EnvSecretResolver), None).unwrap();
        let ports = Ports {
            store: Arc::new(SqliteStore::open(&dir.join("baton.db")).unwrap()),
            catalog: Arc::new(FsCatalog::open(baton_providers::registry(), catalog).unwrap()),
            providers: Arc::new(Standins { world: world.clone(), local }),
            clock,
        };
        let baton = LocalBaton::new(ports, Clock::Scaled(factor)).unwrap();
        let _ = world.baton.set(baton.clone());
        (baton, world)
    }

    pub fn input(service: &str) -> serde_json::Value {
        serde_json::json!({"service": service, "sha": "4f2a9c1e", "trigger": {"kind": "cli", "id": format!("cli-{service}"), "actor": "test"}})
    }

    /// The release ended released.
    pub fn assert_released(outcome: &baton_asl::ExecutionOutcome, service: &str) {
        baton_e2e::assert_status(outcome, baton_asl::ExecutionStatus::Succeeded);
        let status = outcome.output.as_ref().and_then(|o| o.pointer("/outcome/status")).and_then(|s| s.as_str());
        assert_eq!(status, Some("succeeded"), "{service}: {:?}", outcome.output);
    }

    /// The history as JSON.
    pub fn history(outcome: &baton_asl::ExecutionOutcome) -> Vec<serde_json::Value> {
        outcome.history.iter().map(|event| serde_json::to_value(event).unwrap()).collect()
    }

    fn entered_name(event: &serde_json::Value) -> Option<&str> {
        event.as_object()?.iter().find(|(key, _)| key.ends_with("EventDetails")).and_then(|(_, d)| d.get("name")?.as_str())
    }

    /// How each entry of `state` ended (`TaskSucceeded`, `TaskFailed`, `TaskTimedOut`), with the
    /// virtual time it ended at, in order.
    pub fn endings(history: &[serde_json::Value], state: &str) -> Vec<(String, DateTime<Utc>)> {
        let kind = |e: &serde_json::Value| e["type"].as_str().unwrap_or_default().to_owned();
        let at = |e: &serde_json::Value| DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap().with_timezone(&Utc);
        let mut ends = Vec::new();
        for (i, event) in history.iter().enumerate() {
            if kind(event) == "TaskStateEntered" && entered_name(event) == Some(state) {
                let end = history[i..]
                    .iter()
                    .find(|e| matches!(kind(e).as_str(), "TaskSucceeded" | "TaskFailed" | "TaskTimedOut"))
                    .expect("the task ended");
                ends.push((kind(end), at(end)));
            }
        }
        ends
    }

    /// When `state` was first entered (virtual time).
    pub fn entered_at(history: &[serde_json::Value], state: &str) -> Option<DateTime<Utc>> {
        history
            .iter()
            .find(|e| e["type"].as_str().is_some_and(|t| t.ends_with("StateEntered")) && entered_name(e) == Some(state))
            .map(|e| DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap().with_timezone(&Utc))
    }
}

use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use standins::{Gates, Script, endings, entered_at, history};

/// 600 times faster than the wall clock: a 10-minute safety net is one second.
const FACTOR: u32 = 600;

#[tokio::test]
async fn each_build_event_resumes_its_own_release_and_a_lost_one_is_caught_by_the_safety_net() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = [Script::new("alpha", 2), Script::new("beta", 25), Script { lost: true, ..Script::new("gamma", 12) }];
    let (baton, world) = standins::baton(dir.path(), FACTOR, &scripts);

    let runs: Vec<_> = scripts.iter().map(|s| baton.start(&format!("exec-{}", s.service), standins::input(&s.service))).collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.outcome().await);
    }
    for (outcome, script) in outcomes.iter().zip(&scripts) {
        standins::assert_released(outcome, &script.service);
    }
    let [alpha, beta, gamma] = [0, 1, 2].map(|i| history(&outcomes[i]));

    let kinds = |h: &[serde_json::Value]| endings(h, "ParkBuild").into_iter().map(|(kind, _)| kind).collect::<Vec<_>>();
    assert_eq!(kinds(&alpha), ["TaskSucceeded"], "alpha's event resumed it during its first park");
    assert_eq!(kinds(&beta), ["TaskTimedOut", "TaskTimedOut", "TaskSucceeded"], "alpha's event never resumed beta; its own did");
    // gamma's event is lost: its second park times out at 20 minutes, and the third park's first
    // poll finds the build finished and answers its own token.
    assert_eq!(kinds(&gamma), ["TaskTimedOut", "TaskTimedOut", "TaskSucceeded"]);
    let started = entered_at(&gamma, "TriggerBuild").unwrap();
    let moved_on = entered_at(&gamma, "NotifyBuilt").unwrap();
    let late = moved_on - (started + chrono::TimeDelta::minutes(12));
    assert!(late <= chrono::TimeDelta::minutes(10), "gamma moved on {late} after its build ended: within the 10m safety net");

    let seen = world.seen.lock().unwrap();
    let resumed: Vec<String> = seen
        .delivered
        .iter()
        .flat_map(|d| d.resumed.iter().filter(|(_, key)| key.kind == WaitKind::Build).map(|(_, key)| key.to_string()))
        .collect();
    assert_eq!(resumed.len(), 2, "alpha's and beta's build events: {resumed:?}");
    assert!(
        resumed.iter().any(|k| k.starts_with("build:codebuild:alpha:")) && resumed.iter().any(|k| k.starts_with("build:codebuild:beta:"))
    );
    let alpha_build_polls = seen.calls.iter().filter(|c| *c == "alpha poll build").count();
    assert_eq!(alpha_build_polls, 2, "one poll when it parked, one after its event: {:?}", seen.calls);
}

#[tokio::test]
async fn an_alarm_event_fails_a_parked_bake_at_once_and_a_duplicated_or_late_event_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script { bake: "30m", alarm: Some(("w2", 7)), ..Script::new("delta", 1) };
    let (baton, world) = standins::baton(dir.path(), FACTOR, std::slice::from_ref(&script));

    let outcome = baton.run("exec-delta", standins::input("delta")).await;

    baton_e2e::assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");
    let delta = history(&outcome);
    let parks = endings(&delta, "ParkBake");
    // w1 parks through its 30-minute bake in three 10-minute parks; w2's first park ends at 7 minutes by the alarm.
    let kinds: Vec<&str> = parks.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["TaskTimedOut", "TaskTimedOut", "TaskTimedOut", "TaskFailed"], "{parks:?}");
    let resumed = world.seen.lock().unwrap().delivered.iter().flat_map(|d| d.resumed.clone()).collect::<Vec<_>>();
    let bakes: Vec<_> = resumed.iter().filter(|(_, key)| key.kind == WaitKind::Bake).collect();
    assert_eq!(bakes.len(), 1, "the alarm's event resumed the one release parked on it: {resumed:?}");

    // The same event again, and a late build event: nobody waits for them any more.
    let key = baton_aws::cloudwatch::alarm_key(standins::ACCOUNT, standins::REGION, &script.alarm_name());
    let again =
        ProviderEvent { key, happened: Happened::Failed("delta-5xx in ALARM".into()), delivery: "again".into(), at: chrono::Utc::now() };
    let late = ProviderEvent {
        key: WaitKey::new(WaitKind::Build, "codebuild", "delta:whatever"),
        happened: Happened::Succeeded,
        delivery: "late".into(),
        at: chrono::Utc::now(),
    };
    let delivered = baton.deliver(&[again, late]).await.unwrap();
    assert_eq!((delivered.resumed.len(), delivered.ignored), (0, 2));
    let releases = baton.ports().store.list_releases("delta", None, 10).await.unwrap();
    let statuses: Vec<_> = releases.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [baton_domain::release::ReleaseStatus::RolledBack], "unchanged");
}

#[tokio::test]
async fn a_wave_whose_rollouts_no_event_names_is_polled_not_parked() {
    // As a Lambda alias update: over when its start answers, and no event would ever say so.
    let dir = tempfile::tempdir().unwrap();
    let script = Script { rollout_minutes: 0, rollout_events: false, ..Script::new("eta", 1) };
    let (baton, world) = standins::baton(dir.path(), FACTOR, std::slice::from_ref(&script));

    let outcome = baton.run("exec-eta", standins::input("eta")).await;

    standins::assert_released(&outcome, "eta");
    let eta = history(&outcome);
    assert_eq!(endings(&eta, "ParkWave"), [], "no wave parked");
    assert_eq!(endings(&eta, "WaitForWave").len(), 3, "each wave went to the polls");
    let rollout_polls = world.seen.lock().unwrap().calls.iter().filter(|c| *c == "eta poll rollout").count();
    assert_eq!(rollout_polls, 3, "whose first look found the rollout done");
    assert_eq!(endings(&eta, "ParkBuild").len(), 1, "the build still parks on its event");
}

#[tokio::test]
async fn a_datadog_gated_wave_parks_and_a_monitor_alert_fails_it_at_once_while_a_quiet_bake_passes_with_one_final_sample() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script { bake: "10m", gates: Gates::Monitor, alarm: Some(("w2", 7)), ..Script::new("epsilon", 1) };
    let (baton, world) = standins::baton(dir.path(), FACTOR, std::slice::from_ref(&script));

    let outcome = baton.run("exec-epsilon", standins::input("epsilon")).await;

    baton_e2e::assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");
    let epsilon = history(&outcome);
    // w1 parks through its 10-minute bake in one park; w2's park ends at 7 minutes by the monitor's alert.
    let kinds: Vec<String> = endings(&epsilon, "ParkBake").into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, ["TaskTimedOut", "TaskFailed"]);
    let seen = world.seen.lock().unwrap();
    let bakes: Vec<String> = seen
        .delivered
        .iter()
        .flat_map(|d| d.resumed.iter())
        .filter(|(_, key)| key.kind == WaitKind::Bake)
        .map(|(_, key)| key.to_string())
        .collect();
    assert_eq!(bakes, [baton_providers::monitor_key(script.monitor_id()).to_string()], "the monitor's webhook resumed the bake");
    let samples = |wave: &str| seen.calls.iter().filter(|call| **call == format!("epsilon sample {wave}")).count();
    // The bake's first sample, the park's own, and one at the bake's end.
    assert_eq!(samples("w1"), 3, "{:?}", seen.calls);
    assert_eq!(samples("w3"), 0, "the release stopped at w2");
}

#[tokio::test]
async fn a_wave_with_a_gate_that_can_only_be_sampled_samples_every_gate_at_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script { bake: "5m", gates: Gates::MonitorAndHttp, ..Script::new("zeta", 1) };
    let (baton, world) = standins::baton(dir.path(), FACTOR, std::slice::from_ref(&script));

    let outcome = baton.run("exec-zeta", standins::input("zeta")).await;

    standins::assert_released(&outcome, "zeta");
    assert!(endings(&history(&outcome), "ParkBake").is_empty(), "no wave parked");
    let seen = world.seen.lock().unwrap();
    let samples = seen.calls.iter().filter(|call| *call == "zeta sample w1").count();
    // Every 30 s through a 5-minute bake, both gates each time: 10 samples of each at least (one
    // more when the scaled clock's jitter lets it in before the bake's end), where a park samples 2.
    assert!(samples >= 2 * 10 && samples % 2 == 0, "{samples}: {:?}", seen.calls);
}

/// The figures of issue 29's standard release (a 20-minute build, 3 waves of 5-minute rollouts,
/// 10-minute bakes sampled every 30 s, CloudWatch-alarm gates), parked on events with a 5-minute
/// safety net and polled as before (`events.wait: false`), side by side on the same definition.
/// `bench/events.sh` runs it and prints them.
#[tokio::test]
#[ignore = "a benchmark: bench/events.sh"]
async fn bench_standard_release_events_against_polling() {
    let dir = tempfile::tempdir().unwrap();
    let standard =
        |service: &str, events: bool| Script { rollout_minutes: 5, bake: "10m", events, safety_net: "5m", ..Script::new(service, 20) };
    let scripts = [standard("evented", true), standard("polled", false)];
    let (baton, world) = standins::baton(dir.path(), FACTOR, &scripts);
    let runs: Vec<_> = scripts.iter().map(|s| baton.start(&format!("exec-{}", s.service), standins::input(&s.service))).collect();
    let mut outcomes = Vec::new();
    for run in runs {
        outcomes.push(run.outcome().await);
    }
    let seen = world.seen.lock().unwrap();
    println!("standard release: 20-min build, 3 waves of 5-min rollouts, 10-min bakes sampled every 30 s, CloudWatch-alarm gates");
    println!("{:<28} {:>12} {:>12}", "", "events", "polling");
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, values: Vec<String>| rows.push((name.to_owned(), values));
    let figures: Vec<_> = outcomes
        .iter()
        .zip(&scripts)
        .map(|(outcome, script)| {
            standins::assert_released(outcome, &script.service);
            let history = history(outcome);
            let all = baton_domain::rules::cost::usage(&history);
            let first = history.iter().position(|e| e["type"] == "MapIterationStarted").unwrap();
            let last = history.iter().rposition(|e| e["type"] == "MapIterationSucceeded").unwrap();
            let waves = baton_domain::rules::cost::usage(&history[first..=last]);
            let calls = |what: &str| seen.calls.iter().filter(|c| c.starts_with(&format!("{} {what}", script.service))).count();
            (all, waves, calls("start build") + calls("poll build"), calls("poll rollout"), calls("sample"))
        })
        .collect();
    row("state transitions", figures.iter().map(|f| f.0.transitions.to_string()).collect());
    row("  per wave", figures.iter().map(|f| format!("{:.0}", f.1.transitions as f64 / 3.0)).collect());
    row("Lambda invocations", figures.iter().map(|f| f.0.invocations.to_string()).collect());
    row("build API calls", figures.iter().map(|f| f.2.to_string()).collect());
    row("rollout polls", figures.iter().map(|f| f.3.to_string()).collect());
    row("gate samples", figures.iter().map(|f| f.4.to_string()).collect());
    for (name, values) in &rows {
        println!("{name:<28} {:>12} {:>12}", values[0], values[1]);
    }
    let mut latencies = seen.latencies.clone();
    latencies.sort();
    let ms = |d: &std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    match (latencies.first(), latencies.last()) {
        (Some(_), Some(max)) => {
            println!(
                "event -> next step (real clock): {} events, p50 {}, max {}",
                latencies.len(),
                ms(&latencies[latencies.len() / 2]),
                ms(max)
            )
        }
        _ => println!("event -> next step: no event was followed by a step"),
    }
    let targets = [
        ("<= 30 transitions per CloudWatch-gated wave", figures[0].1.transitions as f64 / 3.0 <= 30.0),
        ("<= 10 provider API calls per build", figures[0].2 <= 10),
        ("<= 5 s event -> next step", latencies.last().is_some_and(|max| max.as_secs_f64() <= 5.0)),
    ];
    for (target, met) in targets {
        println!("target {target}: {}", if met { "met" } else { "MISSED" });
    }
}

//! A whole release through the embedded executor and the real handlers, deploying ECS services
//! on moto (rollouts scripted by the proxy in front of it) and watched by a CloudWatch alarm on
//! LocalStack that fires in the second wave's bake: the wave fails before its bake is up, both
//! waves go back to the task definitions they ran, and the record and Slack say which alarm fired.

use crate::common;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::StateValue;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use baton_asl::{Clock, ExecutionStatus};
use baton_aws::AwsClients;
use baton_domain::catalog::{FsCatalog, SecretRef};
use baton_domain::ports::{ProviderError, ReleaseStore, SecretResolver, SystemClock};
use baton_domain::release::{Release, ReleaseStatus, WaveStatus};
use baton_domain::support::Ports;
use baton_local_runner::LocalBaton;
use baton_providers::LocalProviders;
use baton_store_sqlite::SqliteStore;
use common::fixtures::{metric_alarm, service_on_moto, set_state};
use common::moto_proxy::{MotoProxy, deployment, each_service, task_definition_of};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Service endpoints as `AWS_ENDPOINT_URL_<SERVICE>` gives them, but ECS's: the proxy's.
#[derive(Debug)]
struct EcsThrough(String);

impl LoadServiceConfig for EcsThrough {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.service_id() == "ECS" && key.env() == "AWS_ENDPOINT_URL" {
            return Some(self.0.clone());
        }
        let service = key.service_id().to_uppercase().replace(' ', "_");
        std::env::var(format!("{}_{service}", key.env())).or_else(|_| std::env::var(key.env())).ok()
    }
}

/// The Slack bot token: the only secret the catalog names.
struct SlackToken;

#[async_trait]
impl SecretResolver for SlackToken {
    async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
        match secret {
            SecretRef::Env(name) if name == "SLACK_BOT_TOKEN" => Ok("xoxb-test".into()),
            other => Err(ProviderError::rejected(format!("no secret {other} in this test"))),
        }
    }
}

async fn running_task_definition(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> String {
    let described = ecs.describe_services().cluster(cluster).services(service).send().await.expect("describe the service");
    described.services()[0].task_definition().unwrap().to_string()
}

/// The catalog: two waves of one service each, a 10-minute bake, one alarm sampled every 30 s.
fn catalog(dir: &std::path::Path, service: &str, cluster: &str, targets: [&str; 2], alarm: &str) {
    let yaml = format!(
        r##"schema-version: v2.2
dd-service: {service}
team: web
extensions:
  baton:
    environment: production
    release-branch: main
    build:
      provider: command
      command: ["sh", "-c", "echo repo/web:2"]
    deploy:
      provider: ecs
      cluster: {cluster}
      container: app
      waves:
        - {{name: canary, targets: [{canary}], bake: 10m}}
        - {{name: one-region, targets: [{region}], bake: 10m}}
    health:
      interval: 30s
      gates:
        - provider: cloudwatch
          alarms: [{alarm}]
    notify:
      slack: {{channel: "#web-releases", token: "env:SLACK_BOT_TOKEN"}}
"##,
        canary = targets[0],
        region = targets[1],
    );
    std::fs::write(dir.join("web.yaml"), yaml).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_in_the_second_bake_rolls_both_ecs_waves_back_to_their_task_definitions() {
    let moto = common::endpoint("ECS");
    common::endpoint("CLOUDWATCH");
    let proxy = MotoProxy::start(&moto).await;
    // Every rollout completes at the first look: the service's own task definition, PRIMARY, COMPLETED.
    proxy.rewrite(
        "DescribeServices",
        each_service(|s| {
            let ours = task_definition_of(s);
            s["deployments"] = json!([deployment("PRIMARY", &ours, "COMPLETED", "ECS deployment completed.")]);
        }),
    );
    let config = common::sdk_config_for(&["ECS", "CLOUDWATCH"]).await;
    // The release's ECS calls go through the proxy; everything else where the environment says.
    let config = config.to_builder().service_config(EcsThrough(proxy.url.clone())).build();
    let ecs = aws_sdk_ecs::Client::new(&config);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);

    let (service, cluster) = (common::unique("web"), common::unique("prod"));
    let targets = [common::unique("web-canary"), common::unique("web-use1")];
    let mut before = Vec::new();
    for target in &targets {
        before.push(service_on_moto(&ecs, &cluster, target).await);
    }
    let alarm = common::unique("web-5xx");
    metric_alarm(&cloudwatch, &alarm).await;
    set_state(&cloudwatch, &alarm, StateValue::Ok, "quiet").await;

    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C1", "ts": "1.1"})))
        .mount(&slack)
        .await;

    let state = tempfile::tempdir().unwrap();
    let catalog_dir = state.path().join("catalog");
    std::fs::create_dir(&catalog_dir).unwrap();
    catalog(&catalog_dir, &service, &cluster, [&targets[0], &targets[1]], &alarm);
    let store = Arc::new(SqliteStore::open(&state.path().join("baton.db")).unwrap());
    let providers = LocalProviders::new(state.path().join("workspace"), None, Arc::new(SlackToken), Some(format!("{}/api", slack.uri())))
        .expect("providers")
        .with_aws_clients(AwsClients::with_base(config.clone()));
    let ports = Ports {
        store: store.clone(),
        catalog: Arc::new(FsCatalog::open(baton_providers::registry(), &catalog_dir).unwrap()),
        providers: Arc::new(providers),
        clock: Arc::new(SystemClock),
    };
    // 200 times faster than the wall clock: a 10-minute bake lasts 3 s, a 30 s interval 0.15 s.
    let baton = LocalBaton::new(ports, Clock::Scaled(200)).unwrap();

    // The alarm fires once the second wave is watched.
    let watcher = {
        let (store, service) = (store.clone(), service.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let releases = store.list_releases(&service, Some("production"), 1).await.unwrap();
                if releases
                    .first()
                    .is_some_and(|r: &Release| r.waves.get(1).is_some_and(|w| w.gates.first().is_some_and(|g| g.samples >= 1)))
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    let input = json!({"service": service, "trigger": {"kind": "cli", "id": common::unique("cli"), "actor": "test"}});
    let (outcome, fired) = tokio::join!(baton.run("exec-ecs", input), async {
        let watched = watcher.await;
        if watched {
            set_state(
                &cloudwatch,
                &alarm,
                StateValue::Alarm,
                "Threshold Crossed: 1 datapoint [42.0] was greater than the threshold (5.0).",
            )
            .await;
        }
        watched
    });
    assert!(fired, "the second wave was never watched");
    // A clean rollback is an outcome, not a fault: the execution succeeds, naming it.
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    let named = |pointer: &str| outcome.output.as_ref().and_then(|o| o.pointer(pointer)).and_then(|v| v.as_str());
    assert_eq!((named("/outcome/status"), named("/outcome/error/Error")), (Some("rolled-back"), Some("Baton.HealthCheckFailed")));

    let release = store.list_releases(&service, Some("production"), 1).await.unwrap().remove(0);
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    let statuses: Vec<WaveStatus> = release.waves.iter().map(|w| w.status).collect();
    assert_eq!(statuses, [WaveStatus::RolledBack, WaveStatus::RolledBack]);
    // The canary was watched through its whole bake (on the scaled clock each call's wall time
    // counts 200 times, so the number of samples varies: at most 21, 30 s apart); the second
    // wave failed early.
    let canary = &release.waves[0];
    let watched = canary.gates[0].last_at.unwrap() - canary.bake_started_at.unwrap();
    assert!(watched >= chrono::TimeDelta::minutes(10) && (2..=21).contains(&canary.gates[0].samples), "{canary:?}");
    let failed = &release.waves[1];
    let watched = failed.gates[0].last_at.unwrap() - failed.bake_started_at.unwrap();
    assert!(watched < chrono::TimeDelta::minutes(10), "the wave failed {watched} into a 10-minute bake");
    let saw = failed.gates[0].last.as_deref().unwrap();
    assert!(saw.contains(&alarm) && saw.contains("ALARM"), "{saw}");
    let cause = &release.failure.as_ref().unwrap().cause;
    assert!(cause.contains("wave one-region (2/2) is unhealthy") && cause.contains(&alarm), "{cause}");

    // Both services run the task definitions they ran before; the release registered one revision each.
    for (target, previous) in targets.iter().zip(&before) {
        assert_eq!(&running_task_definition(&ecs, &cluster, target).await, previous, "{target} is back on its previous revision");
        let revisions = ecs.list_task_definitions().family_prefix(target).send().await.unwrap();
        assert_eq!(revisions.task_definition_arns().len(), 2, "{target}: its own revision and the release's");
    }

    // Slack heard of it: the message updated in place names the alarm.
    let calls = slack.received_requests().await.unwrap();
    let said: Vec<String> = calls.iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    assert!(said.iter().any(|body| body.contains(&alarm) && body.contains("ALARM")), "no Slack call names the alarm: {said:#?}");
    assert!(calls.iter().any(|r| r.url.path().ends_with("chat.update")), "the message is updated in place");
    assert!(proxy.rewritten() > 0, "the rollouts went through the proxy's script");
}

//! ECS rollouts resumed by "ECS Deployment State Change" events: the real ECS deployer starts
//! deploys of two services on moto, a wait is parked on each run's key in the SQLite registry,
//! and EventBridge events built from what DescribeServices says about each deployment go in
//! through provider-events' EventBridge door.
//!
//! moto answers UpdateService without the deployment AWS creates for it: its one PRIMARY
//! deployment keeps the revision the service was created with (and its id). The proxy in front
//! of it answers as AWS does for the services a test scripts: a PRIMARY deployment of the new
//! revision beside the old one, COMPLETED, or FAILED with ECS rolling the old revision back.

use crate::common;

use async_trait::async_trait;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState};
use baton_aws::clients::AwsAccess;
use baton_aws::ecs::{EcsDeploy, deployment_key};
use baton_aws::{AwsClients, EcsDeployer};
use baton_domain::error::ErrorName;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle, TaskTokens, WaitRegistry};
use baton_domain::release::{ReleaseId, TaskToken};
use baton_domain::waits::Parked;
use baton_provider_events::receivers::{ReceiverSource, RefreshingReceivers};
use baton_provider_events::{Delivery, Receivers};
use baton_store_sqlite::SqliteStore;
use chrono::Utc;
use common::fixtures::service_on_moto;
use common::moto_proxy::{MotoProxy, deployment, each_service, task_definition_of};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SAMPLE: &str = include_str!("../../../../../events/provider-events-ecs-deployment.json");
const BREAKER: &str = "ECS deployment circuit breaker: tasks failed to start.";

/// How each scripted service's rollout stands, by service name.
type Rollouts = Arc<Mutex<HashMap<String, &'static str>>>;

/// A deployment id that stays the same for one deployment across answers, as ECS's does.
fn deployment_id(seed: &str) -> String {
    format!("ecs-svc/{}", seed.bytes().fold(7u64, |hash, byte| hash.wrapping_mul(31).wrapping_add(u64::from(byte))))
}

fn with_id(mut deployment: Value, seed: &str) -> Value {
    deployment["id"] = deployment_id(seed).into();
    deployment
}

/// `service` (moto's answer) as AWS would give it, for a service whose rollout the test scripts.
fn as_aws(service: &mut Value, rollouts: &Rollouts) {
    let Some(state) = service["serviceName"].as_str().and_then(|name| rollouts.lock().unwrap().get(name).copied()) else { return };
    let first = service["deployments"][0]["taskDefinition"].as_str().expect("moto's deployment names a revision").to_string();
    let ours = task_definition_of(service);
    service["deployments"] = match state {
        "IN_PROGRESS" => json!([
            with_id(deployment("PRIMARY", &ours, "IN_PROGRESS", "ECS deployment in progress."), &ours),
            with_id(deployment("ACTIVE", &first, "COMPLETED", "ECS deployment completed."), &first),
        ]),
        "COMPLETED" => json!([with_id(deployment("PRIMARY", &ours, "COMPLETED", "ECS deployment completed."), &ours)]),
        _ => {
            // The circuit breaker stopped ours; ECS rolls back in a deployment of its own.
            service["taskDefinition"] = first.clone().into();
            json!([
                with_id(deployment("PRIMARY", &first, "IN_PROGRESS", "ECS deployment in progress."), &format!("{first} rollback")),
                with_id(deployment("ACTIVE", &ours, "FAILED", BREAKER), &ours),
            ])
        }
    };
}

/// The answers each token got, as `<token> succeeded` or `<token> <error>: <cause>`.
#[derive(Clone, Default)]
struct Told(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl TaskTokens for Told {
    async fn succeed(&self, token: &TaskToken, _: &Value) -> Result<(), ProviderError> {
        self.0.lock().unwrap().push(format!("{} succeeded", token.expose()));
        Ok(())
    }
    async fn fail(&self, token: &TaskToken, error: ErrorName, cause: &str) -> Result<(), ProviderError> {
        self.0.lock().unwrap().push(format!("{} {}: {cause}", token.expose(), error.as_str()));
        Ok(())
    }
}

fn request(service: &str) -> DeployRequest {
    super::ecs::request(service, "repo/web:2", false, None)
}

/// The event EventBridge would carry for the deployment of `service` that `pick` chooses, from
/// what DescribeServices says about it, in the documented shape (events/).
async fn event_about(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str, delivery: &str, pick: impl Fn(&Deployment) -> bool) -> Value {
    let described = ecs.describe_services().cluster(cluster).services(service).send().await.expect("describe the service");
    let found = &described.services()[0];
    let deployment = found.deployments().iter().find(|d| pick(d)).expect("the deployment");
    let (kind, name) = match deployment.rollout_state() {
        Some(DeploymentRolloutState::Completed) => ("INFO", "SERVICE_DEPLOYMENT_COMPLETED"),
        Some(DeploymentRolloutState::Failed) => ("ERROR", "SERVICE_DEPLOYMENT_FAILED"),
        _ => ("INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
    };
    let mut event: Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
    event["id"] = delivery.into();
    event["time"] = Utc::now().to_rfc3339().into();
    event["resources"] = json!([found.service_arn().expect("a service ARN")]);
    event["detail"]["eventType"] = kind.into();
    event["detail"]["eventName"] = name.into();
    event["detail"]["deploymentId"] = deployment.id().expect("a deployment id").into();
    event["detail"]["reason"] = deployment.rollout_state_reason().unwrap_or_default().into();
    event
}

fn ours(run: &RunHandle) -> impl Fn(&Deployment) -> bool + '_ {
    move |d| d.task_definition() == Some(run.id.as_str())
}

#[tokio::test]
async fn a_deployment_s_event_resumes_the_release_parked_on_it_and_no_other() {
    let moto = common::endpoint("ECS");
    let proxy = MotoProxy::start(&moto).await;
    let config = common::config_through(&proxy.url).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let cluster = common::unique("prod");
    let (plain, web, api) = (common::unique("plain"), common::unique("web"), common::unique("api"));
    for service in [&plain, &web, &api] {
        service_on_moto(&ecs, &cluster, service).await;
    }
    let spec = EcsDeploy { cluster: cluster.clone(), container: "app".into(), access: AwsAccess::default(), placements: vec![] };
    let deployer = EcsDeployer::new(&spec, AwsClients::with_base(config.clone()));

    // moto as it is: no deployment of the new revision in UpdateService's answer, so nothing to
    // park on; the run is polled as before.
    let unnamed = deployer.start(&request(&plain)).await.expect("deploy on moto");
    assert_eq!(unnamed.state.get("deployment"), None, "{}", unnamed.state);
    assert_eq!(deployer.wait_key(&unnamed), None);
    assert_eq!(deployer.poll(&unnamed).await.unwrap(), DeployProgress::Running);

    let rollouts = Rollouts::default();
    let scripted = rollouts.clone();
    proxy.rewrite("UpdateService", move |answer| as_aws(&mut answer.body["service"], &scripted));
    let scripted = rollouts.clone();
    proxy.rewrite("DescribeServices", each_service(move |service| as_aws(service, &scripted)));
    for service in [&web, &api] {
        rollouts.lock().unwrap().insert(service.clone(), "IN_PROGRESS");
    }
    let web_run = deployer.start(&request(&web)).await.expect("deploy web");
    let api_run = deployer.start(&request(&api)).await.expect("deploy api");

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("baton.db")).unwrap();
    let until = Utc::now() + chrono::TimeDelta::hours(1);
    for (run, release) in [(&web_run, "r-web"), (&api_run, "r-api")] {
        let key = deployer.wait_key(run).unwrap_or_else(|| panic!("{release}: no deployment kept in {}", run.state));
        store.park(&Parked { key, release: ReleaseId(release.into()), token: TaskToken(format!("t-{release}")), until }).await.unwrap();
    }
    let told = Told::default();
    let receivers = RefreshingReceivers::read(EventBridgeOnly, Utc::now()).await;
    let delivery = Delivery { store, tokens: told.clone(), receivers };
    let deliver = |event: Value| delivery.handle(event, Utc::now());

    rollouts.lock().unwrap().insert(web.clone(), "COMPLETED");
    let completed = event_about(&ecs, &cluster, &web, "d-web-1", ours(&web_run)).await;
    let key = deployment_key(completed["resources"][0].as_str().unwrap(), completed["detail"]["deploymentId"].as_str().unwrap());
    assert_eq!(Some(key), deployer.wait_key(&web_run), "the event names the run's deployment");
    assert_eq!(deliver(completed.clone()).await.unwrap(), json!({"resumed": 1, "ignored": 0}));
    assert_eq!(*told.0.lock().unwrap(), ["t-r-web succeeded"], "web resumed, api untouched");
    assert_eq!(deployer.poll(&web_run).await.unwrap(), DeployProgress::Succeeded, "the resumed task's poll agrees");

    // The same delivery again, and a late word about the same deployment: nobody waits for them.
    assert_eq!(deliver(completed).await.unwrap(), json!({"resumed": 0, "ignored": 1}));
    let mut late = event_about(&ecs, &cluster, &web, "d-web-2", ours(&web_run)).await;
    late["detail"]["eventName"] = "SERVICE_DEPLOYMENT_FAILED".into();
    assert_eq!(deliver(late).await.unwrap(), json!({"resumed": 0, "ignored": 1}));
    let in_progress = event_about(&ecs, &cluster, &api, "d-api-1", ours(&api_run)).await;
    assert_eq!(deliver(in_progress).await.unwrap(), json!({"resumed": 0, "ignored": 1}), "progress resumes nothing");
    assert_eq!(told.0.lock().unwrap().len(), 1, "{:?}", told.0.lock().unwrap());

    // api's wait was there all along: the circuit breaker's FAILED event fails it.
    rollouts.lock().unwrap().insert(api.clone(), "FAILED");
    let failed = event_about(&ecs, &cluster, &api, "d-api-2", ours(&api_run)).await;
    assert_eq!(deliver(failed).await.unwrap(), json!({"resumed": 1, "ignored": 0}));
    let answers = told.0.lock().unwrap().clone();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers[1].starts_with("t-r-api Baton.DeployFailed: ECS deployment ecs-svc/") && answers[1].ends_with(BREAKER), "{answers:?}");
    match deployer.poll(&api_run).await.unwrap() {
        DeployProgress::Failed { reason } => assert!(reason.contains(BREAKER), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    // The rollback ECS started is a deployment of its own: its end resumes nobody.
    let mut rolled_back = event_about(&ecs, &cluster, &api, "d-api-3", |d| d.status() == Some("PRIMARY")).await;
    rolled_back["detail"]["eventName"] = "SERVICE_DEPLOYMENT_COMPLETED".into();
    assert_ne!(rolled_back["detail"]["deploymentId"], json!(deployment_id(&api_run.id)));
    assert_eq!(deliver(rolled_back).await.unwrap(), json!({"resumed": 0, "ignored": 1}));
    assert!(proxy.rewritten() >= 6, "the scripted answers were not used: {}", proxy.rewritten());
}

/// EventBridge's door alone: no provider calls back.
struct EventBridgeOnly;

#[async_trait]
impl ReceiverSource for EventBridgeOnly {
    async fn receivers(&self) -> Result<Receivers, String> {
        Ok(Receivers::default())
    }
}

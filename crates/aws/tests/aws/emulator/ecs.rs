//! `EcsDeployer` against moto's ECS through the real SDK, with rollouts scripted by a proxy in
//! front of moto (moto never finishes or fails a rollout), and a deploy into another account.

use crate::common;

use baton_aws::clients::{AwsAccess, Placement};
use baton_aws::ecs::EcsDeploy;
use baton_aws::{AwsClients, EcsDeployer};
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId};
use common::fixtures::service_on_moto;
use common::moto_proxy::{MotoProxy, deployment, each_service, task_definition_of};

fn spec(cluster: &str) -> EcsDeploy {
    EcsDeploy { cluster: cluster.into(), container: "app".into(), access: AwsAccess::default(), placements: vec![] }
}

pub(super) fn request(service: &str, image: &str, rollback: bool, undoes: Option<RunHandle>) -> DeployRequest {
    DeployRequest {
        service: service.into(),
        environment: "prod".into(),
        release_id: ReleaseId(common::unique("rel")),
        wave: "all".into(),
        target: service.into(),
        artifact: Artifact { reference: image.into(), sha: "abc123".into(), branch: "main".into(), build_url: None },
        rollback,
        undoes,
    }
}

async fn service_task_definition(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> String {
    let described = ecs.describe_services().cluster(cluster).services(service).send().await.expect("describe the service");
    described.services()[0].task_definition().unwrap().to_string()
}

async fn revisions(ecs: &aws_sdk_ecs::Client, family: &str) -> usize {
    ecs.list_task_definitions().family_prefix(family).send().await.expect("list task definitions").task_definition_arns().len()
}

#[tokio::test]
async fn a_deploy_registers_a_revision_with_the_image_and_follows_its_rollout() {
    let moto = common::endpoint("ECS");
    common::endpoint("STS");
    let proxy = MotoProxy::start(&moto).await;
    let config = common::config_through(&proxy.url).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let (cluster, service) = (common::unique("prod"), common::unique("web"));
    let first = service_on_moto(&ecs, &cluster, &service).await;
    let deployer = EcsDeployer::new(&spec(&cluster), AwsClients::with_base(config.clone()));

    let run = deployer.start(&request(&service, "repo/web:2", false, None)).await.expect("deploy");
    assert_eq!(run.provider, "ecs");
    assert!(run.id.ends_with(&format!("task-definition/{service}:2")), "{}", run.id);
    assert_eq!(run.state["previous_task_definition"], first.as_str());
    assert_eq!(run.state["task_definition"], run.id.as_str());
    assert!(run.url.as_deref().unwrap().contains(&format!("/clusters/{cluster}/services/{service}/")), "{:?}", run.url);
    assert_eq!(service_task_definition(&ecs, &cluster, &service).await, run.id);

    let registered = ecs
        .describe_task_definition()
        .task_definition(&run.id)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .expect("describe the new revision");
    let definition = registered.task_definition().unwrap();
    let images: Vec<_> = definition.container_definitions().iter().map(|c| (c.name().unwrap(), c.image().unwrap())).collect();
    assert_eq!(images, [("app", "repo/web:2"), ("envoy", "repo/envoy:1.30")]);
    assert_eq!((definition.cpu(), definition.memory()), (Some("256"), Some("512")));
    assert_eq!(definition.task_role_arn(), Some("arn:aws:iam::123456789012:role/web-task"));
    assert_eq!(registered.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect::<Vec<_>>(), [("team", "web")]);

    // moto as it is: its one deployment still names the old revision while the service names ours.
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Running);

    proxy.rewrite(
        "DescribeServices",
        each_service(|s| {
            let ours = task_definition_of(s);
            s["deployments"] = serde_json::json!([deployment("PRIMARY", &ours, "IN_PROGRESS", "ECS deployment in progress.")]);
        }),
    );
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Running);

    proxy.rewrite(
        "DescribeServices",
        each_service(|s| {
            let ours = task_definition_of(s);
            s["deployments"] = serde_json::json!([deployment("PRIMARY", &ours, "COMPLETED", "ECS deployment completed.")]);
        }),
    );
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Succeeded);

    // The circuit breaker: ours FAILED, and ECS rolling the old revision back as the new PRIMARY.
    let old = first.clone();
    proxy.rewrite(
        "DescribeServices",
        each_service(move |s| {
            let ours = task_definition_of(s);
            s["taskDefinition"] = old.clone().into();
            s["deployments"] = serde_json::json!([
                deployment("PRIMARY", &old, "IN_PROGRESS", "ECS deployment in progress."),
                deployment("ACTIVE", &ours, "FAILED", "ECS deployment circuit breaker: tasks failed to start."),
            ]);
        }),
    );
    match deployer.poll(&run).await.unwrap() {
        DeployProgress::Failed { reason } => assert!(reason.contains("circuit breaker: tasks failed to start"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }

    // Someone else's deploy took over.
    proxy.rewrite(
        "DescribeServices",
        each_service(|s| {
            let theirs = "arn:aws:ecs:us-east-1:123456789012:task-definition/other:9";
            s["taskDefinition"] = theirs.into();
            s["deployments"] = serde_json::json!([deployment("PRIMARY", theirs, "IN_PROGRESS", "")]);
        }),
    );
    match deployer.poll(&run).await.unwrap() {
        DeployProgress::Failed { reason } => assert!(reason.contains("gone") && reason.contains("other:9"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(proxy.rewritten() >= 4, "the scripted answers were not used: {}", proxy.rewritten());
}

#[tokio::test]
async fn a_rollback_puts_back_the_replaced_revision_or_the_previous_image() {
    let config = common::sdk_config_for(&["ECS", "STS"]).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let (cluster, service) = (common::unique("prod"), common::unique("web"));
    let first = service_on_moto(&ecs, &cluster, &service).await;
    let deployer = EcsDeployer::new(&spec(&cluster), AwsClients::with_base(config.clone()));
    let forward = deployer.start(&request(&service, "repo/web:2", false, None)).await.expect("deploy");
    assert_eq!(revisions(&ecs, &service).await, 2);

    // With the forward run: exactly the revision it replaced, no new one.
    let back = deployer.start(&request(&service, "repo/web:1", true, Some(forward.clone()))).await.expect("roll back");
    assert_eq!(back.id, first);
    assert_eq!(back.state["previous_task_definition"], forward.id.as_str());
    assert_eq!(service_task_definition(&ecs, &cluster, &service).await, first);
    assert_eq!(revisions(&ecs, &service).await, 2);

    // Without it (the forward run never got a handle): a revision with the previous image.
    let again = deployer.start(&request(&service, "repo/web:1", true, None)).await.expect("roll back by image");
    assert!(again.id.ends_with(&format!("{service}:3")), "{}", again.id);
    assert_eq!(service_task_definition(&ecs, &cluster, &service).await, again.id);
    let definition = ecs.describe_task_definition().task_definition(&again.id).send().await.unwrap();
    assert_eq!(definition.task_definition().unwrap().container_definitions()[0].image(), Some("repo/web:1"));

    // Nothing before the first release: ECS cannot remove a service's task definition.
    match deployer.start(&request(&service, "", true, None)).await {
        Err(ProviderError::Rejected { message, .. }) => {
            assert!(message.contains("cannot roll back") && message.contains(&service), "{message}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_services_clusters_and_containers_are_rejected_by_name() {
    let config = common::sdk_config_for(&["ECS", "STS"]).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    let (cluster, service) = (common::unique("prod"), common::unique("web"));
    service_on_moto(&ecs, &cluster, &service).await;
    let clients = AwsClients::with_base(config.clone());

    let missing = common::unique("nope");
    match EcsDeployer::new(&spec(&cluster), clients.clone()).start(&request(&missing, "repo/web:2", false, None)).await {
        Err(ProviderError::Rejected { message, .. }) => assert!(message.contains(&missing) && message.contains(&cluster), "{message}"),
        other => panic!("expected Rejected for a missing service, got {other:?}"),
    }
    let no_cluster = common::unique("gone");
    match EcsDeployer::new(&spec(&no_cluster), clients.clone()).start(&request(&service, "repo/web:2", false, None)).await {
        Err(ProviderError::Rejected { message, .. }) => assert!(message.contains(&no_cluster), "{message}"),
        other => panic!("expected Rejected for a missing cluster, got {other:?}"),
    }
    let wrong_container = EcsDeploy { container: "api".into(), ..spec(&cluster) };
    match EcsDeployer::new(&wrong_container, clients).start(&request(&service, "repo/web:2", false, None)).await {
        Err(ProviderError::Rejected { message, .. }) => assert!(message.contains("\"api\"") && message.contains("app, envoy"), "{message}"),
        other => panic!("expected Rejected for a missing container, got {other:?}"),
    }
    assert_eq!(revisions(&ecs, &service).await, 1, "nothing was registered");
}

#[tokio::test]
async fn a_placement_with_a_role_deploys_into_that_account() {
    let config = common::sdk_config_for(&["ECS", "STS"]).await;
    let clients = AwsClients::with_base(config.clone());
    let other_account =
        AwsAccess { region: Some("eu-west-1".into()), role_arn: Some("arn:aws:iam::210987654321:role/baton-deployer".into()) };
    // The service exists only in the other account (moto keeps accounts apart by credentials).
    let there = aws_sdk_ecs::Client::new(&clients.config_for(&other_account).await.unwrap());
    let (cluster, service) = (common::unique("prod"), common::unique("web"));
    let first = service_on_moto(&there, &cluster, &service).await;
    assert!(first.starts_with("arn:aws:ecs:eu-west-1:210987654321:"), "{first}");

    let spec = EcsDeploy { placements: vec![Placement { target: service.clone(), access: other_account.clone() }], ..spec(&cluster) };
    let deployer = EcsDeployer::new(&spec, clients.clone());
    let run = deployer.start(&request(&service, "repo/web:2", false, None)).await.expect("deploy into the other account");
    assert!(run.id.starts_with("arn:aws:ecs:eu-west-1:210987654321:task-definition/"), "{}", run.id);
    assert_eq!(run.state["role"], "arn:aws:iam::210987654321:role/baton-deployer");
    assert_eq!(run.state["region"], "eu-west-1");
    assert_eq!(service_task_definition(&there, &cluster, &service).await, run.id);
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Running);

    // The home account has no such cluster.
    let home =
        aws_sdk_ecs::Client::new(&clients.config_for(&AwsAccess { region: Some("eu-west-1".into()), role_arn: None }).await.unwrap());
    let err = home.describe_services().cluster(&cluster).services(&service).send().await.expect_err("no cluster at home");
    assert!(format!("{err:?}").contains("ClusterNotFound"), "{err:?}");
}

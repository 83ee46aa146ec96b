//! The cloud examples (examples/cloud) released through the stack's own function binaries: a
//! CodeBuild build and an ECS service, a Lambda function from a zip in the stack's ArtifactBucket
//! and one from an image, all on moto, each wave watched by a CloudWatch alarm on LocalStack, and
//! the ECS service's also by Datadog monitors (a stand-in) whose keys are in Secrets Manager
//! under the names the example gives.
//! The IAM check then holds every call the functions made, whatever its protocol, to the
//! template's policies with their conditions; taking away a grant the runs used (`s3:GetObject`,
//! `ecs:TagResource`) fails the check naming the call and the resource.
//!
//! moto never finishes an ECS rollout, so the functions reach ECS through crates/aws's proxy,
//! which reports each service's current revision rolled out (`AWS_ENDPOINT_URL_ECS`).

use super::stack::{every_used_grant_is_needed, repo, signal, stack_with};
use crate::fixtures::{metric_alarm, project_on_moto, set_state};
use crate::moto_proxy::{MotoProxy, deployment, each_service, task_definition_of};
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use aws_sdk_lambda::types::{FunctionCode, PackageType, Runtime};
use baton_asl::ExecutionStatus;
use baton_domain::release::ReleaseStatus;
use baton_local_stack::iam::{self, Operation};
use baton_local_stack::template::Template;
use std::collections::{BTreeMap, BTreeSet};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The examples' names (examples/cloud/*.yaml).
const BUCKET: &str = "baton-local-artifacts";
const CLUSTER: &str = "inventory";
const ECS_SERVICES: [&str; 2] = ["inventory-api-canary", "inventory-api-use1"];
const ZIP_FUNCTION: &str = "checkout-events-use1";
const IMAGE_FUNCTION: &str = "checkout-web-use1";
const IMAGE: &str = "000000000000.dkr.ecr.us-east-1.amazonaws.com";
const PROJECTS: [&str; 3] = ["inventory-api-release", "checkout-events-release", "checkout-web-release"];
const ALARMS: [&str; 3] = ["inventory-api-errors", "checkout-events-errors", "checkout-web-errors"];
/// Held by the tests that set the examples' secrets (this one, and the runbook's, which deletes
/// and creates them as on a fresh account).
pub(super) static EXAMPLE_SECRETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where examples/cloud/inventory-api.yaml's Datadog gate looks.
const DATADOG: &str = "127.0.0.1:8716";
const DATADOG_KEYS: [(&str, &str); 2] = [("baton/providers/datadog-api-key", "dd-api"), ("baton/providers/datadog-app-key", "dd-app")];
/// The smallest zip file (an empty archive: its end-of-central-directory record).
const EMPTY_ZIP: [u8; 22] = [0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn moto_url() -> String {
    std::env::var("AWS_ENDPOINT_URL_ECS").expect("AWS_ENDPOINT_URL_ECS (moto): run scripts/emulators.sh env")
}

/// moto's own IAM (its Lambda checks that a function's role exists there).
fn moto_iam(config: &SdkConfig) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(config).endpoint_url(moto_url()).build())
}

/// A service of the cluster running revision 1 of its family, which names a task role of the
/// account and carries a tag (so a copied revision is tagged, and passes the role), unless an
/// earlier run left it there.
async fn ecs_service(ecs: &aws_sdk_ecs::Client, service: &str) {
    let found = ecs.describe_services().cluster(CLUSTER).services(service).send().await.expect("describe services on moto");
    if found.services().iter().any(|s| s.status() == Some("ACTIVE")) {
        return;
    }
    let registered = ecs
        .register_task_definition()
        .family(service)
        .task_role_arn("arn:aws:iam::000000000000:role/inventory-task")
        .container_definitions(ContainerDefinition::builder().name("api").image(format!("{IMAGE}/inventory-api:1")).memory(256).build())
        .tags(Tag::builder().key("team").value("inventory").build())
        .send()
        .await
        .expect("register a task definition on moto");
    let arn = registered.task_definition.unwrap().task_definition_arn.unwrap();
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name(service)
        .task_definition(arn)
        .desired_count(1)
        .send()
        .await
        .expect("create a service on moto");
}

/// A function with version 1 published and alias `live` on it, unless an earlier run left it.
async fn function(config: &SdkConfig, name: &str, code: FunctionCode, package: PackageType) {
    let lambda = aws_sdk_lambda::Client::new(config);
    if lambda.get_alias().function_name(name).name("live").send().await.is_ok() {
        return;
    }
    let role = moto_iam(config)
        .create_role()
        .role_name(format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("create the function's role on moto");
    let mut create = lambda.create_function().function_name(name).role(role.role().unwrap().arn()).package_type(package.clone()).code(code);
    if package == PackageType::Zip {
        create = create.runtime(Runtime::Providedal2023).handler("bootstrap");
    }
    create.send().await.expect("create a function on moto");
    let version = lambda.publish_version().function_name(name).send().await.expect("publish version 1").version.unwrap();
    lambda.create_alias().function_name(name).name("live").function_version(version).send().await.expect("create alias live");
}

/// An object in moto's S3 (moto takes unsigned path-style requests).
async fn put_object(key: &str, body: &[u8]) {
    let client = baton_http_client::Https::new(None).expect("an HTTP client").client().clone();
    let bucket = client.put(format!("{}/{BUCKET}", moto_url())).send().await.expect("create the bucket on moto");
    assert!(bucket.status().is_success() || bucket.status().as_u16() == 409, "create bucket: {}", bucket.status());
    let put = client.put(format!("{}/{BUCKET}/{key}", moto_url())).body(body.to_vec()).send().await.expect("put the object on moto");
    assert!(put.status().is_success(), "put {key}: {}", put.status());
}

/// What each cloud example deploys and watches, as on the account the stack serves; the zip is
/// the one build `sha` leaves in the artifact bucket.
async fn resources(config: &SdkConfig, sha: &str) {
    let ecs = aws_sdk_ecs::Client::new(config);
    ecs.create_cluster().cluster_name(CLUSTER).send().await.expect("create the cluster on moto");
    for service in ECS_SERVICES {
        ecs_service(&ecs, service).await;
    }
    put_object(&format!("checkout-events/{sha}.zip"), &EMPTY_ZIP).await;
    function(config, ZIP_FUNCTION, FunctionCode::builder().zip_file(EMPTY_ZIP.to_vec().into()).build(), PackageType::Zip).await;
    let image = FunctionCode::builder().image_uri(format!("{IMAGE}/checkout-web:1")).build();
    function(config, IMAGE_FUNCTION, image, PackageType::Image).await;
    let codebuild = aws_sdk_codebuild::Client::new(config);
    for project in PROJECTS {
        let found = codebuild.batch_get_projects().names(project).send().await.expect("look the project up on moto");
        if found.projects().is_empty() {
            project_on_moto(&codebuild, project, "123456789012").await;
        }
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(config);
    for alarm in ALARMS {
        metric_alarm(&cloudwatch, alarm).await;
        set_state(&cloudwatch, alarm, StateValue::Ok, "healthy").await;
    }
}

/// The example's secrets, set as an operator sets them (created, or a new value put).
async fn secrets(config: &SdkConfig) {
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    for (name, value) in DATADOG_KEYS {
        if secrets.put_secret_value().secret_id(name).secret_string(value).send().await.is_err() {
            secrets.create_secret().name(name).secret_string(value).send().await.expect("create the secret on LocalStack");
        }
    }
}

/// Datadog's Monitors API for the example's gate: one OK monitor, only for the keys the secrets hold.
async fn datadog() -> MockServer {
    let listener = std::net::TcpListener::bind(DATADOG).unwrap_or_else(|e| panic!("the Datadog stand-in's port {DATADOG}: {e}"));
    let server = MockServer::builder().listener(listener).start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/monitor"))
        .and(header("dd-api-key", DATADOG_KEYS[0].1))
        .and(header("dd-application-key", DATADOG_KEYS[1].1))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"id": 7, "name": "inventory-api latency", "overall_state": "OK", "tags": ["team:inventory", "service:inventory-api", "env:production"]}
        ])))
        .expect(1..)
        .mount(&server)
        .await;
    server
}

/// The template with one action taken out of every statement that grants it.
fn template_without(action: &str, parameters: &BTreeMap<String, String>, stack: &Template) -> (tempfile::TempDir, Template) {
    let text = std::fs::read_to_string(repo("infra/template.yaml")).unwrap();
    let statement = format!("Action: [{action}]");
    assert!(text.contains(&statement), "the template grants {action} in a statement of its own");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, text.replace(&statement, "Action: []")).unwrap();
    let template = Template::load(&path, stack.names().clone(), parameters).unwrap();
    (dir, template)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_examples_release_through_the_function_binaries_within_their_iam_policies() {
    let config = baton_local_stack::sdk_config().await.expect("the SDK's configuration");
    let _examples = EXAMPLE_SECRETS.lock().await;
    let sha = format!("{:x}", uuid::Uuid::new_v4().as_u128()) + "00000000";
    resources(&config, &sha).await;
    secrets(&config).await;
    let datadog = datadog().await;
    let proxy = MotoProxy::start(&moto_url()).await;
    proxy.rewrite(
        "DescribeServices",
        each_service(|service| {
            let running = task_definition_of(service);
            service["deployments"] = serde_json::json!([deployment("PRIMARY", &running, "COMPLETED", "")]);
        }),
    );
    let state = tempfile::tempdir().unwrap();
    let parameters = BTreeMap::from([("ArtifactBucket".to_string(), BUCKET.to_string())]);
    let endpoint = vec![("AWS_ENDPOINT_URL_ECS".to_string(), proxy.url.clone())];
    let stack = stack_with(state.path(), repo("examples/cloud"), parameters.clone(), endpoint).await;

    for service in ["inventory-api", "checkout-events", "checkout-web"] {
        let mut input = signal(service);
        input["sha"] = sha.clone().into();
        let outcome = stack.run(service, input).await;
        let release = stack.release(service, &outcome).await.unwrap().expect("the release is in the release table");
        assert_eq!(
            (outcome.status, release.status),
            (ExecutionStatus::Succeeded, ReleaseStatus::Succeeded),
            "{service}: {:?}: {:?}",
            outcome.error,
            outcome.cause
        );
    }
    assert!(proxy.rewritten() > 0, "the ECS rollouts went through the proxy");
    datadog.verify().await;

    // What the services run now: the new image on both ECS services (a tagged copy of their
    // revision), and the aliases on new versions of the zip and image functions.
    let short = &sha[..7];
    let ecs = aws_sdk_ecs::Client::new(&config);
    for service in ECS_SERVICES {
        let described = ecs.describe_services().cluster(CLUSTER).services(service).send().await.unwrap();
        let revision = described.services()[0].task_definition().unwrap().to_string();
        let definition = ecs
            .describe_task_definition()
            .task_definition(&revision)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send()
            .await
            .unwrap();
        let image = definition.task_definition().unwrap().container_definitions()[0].image().unwrap().to_string();
        assert_eq!(image, format!("{IMAGE}/inventory-api:{short}"), "{service}");
        assert_eq!(definition.tags().iter().filter_map(|t| t.key()).collect::<Vec<_>>(), ["team"], "{service}: tags copied");
    }
    let lambda = aws_sdk_lambda::Client::new(&config);
    let live = |function: &'static str| {
        let lambda = lambda.clone();
        async move {
            let alias = lambda.get_alias().function_name(function).name("live").send().await.unwrap();
            let version = alias.function_version().unwrap().to_string();
            lambda.get_function().function_name(function).qualifier(&version).send().await.unwrap()
        }
    };
    let image = live(IMAGE_FUNCTION).await;
    assert_eq!(image.code().and_then(|c| c.image_uri()), Some(format!("{IMAGE}/checkout-web:{short}").as_str()));
    let zip = live(ZIP_FUNCTION).await;
    assert_ne!(zip.configuration().and_then(|c| c.version()), Some("1"), "the zip function's alias moved to a new version");

    let reports = stack.iam_reports().unwrap();
    let text = iam::render(&reports);
    eprintln!("IAM check:\n{text}");
    assert!(reports.values().all(|r| r.denied.is_empty()), "operations the template's policies do not allow:\n{text}");
    assert!(reports.values().all(|r| r.unused.is_empty()), "grants no run used and no comment explains:\n{text}");

    every_used_grant_is_needed(&stack);
    let operations = stack.operations().unwrap();
    // Taken out of the template, s3:GetObject and ecs:TagResource fail the check naming the call and resource.
    let deploy_wave: &BTreeSet<Operation> = &operations["DeployWaveFunction"];
    let zip_read = format!("s3:GetObject on arn:aws:s3:::{BUCKET}/checkout-events/{sha}.zip");
    let tagging = "ecs:TagResource on arn:aws:ecs:us-east-1:000000000000:task-definition/inventory-api-canary:*";
    for (action, call) in [("s3:GetObject", zip_read.as_str()), ("ecs:TagResource", tagging)] {
        let (_dir, without) = template_without(action, &parameters, stack.template());
        let report = iam::check(&without, "DeployWaveFunction", deploy_wave).unwrap();
        let text = iam::render(&BTreeMap::from([("DeployWaveFunction".to_string(), report)]));
        eprintln!("IAM check without {action}:\n{text}");
        assert!(text.lines().any(|line| line.starts_with("DENIED") && line.contains(call)), "without {action}, expected {call}:\n{text}");
    }
    stack.shutdown();
}

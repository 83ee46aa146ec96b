//! `LambdaDeployer` against moto's Lambda through the real SDK: new code, a published version,
//! the alias moved at once or as a weighted canary promoted after its hold, and rollbacks.

use crate::common;

use aws_config::SdkConfig;
use aws_sdk_lambda::types::{FunctionCode, PackageType};
use baton_aws::clients::AwsAccess;
use baton_aws::lambda::{LambdaCanary, LambdaDeploy};
use baton_aws::{AwsClients, LambdaDeployer};
use baton_domain::catalog::Seconds;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId};
use std::collections::HashMap;
use std::time::Duration;

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/checkout";

/// An image function with version 1 published and alias `live` on it.
async fn function_on_moto(config: &SdkConfig, function: &str) {
    // moto's Lambda checks that the role exists in its own IAM (the environment's IAM is LocalStack's).
    let iam_config = aws_sdk_iam::config::Builder::from(config).endpoint_url(common::endpoint("LAMBDA")).build();
    let role = aws_sdk_iam::Client::from_conf(iam_config)
        .create_role()
        .role_name(common::unique("checkout-fn"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("create the function's role on moto");
    let lambda = aws_sdk_lambda::Client::new(config);
    lambda
        .create_function()
        .function_name(function)
        .role(role.role().unwrap().arn())
        .package_type(PackageType::Image)
        .code(FunctionCode::builder().image_uri(format!("{IMAGE}:1")).build())
        .send()
        .await
        .expect("create a function on moto");
    let version = lambda.publish_version().function_name(function).send().await.expect("publish version 1").version.unwrap();
    assert_eq!(version, "1");
    lambda.create_alias().function_name(function).name("live").function_version("1").send().await.expect("create alias live");
}

fn spec(canary: Option<LambdaCanary>) -> LambdaDeploy {
    LambdaDeploy { alias: "live".into(), canary, access: AwsAccess::default(), placements: vec![] }
}

fn request(function: &str, reference: &str, rollback: bool, undoes: Option<RunHandle>) -> DeployRequest {
    DeployRequest {
        service: "checkout".into(),
        environment: "prod".into(),
        release_id: ReleaseId(common::unique("rel")),
        wave: "all".into(),
        target: function.into(),
        artifact: Artifact { reference: reference.into(), sha: "abc123".into(), branch: "main".into(), build_url: None },
        rollback,
        undoes,
    }
}

/// The alias's primary version and its additional weights, as moto holds them.
async fn alias(config: &SdkConfig, function: &str) -> (String, HashMap<String, f64>) {
    let alias = aws_sdk_lambda::Client::new(config).get_alias().function_name(function).name("live").send().await.expect("get alias");
    let weights = alias.routing_config().and_then(|r| r.additional_version_weights()).cloned().unwrap_or_default();
    (alias.function_version().unwrap().to_string(), weights)
}

async fn image_of(config: &SdkConfig, function: &str, version: &str) -> String {
    let got =
        aws_sdk_lambda::Client::new(config).get_function().function_name(function).qualifier(version).send().await.expect("get function");
    got.code().and_then(|c| c.image_uri()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_deploy_without_a_canary_moves_the_alias_and_a_rollback_moves_it_back() {
    let config = common::sdk_config_for(&["LAMBDA", "STS"]).await;
    let function = common::unique("checkout");
    function_on_moto(&config, &function).await;
    let deployer = LambdaDeployer::new(&spec(None), AwsClients::with_base(config.clone()));

    let run = deployer.start(&request(&function, &format!("{IMAGE}:2"), false, None)).await.expect("deploy");
    assert_eq!(run.provider, "lambda");
    assert_eq!(run.id, format!("{function}:2"));
    assert_eq!((run.state["version"].as_str(), run.state["previous_version"].as_str()), (Some("2"), Some("1")));
    assert!(run.state.get("canary_until").is_none(), "{}", run.state);
    assert_eq!(alias(&config, &function).await, ("2".to_string(), HashMap::new()));
    assert_eq!(image_of(&config, &function, "2").await, format!("{IMAGE}:2"));
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Succeeded);

    let back = deployer.start(&request(&function, &format!("{IMAGE}:1"), true, Some(run.clone()))).await.expect("roll back");
    assert_eq!(alias(&config, &function).await, ("1".to_string(), HashMap::new()));
    assert_eq!(back.state["previous_version"], "2");
    assert_eq!(deployer.poll(&back).await.unwrap(), DeployProgress::Succeeded);
    // The forward run no longer holds: the alias serves another version.
    match deployer.poll(&run).await.unwrap() {
        DeployProgress::Failed { reason } => assert!(reason.contains("serves version 1") && reason.contains("not version 2"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }

    // No earlier artifact and no forward run: nothing to put back.
    match deployer.start(&request(&function, "", true, None)).await {
        Err(ProviderError::Rejected { message, .. }) => {
            assert!(message.contains("cannot roll back") && message.contains(&function), "{message}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_canary_takes_its_weight_until_the_hold_ends_then_everything() {
    let config = common::sdk_config_for(&["LAMBDA", "STS"]).await;
    let function = common::unique("checkout");
    function_on_moto(&config, &function).await;
    let canary = LambdaCanary { weight: 10, hold: Seconds(2) };
    let deployer = LambdaDeployer::new(&spec(Some(canary)), AwsClients::with_base(config.clone()));

    let run = deployer.start(&request(&function, &format!("{IMAGE}:2"), false, None)).await.expect("deploy");
    assert!(run.state["canary_until"].is_string(), "{}", run.state);
    assert_eq!(alias(&config, &function).await, ("1".to_string(), HashMap::from([("2".to_string(), 0.1)])));
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Running);
    assert_eq!(alias(&config, &function).await.0, "1", "still the canary during the hold");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Succeeded);
    assert_eq!(alias(&config, &function).await, ("2".to_string(), HashMap::new()));
    // A retried poll after the promotion.
    assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Succeeded);
}

#[tokio::test]
async fn a_rollback_during_a_canary_clears_the_weights() {
    let config = common::sdk_config_for(&["LAMBDA", "STS"]).await;
    let function = common::unique("checkout");
    function_on_moto(&config, &function).await;
    let canary = LambdaCanary { weight: 25, hold: Seconds(600) };
    let deployer = LambdaDeployer::new(&spec(Some(canary)), AwsClients::with_base(config.clone()));

    let run = deployer.start(&request(&function, &format!("{IMAGE}:2"), false, None)).await.expect("deploy");
    assert_eq!(alias(&config, &function).await, ("1".to_string(), HashMap::from([("2".to_string(), 0.25)])));
    let back = deployer.start(&request(&function, &format!("{IMAGE}:1"), true, Some(run))).await.expect("roll back");
    assert_eq!(alias(&config, &function).await, ("1".to_string(), HashMap::new()));
    assert!(back.state.get("canary_until").is_none(), "a rollback is never a canary: {}", back.state);
    assert_eq!(deployer.poll(&back).await.unwrap(), DeployProgress::Succeeded);
}

#[tokio::test]
async fn a_missing_function_or_alias_is_rejected_by_name() {
    let config = common::sdk_config_for(&["LAMBDA", "STS"]).await;
    let deployer = LambdaDeployer::new(&spec(None), AwsClients::with_base(config.clone()));
    let missing = common::unique("nope");
    match deployer.start(&request(&missing, &format!("{IMAGE}:2"), false, None)).await {
        Err(ProviderError::Rejected { message, .. }) => assert!(message.contains(&missing) && message.contains("alias live"), "{message}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

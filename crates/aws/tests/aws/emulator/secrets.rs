//! `AwsSecretResolver` against LocalStack's SSM Parameter Store and Secrets Manager.

use crate::common;

use async_trait::async_trait;
use aws_sdk_ssm::types::ParameterType;
use baton_aws::AwsSecretResolver;
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{ProviderError, SecretResolver};
use std::sync::Arc;

/// Stands in for the environment resolver, to see `env:` references handed over.
struct FixedEnv;

#[async_trait]
impl SecretResolver for FixedEnv {
    async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
        Ok(format!("from-env:{secret}"))
    }
}

#[tokio::test]
async fn references_resolve_from_their_stores() {
    let config = common::sdk_config().await;
    let parameter = format!("/baton/{}/slack-token", common::unique("test"));
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name(&parameter)
        .value("xoxb-from-ssm")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("put parameter");
    let secret_name = common::unique("baton-provider");
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(&secret_name)
        .secret_string("token-from-secrets-manager")
        .send()
        .await
        .expect("create secret");

    let resolver = AwsSecretResolver::new(&config, Arc::new(FixedEnv));
    assert_eq!(resolver.resolve(&SecretRef::Ssm(parameter)).await.unwrap(), "xoxb-from-ssm");
    assert_eq!(resolver.resolve(&SecretRef::SecretsManager(secret_name)).await.unwrap(), "token-from-secrets-manager");
    assert_eq!(resolver.resolve(&SecretRef::Env("SLACK_TOKEN".into())).await.unwrap(), "from-env:env:SLACK_TOKEN");

    for missing in [SecretRef::Ssm("/baton/missing".into()), SecretRef::SecretsManager("baton-missing".into())] {
        match resolver.resolve(&missing).await {
            Err(ProviderError::Rejected { message, .. }) => assert!(message.contains(&missing.to_string()), "{message}"),
            other => panic!("{missing}: expected Rejected, got {other:?}"),
        }
    }
}

/// The environment of a Lambda function: no token in it.
struct EmptyEnv;

#[async_trait]
impl SecretResolver for EmptyEnv {
    async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
        match secret {
            SecretRef::Env(name) if name == "IN_ENV" => Ok("value-from-env".into()),
            _ => Err(ProviderError::rejected(format!("secret {secret} is not set"))),
        }
    }
}

#[tokio::test]
async fn env_references_the_environment_cannot_answer_come_from_the_stack_credentials() {
    let config = common::sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let create = |name: String, value: &str| {
        let request = client.create_secret().name(name.clone()).secret_string(value);
        async move {
            request.send().await.expect("create secret");
            name
        }
    };
    let providers = create(common::unique("baton/providers/creds"), r#"{"GITHUB_TOKEN": "ghp_stack", "IN_ENV": "shadowed"}"#).await;
    let slack = create(common::unique("baton/slack/creds"), r#"{"SLACK_TOKEN": "xoxb-stack", "GITHUB_TOKEN": "second"}"#).await;
    let resolver = AwsSecretResolver::new(&config, Arc::new(EmptyEnv)).with_credentials(vec![providers.clone(), slack.clone()]);
    let env = |name: &str| SecretRef::Env(name.into());

    assert_eq!(resolver.resolve(&env("GITHUB_TOKEN")).await.unwrap(), "ghp_stack", "the first secret that has the name wins");
    assert_eq!(resolver.resolve(&env("SLACK_TOKEN")).await.unwrap(), "xoxb-stack");
    assert_eq!(resolver.resolve(&env("IN_ENV")).await.unwrap(), "value-from-env", "the environment comes first");

    // Read once per cold start: deleting the secrets changes nothing for this resolver.
    for id in [&providers, &slack] {
        client.delete_secret().secret_id(id).force_delete_without_recovery(true).send().await.unwrap();
    }
    assert_eq!(resolver.resolve(&env("SLACK_TOKEN")).await.unwrap(), "xoxb-stack");
    let missing = resolver.resolve(&env("DD_API_KEY")).await.unwrap_err();
    let text = missing.to_string();
    assert!(text.contains("env:DD_API_KEY") && text.contains("keys: GITHUB_TOKEN, IN_ENV, SLACK_TOKEN"), "{text}");
    assert!(!text.contains("ghp_stack") && !text.contains("xoxb-stack"), "no value in the error: {text}");

    // Without credentials secrets, the environment's refusal stands.
    let plain = AwsSecretResolver::new(&config, Arc::new(EmptyEnv));
    assert!(plain.resolve(&env("GITHUB_TOKEN")).await.unwrap_err().to_string().contains("is not set"));
    // A secret that is no JSON object is named, its value is not quoted.
    let broken = create(common::unique("baton/providers/broken"), "ghp_not_json").await;
    let error = AwsSecretResolver::new(&config, Arc::new(EmptyEnv)).with_credentials(vec![broken]).resolve(&env("X")).await.unwrap_err();
    assert!(error.to_string().contains("is not a JSON object") && !error.to_string().contains("ghp_not_json"), "{error}");
}

//! `AwsSecretResolver` against LocalStack's SSM Parameter Store and Secrets Manager.
#![cfg(feature = "emulator-tests")]

mod common;

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

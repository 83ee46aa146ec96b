//! A [`SecretResolver`] for the Lambda functions: `ssm:` references from SSM Parameter Store
//! (decrypted), `secrets-manager:` ones from Secrets Manager; `env:` ones go to the resolver
//! it wraps, so environment handling lives in one place.

use crate::error::AwsError;
use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{ProviderError, SecretResolver};
use std::sync::{Arc, OnceLock};

pub struct AwsSecretResolver {
    config: aws_config::SdkConfig,
    // Built on first use: most invocations resolve no secret, and a Lambda's cold start
    // should not pay for clients it may never call.
    ssm: OnceLock<aws_sdk_ssm::Client>,
    secrets_manager: OnceLock<aws_sdk_secretsmanager::Client>,
    env: Arc<dyn SecretResolver>,
}

impl AwsSecretResolver {
    /// `env` resolves `env:` references (the providers crate's `EnvSecretResolver`).
    pub fn new(config: &aws_config::SdkConfig, env: Arc<dyn SecretResolver>) -> AwsSecretResolver {
        AwsSecretResolver { config: config.clone(), ssm: OnceLock::new(), secrets_manager: OnceLock::new(), env }
    }

    fn ssm(&self) -> &aws_sdk_ssm::Client {
        self.ssm.get_or_init(|| aws_sdk_ssm::Client::new(&self.config))
    }

    fn secrets_manager(&self) -> &aws_sdk_secretsmanager::Client {
        self.secrets_manager.get_or_init(|| aws_sdk_secretsmanager::Client::new(&self.config))
    }
}

/// Error messages name the reference, never the value.
fn provider_error(secret: &SecretRef, err: AwsError) -> ProviderError {
    err.for_provider(&format!("secret {secret}"))
}

#[async_trait]
impl SecretResolver for AwsSecretResolver {
    async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
        let value = match secret {
            SecretRef::Env(_) => return self.env.resolve(secret).await,
            SecretRef::Ssm(name) => self
                .ssm()
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| provider_error(secret, AwsError::from_sdk("GetParameter", e)))?
                .parameter
                .and_then(|p| p.value),
            SecretRef::SecretsManager(id) => {
                self.secrets_manager()
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| provider_error(secret, AwsError::from_sdk("GetSecretValue", e)))?
                    .secret_string
            }
        };
        match value {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(ProviderError::rejected(format!("secret {secret} has no (non-empty) string value"))),
        }
    }
}

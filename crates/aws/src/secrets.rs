//! A [`SecretResolver`] for the Lambda functions: `ssm:` references from SSM Parameter Store
//! (decrypted), `secrets-manager:` ones from Secrets Manager; `env:` ones go to the resolver
//! it wraps, so environment handling lives in one place, then to the stack's credentials
//! secrets: a function's environment holds no tokens, so on AWS `env:GITHUB_TOKEN` is the
//! `GITHUB_TOKEN` key of the JSON object the stack's secret holds (read again every
//! [`CREDENTIALS_TTL`], so a rotated token reaches warm functions within minutes).

use crate::error::AwsError;
use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{ProviderError, SecretResolver};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The credentials' values and when they were read.
type ReadCredentials = (Instant, Arc<BTreeMap<String, String>>);

/// How long the stack's credentials are used before they are read again.
pub const CREDENTIALS_TTL: Duration = Duration::from_secs(5 * 60);

pub struct AwsSecretResolver {
    config: aws_config::SdkConfig,
    // Built on first use: most invocations resolve no secret, and a Lambda's cold start
    // should not pay for clients it may never call.
    ssm: OnceLock<aws_sdk_ssm::Client>,
    secrets_manager: OnceLock<aws_sdk_secretsmanager::Client>,
    env: Arc<dyn SecretResolver>,
    /// Secrets Manager ids of JSON objects (`{"NAME": "value"}`) that answer `env:NAME` when the
    /// environment does not: the stack's `BATON_PROVIDER_SECRET_ARN`, `BATON_SLACK_TOKEN_SECRET_ARN`.
    credentials: Vec<String>,
    credentials_ttl: Duration,
    credential_values: Mutex<Option<ReadCredentials>>,
}

impl AwsSecretResolver {
    /// `env` resolves `env:` references (the providers crate's `EnvSecretResolver`).
    pub fn new(config: &aws_config::SdkConfig, env: Arc<dyn SecretResolver>) -> AwsSecretResolver {
        AwsSecretResolver {
            config: config.clone(),
            ssm: OnceLock::new(),
            secrets_manager: OnceLock::new(),
            env,
            credentials: Vec::new(),
            credentials_ttl: CREDENTIALS_TTL,
            credential_values: Mutex::new(None),
        }
    }

    /// `env:` references the environment cannot answer are looked up in these secrets, each a
    /// JSON object of names to values; the first that has the name wins.
    pub fn with_credentials(mut self, secret_ids: Vec<String>) -> AwsSecretResolver {
        self.credentials = secret_ids;
        self
    }

    /// Reads the credentials again once they are older than `ttl` ([`CREDENTIALS_TTL`] by default).
    pub fn credentials_ttl(mut self, ttl: Duration) -> AwsSecretResolver {
        self.credentials_ttl = ttl;
        self
    }

    /// The credentials, read again when older than the TTL. A failed read keeps the values read
    /// before, if any: a rotation is worth picking up, not worth failing a release for.
    async fn credentials(&self) -> Result<Arc<BTreeMap<String, String>>, ProviderError> {
        let mut cached = self.credential_values.lock().await;
        if let Some((read_at, values)) = cached.as_ref()
            && read_at.elapsed() < self.credentials_ttl
        {
            return Ok(values.clone());
        }
        match (self.read_credentials().await, cached.as_ref()) {
            (Ok(values), _) => {
                let values = Arc::new(values);
                *cached = Some((Instant::now(), values.clone()));
                Ok(values)
            }
            (Err(err), Some((_, stale))) => {
                tracing::warn!(error = %err, "cannot read the stack's credentials again; using the values read before");
                Ok(stale.clone())
            }
            (Err(err), None) => Err(err),
        }
    }

    async fn lookup_in_credentials(&self, secret: &SecretRef, name: &str, not_in_env: ProviderError) -> Result<String, ProviderError> {
        if self.credentials.is_empty() {
            return Err(not_in_env);
        }
        let values = self.credentials().await?;
        values.get(name).cloned().ok_or_else(|| {
            let keys: Vec<&str> = values.keys().map(String::as_str).collect();
            ProviderError::rejected(format!(
                "secret {secret} is neither in the function's environment nor a key of the stack's credentials ({}; keys: {})",
                self.credentials.join(", "),
                if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
            ))
        })
    }

    async fn read_credentials(&self) -> Result<BTreeMap<String, String>, ProviderError> {
        let mut values = BTreeMap::new();
        for id in &self.credentials {
            let reference = SecretRef::SecretsManager(id.clone());
            let text = self.secret_string(&reference, id).await?;
            // Values never appear in the error: only where the object went wrong.
            let object: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
                ProviderError::rejected(format!("the credentials secret {id} is not a JSON object of names to strings: line {}", e.line()))
            })?;
            for (key, value) in object {
                let serde_json::Value::String(value) = value else {
                    return Err(ProviderError::rejected(format!("the credentials secret {id}: the value of {key} is not a string")));
                };
                values.entry(key).or_insert(value);
            }
        }
        Ok(values)
    }

    async fn secret_string(&self, secret: &SecretRef, id: &str) -> Result<String, ProviderError> {
        let value = self
            .secrets_manager()
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| provider_error(secret, AwsError::from_sdk("GetSecretValue", e)))?
            .secret_string;
        non_empty(secret, value)
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
        match secret {
            SecretRef::Env(name) => match self.env.resolve(secret).await {
                Ok(value) => Ok(value),
                Err(not_in_env) => self.lookup_in_credentials(secret, name, not_in_env).await,
            },
            SecretRef::Ssm(name) => {
                let value = self
                    .ssm()
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| provider_error(secret, AwsError::from_sdk("GetParameter", e)))?
                    .parameter
                    .and_then(|p| p.value);
                non_empty(secret, value)
            }
            SecretRef::SecretsManager(id) => self.secret_string(secret, id).await,
        }
    }
}

fn non_empty(secret: &SecretRef, value: Option<String>) -> Result<String, ProviderError> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ProviderError::rejected(format!("secret {secret} has no (non-empty) string value"))),
    }
}

/// The shared secret a public function checks signatures with (the GitHub webhook's, Slack's
/// signing secret): the value of `value_var` for local runs, else the string of the Secrets
/// Manager secret `arn_var` names, as the stack sets it. The error names the variable or the
/// secret, never a value.
pub async fn signing_secret(config: &aws_config::SdkConfig, value_var: &str, arn_var: &str) -> Result<String, String> {
    if let Ok(value) = std::env::var(value_var) {
        return Ok(value);
    }
    let arn = std::env::var(arn_var).map_err(|_| format!("environment variable {arn_var} (or {value_var}) is not set"))?;
    let read = aws_sdk_secretsmanager::Client::new(config).get_secret_value().secret_id(&arn).send().await;
    let secret =
        read.map_err(|e| format!("cannot read the secret {arn} from Secrets Manager: {}", AwsError::from_sdk("GetSecretValue", e)))?;
    secret.secret_string.ok_or_else(|| format!("the secret {arn} has no string value"))
}

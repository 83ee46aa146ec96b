//! Baton on AWS from the command line: which state machine, and starting a release there.

use baton_aws::AwsError;
use baton_aws::stepfunctions::{Started, start_release};
use baton_domain::release::Signal;

/// Where the stack's `StateMachineArn` output is found when no flag gives it.
pub const STATE_MACHINE_ENV: &str = "BATON_STATE_MACHINE_ARN";

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("no state machine: pass --state-machine-arn or set {STATE_MACHINE_ENV} (the stack's StateMachineArn output)")]
    NoStateMachine,
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Https(baton_http_client::HttpsError),
    #[error("no AWS credentials ({0}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`")]
    NoCredentials(String),
}

/// The flag's value, else `BATON_STATE_MACHINE_ARN`.
pub fn state_machine_arn(flag: Option<String>) -> Result<String, RemoteError> {
    flag.or_else(|| std::env::var(STATE_MACHINE_ENV).ok()).filter(|arn| !arn.trim().is_empty()).ok_or(RemoteError::NoStateMachine)
}

/// The SDK configuration of every remote command: the standard AWS chain (profile, region,
/// credentials, `AWS_ENDPOINT_URL*`) over Baton's HTTPS client. The credentials are asked for
/// here, once: none is one line saying so, not the SDK's error chain at the first call.
pub async fn aws_config() -> Result<aws_config::SdkConfig, RemoteError> {
    use aws_sdk_sfn::config::ProvideCredentials as _;
    let config = baton_aws::sdk_config().await.map_err(RemoteError::Https)?;
    let provider = config.credentials_provider().ok_or_else(|| RemoteError::NoCredentials("no credentials provider".into()))?;
    provider.provide_credentials().await.map_err(|err| RemoteError::NoCredentials(err.to_string()))?;
    Ok(config)
}

/// Starts `signal` on the release state machine in AWS. A signal sent before starts nothing:
/// the result names the execution that carries it, with `new: false`.
pub async fn start_remote(signal: &Signal, state_machine_arn: Option<String>) -> Result<Started, RemoteError> {
    let arn = self::state_machine_arn(state_machine_arn)?;
    let client = aws_sdk_sfn::Client::new(&aws_config().await?);
    Ok(start_release(&client, &arn, signal).await?)
}

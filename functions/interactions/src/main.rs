//! Lambda entry point of the interactions function: the signing secret and the clients are read
//! once per cold start, then every function URL request goes to [`Interactions::handle`].

use baton_aws::DynamoStore;
use baton_aws::stepfunctions::SfnTaskTokens;
use baton_interactions::{FunctionUrlRequest, FunctionUrlResponse, HttpRespond, Interactions};
use baton_providers::SlackInteractions;
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;
use std::sync::Arc;

/// Start-up failures: logged, then the process exits and Lambda reports an init error.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    #[error("cannot read the Slack signing secret {arn} from Secrets Manager: {message}")]
    Secret { arn: String, message: String },
    #[error("BATON_SLACK_SIGNING_SECRET(_ARN): {0}")]
    InvalidSecret(String),
    #[error("cannot set up the HTTPS client: {0}")]
    Https(String),
}

fn env(name: &'static str) -> Result<String, InitError> {
    std::env::var(name).map_err(|_| InitError::MissingEnv(name))
}

/// `BATON_SLACK_SIGNING_SECRET_ARN` (Secrets Manager) in the stack; `BATON_SLACK_SIGNING_SECRET` for local runs.
async fn signing_secret(config: &aws_config::SdkConfig) -> Result<String, InitError> {
    if let Ok(value) = std::env::var("BATON_SLACK_SIGNING_SECRET") {
        return Ok(value);
    }
    let arn = env("BATON_SLACK_SIGNING_SECRET_ARN")?;
    let secret = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .map_err(|e| InitError::Secret { arn: arn.clone(), message: baton_aws::AwsError::from_sdk("GetSecretValue", e).to_string() })?;
    secret.secret_string.ok_or_else(|| InitError::Secret { arn, message: "the secret has no string value".into() })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_logging::init(baton_logging::Format::from_env(false), "info");
    let init = async {
        let config = baton_aws::sdk_config().await.map_err(|e| InitError::Https(e.to_string()))?;
        let inbound = SlackInteractions::new(signing_secret(&config).await?).map_err(InitError::InvalidSecret)?;
        let respond = HttpRespond::over_shared_https().map_err(|e| InitError::Https(e.to_string()))?;
        Ok::<_, InitError>(Interactions {
            inbound: Arc::new(inbound),
            store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env(baton_lambda_glue::RELEASE_TABLE)?)),
            tokens: Arc::new(SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config))),
            respond: Arc::new(respond),
        })
    };
    let interactions = match init.await {
        Ok(interactions) => interactions,
        Err(err) => {
            tracing::error!(error = %err, "interactions cannot start");
            return Err(err.into());
        }
    };
    let interactions = &interactions;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<FunctionUrlRequest>| async move {
        Ok::<FunctionUrlResponse, Infallible>(interactions.handle(&event.payload).await)
    }))
    .await
}

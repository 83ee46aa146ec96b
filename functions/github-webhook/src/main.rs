//! Lambda entry point of the github-webhook function: clients and the secret are read once
//! per cold start, then every function URL request goes to [`Webhook::handle`]. Deliveries
//! acted on are logged in the release table (`BATON_RELEASE_TABLE`, under `DELIVERY#`), where
//! the releases parked on their builds wait too (`WAIT#`), resumed through Step Functions.

use baton_aws::DynamoStore;
use baton_aws::deliveries::DynamoDeliveryLog;
use baton_aws::secrets::signing_secret;
use baton_aws::stepfunctions::SfnTaskTokens;
use baton_github_webhook::{
    BuildWaits, DELIVERY_RETENTION, EventBridgePublisher, FunctionUrlRequest, FunctionUrlResponse, Webhook, WebhookSecret,
};
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;
use std::sync::Arc;

/// Start-up failures: logged, then the process exits and Lambda reports an init error.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    #[error("the webhook secret: {0}")]
    Secret(String),
    #[error("BATON_WEBHOOK_SECRET(_ARN): {0}")]
    InvalidSecret(String),
    #[error("cannot set up the HTTPS client: {0}")]
    Https(String),
}

fn env(name: &'static str) -> Result<String, InitError> {
    std::env::var(name).map_err(|_| InitError::MissingEnv(name))
}

/// `BATON_WEBHOOK_SECRET_ARN` (Secrets Manager) in the stack; `BATON_WEBHOOK_SECRET` for local runs.
async fn webhook_secret(config: &aws_config::SdkConfig) -> Result<WebhookSecret, InitError> {
    let value = signing_secret(config, "BATON_WEBHOOK_SECRET", "BATON_WEBHOOK_SECRET_ARN").await.map_err(InitError::Secret)?;
    WebhookSecret::new(value).map_err(InitError::InvalidSecret)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_logging::init(baton_logging::Format::from_env(false), "info");
    let init = async {
        let config = baton_aws::sdk_config().await.map_err(|e| InitError::Https(e.to_string()))?;
        let secret = webhook_secret(&config).await?;
        let publisher = EventBridgePublisher { client: aws_sdk_eventbridge::Client::new(&config), bus: env("BATON_EVENT_BUS")? };
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let table = env("BATON_RELEASE_TABLE")?;
        let waits = BuildWaits {
            registry: Arc::new(DynamoStore::new(dynamodb.clone(), table.clone())),
            tokens: Arc::new(SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config))),
        };
        let deliveries = DynamoDeliveryLog::new(dynamodb, table, DELIVERY_RETENTION);
        Ok::<_, InitError>(Webhook::new(secret, publisher, deliveries, waits))
    };
    let webhook = match init.await {
        Ok(webhook) => webhook,
        Err(err) => {
            tracing::error!(error = %err, "github-webhook cannot start");
            return Err(err.into());
        }
    };
    let webhook = &webhook;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<FunctionUrlRequest>| async move {
        Ok::<FunctionUrlResponse, Infallible>(webhook.handle(&event.payload).await)
    }))
    .await
}

//! Lambda entry point of the provider-events function: EventBridge's events (CodeBuild builds,
//! CloudWatch alarms) and signed provider callbacks on its function URL, delivered to the
//! releases parked on them in the release table (`BATON_RELEASE_TABLE`) through Step Functions'
//! task tokens.

use baton_aws::DynamoStore;
use baton_aws::stepfunctions::SfnTaskTokens;
use baton_provider_events::{Delivery, Receivers};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_logging::init(baton_logging::Format::from_env(false), "info");
    let config = baton_aws::sdk_config().await?;
    let table = std::env::var(baton_lambda_glue::RELEASE_TABLE).map_err(|_| format!("{} is not set", baton_lambda_glue::RELEASE_TABLE))?;
    let delivery = Delivery {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table),
        tokens: SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config)),
        // The signed receivers (crates/providers' inbound modules) register here.
        receivers: Receivers::default(),
    };
    let delivery = &delivery;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // An EventBridge event that could not be delivered fails the invocation: EventBridge retries it.
        delivery.handle(event.payload, chrono::Utc::now()).await.map_err(|err| {
            tracing::error!(error = %err, "provider event not delivered");
            lambda_runtime::Error::from(err.to_string())
        })
    }))
    .await
}

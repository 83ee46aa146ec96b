//! Lambda entry point of the provider-events function: EventBridge's events (CodeBuild builds,
//! CloudWatch alarms) and signed provider callbacks on its function URL, delivered to the
//! releases parked on them in the release table (`BATON_RELEASE_TABLE`) through Step Functions'
//! task tokens. The callbacks' receivers come from the catalog table (`BATON_CATALOG_TABLE`).

use baton_aws::stepfunctions::SfnTaskTokens;
use baton_aws::{DynamoCatalog, DynamoStore};
use baton_lambda_glue::{CATALOG_TABLE, RELEASE_TABLE};
use baton_provider_events::{CatalogReceivers, Delivery, RefreshingReceivers, ServiceList};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_logging::init(baton_logging::Format::from_env(false), "info");
    let config = baton_aws::sdk_config().await?;
    let table = std::env::var(RELEASE_TABLE).map_err(|_| format!("{RELEASE_TABLE} is not set"))?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let catalog = std::env::var(CATALOG_TABLE)
        .ok()
        .map(|table| Box::new(DynamoCatalog::new(dynamodb.clone(), table, baton_providers::registry())) as Box<dyn ServiceList>);
    let source = CatalogReceivers::new(catalog, baton_lambda_glue::providers_from_env(&config)?);
    let delivery = Delivery {
        store: DynamoStore::new(dynamodb, table),
        tokens: SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config)),
        receivers: RefreshingReceivers::unread(source),
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

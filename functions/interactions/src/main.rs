//! Lambda entry point of the interactions function: the signing secret and the clients are read
//! once per cold start, then every function URL request goes to [`Interactions::handle`].

use baton_aws::DynamoStore;
use baton_aws::secrets::signing_secret;
use baton_aws::stepfunctions::SfnTaskTokens;
use baton_interactions::{FunctionUrlRequest, FunctionUrlResponse, HttpRespond, Interactions};
use baton_providers::SlackInteractions;
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;
use std::sync::Arc;

/// Start-up failures: logged, then the process exits and Lambda reports an init error.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error("{0}")]
    Setup(String),
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_logging::init(baton_logging::Format::from_env(false), "info");
    let init = async {
        let config = baton_aws::sdk_config().await.map_err(|e| InitError::Setup(format!("cannot set up the HTTPS client: {e}")))?;
        let secret =
            signing_secret(&config, "BATON_SLACK_SIGNING_SECRET", "BATON_SLACK_SIGNING_SECRET_ARN").await.map_err(InitError::Setup)?;
        let inbound = SlackInteractions::new(secret).map_err(InitError::Setup)?;
        let respond = HttpRespond::over_shared_https().map_err(|e| InitError::Setup(format!("cannot set up the HTTPS client: {e}")))?;
        let table = std::env::var(baton_lambda_glue::RELEASE_TABLE).map_err(|_| InitError::MissingEnv(baton_lambda_glue::RELEASE_TABLE))?;
        Ok::<_, InitError>(Interactions {
            inbound: Arc::new(inbound),
            store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table)),
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

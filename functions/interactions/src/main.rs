//! Lambda entry point of the interactions function: the signing secret and the clients are read
//! once per cold start, then every function URL request goes to [`Interactions::handle`].

use baton_aws::DynamoStore;
use baton_aws::secrets::signing_secret;
use baton_aws::stepfunctions::SfnTaskTokens;
use baton_domain::ports::ChatDirectory;
use baton_interactions::{FunctionUrlRequest, FunctionUrlResponse, HttpRespond, Interactions, NoChatDirectory};
use baton_providers::{DEFAULT_SLACK_API_BASE, SlackDirectory, SlackInteractions};
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
        let directory = directory(&config).await?;
        Ok::<_, InitError>(Interactions {
            inbound: Arc::new(inbound),
            store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table)),
            tokens: Arc::new(SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config))),
            respond: Arc::new(respond),
            directory,
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

/// Slack's user groups and profiles through the bot token (`BATON_SLACK_BOT_TOKEN` for local
/// runs, else the `SLACK_TOKEN` of the JSON secret `BATON_SLACK_TOKEN_SECRET_ARN` names,
/// notify's). Without one, a press that only a group could allow, or that four-eyes must judge,
/// is refused, saying the token is missing.
async fn directory(config: &aws_config::SdkConfig) -> Result<Arc<dyn ChatDirectory>, InitError> {
    if std::env::var_os("BATON_SLACK_BOT_TOKEN").is_none() && std::env::var_os("BATON_SLACK_TOKEN_SECRET_ARN").is_none() {
        return Ok(Arc::new(NoChatDirectory));
    }
    let stored = signing_secret(config, "BATON_SLACK_BOT_TOKEN", "BATON_SLACK_TOKEN_SECRET_ARN").await.map_err(InitError::Setup)?;
    let token = match serde_json::from_str::<serde_json::Value>(&stored) {
        Ok(serde_json::Value::Object(keys)) => keys
            .get("SLACK_TOKEN")
            .and_then(|token| token.as_str())
            .map(str::to_owned)
            .ok_or_else(|| InitError::Setup("the Slack token secret has no string key SLACK_TOKEN".into()))?,
        _ => stored,
    };
    let http = baton_http_client::shared().map_err(|e| InitError::Setup(format!("cannot set up the HTTPS client: {e}")))?.client().clone();
    let api_base = std::env::var("BATON_SLACK_API_BASE").unwrap_or_else(|_| DEFAULT_SLACK_API_BASE.to_owned());
    Ok(Arc::new(SlackDirectory::new(token, http, &api_base)))
}

//! The Lambda side of the handlers. Each `functions/<name>/src/main.rs` is one call to
//! [`serve`]: the ports are built once per cold start (the SDK clients with them, from the
//! standard AWS configuration, so `AWS_ENDPOINT_URL*` choose emulators), then every
//! invocation runs the handler. A handler's [`TaskError`] becomes Lambda's error response,
//! whose `errorType` is the stable name the definition's Retry and Catch match.

pub mod function_url;
use baton_aws::{AwsSecretResolver, DynamoCatalog, DynamoStore};
use baton_domain::error::{TaskError, chain_text};
use baton_domain::flow::release_id_in;
use baton_domain::ports::{CatalogSource, SystemClock};
use baton_domain::support::{Ports, with_invocation_deadline};
use baton_providers::catalog_datadog::DatadogCatalog;
use baton_providers::{EnvSecretResolver, LocalProviders};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::Instrument;

/// The release table (`BATON_RELEASE_TABLE`) is required; the catalog comes from the catalog
/// table (`BATON_CATALOG_TABLE`) or, without one, from Datadog's Service Catalog API
/// (`DD_API_KEY`, `DD_APP_KEY`, `DD_SITE`).
pub const RELEASE_TABLE: &str = "BATON_RELEASE_TABLE";
pub const CATALOG_TABLE: &str = "BATON_CATALOG_TABLE";
/// The stack's credentials secrets (JSON objects of names to values), where `env:` references
/// find their values on AWS: the provider functions get one, notify the other.
pub const CREDENTIAL_SECRETS: [&str; 2] = ["BATON_PROVIDER_SECRET_ARN", "BATON_SLACK_TOKEN_SECRET_ARN"];
/// The provider-events function's URL, where the providers that can be told where to report
/// their runs' ends (the `webhook` deployer) are told to: the stack sets it on deploy-wave.
pub const EVENTS_URL: &str = "BATON_EVENTS_URL";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("environment variable {0} is not set: the stack sets it on every function")]
    Missing(&'static str),
    #[error("cannot set up the {0}: {1}")]
    Setup(&'static str, String),
}

/// A handler failure as Lambda reports it.
#[derive(Debug)]
pub struct HandlerError(TaskError);

impl From<HandlerError> for Diagnostic {
    fn from(err: HandlerError) -> Diagnostic {
        Diagnostic { error_type: err.0.error.as_str().to_owned(), error_message: err.0.cause }
    }
}

/// Builds the ports from the environment.
pub async fn ports_from_env() -> Result<Ports, InitError> {
    // One HTTPS client for the process: the SDK clients and the providers share it.
    let config = baton_aws::sdk_config().await.map_err(|e| InitError::Setup("HTTPS client", e.to_string()))?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let release_table = std::env::var(RELEASE_TABLE).map_err(|_| InitError::Missing(RELEASE_TABLE))?;
    let http = baton_providers::http_client().map_err(|e| InitError::Setup("HTTP client", chain_text(&e)))?;
    let catalog: Arc<dyn CatalogSource> = match std::env::var(CATALOG_TABLE) {
        Ok(table) => Arc::new(DynamoCatalog::new(dynamodb.clone(), table, baton_providers::registry())),
        Err(_) => Arc::new(DatadogCatalog::from_env(http).map_err(|e| InitError::Setup("Datadog catalog", chain_text(&e)))?),
    };
    let providers = providers_from_env(&config)?;
    Ok(Ports {
        store: Arc::new(DynamoStore::new(dynamodb, release_table)),
        catalog,
        providers: Arc::new(providers),
        clock: Arc::new(SystemClock),
    })
}

/// The providers, their secrets resolved through the stack's credentials secrets and AWS, told
/// the events URL when the stack gives one ([`EVENTS_URL`]).
pub fn providers_from_env(config: &aws_config::SdkConfig) -> Result<LocalProviders, InitError> {
    let credentials = CREDENTIAL_SECRETS.iter().filter_map(|name| std::env::var(name).ok()).collect();
    let secrets = Arc::new(AwsSecretResolver::new(config, Arc::new(EnvSecretResolver)).with_credentials(credentials));
    // Lambda's only writable directory: command providers get their scratch space there.
    let providers = LocalProviders::new(PathBuf::from("/tmp/baton"), None, secrets, None)
        .and_then(LocalProviders::with_telemetry_defaults_from_env)
        .map_err(|e| InitError::Setup("providers", chain_text(&e)))?;
    Ok(match std::env::var(EVENTS_URL).ok().filter(|url| !url.trim().is_empty()) {
        Some(url) => providers.with_events_url(url),
        None => providers,
    })
}

/// Step Functions' task tokens, for a handler whose parked task answers its own token (a build,
/// a rollout or an alarm that settled before the park).
pub async fn task_tokens() -> Result<Arc<dyn baton_domain::ports::TaskTokens>, InitError> {
    let config = baton_aws::sdk_config().await.map_err(|e| InitError::Setup("HTTPS client", e.to_string()))?;
    Ok(Arc::new(baton_aws::stepfunctions::SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config))))
}

/// Runs one handler as a Lambda function until the runtime stops it.
pub async fn serve<F, Fut>(name: &'static str, handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Ports, Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, TaskError>> + Send,
{
    baton_logging::init(baton_logging::Format::from_env(false), "info");
    let ports = ports_from_env().await.inspect_err(|err| tracing::error!(function = name, %err, "cold start failed"))?;
    let handler = &handler;
    let ports = &ports;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let span = baton_logging::task_span(name, release_id_in(&event.payload));
        let deadline = deadline_of(&event.context);
        async move {
            let result = with_invocation_deadline(deadline, handler(ports.clone(), event.payload)).await;
            if let Err(err) = &result {
                log_task_failure(err);
            }
            result.map_err(HandlerError)
        }
        .instrument(span)
    }))
    .await
}

/// The line of a failed task: the stack's `FunctionErrors` metric filters count it, except for
/// the errors the definition retries by design.
pub fn log_task_failure(err: &TaskError) {
    tracing::warn!(error = err.error.as_str(), cause = %err.cause, "task failed");
}

/// The invocation's deadline on the monotonic clock: Lambda gives it as wall time.
fn deadline_of(context: &lambda_runtime::Context) -> tokio::time::Instant {
    let left = context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
    tokio::time::Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::error::ErrorName;

    #[test]
    fn the_stack_s_error_metrics_count_baton_s_own_faults_and_no_release_outcome() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
        let names = baton_local_stack::template::StackNames { stack_name: "prod".into(), region: "eu-west-1".into(), account: "1".into() };
        let template = baton_local_stack::template::Template::load(&path, names, &Default::default()).unwrap();
        let faults = [ErrorName::Internal, ErrorName::StoreUnavailable];
        for function in ["LoadCatalog", "TriggerBuild", "PollBuild", "DeployWave", "CheckHealth", "Notify", "RecordMetrics"] {
            let pattern = template.properties(&format!("{function}ErrorsMetric")).unwrap()["FilterPattern"].as_str().unwrap().to_string();
            let filter = baton_local_stack::logs::FilterPattern::parse(&pattern).unwrap();
            for &name in ErrorName::ALL {
                let captured = baton_logging::Captured::default();
                let subscriber = baton_logging::json_lines(captured.writer(), "info".parse().unwrap()).finish();
                tracing::subscriber::with_default(subscriber, || {
                    let _task = baton_logging::task_span("deploy-wave", Some("rel-web-1")).entered();
                    log_task_failure(&TaskError::new(name, "wave canary: 1 of 2 targets still rolling out"));
                });
                let lines = captured.lines();
                let counted = lines.iter().filter(|line| filter.matches(line)).count();
                assert_eq!(counted, usize::from(faults.contains(&name)), "{function}, {name}: {lines:#?}");
            }
        }
    }
}

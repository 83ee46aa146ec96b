//! Answers the definition's Lambda tasks by calling the handlers in-process.

use async_trait::async_trait;
use baton_asl::{TaskCall, TaskFailure, TaskInvoker};
use baton_domain::error::TaskError;
use baton_domain::flow::release_id_in;
use baton_domain::support::Ports;
use serde_json::Value;
use tracing::Instrument;

pub struct HandlerInvoker {
    ports: Ports,
}

impl HandlerInvoker {
    pub fn new(ports: Ports) -> HandlerInvoker {
        HandlerInvoker { ports }
    }
}

/// The function name in a Lambda ARN or a bare name, without a qualifier:
/// `arn:aws:lambda:r:a:function:baton-notify:live` -> `baton-notify`.
fn function_name(resource: &str) -> &str {
    match resource.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => resource,
    }
}

#[async_trait]
impl TaskInvoker for HandlerInvoker {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let target = call.function.as_deref().unwrap_or(&call.resource);
        let name = function_name(target);
        let ports = &self.ports;
        let payload = call.payload;
        let span = baton_logging::task_span(name, release_id_in(&payload));
        let handler = name.strip_prefix("baton-").unwrap_or(name);
        let result = match handler {
            baton_load_catalog::NAME => baton_load_catalog::handle(ports, payload).instrument(span).await,
            baton_trigger_build::NAME => baton_trigger_build::handle(ports, payload).instrument(span).await,
            baton_poll_build::NAME => baton_poll_build::handle(ports, payload).instrument(span).await,
            baton_deploy_wave::NAME => baton_deploy_wave::handle(ports, payload).instrument(span).await,
            baton_check_health::NAME => baton_check_health::handle(ports, payload).instrument(span).await,
            baton_notify::NAME => baton_notify::handle(ports, payload).instrument(span).await,
            baton_record_metrics::NAME => baton_record_metrics::handle(ports, payload).instrument(span).await,
            _ => {
                // What Lambda answers for a function that does not exist.
                return Err(TaskFailure {
                    error: "Lambda.ResourceNotFoundException".into(),
                    cause: Some(format!("Function not found: {target}")),
                });
            }
        };
        result.map_err(lambda_failure)
    }
}

/// A handler error as Step Functions reports a Lambda function error: the error type as
/// the name and Lambda's error object, as JSON, as the cause.
fn lambda_failure(err: TaskError) -> TaskFailure {
    let cause = serde_json::json!({ "errorMessage": err.cause, "errorType": err.error.as_str() });
    TaskFailure { error: err.error.as_str().to_owned(), cause: Some(cause.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn function_names_come_out_of_arns() {
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:baton-notify"), "baton-notify");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:baton-notify:live"), "baton-notify");
        assert_eq!(function_name("baton-notify"), "baton-notify");
    }
}

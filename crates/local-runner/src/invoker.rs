//! Answers the definition's Lambda tasks by calling the handlers in-process.

use async_trait::async_trait;
use baton_asl::{Executor, TaskCall, TaskFailure, TaskInvoker, WeakExecutor};
use baton_domain::approvals;
use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::release_id_in;
use baton_domain::ports::{ProviderError, TaskTokens};
use baton_domain::release::{ReleaseId, TaskToken};
use baton_domain::support::{Ports, RUN_HEARTBEAT};
use futures_util::FutureExt;
use serde_json::Value;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use tracing::Instrument;

pub struct HandlerInvoker {
    ports: Ports,
    /// The executor calling this invoker, once it exists: it answers the approvals a person
    /// records while a task waits on its token.
    executor: Arc<OnceLock<WeakExecutor>>,
}

impl HandlerInvoker {
    pub fn new(ports: Ports) -> HandlerInvoker {
        HandlerInvoker { ports, executor: Arc::default() }
    }

    /// Where the executor that calls this invoker will be found (set once it is built).
    pub(crate) fn executor_slot(&self) -> Arc<OnceLock<WeakExecutor>> {
        self.executor.clone()
    }
}

/// The embedded executor's task tokens, as Step Functions' are answered on AWS.
pub struct ExecutorTokens(pub Executor);

#[async_trait]
impl TaskTokens for ExecutorTokens {
    async fn succeed(&self, token: &TaskToken, output: &Value) -> Result<(), ProviderError> {
        self.0.send_task_success(token.expose(), output.clone()).map_err(|err| ProviderError::rejected(err.to_string()))
    }

    async fn fail(&self, token: &TaskToken, error: ErrorName, cause: &str) -> Result<(), ProviderError> {
        self.0.send_task_failure(token.expose(), error.as_str(), Some(cause)).map_err(|err| ProviderError::rejected(err.to_string()))
    }
}

/// While a task waits on `token`, hands it the answer a person records on the release (`baton
/// approve` from another process, say): the executor holding the token lives in this process.
/// One read of the record per heartbeat; the execution itself makes no transition meanwhile.
async fn answer_when_decided(ports: Ports, executor: WeakExecutor, token: String, release: ReleaseId) {
    loop {
        tokio::time::sleep(RUN_HEARTBEAT).await;
        let Some(executor) = executor.upgrade() else { return };
        if !executor.is_waiting(&token) {
            return;
        }
        match approvals::deliver(ports.store.as_ref(), &ExecutorTokens(executor), &release).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => tracing::warn!(release = %release, error = %err, "cannot hand the recorded approval to the waiting task"),
        }
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
        let span = baton_logging::task_span(name, release_id_in(&call.payload));
        let handler = name.strip_prefix("baton-").unwrap_or(name);
        let waiting = call.task_token.clone().zip(release_id_in(&call.payload).map(|id| ReleaseId(id.to_owned())));
        let tokens = self.executor.get().and_then(WeakExecutor::upgrade).map(ExecutorTokens);
        let tokens = tokens.as_ref().map(|tokens| tokens as &dyn TaskTokens);
        let Some(result) = contain_panics(handler, dispatch(&self.ports, tokens, handler, call.payload)).instrument(span).await else {
            // What Lambda answers for a function that does not exist.
            return Err(TaskFailure {
                error: "Lambda.ResourceNotFoundException".into(),
                cause: Some(format!("Function not found: {target}")),
            });
        };
        let approval = handler == baton_notify::NAME;
        if let (true, Ok(_), Some((token, release)), Some(executor)) = (approval, &result, waiting, self.executor.get()) {
            tokio::spawn(answer_when_decided(self.ports.clone(), executor.clone(), token, release));
        }
        result.map_err(lambda_failure)
    }
}

/// Runs the handler `name`; `None` when there is none of that name. `tokens` answer the
/// executor's task tokens (a parked task's own).
async fn dispatch(ports: &Ports, tokens: Option<&dyn TaskTokens>, name: &str, payload: Value) -> Option<Result<Value, TaskError>> {
    Some(match name {
        baton_load_catalog::NAME => baton_load_catalog::handle(ports, payload).await,
        baton_trigger_build::NAME => baton_trigger_build::handle(ports, payload).await,
        baton_poll_build::NAME => baton_poll_build::handle(ports, tokens, payload).await,
        baton_deploy_wave::NAME => baton_deploy_wave::handle(ports, tokens, payload).await,
        baton_check_health::NAME => baton_check_health::handle(ports, tokens, payload).await,
        baton_notify::NAME => baton_notify::handle(ports, payload).await,
        baton_record_metrics::NAME => baton_record_metrics::handle(ports, None, payload).await,
        _ => return None,
    })
}

/// A handler that panics fails its task with `Baton.Internal` instead of taking the execution
/// down with it, so the definition's Catch still routes the release to its Unlock.
async fn contain_panics<T>(handler: &str, run: impl Future<Output = Option<Result<T, TaskError>>>) -> Option<Result<T, TaskError>> {
    AssertUnwindSafe(run).catch_unwind().await.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!(handler, %message, "handler panicked");
        Some(Err(TaskError::new(ErrorName::Internal, format!("{handler} panicked: {message}"))))
    })
}

/// A handler error as Step Functions reports a Lambda function error: the error type as
/// the name and Lambda's error object, as JSON, as the cause.
fn lambda_failure(err: TaskError) -> TaskFailure {
    let cause = serde_json::json!({ "errorMessage": err.cause, "errorType": err.error.as_str() });
    TaskFailure { error: err.error.as_str().to_owned(), cause: Some(cause.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::{contain_panics, function_name};
    use baton_domain::error::{ErrorName, TaskError};

    #[tokio::test]
    async fn a_panicking_handler_fails_its_task_as_internal() {
        let panicking = async {
            if function_name("x") == "x" {
                panic!("index out of bounds");
            }
            Some(Ok::<(), TaskError>(()))
        };
        let failure = contain_panics("deploy-wave", panicking).await.unwrap().unwrap_err();
        assert_eq!(failure.error, ErrorName::Internal);
        assert_eq!(failure.cause, "deploy-wave panicked: index out of bounds");
        assert_eq!(contain_panics("notify", async { Some(Ok::<u8, TaskError>(7)) }).await, Some(Ok(7)));
    }

    #[test]
    fn function_names_come_out_of_arns() {
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:baton-notify"), "baton-notify");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:baton-notify:live"), "baton-notify");
        assert_eq!(function_name("baton-notify"), "baton-notify");
    }
}

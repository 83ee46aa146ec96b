//! Task: its fields parsed and checked; calling the embedder's invoker, timeouts and heartbeats, waiting for a task token, and the
//! history events of each kind of resource.
use crate::definition::{Amount, Cx, Recovery};
use crate::env::compact;
use crate::errors;
use crate::executor::clock::{after, far_future};
use crate::executor::engine::{Failure, StateRun, Thread};
use crate::executor::io::{eval, input_path, resolve_amount};
use crate::executor::task_token::{TokenGuard, TokenReply, TokenSlot};
use crate::executor::{TaskCall, TaskFailure};
use crate::history::{EventDetails, EventType, MoreDetails};
use crate::payload::Template;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub resource: String,
    pub parameters: Option<Template>,
    pub timeout: Option<Amount<u64>>,
    pub heartbeat: Option<Amount<u64>>,
    pub recovery: Recovery,
}

impl Cx {
    pub(crate) fn task(&mut self, obj: &Map<String, Value>, at: &str, index: &HashMap<&str, usize>) -> Option<TaskSpec> {
        let resource = obj.get("Resource").and_then(Value::as_str).map(str::to_owned);
        if resource.is_none() {
            self.err(&format!("{at}/Resource"), "expected the resource ARN to invoke");
        }
        let timeout = self.amount(obj, at, "TimeoutSeconds", |cx| cx.positive_int(obj, at, "TimeoutSeconds"));
        let heartbeat = self.amount(obj, at, "HeartbeatSeconds", |cx| cx.positive_int(obj, at, "HeartbeatSeconds"));
        if let (Some(Amount::Fixed(t)), Some(Amount::Fixed(h))) = (&timeout, &heartbeat)
            && h >= t
        {
            self.err(&format!("{at}/HeartbeatSeconds"), "HeartbeatSeconds must be smaller than TimeoutSeconds");
        }
        let parameters = self.template(obj, at, "Parameters");
        let recovery = self.recovery(obj, at, index);
        Some(TaskSpec { resource: resource?, parameters, timeout, heartbeat, recovery })
    }
}

fn positive_seconds(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

enum ResourceKind<'r> {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:alias]`: the effective input goes to the function.
    LambdaArn,
    /// `arn:aws:states:::lambda:invoke`: FunctionName and Payload parameters; the answer is wrapped.
    LambdaInvoke,
    /// `arn:aws:states:::SERVICE:ACTION` and anything else.
    Other { service: &'r str, action: &'r str },
}

fn classify(resource: &str) -> ResourceKind<'_> {
    let parts: Vec<&str> = resource.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", _] => ResourceKind::LambdaArn,
        ["arn", _, "states", "", "", "lambda", action] if action.split('.').next() == Some("invoke") => ResourceKind::LambdaInvoke,
        ["arn", _, "states", "", "", service, action] => ResourceKind::Other { service, action },
        ["arn", _, service, ..] => ResourceKind::Other { service, action: resource },
        _ => ResourceKind::Other { service: "", action: resource },
    }
}

enum TaskEnd {
    Done(Result<Value, TaskFailure>),
    TimedOut,
    HeartbeatTimedOut,
}

pub(crate) async fn run_task(th: &mut Thread, run: &mut StateRun<'_>, spec: &TaskSpec, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    let effective = input_path(th, run, &run.state.input_path, raw)?;
    let timeout = spec
        .timeout
        .as_ref()
        .map(|a| resolve_amount(th, run, a, &effective, "TimeoutSeconds", "positive integer", positive_seconds))
        .transpose()?;
    let heartbeat = spec
        .heartbeat
        .as_ref()
        .map(|a| resolve_amount(th, run, a, &effective, "HeartbeatSeconds", "positive integer", positive_seconds))
        .transpose()?;
    let (resource, wait_for_token) = match spec.resource.strip_suffix(".waitForTaskToken") {
        Some(base) => (base, true),
        None => (spec.resource.as_str(), false),
    };
    run.task_token = wait_for_token.then(|| uuid::Uuid::new_v4().simple().to_string());
    let parameters = match &spec.parameters {
        Some(p) => Arc::new(eval(th, run, p, &effective)?),
        None => effective,
    };
    let kind = classify(resource);
    let (function, payload) = match &kind {
        ResourceKind::LambdaArn => (Some(resource.to_owned()), (*parameters).clone()),
        ResourceKind::LambdaInvoke => match parameters.get("FunctionName").and_then(Value::as_str) {
            Some(f) => (Some(f.to_owned()), parameters.get("Payload").cloned().unwrap_or_else(|| Value::Object(Map::new()))),
            None => {
                return Err(run.runtime(format!(
                    "The resource '{}' needs a 'FunctionName' string in Parameters: {}",
                    spec.resource,
                    compact(parameters.as_ref())
                )));
            }
        },
        ResourceKind::Other { .. } => (None, (*parameters).clone()),
    };
    let (resource_type, resource_name) = match &kind {
        ResourceKind::LambdaArn => ("lambda".to_owned(), spec.resource.clone()),
        ResourceKind::LambdaInvoke => ("lambda".to_owned(), spec.resource.rsplit(':').next().unwrap_or_default().to_owned()),
        ResourceKind::Other { service, action } => {
            let action = if wait_for_token { format!("{action}.waitForTaskToken") } else { (*action).to_owned() };
            ((*service).to_owned(), action)
        }
    };
    let legacy_lambda = matches!(kind, ResourceKind::LambdaArn);
    // Every event of a non-Lambda-ARN task names its resource.
    let task_details = |mut details: EventDetails| {
        if !legacy_lambda {
            let more = details.more.get_or_insert_with(Default::default);
            more.resource_type = Some(resource_type.clone());
            more.resource = Some(resource_name.clone());
        }
        details
    };
    if legacy_lambda {
        let more = MoreDetails { resource: Some(spec.resource.clone()), timeout_in_seconds: timeout, ..Default::default() };
        let details = EventDetails { input: Some(parameters.clone()), ..EventDetails::more(more) };
        th.record(EventType::LambdaFunctionScheduled, Some(details));
        th.record(EventType::LambdaFunctionStarted, None);
    } else {
        let details = task_details(EventDetails::more(MoreDetails {
            region: Some(th.exec.region.clone()),
            parameters: Some(parameters.clone()),
            timeout_in_seconds: timeout,
            heartbeat_in_seconds: heartbeat,
            ..Default::default()
        }));
        th.record(EventType::TaskScheduled, Some(details));
        th.record(EventType::TaskStarted, Some(task_details(EventDetails::default())));
    }

    let exec = th.exec.clone();
    let inner = &exec.inner;
    let call = TaskCall {
        resource: resource.to_owned(),
        function,
        payload,
        state_name: run.state.name.to_string(),
        task_token: run.task_token.clone(),
        execution_name: th.exec.name.clone(),
        execution_arn: th.exec.arn.clone(),
        retry_count: run.retry_count,
    };
    let deadline = timeout.map(|t| after(Duration::from_secs(t)));
    // Waiting for a token is waiting in the definition's time (for a person, a provider's
    // event), as a Wait state is: the scaled clock shortens it. The handler's own work stays
    // bounded in wall time, and so does the virtual clock's wait (nothing can answer in virtual time).
    let token_deadline = timeout.and_then(|t| th.exec.inner.clock.wall(Duration::from_secs(t))).map(after).or(deadline);
    let end = match &run.task_token {
        Some(token) => {
            let (tx, rx) = oneshot::channel();
            let beat = Arc::new(Notify::new());
            inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), TokenSlot { reply: tx, heartbeat: beat.clone() });
            let _guard = TokenGuard { inner, token: token.clone() };
            let invoked = with_deadline(deadline, inner.invoker.invoke(call)).await;
            match invoked {
                None => TaskEnd::TimedOut,
                Some(Err(f)) => TaskEnd::Done(Err(f)),
                Some(Ok(_)) => {
                    th.record(EventType::TaskSubmitted, Some(task_details(EventDetails::default())));
                    await_token(rx, beat, token_deadline, heartbeat).await
                }
            }
        }
        None => match with_deadline(deadline, inner.invoker.invoke(call)).await {
            None => TaskEnd::TimedOut,
            Some(result) => TaskEnd::Done(result),
        },
    };
    // Lambda function ARNs get AWS's LambdaFunction* events, every other resource the Task* ones.
    let (lambda_event, task_event, details, result) = match end {
        TaskEnd::Done(Ok(answer)) => {
            let wrap = matches!(kind, ResourceKind::LambdaInvoke) && !wait_for_token;
            let result = Arc::new(if wrap { wrap_lambda_invoke(answer) } else { answer });
            let details = EventDetails { output: Some(result.clone()), ..Default::default() };
            (EventType::LambdaFunctionSucceeded, EventType::TaskSucceeded, details, Ok(result))
        }
        TaskEnd::Done(Err(f)) => {
            let failure = Failure { error: Some(f.error), cause: f.cause };
            let details = EventDetails::failure(failure.error.clone(), failure.cause.clone());
            (EventType::LambdaFunctionFailed, EventType::TaskFailed, details, Err(failure))
        }
        TaskEnd::TimedOut | TaskEnd::HeartbeatTimedOut => {
            let error = if matches!(end, TaskEnd::TimedOut) { errors::TIMEOUT } else { errors::HEARTBEAT_TIMEOUT };
            let failure = Failure { error: Some(error.to_owned()), cause: None };
            let details = EventDetails::failure(failure.error.clone(), None);
            (EventType::LambdaFunctionTimedOut, EventType::TaskTimedOut, details, Err(failure))
        }
    };
    let event = if legacy_lambda { lambda_event } else { task_event };
    th.record(event, Some(task_details(details)));
    result
}

async fn with_deadline<F: Future>(deadline: Option<tokio::time::Instant>, f: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await.ok(),
        None => Some(f.await),
    }
}

async fn await_token(
    mut rx: oneshot::Receiver<TokenReply>,
    beat: Arc<Notify>,
    deadline: Option<tokio::time::Instant>,
    heartbeat: Option<u64>,
) -> TaskEnd {
    loop {
        let beat_deadline = heartbeat.map(|h| after(Duration::from_secs(h))).unwrap_or_else(far_future);
        tokio::select! {
            reply = &mut rx => return TaskEnd::Done(reply.unwrap_or_else(|_| Err(TaskFailure::new(errors::RUNTIME, "the task token was dropped")))),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)) => return TaskEnd::TimedOut,
            _ = tokio::time::sleep_until(beat_deadline) => return TaskEnd::HeartbeatTimedOut,
            _ = beat.notified() => continue,
        }
    }
}

/// The shape `arn:aws:states:::lambda:invoke` returns: the function's answer under `Payload`.
fn wrap_lambda_invoke(answer: Value) -> Value {
    let request_id = uuid::Uuid::new_v4().to_string();
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": answer,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-Remapped-Content-Length": ["0"],
                "Connection": ["keep-alive"],
                "x-amzn-RequestId": [request_id],
                "Content-Type": ["application/json"],
            },
            "HttpHeaders": {
                "Connection": "keep-alive",
                "Content-Type": "application/json",
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": request_id,
            },
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200
    })
}

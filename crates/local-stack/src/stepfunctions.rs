//! Step Functions for the stack's functions, whose executions run on the embedded executor rather
//! than in any Step Functions. The functions get this endpoint as `AWS_ENDPOINT_URL_SFN`.
//! - GetExecutionHistory: record-metrics reads its release's history here to price it, as it does
//!   on AWS. One page answers all the events so far (AWS pages by 1,000; the reader follows
//!   `nextToken`, which is never set here).
//! - SendTaskSuccess / SendTaskFailure: the interactions function answers an approval's task token
//!   here, and the executor's task parked on it goes on. Refused as AWS refuses them: `InvalidToken`
//!   for a token no task of this stack was given, `TaskDoesNotExist` for one no task waits on any
//!   more (answered, timed out or its execution ended: the executor keeps no note of which, so
//!   `TaskTimedOut` is never answered), `InvalidOutput` for an output that is not JSON.

use crate::iam::Operation;
use baton_asl::{Executor, HistoryReader, WeakExecutor};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;

const TARGET_PREFIX: &str = "AWSStepFunctions.";

/// What the endpoint answers for: the executions started so far and the tokens their tasks got.
#[derive(Default)]
struct Known {
    /// By execution ARN.
    executions: Mutex<HashMap<String, HistoryReader>>,
    issued: Mutex<HashSet<String>>,
    /// Set once the stack's executor exists (it is made after the functions this endpoint serves).
    executor: OnceLock<WeakExecutor>,
}

/// The endpoint's server and what it knows.
pub struct StepFunctions {
    known: Arc<Known>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl StepFunctions {
    /// Serves on a free local port.
    pub async fn serve() -> std::io::Result<StepFunctions> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let known: Arc<Known> = Arc::default();
        let shared = known.clone();
        let server = crate::lambda::spawn_server(listener, move |request| {
            let known = shared.clone();
            async move { answer(&known, request).await }
        });
        Ok(StepFunctions { known, url, server })
    }

    /// The endpoint, for `AWS_ENDPOINT_URL_SFN`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn add(&self, arn: &str, reader: HistoryReader) {
        self.known.executions.lock().unwrap_or_else(|p| p.into_inner()).insert(arn.to_owned(), reader);
    }

    /// Task tokens are answered to `executor`'s waiting tasks.
    pub fn answer_tasks_of(&self, executor: &Executor) {
        let _ = self.known.executor.set(executor.downgrade());
    }

    /// A task of the stack was given `token`.
    pub fn issued(&self, token: &str) {
        self.known.issued.lock().unwrap_or_else(|p| p.into_inner()).insert(token.to_owned());
    }
}

impl Drop for StepFunctions {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A task token names one execution of `state_machine_arn` (the stack has one state machine),
/// which IAM authorises the token's operations on; the caller's record cannot say which, as the
/// request names no ARN (`baton_aws::record` writes `*`).
pub fn with_token_machine(operation: Operation, state_machine_arn: &str) -> Operation {
    if operation.action.starts_with("states:SendTask") && operation.resource == "*" {
        Operation { resource: state_machine_arn.to_owned(), ..operation }
    } else {
        operation
    }
}

async fn answer(known: &Known, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    match target.strip_prefix(TARGET_PREFIX).unwrap_or_default() {
        "GetExecutionHistory" => {
            let Some(arn) = text("executionArn") else { return refuse("InvalidArn", "executionArn is missing") };
            let reader = known.executions.lock().unwrap_or_else(|p| p.into_inner()).get(arn).cloned();
            let Some(reader) = reader else { return refuse("ExecutionDoesNotExist", &format!("Execution Does Not Exist: '{arn}'")) };
            let events: Vec<Value> = reader.events().iter().map(wire_event).collect();
            reply(StatusCode::OK, json!({ "events": events }))
        }
        "SendTaskSuccess" => {
            let output = match text("output").map(serde_json::from_str::<Value>) {
                Some(Ok(output)) => output,
                _ => return refuse("InvalidOutput", "output is missing or not JSON"),
            };
            answer_task(known, text("taskToken"), |executor, token| executor.send_task_success(token, output))
        }
        "SendTaskFailure" => answer_task(known, text("taskToken"), |executor, token| {
            executor.send_task_failure(token, text("error").unwrap_or_default(), text("cause"))
        }),
        _ => refuse(
            "UnknownOperationException",
            &format!("the local stack answers GetExecutionHistory, SendTaskSuccess and SendTaskFailure, not '{target}'"),
        ),
    }
}

/// Hands the answer to the task waiting on `token`.
fn answer_task(
    known: &Known,
    token: Option<&str>,
    send: impl FnOnce(&Executor, &str) -> Result<(), baton_asl::TaskTokenError>,
) -> Response<Full<Bytes>> {
    // The token is never quoted back: it is the credential that answers the task.
    let Some(token) = token.filter(|t| known.issued.lock().unwrap_or_else(|p| p.into_inner()).contains(*t)) else {
        return refuse("InvalidToken", "Invalid token");
    };
    let executor = known.executor.get().and_then(WeakExecutor::upgrade);
    match executor.map(|executor| send(&executor, token)) {
        Some(Ok(())) => reply(StatusCode::OK, json!({})),
        Some(Err(err)) => refuse("TaskDoesNotExist", &err.to_string()),
        None => refuse("TaskDoesNotExist", "the stack's executor has stopped"),
    }
}

/// An event as the JSON 1.0 protocol carries it: the history's shape, its time in epoch seconds.
fn wire_event(event: &baton_asl::HistoryEvent) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    value["timestamp"] = json!(event.timestamp.timestamp_micros() as f64 / 1_000_000.0);
    value
}

fn refuse(kind: &str, message: &str) -> Response<Full<Bytes>> {
    reply(StatusCode::BAD_REQUEST, json!({ "__type": kind, "message": message }))
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    crate::lambda::reply_as(status, "application/x-amz-json-1.0", body)
}

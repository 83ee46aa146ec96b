//! Step Functions' GetExecutionHistory for the stack's executions, which run on the embedded
//! executor rather than in any Step Functions: record-metrics reads its release's history there
//! to price it, as it does on AWS. The functions get this endpoint as `AWS_ENDPOINT_URL_SFN`.
//! One page answers all the events so far (AWS pages by 1,000; the reader follows `nextToken`,
//! which is never set here).

use baton_asl::HistoryReader;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

const OPERATION: &str = "AWSStepFunctions.GetExecutionHistory";

/// The executions started so far, by ARN, and the server that answers for them.
pub struct Histories {
    executions: Arc<Mutex<HashMap<String, HistoryReader>>>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Histories {
    /// Serves on a free local port.
    pub async fn serve() -> std::io::Result<Histories> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let executions: Arc<Mutex<HashMap<String, HistoryReader>>> = Arc::default();
        let known = executions.clone();
        let server = crate::lambda::spawn_server(listener, move |request| {
            let known = known.clone();
            async move { answer(&known, request).await }
        });
        Ok(Histories { executions, url, server })
    }

    /// The endpoint, for `AWS_ENDPOINT_URL_SFN`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn add(&self, arn: &str, reader: HistoryReader) {
        self.executions.lock().unwrap_or_else(|p| p.into_inner()).insert(arn.to_owned(), reader);
    }
}

impl Drop for Histories {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(known: &Mutex<HashMap<String, HistoryReader>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if target != OPERATION {
        return refuse("UnknownOperationException", &format!("the local stack answers {OPERATION} only, not '{target}'"));
    }
    let arn = serde_json::from_slice::<Value>(&body).ok().and_then(|b| b.get("executionArn")?.as_str().map(str::to_owned));
    let Some(arn) = arn else { return refuse("InvalidArn", "executionArn is missing") };
    let reader = known.lock().unwrap_or_else(|p| p.into_inner()).get(&arn).cloned();
    let Some(reader) = reader else { return refuse("ExecutionDoesNotExist", &format!("Execution Does Not Exist: '{arn}'")) };
    let events: Vec<Value> = reader.events().iter().map(wire_event).collect();
    reply(StatusCode::OK, json!({ "events": events }))
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

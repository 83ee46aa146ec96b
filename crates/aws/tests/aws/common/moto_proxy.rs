//! A loopback HTTP proxy in front of moto for the JSON-protocol services (ECS, CodeBuild): it
//! forwards every request as it is, keeps the request and answer bodies, and, when told to, rewrites the
//! answers of one operation. moto never advances an ECS rollout (its one PRIMARY deployment
//! stays IN_PROGRESS) nor fails a CodeBuild build (SUCCEEDED at the first look), so the tests
//! script those states here.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// An answer as the proxy passes it on: the rewrite may change the status (an error answer's
/// body is `{"__type": "<code>", "message": ...}`) as well as the body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

type Rewrite = Arc<dyn Fn(&mut Answer) + Send + Sync>;

pub struct MotoProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    /// By operation (`DescribeServices`, `BatchGetBuilds`).
    rewrites: Mutex<HashMap<&'static str, Rewrite>>,
    rewritten: AtomicUsize,
    /// (operation, JSON body) of every request, in order.
    requests: Mutex<Vec<(String, Value)>>,
    /// (operation, JSON body) of every JSON answer as passed on, in order.
    answers: Mutex<Vec<(String, Value)>>,
}

impl MotoProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:<port>`).
    pub async fn start(upstream: &str) -> MotoProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = baton_http_client::Https::new(None).expect("an HTTP client").client().clone();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            client,
            rewrites: Mutex::default(),
            rewritten: AtomicUsize::new(0),
            requests: Mutex::default(),
            answers: Mutex::default(),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    if let Err(err) = shared.serve(stream).await {
                        eprintln!("moto proxy: {err}");
                    }
                });
            }
        });
        MotoProxy { url, shared, task }
    }

    /// From now on, every answer to `operation` goes through `rewrite` (replacing an earlier one).
    pub fn rewrite(&self, operation: &'static str, rewrite: impl Fn(&mut Answer) + Send + Sync + 'static) {
        self.shared.rewrites.lock().unwrap().insert(operation, Arc::new(rewrite));
    }

    /// How many answers were rewritten (so a test knows its script was used).
    pub fn rewritten(&self) -> usize {
        self.shared.rewritten.load(Ordering::SeqCst)
    }

    /// The JSON bodies of the requests to `operation` so far, oldest first.
    pub fn requests(&self, operation: &str) -> Vec<Value> {
        of(&self.shared.requests, operation)
    }

    /// The JSON bodies of the answers to `operation` so far (as passed on), oldest first.
    pub fn answers(&self, operation: &str) -> Vec<Value> {
        of(&self.shared.answers, operation)
    }
}

fn of(bodies: &Mutex<Vec<(String, Value)>>, operation: &str) -> Vec<Value> {
    bodies.lock().unwrap().iter().filter(|(op, _)| op == operation).map(|(_, body)| body.clone()).collect()
}

impl Drop for MotoProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A rewrite of ECS `DescribeServices` answers that passes each service through `rewrite`.
pub fn each_service(rewrite: impl Fn(&mut Value) + Send + Sync + 'static) -> impl Fn(&mut Answer) + Send + Sync + 'static {
    move |answer| {
        if let Some(services) = answer.body["services"].as_array_mut() {
            services.iter_mut().for_each(&rewrite);
        }
    }
}

/// One deployment as ECS reports it.
pub fn deployment(status: &str, task_definition: &str, rollout: &str, reason: &str) -> Value {
    serde_json::json!({
        "id": format!("ecs-svc/{status}-{}", task_definition.rsplit('/').next().unwrap_or(task_definition)),
        "status": status,
        "taskDefinition": task_definition,
        "desiredCount": 1,
        "pendingCount": 0,
        "runningCount": if rollout == "COMPLETED" { 1 } else { 0 },
        "failedTasks": if rollout == "FAILED" { 3 } else { 0 },
        "rolloutState": rollout,
        "rolloutStateReason": reason,
    })
}

/// The service's current task definition, as moto holds it.
pub fn task_definition_of(service: &Value) -> String {
    service["taskDefinition"].as_str().expect("a service with a task definition").to_string()
}

impl Shared {
    /// One request, one answer, then the connection closes (the SDK opens another).
    async fn serve(&self, stream: TcpStream) -> Result<(), String> {
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let read = reader.read_line(&mut line).await.map_err(|e| e.to_string())?;
            if read == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut lines = head.lines();
        let request_line = lines.next().ok_or("empty request")?;
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().ok_or("no method")?, parts.next().ok_or("no path")?);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        // JSON-protocol operations are named by the target header: `AmazonEC2ContainerServiceV20141113.DescribeServices`.
        let operation =
            headers.iter().find(|(n, _)| n == "x-amz-target").and_then(|(_, v)| v.rsplit('.').next()).unwrap_or_default().to_string();
        if let Ok(json) = serde_json::from_slice::<Value>(&body) {
            self.requests.lock().unwrap().push((operation.clone(), json));
        }

        let mut forward = self.client.request(method.parse().map_err(|_| "bad method")?, format!("{}{target}", self.upstream));
        for (name, value) in &headers {
            if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
                forward = forward.header(name, value);
            }
        }
        let answer = forward.body(body).send().await.map_err(|e| format!("forward to {}: {e}", self.upstream))?;
        let mut status = answer.status().as_u16();
        let answer_headers = answer.headers().clone();
        let mut answer_body = answer.bytes().await.map_err(|e| e.to_string())?.to_vec();

        let rewrite = self.rewrites.lock().unwrap().get(operation.as_str()).cloned();
        if let Some(rewrite) = rewrite {
            let body: Value = serde_json::from_slice(&answer_body).map_err(|e| format!("{operation} answer: {e}"))?;
            let mut rewritten = Answer { status, body };
            rewrite(&mut rewritten);
            (status, answer_body) = (rewritten.status, serde_json::to_vec(&rewritten.body).unwrap());
            self.rewritten.fetch_add(1, Ordering::SeqCst);
        }

        if let Ok(json) = serde_json::from_slice::<Value>(&answer_body) {
            self.answers.lock().unwrap().push((operation, json));
        }
        let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
        for (name, value) in &answer_headers {
            if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
                out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
            }
        }
        out.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", answer_body.len()));
        let mut stream = reader.into_inner();
        stream.write_all(out.as_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(&answer_body).await.map_err(|e| e.to_string())?;
        stream.shutdown().await.map_err(|e| e.to_string())
    }
}

//! A loopback HTTP proxy in front of moto that forwards every request as it is and, when told
//! to, rewrites the services in ECS `DescribeServices` answers: moto never advances a rollout
//! (its one PRIMARY deployment stays IN_PROGRESS), so the tests script COMPLETED and FAILED here.

use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Rewrite = Arc<dyn Fn(&mut Value) + Send + Sync>;

pub struct RolloutProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    rewrite: Mutex<Option<Rewrite>>,
    rewritten: AtomicUsize,
}

impl RolloutProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:<port>`).
    pub async fn start(upstream: &str) -> RolloutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = baton_http_client::Https::new(None).expect("an HTTP client").client().clone();
        let shared = Arc::new(Shared { upstream: upstream.to_string(), client, rewrite: Mutex::new(None), rewritten: AtomicUsize::new(0) });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    if let Err(err) = shared.serve(stream).await {
                        eprintln!("rollout proxy: {err}");
                    }
                });
            }
        });
        RolloutProxy { url, shared, task }
    }

    /// From now on, every service in a DescribeServices answer goes through `rewrite`.
    pub fn rewrite(&self, rewrite: impl Fn(&mut Value) + Send + Sync + 'static) {
        *self.shared.rewrite.lock().unwrap() = Some(Arc::new(rewrite));
    }

    /// How many DescribeServices answers were rewritten (so a test knows its script was used).
    pub fn rewritten(&self) -> usize {
        self.shared.rewritten.load(Ordering::SeqCst)
    }
}

impl Drop for RolloutProxy {
    fn drop(&mut self) {
        self.task.abort();
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
        let describe_services = headers.iter().any(|(n, v)| n == "x-amz-target" && v.ends_with(".DescribeServices"));

        let mut forward = self.client.request(method.parse().map_err(|_| "bad method")?, format!("{}{target}", self.upstream));
        for (name, value) in &headers {
            if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
                forward = forward.header(name, value);
            }
        }
        let answer = forward.body(body).send().await.map_err(|e| format!("forward to {}: {e}", self.upstream))?;
        let status = answer.status();
        let answer_headers = answer.headers().clone();
        let mut answer_body = answer.bytes().await.map_err(|e| e.to_string())?.to_vec();

        let rewrite = self.rewrite.lock().unwrap().clone();
        if let (true, true, Some(rewrite)) = (describe_services, status.is_success(), rewrite) {
            let mut json: Value = serde_json::from_slice(&answer_body).map_err(|e| format!("DescribeServices answer: {e}"))?;
            if let Some(services) = json["services"].as_array_mut() {
                services.iter_mut().for_each(|s| rewrite(s));
            }
            answer_body = serde_json::to_vec(&json).unwrap();
            self.rewritten.fetch_add(1, Ordering::SeqCst);
        }

        let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
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

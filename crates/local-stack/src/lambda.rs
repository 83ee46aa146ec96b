//! Lambda on the host: each function's real binary run as Lambda runs it, behind a local
//! implementation of the Lambda Runtime API (`/2018-06-01/runtime/...`).
//!
//! - An execution environment is one process with its own Runtime API endpoint
//!   (`AWS_LAMBDA_RUNTIME_API`), started on the first invocation that finds no idle one (a cold
//!   start) and kept warm for the next. Like Lambda, one environment serves one invocation at a
//!   time: concurrent invocations of a function get more environments.
//! - The process sees only what Lambda gives it: the template's variables (Globals merged), the
//!   reserved `AWS_*`/`LAMBDA_*` variables, and the endpoints and credentials of the local AWS.
//! - An invocation that runs past the function's timeout kills the environment and fails with
//!   `Sandbox.Timedout`; a handler error fails with the function's `errorType` and Lambda's
//!   error object as the cause; a runtime that exits fails with `Runtime.ExitError` (or the
//!   error it posted to `/runtime/init/error`).

use crate::template::FunctionSpec;
use baton_asl::TaskFailure;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// Lambda's limit on an on-demand environment's init phase.
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// Lambda's limit on a synchronous response.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
const API: &str = "/2018-06-01/runtime";

/// How the environments of one stack are set up.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Where the function binaries are (`target/debug`, `target/release`).
    pub binaries: PathBuf,
    /// Per-function working directories, logs and operation records go under here.
    pub state_dir: PathBuf,
    pub region: String,
    /// Variables passed through from the host besides Lambda's own: the local endpoints
    /// (`AWS_ENDPOINT_URL*`) and credentials, which Lambda would take from the execution role.
    pub passthrough: Vec<(String, String)>,
}

/// One function's environments.
pub struct LambdaFunction {
    spec: FunctionSpec,
    settings: Arc<SandboxSettings>,
    idle: Mutex<Vec<Sandbox>>,
    cold_starts: std::sync::atomic::AtomicU32,
}

impl LambdaFunction {
    pub fn new(spec: FunctionSpec, settings: Arc<SandboxSettings>) -> LambdaFunction {
        LambdaFunction { spec, settings, idle: Mutex::new(Vec::new()), cold_starts: 0.into() }
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// How many environments were started so far.
    pub fn cold_starts(&self) -> u32 {
        self.cold_starts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file this function's AWS operations are recorded in (see `baton_aws::record`).
    pub fn operations_file(&self) -> PathBuf {
        self.settings.state_dir.join("operations").join(format!("{}.log", self.spec.name))
    }

    /// This function's log (the environments' stdout and stderr, as CloudWatch would hold them).
    pub fn log_file(&self) -> PathBuf {
        self.settings.state_dir.join("logs").join(format!("{}.log", self.spec.name))
    }

    /// One synchronous invocation (`RequestResponse`), as Step Functions makes it, of the
    /// function's ARN as the caller named it (qualified by an alias or not).
    pub async fn invoke(&self, invoked_arn: &str, payload: &Value) -> Result<Value, TaskFailure> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut sandbox = match idle {
            Some(sandbox) => sandbox,
            None => {
                self.cold_starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.start().await.map_err(|e| TaskFailure::new("Lambda.ServiceException", format!("{}: {e}", self.spec.name)))?
            }
        };
        let (result, keep) = sandbox.invoke(&self.spec, invoked_arn, payload).await;
        if keep {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(sandbox);
        } else {
            sandbox.terminate().await;
        }
        result
    }

    /// Stops every idle environment.
    pub fn shutdown(&self) {
        for mut sandbox in self.idle.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            sandbox.kill();
        }
    }

    async fn start(&self) -> std::io::Result<Sandbox> {
        let spec = &self.spec;
        let settings = &self.settings;
        let (api, address, server) = RuntimeApi::serve(spec.timeout).await?;
        let task_root = settings.state_dir.join("task").join(&spec.name);
        for dir in [&task_root, &settings.state_dir.join("logs"), &settings.state_dir.join("operations")] {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_file())?;
        let binary = settings.binaries.join(&spec.binary);
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .envs(lambda_environment(spec, settings, &address, &task_root))
            .env(baton_aws::record::RECORD_ENV, self.operations_file())
            .current_dir(&task_root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group: a kill reaches what the function started (command providers).
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {}: {e}", binary.display())))?;
        Ok(Sandbox { child, api, server })
    }
}

/// What Lambda sets in a `provided.al2023` function's environment, then the template's variables.
fn lambda_environment(spec: &FunctionSpec, settings: &SandboxSettings, runtime_api: &str, task_root: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = settings.passthrough.clone();
    let reserved = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple())),
        ("AWS_LAMBDA_LOG_FORMAT", spec.log_format.clone()),
        ("AWS_REGION", settings.region.clone()),
        ("AWS_DEFAULT_REGION", settings.region.clone()),
        ("_HANDLER", "bootstrap".into()),
        ("LAMBDA_TASK_ROOT", task_root.display().to_string()),
        ("LAMBDA_RUNTIME_DIR", task_root.display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("TZ", ":UTC".into()),
    ];
    env.extend(reserved.into_iter().map(|(k, v)| (k.to_string(), v)));
    env.extend(spec.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// One execution environment: the function's process and its Runtime API.
struct Sandbox {
    child: Child,
    api: Arc<RuntimeApi>,
    /// The API's server; aborting it closes its connections.
    server: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    /// The invocation's result, and whether the environment may serve another.
    async fn invoke(&mut self, spec: &FunctionSpec, invoked_arn: &str, payload: &Value) -> (Result<Value, TaskFailure>, bool) {
        let id = uuid::Uuid::new_v4().to_string();
        let (reply, replied) = oneshot::channel();
        let (handed_out, deadline) = oneshot::channel();
        let pending =
            Pending { id: id.clone(), invoked_arn: invoked_arn.to_string(), payload: payload.to_string().into_bytes(), reply, handed_out };
        if self.api.queue.send(pending).await.is_err() {
            return (Err(exited(&id, "the Runtime API stopped")), false);
        }
        // Init (a cold start) has its own limit; the function's timeout runs from the hand-out.
        let deadline = tokio::select! {
            deadline = deadline => match deadline {
                Ok(deadline) => deadline,
                Err(_) => return (Err(exited(&id, "the Runtime API stopped")), false),
            },
            status = self.child.wait() => return (Err(self.api.exit_failure(&id, status)), false),
            _ = tokio::time::sleep(INIT_LIMIT) => {
                return (Err(lambda_error(&id, "Sandbox.Timedout", format!("Init phase did not complete within {} seconds", INIT_LIMIT.as_secs()))), false);
            }
        };
        tokio::select! {
            reply = replied => match reply {
                Ok(Reply::Response(body)) => match serde_json::from_slice(&body) {
                    Ok(value) => (Ok(value), true),
                    Err(e) => (Err(lambda_error(&id, "Lambda.InvalidResponse", format!("the response is not JSON: {e}"))), true),
                },
                Ok(Reply::Error(error)) => {
                    let name = error.get("errorType").and_then(Value::as_str).unwrap_or("Lambda.Unknown").to_string();
                    let keep = name != "Function.ResponseSizeTooLarge";
                    (Err(TaskFailure::new(name, error.to_string())), keep)
                }
                Err(_) => (Err(exited(&id, "the Runtime API stopped")), false),
            },
            status = self.child.wait() => (Err(self.api.exit_failure(&id, status)), false),
            _ = tokio::time::sleep_until(deadline) => {
                let seconds = spec.timeout.as_secs_f64();
                (Err(lambda_error(&id, "Sandbox.Timedout", format!("Task timed out after {seconds:.2} seconds"))), false)
            }
        }
    }

    /// Kills the environment and waits until its process is gone, so a timed-out function never
    /// runs on beside the environment that replaces it.
    async fn terminate(mut self) {
        self.kill();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.child.wait()).await;
    }

    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            let group = libc::pid_t::try_from(pid).expect("pids fit in pid_t");
            // SAFETY: kill(2) takes plain integers; the negative pid addresses the process group
            // the environment leads (spawned with process_group(0)). ESRCH is fine.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
        self.server.abort();
    }
}

/// Lambda's error object for a failure outside the handler, as Step Functions reports it.
fn lambda_error(request_id: &str, error_type: &str, message: String) -> TaskFailure {
    let cause = json!({ "errorType": error_type, "errorMessage": format!("RequestId: {request_id} Error: {message}") });
    TaskFailure::new(error_type, cause.to_string())
}

fn exited(request_id: &str, why: &str) -> TaskFailure {
    lambda_error(request_id, "Runtime.ExitError", format!("Runtime exited: {why}"))
}

struct Pending {
    id: String,
    invoked_arn: String,
    payload: Vec<u8>,
    reply: oneshot::Sender<Reply>,
    /// Told when the runtime takes the invocation, with its deadline.
    handed_out: oneshot::Sender<tokio::time::Instant>,
}

enum Reply {
    Response(Bytes),
    Error(Value),
}

/// One environment's Runtime API.
struct RuntimeApi {
    queue: mpsc::Sender<Pending>,
    next: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    init_error: Mutex<Option<Value>>,
    timeout: Duration,
}

impl RuntimeApi {
    /// Serves the API on a free local port; returns it, its `host:port` and the server task.
    async fn serve(timeout: Duration) -> std::io::Result<(Arc<RuntimeApi>, String, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (queue, next) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            queue,
            next: tokio::sync::Mutex::new(next),
            in_flight: Mutex::default(),
            init_error: Mutex::default(),
            timeout,
        });
        let shared = api.clone();
        let server = spawn_server(listener, move |request| {
            let api = shared.clone();
            async move { api.handle(request).await }
        });
        Ok((api, address, server))
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let Some(route) = path.strip_prefix(API) else { return reply(StatusCode::NOT_FOUND, json!({"errorType": "NotFound"})) };
        match (request.method().clone(), route) {
            (Method::GET, "/invocation/next") => self.next_invocation().await,
            (Method::POST, "/init/error") => {
                *self.init_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error_object(request).await);
                reply(StatusCode::ACCEPTED, json!({"status": "OK"}))
            }
            (Method::POST, route) => {
                let Some((id, kind)) = route.strip_prefix("/invocation/").and_then(|r| r.split_once('/')) else {
                    return reply(StatusCode::NOT_FOUND, json!({"errorType": "NotFound"}));
                };
                let Some(waiter) = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(id) else {
                    return reply(StatusCode::BAD_REQUEST, json!({"errorType": "InvalidRequestID", "errorMessage": "unknown request id"}));
                };
                match kind {
                    "response" => {
                        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        if body.len() > MAX_RESPONSE_BYTES {
                            let message = format!(
                                "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                                body.len()
                            );
                            let _ =
                                waiter.send(Reply::Error(json!({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message})));
                            return reply(StatusCode::PAYLOAD_TOO_LARGE, json!({"errorType": "RequestEntityTooLarge"}));
                        }
                        let _ = waiter.send(Reply::Response(body));
                    }
                    "error" => {
                        let _ = waiter.send(Reply::Error(error_object(request).await));
                    }
                    _ => return reply(StatusCode::NOT_FOUND, json!({"errorType": "NotFound"})),
                }
                reply(StatusCode::ACCEPTED, json!({"status": "OK"}))
            }
            _ => reply(StatusCode::NOT_FOUND, json!({"errorType": "NotFound"})),
        }
    }

    /// Long-polls for the next invocation, as the runtime's `next` call does.
    async fn next_invocation(&self) -> Response<Full<Bytes>> {
        let Some(pending) = self.next.lock().await.recv().await else {
            return reply(StatusCode::GONE, json!({"errorType": "Shutdown"}));
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let deadline_ms = (SystemTime::now() + self.timeout).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(pending.id.clone(), pending.reply);
        let _ = pending.handed_out.send(deadline);
        // X-Ray's trace header (the stack sets `Tracing: Active`).
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let trace = format!("Root=1-{epoch:08x}-{};Sampled=1", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &pending.id)
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header("lambda-runtime-invoked-function-arn", &pending.invoked_arn)
            .header("lambda-runtime-trace-id", trace)
            .body(Full::new(Bytes::from(pending.payload)))
            .expect("a valid response")
    }

    /// Why the process ended: the error it posted at init, else Lambda's `Runtime.ExitError`.
    fn exit_failure(&self, request_id: &str, status: std::io::Result<std::process::ExitStatus>) -> TaskFailure {
        if let Some(error) = self.init_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let name = error.get("errorType").and_then(Value::as_str).unwrap_or("Runtime.InitError").to_string();
            return TaskFailure::new(name, error.to_string());
        }
        let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        lambda_error(request_id, "Runtime.ExitError", format!("Runtime exited with error: {status}"))
    }
}

/// The error object a runtime posts (`errorType`, `errorMessage`, ...); the
/// `Lambda-Runtime-Function-Error-Type` header names the type when the body does not.
async fn error_object(request: Request<Incoming>) -> Value {
    let header_type = request.headers().get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut error: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({ "errorMessage": String::from_utf8_lossy(&body) }));
    if error.get("errorType").is_none()
        && let Some(object) = error.as_object_mut()
    {
        object.insert("errorType".into(), Value::String(header_type.unwrap_or_else(|| "Runtime.Unknown".into())));
    }
    error
}

/// Serves HTTP/1 on `listener`, each request answered by `handler`, until the returned task is
/// aborted. Connections live in that task: aborting it ends them, including a runtime's pending
/// `next` call, which nothing else would ever answer.
pub(crate) fn spawn_server<H, F>(listener: TcpListener, handler: H) -> tokio::task::JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let answer = handler(request);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    })
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    reply_as(status, "application/json", body)
}

/// A JSON answer whose media type is `content_type`.
pub(crate) fn reply_as(status: StatusCode, content_type: &str, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

//! `github-stand-in`: GitHub Actions' REST API for one repository, on 127.0.0.1, so that
//! `examples/catalog`'s `hello-api` (a `github-actions` build) releases with no network.
//!
//! It answers the requests Baton's provider makes, in the shapes GitHub documents:
//!
//! - `POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches` with `{ref, inputs,
//!   return_run_details}`: 200 `{workflow_run_id, run_url, html_url}` (204 without
//!   `return_run_details`), 422 for a missing `ref` or an input the workflow does not declare;
//! - `GET /repos/{owner}/{repo}/actions/runs/{id}`: the run (`id`, `status`, `conclusion`,
//!   `head_sha`, `head_branch`, `html_url`, `display_title`, ...);
//! - `POST /repos/{owner}/{repo}/actions/runs/{id}/cancel`: 202, or 409 once it completed;
//! - `GET /{owner}/{repo}/actions/runs/{id}`: the run's page (`html_url`), here the run's JSON.
//!
//! API requests need `Authorization: Bearer <token>` with the token of `GITHUB_STAND_IN_TOKEN`
//! (401 "Bad credentials" otherwise); another repository or workflow is 404, as on GitHub.
//!
//! A dispatch "runs" the workflow by running `sh <script>` (`--workflow name=script`) in the
//! stand-in's working directory: the run is `queued`, `in_progress` while the script runs, then
//! `completed` with `success` when it exits 0, `failure` otherwise, `cancelled` when cancelled.
//! The script gets the stand-in's environment (without the token), the inputs as
//! `INPUT_<NAME>` (as a workflow step would pass them in its `env:`), and a runner's
//! `GITHUB_*` variables; its output goes to the stand-in's stderr. The run's `head_sha` is the
//! `baton_sha` input, or when that is empty the commit `git rev-parse HEAD` names in the
//! working directory (the "branch head"); without either the dispatch is refused with GitHub's
//! 422 "No ref found".
//!
//! It prints its URL (`http://127.0.0.1:PORT`) on stdout once it listens, and runs until
//! SIGTERM, or with `--exit-on-stdin-eof` until its stdin closes (how a test ties the
//! stand-in's life to its own); running scripts are killed when it exits on stdin.

use chrono::{SecondsFormat, Utc};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The variable holding the token API requests must bear: not a flag, since any user of the
/// machine can read a process's command line.
const TOKEN_ENV: &str = "GITHUB_STAND_IN_TOKEN";
/// The inputs every workflow here declares: the two Baton sends with each dispatch.
const DECLARED_INPUTS: [&str; 2] = ["baton_release_id", "baton_sha"];
const DOCS: &str = "https://docs.github.com/rest/actions";

#[derive(Parser)]
#[command(about = "GitHub Actions' REST API for one repository, running each dispatched workflow as a local script")]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0: any free port). examples/catalog's hello-api
    /// expects the default.
    #[arg(long, env = "GITHUB_STAND_IN_PORT", default_value_t = 8714)]
    port: u16,
    /// The repository served, `owner/name`.
    #[arg(long)]
    repository: String,
    /// A workflow and the script a dispatch of it runs, `release.yml=path/to/script.sh`
    /// (repeatable).
    #[arg(long = "workflow", value_name = "NAME=SCRIPT", value_parser = workflow, required = true)]
    workflows: Vec<(String, PathBuf)>,
    /// Exit when stdin reaches end of file.
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn workflow(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, script)) if !name.is_empty() && !script.is_empty() => Ok((name.to_owned(), PathBuf::from(script))),
        _ => Err(format!("expected NAME=SCRIPT (release.yml=ci/release.sh), got '{value}'")),
    }
}

struct Run {
    id: u64,
    workflow: String,
    branch: String,
    head_sha: String,
    release_id: String,
    status: &'static str,
    conclusion: Option<&'static str>,
    created_at: String,
    updated_at: String,
    cancel: Arc<Notify>,
}

struct StandIn {
    base: String,
    owner: String,
    repo: String,
    token: String,
    workflows: BTreeMap<String, PathBuf>,
    /// Run `n` is at index `n - 1`.
    runs: Mutex<Vec<Run>>,
}

type Answer = Response<Full<Bytes>>;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn answer(status: StatusCode, body: Option<Value>) -> Answer {
    let mut response = Response::new(Full::new(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default()));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

/// GitHub's error body: `{message, documentation_url, status}`.
fn error(status: StatusCode, message: &str) -> Answer {
    answer(status, Some(json!({"message": message, "documentation_url": DOCS, "status": status.as_u16().to_string()})))
}

#[derive(Deserialize)]
struct DispatchBody {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    return_run_details: bool,
}

impl StandIn {
    fn runs(&self) -> std::sync::MutexGuard<'_, Vec<Run>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The run's API URL (`url`, the dispatch's `run_url`) and its page (`html_url`).
    fn run_urls(&self, id: u64) -> (String, String) {
        let run = format!("{}/{}/actions/runs/{id}", self.owner, self.repo);
        (format!("{}/repos/{run}", self.base), format!("{}/{run}", self.base))
    }

    /// The index in `runs` of run `id` of `owner/repo`, if that names a run here.
    fn index(&self, owner: &str, repo: &str, id: &str) -> Option<usize> {
        let index = id.parse::<usize>().ok()?.checked_sub(1)?;
        (self.serves(owner, repo) && index < self.runs().len()).then_some(index)
    }

    fn run_json(&self, run: &Run) -> Value {
        let (url, html_url) = self.run_urls(run.id);
        json!({
            "id": run.id,
            "name": run.workflow,
            "display_title": run.release_id,
            "run_number": run.id,
            "event": "workflow_dispatch",
            "status": run.status,
            "conclusion": run.conclusion,
            "head_branch": run.branch,
            "head_sha": run.head_sha,
            "path": format!(".github/workflows/{}", run.workflow),
            "url": url,
            "html_url": html_url,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
        })
    }

    async fn serve(self: Arc<Self>, request: Request<Incoming>) -> Answer {
        let method = request.method().clone();
        let path: Vec<String> = request.uri().path().trim_matches('/').split('/').map(str::to_owned).collect();
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        // The run's page, which GitHub serves without API credentials.
        if let (&Method::GET, [owner, repo, "actions", "runs", id]) = (&method, &segments[..]) {
            return self.run_answer(owner, repo, id);
        }
        if !self.authorized(&request) {
            return error(StatusCode::UNAUTHORIZED, "Bad credentials");
        }
        match (&method, &segments[..]) {
            (&Method::POST, ["repos", owner, repo, "actions", "workflows", workflow, "dispatches"]) if self.serves(owner, repo) => {
                let Ok(body) = request.into_body().collect().await else {
                    return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
                };
                self.dispatch(workflow, &body.to_bytes())
            }
            (&Method::GET, ["repos", owner, repo, "actions", "runs", id]) => self.run_answer(owner, repo, id),
            (&Method::POST, ["repos", owner, repo, "actions", "runs", id, "cancel"]) => self.cancel(owner, repo, id),
            _ => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let header = request.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        // GitHub takes both schemes.
        let given = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("token "));
        given == Some(self.token.as_str())
    }

    fn serves(&self, owner: &str, repo: &str) -> bool {
        // GitHub compares owner and repository names without regard to case.
        owner.eq_ignore_ascii_case(&self.owner) && repo.eq_ignore_ascii_case(&self.repo)
    }

    fn run_answer(&self, owner: &str, repo: &str, id: &str) -> Answer {
        match self.index(owner, repo, id) {
            Some(index) => answer(StatusCode::OK, Some(self.run_json(&self.runs()[index]))),
            None => error(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn dispatch(self: &Arc<Self>, workflow: &str, body: &[u8]) -> Answer {
        let Some(script) = self.workflows.get(workflow).cloned() else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        let body: DispatchBody = match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("Problems parsing JSON: {e}")),
        };
        let Some(branch) = body.git_ref.filter(|r| !r.is_empty()) else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request.\n\n\"ref\" wasn't supplied.");
        };
        let unexpected: Vec<&String> = body.inputs.keys().filter(|name| !DECLARED_INPUTS.contains(&name.as_str())).collect();
        if !unexpected.is_empty() {
            return error(StatusCode::UNPROCESSABLE_ENTITY, &format!("Unexpected inputs provided: {unexpected:?}"));
        }
        let sha = body.inputs.get("baton_sha").filter(|sha| !sha.is_empty()).cloned();
        let Some(head_sha) = sha.or_else(checkout_head).filter(|sha| !sha.is_empty()) else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, &format!("No ref found for: {branch}"));
        };
        let cancel = Arc::new(Notify::new());
        let id = {
            let mut runs = self.runs();
            let id = runs.len() as u64 + 1;
            let created_at = now();
            runs.push(Run {
                id,
                workflow: workflow.to_owned(),
                branch: branch.clone(),
                head_sha: head_sha.clone(),
                release_id: body.inputs.get("baton_release_id").cloned().unwrap_or_default(),
                status: "queued",
                conclusion: None,
                updated_at: created_at.clone(),
                created_at,
                cancel: cancel.clone(),
            });
            id
        };
        eprintln!("github-stand-in: run {id}: {workflow} on {branch}@{head_sha}");
        let env = self.runner_env(id, workflow, &branch, &head_sha, &body.inputs);
        tokio::spawn(self.clone().execute(id, script, env, cancel));
        if !body.return_run_details {
            return answer(StatusCode::NO_CONTENT, None);
        }
        let (run_url, html_url) = self.run_urls(id);
        answer(StatusCode::OK, Some(json!({"workflow_run_id": id, "run_url": run_url, "html_url": html_url})))
    }

    /// What a runner sets for a workflow's steps, and the inputs.
    fn runner_env(&self, id: u64, workflow: &str, branch: &str, sha: &str, inputs: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let runner = [
            ("GITHUB_ACTIONS", "true".to_owned()),
            ("GITHUB_REPOSITORY", format!("{}/{}", self.owner, self.repo)),
            ("GITHUB_WORKFLOW", workflow.to_owned()),
            ("GITHUB_RUN_ID", id.to_string()),
            ("GITHUB_EVENT_NAME", "workflow_dispatch".to_owned()),
            ("GITHUB_REF_NAME", branch.to_owned()),
            ("GITHUB_SHA", sha.to_owned()),
            ("GITHUB_SERVER_URL", self.base.clone()),
        ];
        let runner = runner.into_iter().map(|(name, value)| (name.to_owned(), value));
        runner.chain(inputs.iter().map(|(name, value)| (format!("INPUT_{}", name.to_ascii_uppercase()), value.clone()))).collect()
    }

    fn update(&self, id: u64, status: &'static str, conclusion: Option<&'static str>) {
        let mut runs = self.runs();
        let run = &mut runs[(id - 1) as usize];
        (run.status, run.conclusion, run.updated_at) = (status, conclusion, now());
    }

    /// Runs the workflow's script to its end (or its cancellation), moving the run along.
    async fn execute(self: Arc<Self>, id: u64, script: PathBuf, env: Vec<(String, String)>, cancel: Arc<Notify>) {
        // The script's output joins the stand-in's log; stdout stays for the URL line.
        let stdout = std::io::stderr().as_fd().try_clone_to_owned().map(Stdio::from).unwrap_or_else(|_| Stdio::null());
        let spawned = tokio::process::Command::new("sh")
            .arg(&script)
            .env_remove(TOKEN_ENV)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(stdout)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("github-stand-in: run {id}: cannot start sh {}: {e}", script.display());
                return self.update(id, "completed", Some("startup_failure"));
            }
        };
        self.update(id, "in_progress", None);
        let conclusion = tokio::select! {
            exit = child.wait() => match exit {
                Ok(status) if status.success() => "success",
                Ok(_) => "failure",
                Err(e) => {
                    eprintln!("github-stand-in: run {id}: lost the script: {e}");
                    "failure"
                }
            },
            () = cancel.notified() => {
                // The script's own children may outlive it; an example's script starts none.
                let _ = child.kill().await;
                "cancelled"
            }
        };
        eprintln!("github-stand-in: run {id}: completed, {conclusion}");
        self.update(id, "completed", Some(conclusion));
    }

    fn cancel(&self, owner: &str, repo: &str, id: &str) -> Answer {
        let Some(index) = self.index(owner, repo, id) else {
            return error(StatusCode::NOT_FOUND, "Not Found");
        };
        let runs = self.runs();
        let run = &runs[index];
        if run.status == "completed" {
            return error(StatusCode::CONFLICT, "Cannot cancel a workflow run that is completed.");
        }
        run.cancel.notify_one();
        answer(StatusCode::ACCEPTED, Some(json!({})))
    }
}

/// The commit checked out in the working directory: the branch head a dispatch without
/// `baton_sha` builds.
fn checkout_head() -> Option<String> {
    let output = std::process::Command::new("git").args(["rev-parse", "--verify", "HEAD"]).stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let Some(token) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) else {
        eprintln!("github-stand-in: set {TOKEN_ENV} to the token API requests must bear");
        return ExitCode::from(2);
    };
    let Some((owner, repo)) = args.repository.split_once('/').filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/')) else {
        eprintln!("github-stand-in: --repository '{}' is not owner/name", args.repository);
        return ExitCode::from(2);
    };
    if let Some((name, script)) = args.workflows.iter().find(|(_, script)| !script.is_file()) {
        eprintln!("github-stand-in: the script {} of workflow {name} is not a file", script.display());
        return ExitCode::from(2);
    }
    let listener = match TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("github-stand-in: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::from(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    let stand_in = Arc::new(StandIn {
        base: format!("http://127.0.0.1:{port}"),
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        token,
        workflows: args.workflows.into_iter().collect(),
        runs: Mutex::new(Vec::new()),
    });
    println!("{}", stand_in.base);

    let exit_on_stdin_eof = args.exit_on_stdin_eof;
    let stdin_closed = async move {
        if !exit_on_stdin_eof {
            return std::future::pending().await;
        }
        // A blocking read on a thread of its own: this build's tokio has no stdin.
        let (closed, eof) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = closed.send(());
        });
        let _ = eof.await;
    };
    tokio::pin!(stdin_closed);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let stand_in = stand_in.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let stand_in = stand_in.clone();
                        async move { Ok::<_, std::convert::Infallible>(stand_in.serve(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                });
            }
            () = &mut stdin_closed => return ExitCode::SUCCESS,
        }
    }
}

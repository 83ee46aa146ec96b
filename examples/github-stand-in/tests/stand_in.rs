//! github-stand-in answers the requests Baton's GitHub Actions provider makes with the shapes
//! GitHub documents (dispatch with `return_run_details`, a run, its cancel, GitHub's errors),
//! and its runs follow their scripts: queued, in progress, then completed with the script's
//! outcome.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "stand-in-contract-token";

struct StandIn {
    child: Child,
    url: String,
    http: Client,
}

/// Starts the stand-in for acme/web with three workflows: `release.yml` records what it was
/// given, `fails.yml` exits 3, `held.yml` runs until the file `go` appears in `dir`.
fn start(dir: &Path) -> StandIn {
    let scripts = [
        (
            "release.yml",
            r#"printf '%s|%s|%s|%s|%s\n' "$INPUT_BATON_RELEASE_ID" "$INPUT_BATON_SHA" "$GITHUB_REF_NAME" "$GITHUB_SHA" "${GITHUB_STAND_IN_TOKEN:-no token}" > "$WORK/given""#,
        ),
        ("fails.yml", "echo 'compile error' >&2; exit 3"),
        ("held.yml", r#"while [ ! -e "$WORK/go" ]; do sleep 0.05; done"#),
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_github-stand-in"));
    command.args(["--port", "0", "--repository", "acme/web", "--exit-on-stdin-eof"]);
    for (workflow, script) in scripts {
        let path = dir.join(workflow.replace(".yml", ".sh"));
        std::fs::write(&path, script).unwrap();
        command.arg("--workflow").arg(format!("{workflow}={}", path.display()));
    }
    let mut child = command
        .env("GITHUB_STAND_IN_TOKEN", TOKEN)
        .env("WORK", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start github-stand-in");
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let http = baton_http_client::Https::new(None).unwrap().client().clone();
    StandIn { child, url: url.trim().to_owned(), http }
}

impl StandIn {
    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.url) };
        let mut request = self.http.request(method, url).header("accept", "application/vnd.github+json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the stand-in answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn dispatch(&self, workflow: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/repos/acme/web/actions/workflows/{workflow}/dispatches");
        self.call(Method::POST, &path, Some(TOKEN), Some(body)).await
    }

    async fn run(&self, id: u64) -> Value {
        let (status, run) = self.call(Method::GET, &format!("/repos/acme/web/actions/runs/{id}"), Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    /// The run once its status is `status` (waiting for its script).
    async fn run_when(&self, id: u64, status: &str) -> Value {
        for _ in 0..500 {
            let run = self.run(id).await;
            if run["status"] == status {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("run {id} never became {status}: {}", self.run(id).await);
    }
}

fn inputs(release_id: &str, sha: &str) -> Value {
    json!({"baton_release_id": release_id, "baton_sha": sha})
}

#[tokio::test]
async fn a_dispatch_answers_with_its_run_which_completes_as_its_script_did() {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = start(dir.path());
    let body = json!({"ref": "main", "inputs": inputs("rel-1", "0123456789abcdef"), "return_run_details": true});
    let (status, dispatched) = stand_in.dispatch("release.yml", body).await;
    assert_eq!(status, StatusCode::OK, "{dispatched}");
    let run_url = format!("{}/repos/acme/web/actions/runs/1", stand_in.url);
    let html_url = format!("{}/acme/web/actions/runs/1", stand_in.url);
    assert_eq!(dispatched, json!({"workflow_run_id": 1, "run_url": run_url, "html_url": html_url}));

    let run = stand_in.run_when(1, "completed").await;
    assert_eq!(
        (&run["conclusion"], &run["head_sha"], &run["head_branch"]),
        (&json!("success"), &json!("0123456789abcdef"), &json!("main"))
    );
    assert_eq!((&run["id"], &run["html_url"], &run["display_title"]), (&json!(1), &json!(html_url), &json!("rel-1")));
    let given = std::fs::read_to_string(dir.path().join("given")).unwrap();
    assert_eq!(given.trim(), "rel-1|0123456789abcdef|main|0123456789abcdef|no token", "inputs reach the script; the token does not");
    // The run's page is public, as GitHub's is for a public repository.
    let (status, page) = stand_in.call(Method::GET, &html_url, None, None).await;
    assert_eq!((status, &page["id"]), (StatusCode::OK, &json!(1)));

    let (status, answer) = stand_in.dispatch("fails.yml", json!({"ref": "main", "inputs": inputs("rel-2", "abc")})).await;
    assert_eq!((status, answer), (StatusCode::NO_CONTENT, Value::Null), "without return_run_details GitHub answers 204");
    assert_eq!(stand_in.run_when(2, "completed").await["conclusion"], "failure");
}

#[tokio::test]
async fn a_running_run_is_cancelled_once() {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = start(dir.path());
    let body = json!({"ref": "main", "inputs": inputs("rel-1", "abc"), "return_run_details": true});
    assert_eq!(stand_in.dispatch("held.yml", body).await.0, StatusCode::OK);
    assert_eq!(stand_in.run_when(1, "in_progress").await["conclusion"], Value::Null);
    let cancel = "/repos/acme/web/actions/runs/1/cancel";
    assert_eq!(stand_in.call(Method::POST, cancel, Some(TOKEN), None).await.0, StatusCode::ACCEPTED);
    assert_eq!(stand_in.run_when(1, "completed").await["conclusion"], "cancelled");
    let (status, again) = stand_in.call(Method::POST, cancel, Some(TOKEN), None).await;
    assert_eq!((status, &again["message"]), (StatusCode::CONFLICT, &json!("Cannot cancel a workflow run that is completed.")));
}

#[tokio::test]
async fn refusals_are_githubs() {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = start(dir.path());
    let body = json!({"ref": "main", "inputs": inputs("rel-1", "abc"), "return_run_details": true});

    let path = "/repos/acme/web/actions/workflows/release.yml/dispatches";
    for token in [None, Some("wrong-token")] {
        let (status, refused) = stand_in.call(Method::POST, path, token, Some(body.clone())).await;
        assert_eq!((status, &refused["message"]), (StatusCode::UNAUTHORIZED, &json!("Bad credentials")), "{token:?}");
    }
    let other_repository = "/repos/acme/other/actions/workflows/release.yml/dispatches";
    assert_eq!(stand_in.call(Method::POST, other_repository, Some(TOKEN), Some(body.clone())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(stand_in.dispatch("unknown.yml", body.clone()).await.0, StatusCode::NOT_FOUND);

    let (status, refused) = stand_in.dispatch("release.yml", json!({"ref": "main", "inputs": {"deploy_env": "eu"}})).await;
    assert_eq!((status, &refused["message"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("Unexpected inputs provided: [\"deploy_env\"]")));
    let (status, refused) = stand_in.dispatch("release.yml", json!({"inputs": inputs("rel-1", "abc")})).await;
    assert_eq!((status, &refused["message"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("Invalid request.\n\n\"ref\" wasn't supplied.")));
    assert_eq!(
        stand_in.call(Method::GET, "/repos/acme/web/actions/runs/1", Some(TOKEN), None).await.0,
        StatusCode::NOT_FOUND,
        "nothing ran"
    );
}

#[test]
fn it_exits_when_its_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut stand_in = start(dir.path());
    drop(stand_in.child.stdin.take());
    assert!(stand_in.child.wait().unwrap().success());
}

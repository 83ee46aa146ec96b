//! Provider events on the stack: a release whose waves deploy through the `webhook` deployer
//! parks on its rollouts' events (`events.wait`), and the provider-events function binary,
//! whose receivers it built from the catalog table at its cold start (the `webhook` block's
//! `env:` secret), resumes it: the first wave by the endpoint's signed callback to the callback URL it was
//! given (`/webhook/<release>/<target>` under the function URL; after an unsigned and a forged one are refused and resume nothing), the second
//! by an EventBridge event, the third by GitHub's `workflow_run` through the github-webhook
//! function's URL. A wave's own EventBridge source (ECS) and a GitHub-built wave are not this
//! test's: the test parks the second wave's task token under a CodeBuild build's key and the
//! third's under a GitHub Actions run's, as poll-build parks a build's, and each function answers
//! it on that build's event. Every call the two functions made is within their IAM policies, and
//! their policies grant nothing the run did not use or the template does not explain.

use super::stack::{every_used_grant_is_needed, repo, signal, stack_with};
use aws_sdk_dynamodb::types::AttributeValue;
use baton_asl::ExecutionStatus;
use baton_aws::DynamoStore;
use baton_domain::ports::WaitRegistry;
use baton_domain::release::ReleaseStatus;
use baton_domain::waits::{Parked, WaitKey, WaitKind};
use baton_local_stack::function_url::UrlRequest;
use baton_local_stack::{LocalStack, iam};
use baton_providers::{CALLBACK_SIGNATURE_HEADER, callback_signature};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SERVICE: &str = "evented-web";
const SECRET: &str = "local-stack-webhook-secret";
const FUNCTION: &str = "ProviderEventsFunction";
const GITHUB_FUNCTION: &str = "GitHubWebhookFunction";
const GITHUB_SECRET: &str = "local-stack-github-secret";

/// The deploy endpoint: each target's run is `<wave>-<target>`, running until the test finishes it.
#[derive(Clone, Default)]
struct Runs {
    finished: Arc<Mutex<BTreeSet<String>>>,
}

impl Runs {
    fn finish(&self, id: &str) {
        self.finished.lock().unwrap().insert(id.to_owned());
    }
}

impl Respond for Runs {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.method.as_str() == "POST" {
            let call: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let id = format!("{}-{}", call["wave"].as_str().unwrap_or_default(), call["target"].as_str().unwrap_or_default());
            return ResponseTemplate::new(202).set_body_json(json!({"status_url": format!("/runs/{id}"), "id": id}));
        }
        let id = request.url.path().trim_start_matches("/runs/");
        let state = if self.finished.lock().unwrap().contains(id) { "succeeded" } else { "running" };
        ResponseTemplate::new(200).set_body_json(json!({"state": state}))
    }
}

fn catalog(dir: &Path, deployer: &str) -> PathBuf {
    let scripts = dir.join("svc");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::copy(repo("examples/services/common/build.sh"), scripts.join("build.sh")).unwrap();
    let entry = format!(
        r#"schema-version: v2.2
dd-service: {SERVICE}
team: web-platform
extensions:
  baton:
    environment: production
    release-branch: main
    events: {{wait: true, safety-net: 5m}}
    build: {{provider: command, command: [sh, build.sh], working-dir: svc, timeout: 2m}}
    deploy:
      provider: webhook
      url: {deployer}/deploy
      secret: env:BATON_TEST_WEBHOOK_SECRET
      waves:
        - name: first
          targets: [a]
          bake: 5s
        - name: second
          targets: [b]
          bake: 5s
        - name: third
          targets: [c]
          bake: 5s
    health:
      interval: 2s
      gates:
        - provider: command
          command: ["true"]
          timeout: 30s
"#
    );
    let path = dir.join(format!("{SERVICE}.yaml"));
    std::fs::write(&path, entry).unwrap();
    path
}

/// The releases parked on `key` in the stack's release table, read without taking them.
async fn parked_on(stack: &LocalStack, key: &WaitKey) -> Vec<String> {
    let config = baton_local_stack::sdk_config().await.unwrap();
    let table = stack.template().output("ReleaseTableName").unwrap();
    let found = aws_sdk_dynamodb::Client::new(&config)
        .query()
        .table_name(table)
        .key_condition_expression("PK = :key")
        .expression_attribute_values(":key", AttributeValue::S(format!("WAIT#{key}")))
        .send()
        .await
        .unwrap();
    found.items().iter().filter_map(|item| item.get("SK").and_then(|sk| sk.as_s().ok()).cloned()).collect()
}

/// Waits until a release is parked on `key`.
async fn until_parked(stack: &LocalStack, key: &WaitKey) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while parked_on(stack, key).await.is_empty() {
        assert!(Instant::now() < deadline, "no release parked on {key}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The path of the callback URL the deploy request for `target` carried, once it has been sent.
async fn callback_path(deployer: &MockServer, target: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let requests = deployer.received_requests().await.unwrap_or_default();
        let call = requests.iter().filter(|r| r.method.as_str() == "POST").find_map(|r| {
            let call: Value = serde_json::from_slice(&r.body).ok()?;
            (call["target"] == target).then(|| call["callback_url"].as_str().map(str::to_owned)).flatten()
        });
        if let Some(url) = call {
            return url[url.find("/webhook/").unwrap_or_else(|| panic!("a webhook callback URL: {url}"))..].to_owned();
        }
        assert!(Instant::now() < deadline, "no deploy request for {target}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The key a rollout reported at `path` (`/webhook/<release>/<target>`) as run `id` parks on.
fn key_at(path: &str, id: &str) -> WaitKey {
    WaitKey::new(WaitKind::Rollout, "webhook", format!("{}/{id}", path.trim_start_matches("/webhook/")))
}

/// The endpoint's callback to `path` for run `id`, signed with `secret` (none: unsigned).
fn callback(path: &str, id: &str, state: &str, secret: Option<&str>) -> UrlRequest {
    let body = json!({"id": id, "state": state}).to_string();
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(secret) = secret {
        let signature = callback_signature(secret.as_bytes(), chrono::Utc::now().timestamp(), path, body.as_bytes());
        headers.push((CALLBACK_SIGNATURE_HEADER.to_owned(), signature));
    }
    UrlRequest { method: "POST".into(), path: path.into(), headers, body: body.into_bytes() }
}

/// CodeBuild's "Build State Change" for `build` (`project:uuid`), as EventBridge invokes the function with it.
fn build_succeeded(build: &str) -> Value {
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(repo("events/provider-events-codebuild.json")).unwrap()).unwrap();
    let arn = format!("arn:aws:codebuild:us-east-1:000000000000:build/{build}");
    event["id"] = uuid::Uuid::new_v4().to_string().into();
    event["time"] = chrono::Utc::now().to_rfc3339().into();
    event["resources"] = json!([arn]);
    event["detail"]["build-id"] = arn.into();
    event
}

/// GitHub's signed `workflow_run` delivery: run `run` completed with `success`.
fn workflow_run_succeeded(run: u64) -> UrlRequest {
    let body = json!({
        "action": "completed",
        "workflow_run": {
            "id": run, "status": "completed", "conclusion": "success",
            "html_url": format!("https://github.com/acme/evented-web/actions/runs/{run}"),
            "updated_at": chrono::Utc::now().to_rfc3339(),
        },
        "repository": {"full_name": "acme/evented-web"}
    })
    .to_string();
    let signature = baton_domain::signing::hmac_sha256_hex(GITHUB_SECRET.as_bytes(), &[body.as_bytes()]);
    let headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-GitHub-Event".to_owned(), "workflow_run".to_owned()),
        ("X-GitHub-Delivery".to_owned(), uuid::Uuid::new_v4().to_string()),
        ("X-Hub-Signature-256".to_owned(), format!("sha256={signature}")),
    ];
    UrlRequest { method: "POST".into(), path: "/".into(), headers, body: body.into_bytes() }
}

/// Takes the waits parked on `from` and parks them again on `to`: the release's token, waiting
/// for a build's event instead of its rollout's.
async fn repark(stack: &LocalStack, store: &DynamoStore, from: &WaitKey, to: WaitKey) {
    until_parked(stack, from).await;
    let taken: Vec<Parked> = store.take(from, chrono::Utc::now()).await.unwrap();
    assert_eq!(taken.len(), 1, "one release parked on {from}");
    for wait in &taken {
        store.park(&Parked { key: to.clone(), ..wait.clone() }).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_door_resumes_the_parked_release_within_its_function_s_iam_policy() {
    let deployer = MockServer::start().await;
    let runs = Runs::default();
    Mock::given(wiremock::matchers::any()).respond_with(runs.clone()).mount(&deployer).await;
    let state = tempfile::tempdir().unwrap();
    let catalog = catalog(state.path(), &deployer.uri());
    let env =
        vec![("BATON_TEST_WEBHOOK_SECRET".to_owned(), SECRET.to_owned()), ("BATON_WEBHOOK_SECRET".to_owned(), GITHUB_SECRET.to_owned())];
    let stack = stack_with(state.path(), catalog, BTreeMap::new(), env).await;
    let store: DynamoStore = stack.release_store().unwrap();
    let execution = stack.start(SERVICE, signal(SERVICE));

    let first_path = callback_path(&deployer, "a").await;
    let first = key_at(&first_path, "first-a");
    until_parked(&stack, &first).await;
    let refusals =
        [callback(&first_path, "first-a", "succeeded", None), callback(&first_path, "first-a", "succeeded", Some("not the secret"))];
    for refused in refusals {
        let answer = stack.call_function_url(FUNCTION, &refused).await.unwrap();
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    assert_eq!(parked_on(&stack, &first).await.len(), 1, "a refused callback resumes nothing");

    runs.finish("first-a");
    let answer = stack.call_function_url(FUNCTION, &callback(&first_path, "first-a", "succeeded", Some(SECRET))).await.unwrap();
    assert_eq!((answer.status, serde_json::from_str::<Value>(&answer.body).unwrap()), (202, json!({"resumed": 1, "ignored": 0})));

    let second = key_at(&callback_path(&deployer, "b").await, "second-b");
    let build = format!("{SERVICE}:{}", uuid::Uuid::new_v4());
    repark(&stack, &store, &second, WaitKey::new(WaitKind::Build, "codebuild", build.as_str())).await;
    runs.finish("second-b");
    let function = stack.functions().find(|f| f.spec().logical_id == FUNCTION).unwrap();
    let answer = function.invoke(&function.spec().arn, &build_succeeded(&build)).await.unwrap();
    assert_eq!(answer, json!({"resumed": 1, "ignored": 0}));

    let third = key_at(&callback_path(&deployer, "c").await, "third-c");
    let run = 7_700_000_000 + u64::from(std::process::id());
    repark(&stack, &store, &third, WaitKey::new(WaitKind::Build, "github-actions", run.to_string())).await;
    runs.finish("third-c");
    let answer = stack.call_function_url(GITHUB_FUNCTION, &workflow_run_succeeded(run)).await.unwrap();
    assert_eq!((answer.status, serde_json::from_str::<Value>(&answer.body).unwrap()), (202, json!({"resumed": 1, "ignored": 0})));

    let outcome = execution.outcome().await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    let release = stack.release(SERVICE, &outcome).await.unwrap().expect("the release is in the release table");
    assert_eq!(release.status, ReleaseStatus::Succeeded, "{:?}", release.failure);

    // deploy-wave told the endpoint where to report: under the stack's provider-events URL, the
    // release and the target.
    let requests = deployer.received_requests().await.unwrap();
    let deploys: Vec<Value> =
        requests.iter().filter(|r| r.method.as_str() == "POST").map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert_eq!(deploys.len(), 3, "{deploys:#?}");
    let url = stack.template().attribute("ProviderEventsFunctionUrl", "FunctionUrl").unwrap();
    let told = |target: &str| format!("{}/webhook/{}/{target}", url.trim_end_matches('/'), release.id);
    assert!(deploys.iter().all(|d| d["callback_url"] == told(d["target"].as_str().unwrap()).as_str()), "{deploys:#?}");

    let reports = stack.iam_reports().unwrap();
    let text = iam::render(&reports);
    eprintln!("IAM check:\n{text}");
    let events = reports.get(FUNCTION).unwrap_or_else(|| panic!("the provider-events function recorded nothing:\n{text}"));
    let operations = stack.operations().unwrap();
    let actions: BTreeSet<&str> = operations[FUNCTION].iter().map(|op| op.action.as_str()).collect();
    assert_eq!(
        actions,
        BTreeSet::from(["dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan", "states:SendTaskSuccess"]),
        "the catalog read, the waits taken, the tokens answered:\n{text}"
    );
    assert!(events.unused.is_empty(), "grants no run used and no comment explains:\n{text}");
    let github: BTreeSet<&str> = operations[GITHUB_FUNCTION].iter().map(|op| op.action.as_str()).collect();
    assert_eq!(
        github,
        BTreeSet::from(["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query", "states:SendTaskSuccess"]),
        "the delivery claimed, the wait taken, the token answered:\n{text}"
    );
    assert!(reports.values().all(|r| r.denied.is_empty()), "operations the template's policies do not allow:\n{text}");
    every_used_grant_is_needed(&stack);
    stack.shutdown();
}

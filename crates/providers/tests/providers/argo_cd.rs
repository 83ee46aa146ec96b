//! Contract tests of the Argo CD deployer against a local server that answers with the shapes
//! of Argo CD's API (`assets/swagger.json`: `v1alpha1Application`, grpc-gateway errors).

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::error::chain_text;
use baton_domain::ports::{DeployProgress, Deployer, ProviderError, RunHandle};
use baton_providers::ArgoCdDeploy;
use baton_providers::ArgoCdDeployer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{
    ManualClock, SHA, Secrets, answer, answer_once, assert_secret_free, client, deploy_request, limited_then, own_limits, received,
    travelled, window_is_obeyed,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Shaped like a JWT: Argo CD ignores bearer tokens that are not.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiYXRvbiJ9.TOPSECRET_signature";
const TOKEN_REF: &str = "ARGOCD_TOKEN";
const APP: &str = "/api/v1/applications/web-canary";
const SYNC: &str = "/api/v1/applications/web-canary/sync";
const OLD: &str = "fedcba9876543210fedcba9876543210fedcba98";
/// When the operation the application shows before the sync started.
const BEFORE: &str = "2026-01-01T11:00:00Z";
const OURS: &str = "2026-01-01T12:00:05Z";

fn deployer_with(server: &MockServer, revision: &str) -> ArgoCdDeployer {
    deployer_on(server, revision, &ManualClock::new())
}

/// The deployer, its rate limits on `clock`.
fn deployer_on(server: &MockServer, revision: &str, clock: &std::sync::Arc<ManualClock>) -> ArgoCdDeployer {
    let spec =
        ArgoCdDeploy { server: server.uri(), token: SecretRef::Env(TOKEN_REF.into()), revision: revision.into(), events_secret: None };
    ArgoCdDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[(TOKEN_REF, TOKEN)]), client())
        .unwrap()
        .with_rate_limits(own_limits(clock.clone()))
}

fn deployer(server: &MockServer) -> ArgoCdDeployer {
    deployer_with(server, "{sha}")
}

/// An operation as `status.operationState` shows it: (phase, revision, startedAt).
type Op<'a> = (&'a str, &'a str, &'a str);

/// An Application as GET /api/v1/applications/{name} answers it (abridged).
fn application(sync: &str, synced_revision: &str, health: &str, operation: Option<Op<'_>>) -> Value {
    let mut app = json!({
        "metadata": { "name": "web-canary", "namespace": "argocd", "resourceVersion": "123456" },
        "spec": {
            "project": "web",
            "source": { "repoURL": "https://github.com/acme/web-deploy.git", "path": "overlays/canary", "targetRevision": "main" },
            "destination": { "server": "https://kubernetes.default.svc", "namespace": "web" },
        },
        "status": {
            "sync": {
                "status": sync,
                "revision": synced_revision,
                "comparedTo": { "source": { "repoURL": "https://github.com/acme/web-deploy.git", "targetRevision": "main" } },
            },
            "health": { "status": health },
            "reconciledAt": "2026-01-01T12:00:00Z",
        },
    });
    if let Some((phase, revision, started_at)) = operation {
        let mut state = json!({
            "operation": { "sync": { "revision": revision, "prune": false }, "initiatedBy": { "username": "baton" } },
            "phase": phase,
            "message": if phase == "Failed" { "one or more objects failed to apply" } else { "" },
            "startedAt": started_at,
            "syncResult": { "revision": revision, "source": { "repoURL": "https://github.com/acme/web-deploy.git" } },
        });
        if phase != "Running" {
            state["finishedAt"] = json!("2026-01-01T12:01:00Z");
        }
        app["status"]["operationState"] = state;
    }
    app
}

/// The application before the release: synced at OLD by an earlier operation.
fn before() -> Value {
    application("Synced", OLD, "Healthy", Some(("Succeeded", OLD, BEFORE)))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Argo CD's error body (grpc-gateway): `{error, code, message}`.
fn argo_error(status: u16, code: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": message, "code": code, "message": message }))
}

/// A handle as `start` returns it for a sync to SHA after BEFORE's operation.
fn handle(server: &MockServer) -> RunHandle {
    RunHandle {
        provider: "argo-cd".into(),
        id: "web-canary".into(),
        url: Some(format!("{}/applications/web-canary", server.uri())),
        state: json!({ "revision": SHA, "previous_revision": OLD, "since": BEFORE }),
    }
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.get(name).map(|value| value.to_str().unwrap()).unwrap_or_default()
}

fn sync_body(requests: &[Request]) -> Value {
    let sync = requests.iter().find(|request| request.url.path().ends_with("/sync")).expect("a sync was requested");
    serde_json::from_slice(&sync.body).unwrap()
}

#[tokio::test]
async fn a_sync_is_followed_until_the_application_is_synced_and_healthy() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", APP, ok(before())).await;
    answer(&server, "POST", SYNC, ok(before())).await;
    // The old operation until ours shows, then ours through to Synced and Healthy.
    answer_once(&server, "GET", APP, ok(before())).await;
    answer_once(&server, "GET", APP, ok(application("OutOfSync", OLD, "Healthy", Some(("Running", SHA, OURS))))).await;
    answer_once(&server, "GET", APP, ok(application("Synced", SHA, "Progressing", Some(("Succeeded", SHA, OURS))))).await;
    answer(&server, "GET", APP, ok(application("Synced", SHA, "Healthy", Some(("Succeeded", SHA, OURS))))).await;
    let argo = deployer(&server);

    let handle = argo.start(&deploy_request("web-canary")).await.unwrap();
    assert_eq!((handle.provider.as_str(), handle.id.as_str()), ("argo-cd", "web-canary"));
    assert_eq!(handle.url, Some(format!("{}/applications/web-canary", server.uri())));
    assert_eq!(handle.state, json!({ "revision": SHA, "previous_revision": OLD, "since": BEFORE }));
    let handle = travelled(&handle);
    for _ in 0..3 {
        assert_eq!(argo.poll(&handle).await.unwrap(), DeployProgress::Running);
    }
    assert_eq!(argo.poll(&handle).await.unwrap(), DeployProgress::Succeeded);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 6);
    assert_eq!(sync_body(&requests), json!({ "revision": SHA, "prune": false }));
    for request in &requests {
        assert_eq!(header(request, "authorization"), format!("Bearer {TOKEN}"));
    }
}

#[tokio::test]
async fn every_state_maps_to_its_progress() {
    let running = || Ok(DeployProgress::Running);
    let failed =
        |reason: &str| Ok(DeployProgress::Failed { reason: format!("the sync of Argo CD application web-canary to {SHA} {reason}") });
    let ours = |phase| Some((phase, SHA, OURS));
    let cases: Vec<(Value, Result<DeployProgress, &str>)> = vec![
        // Another operation's outcome says nothing of ours: the previous one, or someone else's.
        (before(), running()),
        (application("Synced", OLD, "Healthy", Some(("Succeeded", "other", OURS))), running()),
        (application("Synced", OLD, "Healthy", Some(("Failed", SHA, BEFORE))), running()),
        (application("OutOfSync", OLD, "Healthy", None), running()),
        (application("OutOfSync", OLD, "Healthy", ours("Running")), running()),
        // Before our sync is applied, the health is the old revision's.
        (application("OutOfSync", OLD, "Degraded", ours("Running")), running()),
        (application("OutOfSync", OLD, "Healthy", ours("Terminating")), running()),
        (application("OutOfSync", OLD, "Healthy", ours("Failed")), failed("ended Failed: one or more objects failed to apply")),
        (application("OutOfSync", OLD, "Healthy", ours("Error")), failed("ended Error: no message")),
        (application("OutOfSync", SHA, "Healthy", ours("Succeeded")), running()),
        (application("Synced", SHA, "Progressing", ours("Succeeded")), running()),
        (application("Synced", SHA, "Missing", ours("Succeeded")), running()),
        (application("Synced", SHA, "Suspended", ours("Succeeded")), running()),
        (application("Synced", SHA, "Healthy", ours("Succeeded")), Ok(DeployProgress::Succeeded)),
        (application("Unknown", SHA, "Unknown", ours("Succeeded")), running()),
        (
            {
                let mut degraded = application("Synced", SHA, "Degraded", ours("Succeeded"));
                degraded["status"]["health"]["message"] = json!("Deployment \"web\" exceeded its progress deadline");
                degraded
            },
            failed("was applied, and the application is Degraded: Deployment \"web\" exceeded its progress deadline"),
        ),
        (
            {
                let mut broken = application("Synced", SHA, "Healthy", ours("Succeeded"));
                broken["status"]["health"] = json!({});
                broken
            },
            Err("field `status.health`: missing field `status`"),
        ),
    ];
    for (app, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "GET", APP, ok(app.clone())).await;
        let progress = deployer(&server).poll(&handle(&server)).await;
        match (&progress, expected) {
            (Ok(progress), Ok(expected)) => assert_eq!(progress, &expected, "{}", app["status"]),
            (Err(error @ ProviderError::Unavailable { .. }), Err(expected)) => {
                let text = chain_text(error);
                assert!(text.contains(expected), "{text}")
            }
            _ => panic!("{}: {progress:?}", app["status"]),
        }
    }
}

#[tokio::test]
async fn a_sync_window_refusal_is_rejected_and_says_when_the_window_is() {
    let server = MockServer::start().await;
    answer(&server, "GET", APP, ok(before())).await;
    answer(&server, "POST", SYNC, argo_error(403, 7, "Cannot sync: Blocked by sync window")).await;
    let windows = json!({
        "assignedWindows": [{ "kind": "deny", "schedule": "0 22 * * *", "duration": "8h", "applications": ["*"], "manualSync": false }],
        "activeWindows": [{ "kind": "deny", "schedule": "0 22 * * *", "duration": "8h", "applications": ["*"], "manualSync": false }],
        "canSync": false,
    });
    answer(&server, "GET", &format!("{APP}/syncwindows"), ok(windows)).await;
    let error = deployer(&server).start(&deploy_request("web-canary")).await.unwrap_err();
    let ProviderError::Rejected { message: text, .. } = &error else { panic!("{error}") };
    assert!(text.starts_with(&format!("syncing Argo CD application web-canary on {}/ to {SHA}", server.uri())), "{text}");
    assert!(
        text.contains("a sync window of the application's project blocks syncs now (HTTP 403: Cannot sync: Blocked by sync window)")
            && text.contains("active windows deny '0 22 * * *' for 8h")
            && text.contains("nothing was changed"),
        "{text}"
    );
}

#[tokio::test]
async fn another_operation_in_progress_is_waited_out_and_then_refused() {
    // The other operation ends while Baton waits: the sync goes through.
    let server = MockServer::start().await;
    answer(&server, "GET", APP, ok(application("OutOfSync", OLD, "Healthy", Some(("Running", "other", BEFORE))))).await;
    answer_once(&server, "POST", SYNC, argo_error(400, 9, "another operation is already in progress")).await;
    answer(&server, "POST", SYNC, ok(before())).await;
    let handle = deployer(&server).with_operation_wait(Duration::from_millis(400)).start(&deploy_request("web-canary")).await.unwrap();
    assert_eq!(handle.state["revision"], json!(SHA));

    // It does not end in time: the target is refused, nothing having changed.
    let server = MockServer::start().await;
    answer(&server, "GET", APP, ok(application("OutOfSync", OLD, "Healthy", Some(("Running", "other", BEFORE))))).await;
    answer(&server, "POST", SYNC, argo_error(400, 9, "another operation is already in progress")).await;
    let started = Instant::now();
    let error = deployer(&server).with_operation_wait(Duration::from_millis(400)).start(&deploy_request("web-canary")).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("another operation was still in progress") && m.contains("nothing was changed")),
        "{error}"
    );
}

#[tokio::test]
async fn a_sync_answer_that_is_lost_or_unreadable_refuses_the_target_unless_the_sync_started() {
    let slow = ok(before()).set_delay(Duration::from_secs(2));
    let garbled = ResponseTemplate::new(200).set_body_string("<html>gateway</html>");
    for answer_to_sync in [slow, garbled] {
        // The application shows no sync to our revision afterwards: nothing changed.
        let server = MockServer::start().await;
        answer(&server, "GET", APP, ok(before())).await;
        Mock::given(method("POST")).and(path(SYNC)).respond_with(answer_to_sync.clone()).expect(1).mount(&server).await;
        let argo = deployer(&server).with_request_timeout(Duration::from_millis(300)).with_lost_sync_wait(Duration::from_secs(1));
        let error = argo.start(&deploy_request("web-canary")).await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains(&format!("showed no sync to {SHA} in the 1 s after, so nothing was changed"))),
            "{error}"
        );
        assert!(received(&server, "GET", APP).await.len() >= 3, "looked for the sync more than once");

        // It shows ours: the sync is followed.
        let server = MockServer::start().await;
        answer_once(&server, "GET", APP, ok(before())).await;
        answer(&server, "GET", APP, ok(application("OutOfSync", OLD, "Healthy", Some(("Running", SHA, OURS))))).await;
        Mock::given(method("POST")).and(path(SYNC)).respond_with(answer_to_sync.clone()).expect(1).mount(&server).await;
        let argo = deployer(&server).with_request_timeout(Duration::from_millis(300));
        let handle = argo.start(&deploy_request("web-canary")).await.unwrap();
        assert_eq!(handle.state["revision"], json!(SHA));

        // It shows ours only on a later read (the server was still at work on the sync when
        // first asked): changed, so followed, not refused as unchanged.
        let server = MockServer::start().await;
        Mock::given(method("GET")).and(path(APP)).respond_with(ok(before())).up_to_n_times(2).mount(&server).await;
        answer(&server, "GET", APP, ok(application("OutOfSync", OLD, "Healthy", Some(("Running", SHA, OURS))))).await;
        Mock::given(method("POST")).and(path(SYNC)).respond_with(answer_to_sync).expect(1).mount(&server).await;
        let argo = deployer(&server).with_request_timeout(Duration::from_millis(300));
        let handle = argo.start(&deploy_request("web-canary")).await.expect("a sync shown on a later read is the target changed");
        assert_eq!(handle.state["revision"], json!(SHA));
        assert_eq!(received(&server, "GET", APP).await.len(), 3, "the read before, the read that missed it, the one that saw it");
    }
}

#[tokio::test]
async fn an_unknown_commit_is_never_synced() {
    let server = MockServer::start().await;
    let mut unknown = deploy_request("web-canary");
    unknown.artifact.sha = baton_providers::UNKNOWN_SHA.into();
    let argo = deployer(&server);
    assert!(argo.takes_revision());
    let error = argo.start(&unknown).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("--sha")), "{error}");
    // Nor put back by a rollback.
    let mut rollback = unknown.clone();
    rollback.rollback = true;
    let error = argo.start(&rollback).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("nothing to go back to")), "{error}");
    assert!(server.received_requests().await.unwrap().is_empty(), "a request was sent");
    // A revision without the commit (a branch) deploys whatever the build.
    assert!(!deployer_with(&server, "{branch}").takes_revision());
}

#[tokio::test]
async fn a_retried_start_adopts_its_own_running_sync() {
    let server = MockServer::start().await;
    // The first start's sync runs; its answer was lost, so the state machine starts again.
    answer_once(&server, "GET", APP, ok(application("OutOfSync", OLD, "Healthy", Some(("Running", SHA, OURS))))).await;
    answer(&server, "GET", APP, ok(application("Synced", SHA, "Healthy", Some(("Succeeded", SHA, OURS))))).await;
    let argo = deployer(&server);
    let handle = argo.start(&deploy_request("web-canary")).await.unwrap();
    assert_eq!(argo.poll(&handle).await.unwrap(), DeployProgress::Succeeded);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|request| request.method.as_str() == "GET"), "synced twice");
}

#[tokio::test]
async fn a_rollback_syncs_back_to_what_the_forward_run_replaced() {
    let forward = |state: Value| RunHandle { provider: "argo-cd".into(), id: "web-canary".into(), url: None, state };
    let previous = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let cases = [
        // What the forward run saw synced wins over the previous artifact.
        (Some(forward(json!({ "revision": SHA, "previous_revision": OLD }))), previous, OLD),
        // A forward run that saw nothing synced, or never started: the previous artifact's commit.
        (Some(forward(json!({ "revision": SHA }))), previous, previous),
        (None, previous, previous),
    ];
    for (undoes, previous_sha, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "GET", APP, ok(application("Synced", SHA, "Healthy", Some(("Succeeded", SHA, OURS))))).await;
        answer(&server, "POST", SYNC, ok(before())).await;
        let mut rollback = deploy_request("web-canary");
        rollback.rollback = true;
        rollback.artifact.sha = previous_sha.into();
        rollback.undoes = undoes;
        let handle = deployer(&server).start(&rollback).await.unwrap();
        assert_eq!(handle.state["revision"], json!(expected));
        assert_eq!(sync_body(&server.received_requests().await.unwrap())["revision"], json!(expected));
    }

    let server = MockServer::start().await;
    let mut nothing_before = deploy_request("web-canary");
    nothing_before.rollback = true;
    nothing_before.artifact =
        baton_domain::release::Artifact { reference: String::new(), sha: String::new(), branch: "main".into(), build_url: None };
    let error = deployer(&server).start(&nothing_before).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("rolling back Argo CD application web-canary: nothing to go back to")),
        "{error}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn revisions_are_rendered_and_namespaced_applications_addressed() {
    let server = MockServer::start().await;
    let app = "/api/v1/applications/web";
    answer(&server, "GET", app, ok(before())).await;
    answer(&server, "POST", &format!("{app}/sync"), ok(before())).await;
    let handle = deployer_with(&server, "{branch}-{short-sha}").start(&deploy_request("team-a/web")).await.unwrap();
    assert_eq!(handle.url, Some(format!("{}/applications/team-a/web", server.uri())));

    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|request| request.url.query() == Some("appNamespace=team-a")), "{requests:?}");
    assert_eq!(sync_body(&requests), json!({ "revision": "main-0123456", "prune": false, "appNamespace": "team-a" }));
}

#[tokio::test]
async fn refusals_are_rejected_naming_the_problem_without_the_token() {
    let echo = format!("invalid session: token {TOKEN} is expired");
    let cases = [
        (argo_error(401, 16, &echo), "Argo CD refused the credentials (HTTP 401): check the token env:ARGOCD_TOKEN"),
        (
            argo_error(403, 7, "permission denied: applications, get, web/web-canary"),
            "Argo CD denied it (HTTP 403): check the token env:ARGOCD_TOKEN",
        ),
        (
            argo_error(404, 5, "applications.argoproj.io \"web-canary\" not found"),
            "HTTP 404, Argo CD has no application web-canary on http://127.0.0.1",
        ),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "GET", APP, response).await;
        let error = deployer(&server).start(&deploy_request("web-canary")).await.unwrap_err();
        let ProviderError::Rejected { message: text, .. } = &error else { panic!("{error}") };
        assert!(text.contains(expected), "{text}");
        assert_secret_free(text, TOKEN);
    }
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_a_long_one_says_when() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", APP, ResponseTemplate::new(429).insert_header("retry-after", "1")).await;
    answer(&server, "GET", APP, ok(before())).await;
    let started = Instant::now();
    assert_eq!(deployer(&server).poll(&handle(&server)).await.unwrap(), DeployProgress::Running);
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());

    let server = MockServer::start().await;
    answer(&server, "GET", APP, ResponseTemplate::new(429).insert_header("retry-after", "90")).await;
    let error = deployer(&server).poll(&handle(&server)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("Argo CD is rate limiting (HTTP 429), retry after 90 s")),
        "{error}"
    );
    assert!(error.rate_limit().is_some(), "{error}");
}

#[tokio::test]
async fn rate_limit_windows_are_obeyed_to_their_end() {
    for window in [2, 20, 120] {
        let server = MockServer::start().await;
        let clock = ManualClock::new();
        let limited = ResponseTemplate::new(429).insert_header("retry-after", window.to_string().as_str());
        let times = limited_then(&server, "GET", APP, limited, ok(before())).await;
        let argo = deployer_on(&server, "{sha}", &clock);
        let handle = handle(&server);
        assert_eq!(window_is_obeyed(window, &clock, &times, || argo.poll(&handle)).await, DeployProgress::Running, "window {window}");
    }
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_the_next_poll_succeeds() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", APP, argo_error(503, 14, "connection refused by the repo server")).await;
    answer(&server, "GET", APP, ok(application("Synced", SHA, "Healthy", Some(("Succeeded", SHA, OURS))))).await;
    let argo = deployer(&server);
    let error = argo.poll(&handle(&server)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("reading Argo CD application web-canary") && m.contains("HTTP 503: connection refused by the repo server")),
        "{error}"
    );
    assert_eq!(argo.poll(&handle(&server)).await.unwrap(), DeployProgress::Succeeded);
}

#[tokio::test]
async fn a_slow_server_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(&server, "GET", APP, ok(before()).set_delay(Duration::from_secs(3))).await;
    let argo = deployer(&server).with_request_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = argo.start(&deploy_request("web-canary")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 200 ms")), "{error}");
}

#[tokio::test]
async fn a_malformed_application_names_the_field() {
    let mut no_sync = before();
    no_sync["status"].as_object_mut().unwrap().remove("sync");
    let cases = [
        (ResponseTemplate::new(200).set_body_string("<html>argocd</html>"), "unreadable answer, the body: expected value"),
        (ok(no_sync), "unreadable answer, field `status`: missing field `sync`"),
        (ok(json!({ "metadata": {} })), "unreadable answer, the body: missing field `status`"),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "GET", APP, response).await;
        let error = deployer(&server).start(&deploy_request("web-canary")).await.unwrap_err();
        assert!(matches!(&error, ProviderError::Unavailable { .. }) && chain_text(&error).contains(expected), "{error:?}");
    }
}

#[tokio::test]
async fn the_token_never_reaches_a_handle_or_an_error() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", APP, ok(before())).await;
    answer(&server, "POST", SYNC, ok(before())).await;
    let mut failed = application("OutOfSync", OLD, "Healthy", Some(("Failed", SHA, OURS)));
    failed["status"]["operationState"]["message"] = json!(format!("git fetch failed with token {TOKEN}"));
    answer(&server, "GET", APP, ok(failed)).await;
    let argo = deployer(&server);
    let handle = argo.start(&deploy_request("web-canary")).await.unwrap();
    assert_secret_free(&serde_json::to_string(&handle).unwrap(), TOKEN);
    let DeployProgress::Failed { reason } = argo.poll(&handle).await.unwrap() else { panic!("not failed") };
    assert!(reason.contains("git fetch failed with token"), "{reason}");
    assert_secret_free(&reason, "TOPSECRET");
}

#[test]
fn bad_blocks_are_rejected_when_built() {
    let cases = [
        ("argocd.example.com", "{sha}", "server 'argocd.example.com' is not a URL"),
        (
            "https://argocd.example.com",
            "{commit}",
            "revision '{commit}' has an unknown placeholder {commit}: known ones are {sha}, {short-sha}, {branch}, {artifact}",
        ),
    ];
    for (server, revision, expected) in cases {
        let spec =
            ArgoCdDeploy { server: server.into(), token: SecretRef::Env(TOKEN_REF.into()), revision: revision.into(), events_secret: None };
        let Err(ProviderError::Rejected { message: text, .. }) = ArgoCdDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[]), client())
        else {
            panic!("{server} {revision} was accepted")
        };
        assert!(text.starts_with("catalog/web.yaml: extensions.baton.deploy: argo-cd ") && text.contains(expected), "{text}");
    }
}

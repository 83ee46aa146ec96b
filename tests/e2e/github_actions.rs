//! Whole releases whose build runs on GitHub Actions: the real definition on the embedded
//! executor, the real handlers and provider, GitHub played by a local server answering with the
//! shapes GitHub's REST API documents.

use baton_asl::{EventType, ExecutionStatus};
use baton_domain::release::{BuildStatus, ReleaseStatus};
use baton_domain::support::{CancelAsked, ask_to_cancel};
use baton_e2e::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RUN: u64 = 4242;
const RUNS: &str = "/repos/acme/checkout/actions/runs/4242";
const HTML: &str = "https://github.example.com/acme/checkout/actions/runs/4242";

fn run(status: &str, conclusion: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": RUN, "status": status, "conclusion": conclusion,
        "head_sha": "4f2a9c1e0b7d5a3c", "head_branch": "main", "html_url": HTML, "display_title": "release",
    }))
}

/// GitHub, whose run is in progress for `pending` polls and then completes with `conclusion`.
async fn github(pending: u64, conclusion: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/dispatches"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "workflow_run_id": RUN, "run_url": format!("{}{RUNS}", server.uri()), "html_url": HTML,
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(RUNS))
        .respond_with(run("in_progress", Value::Null))
        .up_to_n_times(pending)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path(RUNS)).respond_with(run("completed", json!(conclusion))).with_priority(2).mount(&server).await;
    server
}

/// A fixture building on the stand-in GitHub; `extra`: lines added to `extensions.baton`.
fn fixture(server: &MockServer, token_variable: &str, extra: &str) -> Fixture {
    let fixture = Fixture::new();
    let build = format!(
        "      provider: github-actions\n      repository: acme/checkout\n      workflow: release.yml\n      api-url: {}\n      token: env:{token_variable}\n      artifact: \"ghcr.io/acme/checkout:{{short-sha}}\"\n",
        server.uri()
    );
    fixture.write_catalog_with_build(SERVICE, extra, &build);
    // SAFETY: each test sets its own variable before any thread of it reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(token_variable, "ghp_e2e_token_value")
    };
    fixture
}

async fn requests(server: &MockServer, method_name: &str) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default().into_iter().filter(|r| r.method.as_str() == method_name).collect()
}

#[tokio::test]
async fn a_release_builds_on_github_actions_started_then_polled() {
    let server = github(3, "success").await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_OK", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);

    let release = release_of(&baton, "exec-gha").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    let artifact = release.artifact.clone().expect("the build's artifact");
    assert_eq!(artifact.reference, "ghcr.io/acme/checkout:4f2a9c1");
    assert_eq!(artifact.build_url.as_deref(), Some(HTML), "the run's link is kept for Slack and the CLI");
    assert_eq!(fixture.deployed(SERVICE, "box-1").as_deref(), Some("ghcr.io/acme/checkout:4f2a9c1"));
    assert_consistent(&baton, &release).await;

    let dispatch = &requests(&server, "POST").await[0];
    let body: Value = serde_json::from_slice(&dispatch.body).unwrap();
    assert_eq!(body["ref"], "main");
    assert_eq!(body["inputs"]["baton_release_id"], release.id.as_str(), "the run links back to the release");
    assert_eq!(body["inputs"]["baton_sha"], "4f2a9c1e");
    assert_eq!(dispatch.headers["authorization"], "Bearer ghp_e2e_token_value");
    // Started once, then polled: three answers in progress and the one that completed.
    assert_eq!(requests(&server, "GET").await.len(), 4);
}

#[tokio::test]
async fn a_failed_github_actions_run_fails_the_release_before_any_wave() {
    let server = github(1, "failure").await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_FAILING", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-fail", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    assert_eq!(outcome.error.as_deref(), Some("Baton.BuildFailed"));

    let release = release_of(&baton, "exec-gha-fail").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let failure = release.failure.clone().unwrap();
    assert!(failure.cause.contains("failure") && failure.cause.contains(HTML), "names the conclusion and the run: {}", failure.cause);
    assert!(!failure.cause.contains("ghp_e2e_token_value"));
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "nothing was deployed");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_build_past_its_build_timeout_is_cancelled_and_the_release_fails() {
    // The run never ends: the polls go on past any retry count until the build's deadline
    // (build-timeout after TriggerBuild), then CancelBuild cancels it.
    let server = github(u64::MAX, "success").await;
    Mock::given(method("POST")).and(path(format!("{RUNS}/cancel"))).respond_with(ResponseTemplate::new(202)).expect(1).mount(&server).await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_ENDLESS", "    build-timeout: 3h\n");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-endless", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    assert_eq!(outcome.error.as_deref(), Some("Baton.BuildFailed"), "{:?}", outcome.cause);

    let release = release_of(&baton, "exec-gha-endless").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let failure = release.failure.clone().unwrap();
    assert!(failure.cause.contains("build-timeout") && failure.cause.contains("still running"), "{failure:?}");
    let build = release.build.clone().expect("the build is recorded");
    assert_eq!(build.status, BuildStatus::Cancelled);
    assert_eq!(build.reason.as_deref(), Some("cancelled by Baton: the release stopped following it"));
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert!(events.iter().any(|e| e.message == format!("cancelled build {RUN}: the release stopped following it")), "{events:#?}");
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "nothing was deployed");
    assert_consistent(&baton, &release).await;
    assert_eq!(requests(&server, "POST").await.len(), 2, "dispatched once, cancelled once");
    // Three hours of (virtual) polling, a minute apart: the deadline, not a count, ended it.
    let entered = |event_type: EventType, state: &str| {
        let named = |e: &&baton_asl::HistoryEvent| e.details.as_ref().and_then(|d| d.name.as_deref()) == Some(state);
        outcome.history.iter().filter(|e| e.event_type == event_type).find(named).map(|e| e.timestamp).unwrap()
    };
    let waited = entered(EventType::PassStateEntered, "BuildTimedOut") - entered(EventType::TaskStateEntered, "TriggerBuild");
    assert!(waited >= chrono::TimeDelta::hours(3) && waited < chrono::TimeDelta::minutes(185), "{waited:?}");
    let polls = requests(&server, "GET").await.iter().filter(|r| r.url.path().starts_with(RUNS)).count();
    assert!(polls > 150, "{polls} polls: more than any retry count allowed");
}

#[tokio::test]
async fn a_dispatch_that_fails_after_github_acted_yields_one_run_that_the_release_follows() {
    let server = MockServer::start().await;
    // GitHub started the run, then the answer was lost in a 502 from the proxy in front of it.
    Mock::given(method("POST"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/dispatches"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .expect(1)
        .mount(&server)
        .await;
    let listed = json!({ "total_count": 1, "workflow_runs": [{
        "id": RUN, "status": "queued", "conclusion": null,
        "head_sha": "4f2a9c1e0b7d5a3c", "head_branch": "main", "html_url": HTML, "display_title": "release",
    }]});
    Mock::given(method("GET"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/runs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listed))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path(RUNS)).respond_with(run("completed", json!("success"))).mount(&server).await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_LOST_DISPATCH", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-lost", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);

    let release = release_of(&baton, "exec-gha-lost").await;
    let build = release.build.clone().expect("the build is recorded");
    assert_eq!((build.run_id.as_str(), build.status, build.attempts), ("4242", BuildStatus::Succeeded, 1), "{build:#?}");
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let said: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert!(said.iter().any(|m| m.contains("got no answer; the retry looks for the build first")), "{said:#?}");
    assert!(
        said.iter().any(|m| m.starts_with("found the build an unanswered request started: github-actions build 4242 started")),
        "{said:#?}"
    );
    assert_eq!(fixture.deployed(SERVICE, "box-1").as_deref(), Some("ghcr.io/acme/checkout:4f2a9c1"));
    assert_eq!(requests(&server, "POST").await.len(), 1, "dispatched once");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_release_cancelled_while_it_builds_cancels_its_build_and_fails() {
    let server = github(u64::MAX, "success").await;
    Mock::given(method("POST")).and(path(format!("{RUNS}/cancel"))).respond_with(ResponseTemplate::new(202)).expect(1).mount(&server).await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_CANCELLED", "");
    let baton = fixture.baton();
    let store = baton.ports().store.clone();
    // A person asks for a stop once the build runs (what `baton cancel --remote` does on AWS).
    let cancel = async {
        loop {
            let newest = store.list_releases(SERVICE, None, 1).await.unwrap().into_iter().next();
            if let Some(release) = newest.filter(|r| r.build.as_ref().is_some_and(|b| b.status == BuildStatus::Running)) {
                let asked = ask_to_cancel(store.as_ref(), &release.id, "ann", "wrong commit", chrono::Utc::now()).await.unwrap();
                assert!(matches!(asked, CancelAsked::Asked(_)), "{asked:?}");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let (outcome, ()) = tokio::join!(baton.run("exec-gha-cancelled", cli_input("cli-1")), cancel);
    assert_status(&outcome, ExecutionStatus::Failed);

    let release = release_of(&baton, "exec-gha-cancelled").await;
    assert_eq!(release.status, ReleaseStatus::Failed, "nothing was deployed, so nothing rolls back");
    let failure = release.failure.clone().unwrap();
    assert_eq!(failure.error, "Baton.Interrupted");
    assert!(failure.cause.contains("ann cancelled the release: wrong commit"), "{failure:?}");
    assert_eq!(release.build.clone().expect("the build is recorded").status, BuildStatus::Cancelled);
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "nothing was deployed");
    assert_consistent(&baton, &release).await;
    assert_eq!(requests(&server, "POST").await.len(), 2, "dispatched once, cancelled once");
}

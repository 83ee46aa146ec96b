//! Whole releases whose build runs on GitHub Actions: the real definition on the embedded
//! executor, the real handlers and provider, GitHub played by a local server answering with the
//! shapes GitHub's REST API documents.

use baton_asl::{EventType, ExecutionStatus};
use baton_domain::release::{BuildStatus, EventKind, ReleaseStatus, RunHandle, Stage};
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
    write_service(&fixture, server, SERVICE, token_variable, extra);
    fixture
}

/// `service`'s catalog entry, built by the workflow `release.yml` of `acme/<service>` on the
/// stand-in GitHub with the token in `token_variable` (set here).
fn write_service(fixture: &Fixture, server: &MockServer, service: &str, token_variable: &str, extra: &str) {
    let build = format!(
        "      provider: github-actions\n      repository: acme/{service}\n      workflow: release.yml\n      api-url: {}\n      token: env:{token_variable}\n      artifact: \"ghcr.io/acme/{service}:{{short-sha}}\"\n",
        server.uri()
    );
    fixture.write_catalog_with_build(service, extra, &build);
    // SAFETY: each test sets its own variable before any thread of it reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(token_variable, "ghp_e2e_token_value")
    };
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
    let gets = requests(&server, "GET").await;
    let paths: Vec<&str> = gets.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths.iter().filter(|path| path.contains("/actions/runs/")).count(), 4, "{paths:?}");
    // And, as the first deployment closed, its own commit was read for its lead time.
    assert_eq!(paths.iter().filter(|path| **path == "/repos/acme/checkout/commits/4f2a9c1e").count(), 1, "{paths:?}");
}

#[tokio::test]
async fn a_failed_github_actions_run_fails_the_release_before_any_wave() {
    let server = github(1, "failure").await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_FAILING", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-fail", cli_input("cli-1")).await;
    assert_outcome(&outcome, "failed", "Baton.BuildFailed");

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
    assert_outcome(&outcome, "failed", "Baton.BuildFailed");

    let release = release_of(&baton, "exec-gha-endless").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let failure = release.failure.clone().unwrap();
    assert!(failure.cause.contains("build-timeout") && failure.cause.contains("still running"), "{failure:?}");
    let build = release.build.clone().expect("the build is recorded");
    assert_eq!(build.status, BuildStatus::Cancelled);
    assert_eq!(build.reason.as_deref(), Some("cancelled by Baton: the release stopped following it"));
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert!(events.iter().any(|e| e.message == format!("cancelled build {RUN}: the release stopped following it")), "{events:#?}");
    // A deadline is no spent retry budget: no give-up is told, the failure names the deadline.
    assert!(!events.iter().any(|e| e.kind == EventKind::GaveUp), "{events:#?}");
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

/// GitHub Enterprise Server without `return_run_details`: the dispatch answers 204, no run id;
/// the run is listed from the second poll on, and reads as `run_answer`.
async fn github_answering_204(run_answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/dispatches"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let listing = |runs: Vec<Value>| ResponseTemplate::new(200).set_body_json(json!({ "total_count": runs.len(), "workflow_runs": runs }));
    let listed_run = json!({
        "id": RUN, "status": "queued", "conclusion": null, "head_sha": "4f2a9c1e0b7d5a3c", "head_branch": "main",
        "html_url": HTML, "display_title": "release",
    });
    let runs = "/repos/acme/checkout/actions/workflows/release.yml/runs";
    // Not listed at the dispatch nor at the first poll; listed from the second.
    Mock::given(method("GET")).and(path(runs)).respond_with(listing(vec![])).up_to_n_times(2).with_priority(1).mount(&server).await;
    Mock::given(method("GET")).and(path(runs)).respond_with(listing(vec![listed_run])).with_priority(2).mount(&server).await;
    Mock::given(method("GET")).and(path(RUNS)).respond_with(run_answer).mount(&server).await;
    server
}

#[tokio::test]
async fn a_dispatch_answered_without_its_run_is_requested_and_started_only_once_the_run_shows() {
    let server = github_answering_204(run("completed", json!("success"))).await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_204", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-204", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);

    let release = release_of(&baton, "exec-gha-204").await;
    let build = release.build.clone().expect("the build is recorded");
    assert_eq!(
        (build.run_id.as_str(), build.url.as_deref(), build.status, build.attempts),
        ("4242", Some(HTML), BuildStatus::Succeeded, 1)
    );
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let build_events: Vec<(EventKind, &str)> =
        events.iter().filter(|e| e.stage == Stage::Build).map(|e| (e.kind, e.message.as_str())).collect();
    let requested = build_events.iter().position(|(kind, _)| *kind == EventKind::Requested).expect("the request is in the timeline");
    let started = build_events
        .iter()
        .position(|(kind, message)| *kind == EventKind::Started && message.contains("build 4242 started"))
        .expect("the build starts once GitHub shows its run");
    assert!(requested < started, "{build_events:#?}");
    assert!(!build_events.iter().any(|(_, message)| message.contains(RunHandle::UNLOCATED)), "no run called pending: {build_events:#?}");
    assert_eq!(build_events.iter().filter(|(kind, message)| *kind == EventKind::Started && message.contains("4242")).count(), 1);
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_dispatch_that_never_gets_through_ends_the_release_saying_the_retries_gave_up() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/dispatches"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>503 Service Unavailable</html>"))
        .mount(&server)
        .await;
    let listing = ResponseTemplate::new(200).set_body_json(json!({ "total_count": 0, "workflow_runs": [] }));
    Mock::given(method("GET"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/runs"))
        .respond_with(listing)
        .mount(&server)
        .await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_DOWN", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-down", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Failed);

    let release = release_of(&baton, "exec-gha-down").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let gave_up: Vec<&str> = events.iter().filter(|e| e.kind == EventKind::GaveUp).map(|e| e.message.as_str()).collect();
    assert_eq!(gave_up.len(), 1, "{events:#?}");
    assert!(
        gave_up[0].starts_with("gave up after its retries: Baton.ProviderUnavailable") && gave_up[0].contains("HTTP 503"),
        "the cause is told: {gave_up:?}"
    );
    let ending = events.last().unwrap();
    assert_eq!((ending.stage, ending.kind), (Stage::Done, EventKind::Failed), "the give-up comes before the ending: {events:#?}");
    assert_consistent(&baton, &release).await;
}

/// Each request GitHub saw ("POST /path") and the handler time it came at.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, chrono::DateTime<chrono::Utc>)>>>;

/// GitHub's answers to every request of a test, each noted with the handler time it came at.
struct Noting {
    clock: std::sync::Arc<ScaledClock>,
    seen: Seen,
    answer: ResponseTemplate,
}

impl wiremock::Respond for Noting {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        use baton_domain::ports::Clock;
        self.seen.lock().unwrap().push((format!("{} {}", request.method, request.url.path()), self.clock.now()));
        self.answer.clone()
    }
}

#[tokio::test]
async fn an_hour_long_primary_rate_limit_is_waited_out_and_nothing_is_sent_before_its_reset() {
    use baton_domain::ports::Clock;
    // Handler time and the definition's waits both run this much faster than the wall clock:
    // the hour passes in about two seconds, and the rate-limit holds see it pass.
    const FACTOR: u32 = 2000;
    let clock = std::sync::Arc::new(ScaledClock::new(FACTOR));
    let reset = clock.now().timestamp() + 3600;
    let reset_at = chrono::DateTime::from_timestamp(reset, 0).unwrap();
    let server = MockServer::start().await;
    let seen: Seen = Default::default();
    let noting = |answer: ResponseTemplate| Noting { clock: clock.clone(), seen: seen.clone(), answer };
    let dispatches = "/repos/acme/checkout/actions/workflows/release.yml/dispatches";
    let limited = ResponseTemplate::new(403)
        .set_body_json(json!({ "message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest" }))
        .insert_header("x-ratelimit-limit", "5000")
        .insert_header("x-ratelimit-remaining", "0")
        .insert_header("x-ratelimit-used", "5000")
        .insert_header("x-ratelimit-reset", reset.to_string().as_str());
    Mock::given(method("POST")).and(path(dispatches)).respond_with(noting(limited)).up_to_n_times(1).with_priority(1).mount(&server).await;
    let dispatched = ResponseTemplate::new(200).set_body_json(json!({ "workflow_run_id": RUN, "run_url": RUNS, "html_url": HTML }));
    Mock::given(method("POST")).and(path(dispatches)).respond_with(noting(dispatched)).with_priority(2).mount(&server).await;
    let none = ResponseTemplate::new(200).set_body_json(json!({ "total_count": 0, "workflow_runs": [] }));
    Mock::given(method("GET"))
        .and(path("/repos/acme/checkout/actions/workflows/release.yml/runs"))
        .respond_with(noting(none))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path(RUNS)).respond_with(noting(run("completed", json!("success")))).mount(&server).await;

    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_HOUR", "");
    let mut ports = fixture.baton_with(baton_asl::Clock::Scaled(FACTOR)).ports().clone();
    ports.clock = clock.clone();
    let providers = baton_providers::LocalProviders::new(
        fixture.state_dir().join("workspace"),
        None,
        std::sync::Arc::new(baton_providers::EnvSecretResolver),
        None,
    )
    .unwrap()
    .with_rate_limits(baton_providers::RateLimits::new(clock.clone()));
    ports.providers = std::sync::Arc::new(providers);
    let baton = baton_local_runner::LocalBaton::new(ports, baton_asl::Clock::Scaled(FACTOR)).unwrap();
    let outcome = baton.run("exec-gha-hour", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);

    let release = release_of(&baton, "exec-gha-hour").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, format!("POST {dispatches}"), "{seen:#?}");
    assert!(seen[1..].iter().all(|(_, at)| *at >= reset_at), "a request before the reset at {reset_at}: {seen:#?}");
    assert_eq!(seen.iter().filter(|(request, _)| request.starts_with("POST")).count(), 2, "the limited dispatch and one more: {seen:#?}");
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let waiting = format!("waits for GitHub's rate limit until {}", reset_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    assert!(events.iter().any(|e| e.kind == EventKind::Retrying && e.message.contains(&waiting)), "{waiting}: {events:#?}");
    assert_eq!(release.build.as_ref().map(|build| build.run_id.as_str()), Some("4242"));
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_run_found_after_a_204_dispatch_is_the_one_cancelled_when_the_release_stops_following_it() {
    let server = github_answering_204(run("in_progress", Value::Null)).await;
    Mock::given(method("POST")).and(path(format!("{RUNS}/cancel"))).respond_with(ResponseTemplate::new(202)).expect(1).mount(&server).await;
    let fixture = fixture(&server, "BATON_E2E_GITHUB_TOKEN_204_ENDLESS", "");
    let baton = fixture.baton();
    let outcome = baton.run("exec-gha-204-endless", cli_input("cli-1")).await;
    assert_outcome(&outcome, "failed", "Baton.BuildFailed");

    let release = release_of(&baton, "exec-gha-204-endless").await;
    let build = release.build.clone().expect("the build is recorded");
    assert_eq!((build.run_id.as_str(), build.status), ("4242", BuildStatus::Cancelled), "{build:#?}");
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert!(events.iter().any(|e| e.message == format!("cancelled build {RUN}: the release stopped following it")), "{events:#?}");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_release_cancelled_while_it_builds_cancels_its_build_and_ends_cancelled() {
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
    assert_outcome(&outcome, "cancelled", "Baton.Interrupted");

    let release = release_of(&baton, "exec-gha-cancelled").await;
    assert_eq!(release.status, ReleaseStatus::Cancelled, "nothing was deployed, so nothing rolls back: a person's stop, no failure");
    let failure = release.failure.clone().unwrap();
    assert_eq!(failure.error, "Baton.Interrupted");
    assert!(failure.cause.contains("ann cancelled the release: wrong commit"), "{failure:?}");
    assert_eq!(release.build.clone().expect("the build is recorded").status, BuildStatus::Cancelled);
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "nothing was deployed");
    assert_consistent(&baton, &release).await;
    assert_eq!(requests(&server, "POST").await.len(), 2, "dispatched once, cancelled once");
}

// ------------------------------------------------------------------ workflow_run events (issue 29)

/// The github-webhook function's secret in these tests.
const WEBHOOK_SECRET: &str = "e2e-github-webhook-secret";

/// The runs GitHub reports completed (and succeeded); every other run is in progress.
type Completed = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u64>>>;

/// GitHub for `runs` (`(repository, run id)`): a dispatch of the repository's `release.yml`
/// starts its run, in progress until `completed` holds it.
async fn github_runs(runs: &[(&str, u64)], completed: &Completed) -> MockServer {
    let server = MockServer::start().await;
    for &(repository, id) in runs {
        let api = format!("/repos/{repository}/actions/runs/{id}");
        let html = format!("https://github.example.com/{repository}/actions/runs/{id}");
        Mock::given(method("POST"))
            .and(path(format!("/repos/{repository}/actions/workflows/release.yml/dispatches")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "workflow_run_id": id, "run_url": format!("{}{api}", server.uri()), "html_url": html,
            })))
            .expect(1)
            .mount(&server)
            .await;
        let completed = completed.clone();
        let answer = move |_: &wiremock::Request| {
            let done = completed.lock().unwrap().contains(&id);
            ResponseTemplate::new(200).set_body_json(json!({
                "id": id, "status": if done { "completed" } else { "in_progress" },
                "conclusion": if done { json!("success") } else { Value::Null },
                "head_sha": "4f2a9c1e0b7d5a3c", "head_branch": "main", "html_url": html, "display_title": "release",
            }))
        };
        Mock::given(method("GET")).and(path(api)).respond_with(answer).mount(&server).await;
    }
    server
}

/// The `workflow_run` delivery GitHub sends when `repository`'s run `id` completes with
/// `conclusion`, as the function URL hands it over, signed with `secret`.
fn workflow_run_completed(repository: &str, id: u64, conclusion: &str, secret: &str) -> baton_github_webhook::FunctionUrlRequest {
    let body = json!({
        "action": "completed",
        "workflow_run": {
            "id": id, "name": "release", "run_number": 12, "run_attempt": 1, "event": "workflow_dispatch",
            "status": "completed", "conclusion": conclusion, "workflow_id": 161335,
            "head_branch": "main", "head_sha": "4f2a9c1e0b7d5a3c",
            "html_url": format!("https://github.example.com/{repository}/actions/runs/{id}"),
            "created_at": "2026-12-07T09:40:00Z", "updated_at": "2026-12-07T09:59:58Z",
        },
        "workflow": {"id": 161335, "path": ".github/workflows/release.yml"},
        "repository": {"name": repository.split_once('/').unwrap().1, "full_name": repository},
        "sender": {"login": "octocat"},
    })
    .to_string();
    let signature = baton_domain::signing::hmac_sha256_hex(secret.as_bytes(), &[body.as_bytes()]);
    let headers = [
        ("x-github-event", "workflow_run".to_owned()),
        ("x-github-delivery", format!("delivery-{id}")),
        ("x-hub-signature-256", format!("sha256={signature}")),
        ("content-type", "application/json".to_owned()),
    ];
    baton_github_webhook::FunctionUrlRequest {
        headers: headers.into_iter().map(|(name, value)| (name.to_owned(), value)).collect(),
        body: Some(body),
        is_base64_encoded: false,
    }
}

/// How many times GitHub was asked about `repository`'s run `id`.
async fn polls(server: &MockServer, repository: &str, id: u64) -> usize {
    let run = format!("/repos/{repository}/actions/runs/{id}");
    requests(server, "GET").await.iter().filter(|request| request.url.path() == run).count()
}

#[tokio::test]
async fn a_workflow_run_delivered_to_the_github_webhook_resumes_the_release_building_that_run_and_no_other() {
    use baton_github_webhook::{BuildWaits, DELIVERY_RETENTION, MemoryDeliveryLog, Webhook, WebhookSecret};
    let completed = Completed::default();
    let server = github_runs(&[("acme/checkout", 4242), ("acme/billing", 4343)], &completed).await;
    let fixture = Fixture::new();
    // A long safety net: on the virtual clock a park's timeout is wall time, and no poll but
    // the park's own may end these parks.
    for service in [SERVICE, "billing"] {
        write_service(&fixture, &server, service, "BATON_E2E_GITHUB_TOKEN_EVENTS", "    events: {wait: true, safety-net: 30m}\n");
    }
    let baton = fixture.baton();
    let checkout = baton.start("exec-gha-event-checkout", cli_input("cli-1"));
    let billing_input = json!({"service": "billing", "sha": "4f2a9c1e", "trigger": {"kind": "cli", "id": "cli-2", "actor": "test"}});
    let billing = baton.start("exec-gha-event-billing", billing_input);
    // Each release records its wait before its park's one poll: once both polled, both wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while polls(&server, "acme/checkout", 4242).await == 0 || polls(&server, "acme/billing", 4343).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the releases never parked on their runs");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The function as on AWS, with this process's waits and task tokens for the release table's
    // and Step Functions'.
    let waits = BuildWaits {
        registry: baton.ports().store.clone(),
        tokens: std::sync::Arc::new(baton_local_runner::ExecutorTokens(baton.executor().clone())),
    };
    let published = crate::events::Published::default();
    let webhook =
        Webhook::new(WebhookSecret::new(WEBHOOK_SECRET).unwrap(), published.clone(), MemoryDeliveryLog::new(DELIVERY_RETENTION), waits);

    completed.lock().unwrap().insert(4242);
    let checkout_done = workflow_run_completed("acme/checkout", 4242, "success", WEBHOOK_SECRET);
    let resumed = webhook.handle(&checkout_done).await;
    assert_eq!((resumed.status_code, resumed.body.as_str()), (202, r#"{"resumed":1,"ignored":0}"#));
    let outcome = checkout.outcome().await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let parks = crate::events::standins::endings(&crate::events::standins::history(&outcome), "ParkBuild");
    assert_eq!(parks.iter().map(|(ending, _)| ending.as_str()).collect::<Vec<_>>(), ["TaskSucceeded"], "ended by the event");
    assert_eq!(polls(&server, "acme/billing", 4343).await, 1, "billing was not resumed: only its park's poll");

    // The same delivery again, a run nobody waits for, and a forged delivery for billing's run.
    let again = webhook.handle(&checkout_done).await;
    assert_eq!(again.status_code, 200, "{}", again.body);
    assert!(again.body.contains("duplicate delivery"), "{}", again.body);
    let stray = webhook.handle(&workflow_run_completed("acme/checkout", 9999, "success", WEBHOOK_SECRET)).await;
    assert_eq!(stray.status_code, 204, "{}", stray.body);
    let forged = webhook.handle(&workflow_run_completed("acme/billing", 4343, "success", "not the webhook secret")).await;
    assert_eq!(forged.status_code, 401, "{}", forged.body);

    // billing still waits, on its own run: its event resumes it, and only now.
    completed.lock().unwrap().insert(4343);
    let billing_done = webhook.handle(&workflow_run_completed("acme/billing", 4343, "success", WEBHOOK_SECRET)).await;
    assert_eq!((billing_done.status_code, billing_done.body.as_str()), (202, r#"{"resumed":1,"ignored":0}"#));
    let outcome = billing.outcome().await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let parks = crate::events::standins::endings(&crate::events::standins::history(&outcome), "ParkBuild");
    assert_eq!(parks.iter().map(|(ending, _)| ending.as_str()).collect::<Vec<_>>(), ["TaskSucceeded"]);

    for (service, run) in [(SERVICE, "4242"), ("billing", "4343")] {
        let [release] = &baton.ports().store.list_releases(service, None, 10).await.unwrap()[..] else { panic!("one {service} release") };
        assert_eq!(release.build.as_ref().map(|build| build.run_id.as_str()), Some(run), "{service}");
        assert_eq!(release.status, ReleaseStatus::Succeeded, "{service}");
    }
    assert!(published.0.lock().unwrap().is_empty(), "workflow runs are no merges");
}

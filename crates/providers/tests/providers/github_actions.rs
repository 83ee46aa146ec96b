//! Contract tests of the GitHub Actions build provider against a local server that answers
//! with the shapes GitHub documents (REST API version 2022-11-28).

use crate::support;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use baton_domain::ports::{BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId};
use baton_providers::{GitHubActionsBuildProvider, GitHubActionsConfig, GitHubAppTokens, GitHubAuth, Secret, http_client};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "ghp_TOPSECRET0123456789abcdef";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const RELEASE: &str = "rel-web-20260101120000-0123abcd";
const DISPATCHES: &str = "/repos/acme/web/actions/workflows/release.yml/dispatches";
const RUNS: &str = "/repos/acme/web/actions/workflows/release.yml/runs";
/// A key pair made for these tests only (see tests/data/README.md).
const APP_KEY: &str = include_str!("../data/github-app-TEST-ONLY-key.pem");
const APP_KEY_PKCS8: &str = include_str!("../data/github-app-TEST-ONLY-key.pkcs8.pem");
const APP_PUBLIC_KEY: &str = include_str!("../data/github-app-TEST-ONLY-public.pem");
const APP_ID: &str = "123456";
const INSTALLATION: u64 = 987654;
const EXCHANGE: &str = "/app/installations/987654/access_tokens";

fn config(server: &MockServer, auth: GitHubAuth) -> GitHubActionsConfig {
    let mut config = GitHubActionsConfig::new("acme", "web", "release.yml", auth, "ghcr.io/acme/web:{short-sha}-{run-id}");
    config.api_url = server.uri();
    config.inputs = BTreeMap::from([("environment".to_string(), "production".to_string())]);
    config.rate_limits = support::own_limits(support::ManualClock::new());
    config
}

fn token() -> GitHubAuth {
    GitHubAuth::Token(Secret::new(TOKEN.into()))
}

fn app(key: &str) -> GitHubAuth {
    GitHubAuth::App { app_id: APP_ID.into(), installation_id: INSTALLATION, private_key_pem: Secret::new(key.into()) }
}

fn provider(server: &MockServer) -> GitHubActionsBuildProvider {
    GitHubActionsBuildProvider::new(config(server, token()), http_client().unwrap(), &GitHubAppTokens::new()).unwrap()
}

fn request(sha: Option<&str>) -> BuildRequest {
    BuildRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: ReleaseId(RELEASE.into()),
        branch: "main".into(),
        sha: sha.map(str::to_owned),
    }
}

/// A workflow run as GET /repos/{owner}/{repo}/actions/runs/{id} shows it (abridged).
fn run(id: u64, status: &str, conclusion: Option<&str>) -> Value {
    json!({
        "id": id,
        "name": "release",
        "node_id": "WFR_kwLOA",
        "head_branch": "main",
        "head_sha": SHA,
        "path": ".github/workflows/release.yml",
        "display_title": "release",
        "run_number": 7,
        "event": "workflow_dispatch",
        "status": status,
        "conclusion": conclusion,
        "workflow_id": 161335,
        "url": format!("https://api.github.com/repos/acme/web/actions/runs/{id}"),
        "html_url": format!("https://github.com/acme/web/actions/runs/{id}"),
        "created_at": "2026-01-01T12:00:01Z",
        "updated_at": "2026-01-01T12:03:00Z",
        "run_attempt": 1,
        // 40 s in the queue: the start time is its own field.
        "run_started_at": "2026-01-01T12:00:41Z",
    })
}

fn run_path(id: u64) -> String {
    format!("/repos/acme/web/actions/runs/{id}")
}

/// The dispatch's answer with `return_run_details: true`.
fn dispatched(id: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "workflow_run_id": id,
        "run_url": format!("https://api.github.com/repos/acme/web/actions/runs/{id}"),
        "html_url": format!("https://github.com/acme/web/actions/runs/{id}"),
    }))
}

fn listed(runs: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "total_count": runs.len(), "workflow_runs": runs }))
}

fn github_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.to_string(),
    }))
}

async fn answer(server: &MockServer, verb: &str, at: &str, response: ResponseTemplate) {
    Mock::given(method(verb)).and(path(at)).respond_with(response).mount(server).await;
}

async fn answer_once(server: &MockServer, verb: &str, at: &str, response: ResponseTemplate) {
    Mock::given(method(verb)).and(path(at)).respond_with(response).up_to_n_times(1).mount(server).await;
}

/// The handle of a located run, as `start` returns it.
fn handle(id: u64) -> RunHandle {
    RunHandle {
        provider: "github-actions".into(),
        id: id.to_string(),
        url: None,
        state: json!({ "release_id": RELEASE, "branch": "main" }),
    }
}

/// What a later task invocation sees: the handle after a JSON round trip.
fn travelled(handle: &RunHandle) -> RunHandle {
    serde_json::from_str(&serde_json::to_string(handle).unwrap()).unwrap()
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.get(name).map(|value| value.to_str().unwrap()).unwrap_or_default()
}

fn assert_token_free(error: &ProviderError) {
    assert!(!error.message().contains("TOPSECRET"), "a credential leaked: {error}");
}

#[tokio::test]
async fn a_dispatched_run_is_polled_until_it_succeeds() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, dispatched(4242)).await;
    answer_once(&server, "GET", &run_path(4242), ResponseTemplate::new(200).set_body_json(run(4242, "queued", None))).await;
    answer_once(&server, "GET", &run_path(4242), ResponseTemplate::new(200).set_body_json(run(4242, "in_progress", None))).await;
    answer(&server, "GET", &run_path(4242), ResponseTemplate::new(200).set_body_json(run(4242, "completed", Some("success")))).await;
    let github = provider(&server);

    let handle = github.start(&request(Some(SHA))).await.unwrap();
    assert_eq!((handle.provider.as_str(), handle.id.as_str()), ("github-actions", "4242"));
    assert_eq!(handle.url.as_deref(), Some("https://github.com/acme/web/actions/runs/4242"));
    let handle = travelled(&handle);
    assert_eq!(github.poll(&handle).await.unwrap().progress, BuildProgress::Running);
    assert_eq!(github.poll(&handle).await.unwrap().progress, BuildProgress::Running);
    let expected = Artifact {
        reference: "ghcr.io/acme/web:0123456-4242".into(),
        sha: SHA.into(),
        branch: "main".into(),
        build_url: Some("https://github.com/acme/web/actions/runs/4242".into()),
    };
    let done = github.poll(&handle).await.unwrap();
    assert_eq!(done.progress, BuildProgress::Succeeded { artifact: expected });
    assert_eq!(done.started_at, Some("2026-01-01T12:00:41Z".parse().unwrap()), "run_started_at");

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    let dispatch = &requests[0];
    let body: Value = serde_json::from_slice(&dispatch.body).unwrap();
    assert_eq!(
        body,
        json!({
            "ref": "main",
            "inputs": { "environment": "production", "baton_release_id": RELEASE, "baton_sha": SHA },
            "return_run_details": true,
        })
    );
    for request in &requests {
        assert_eq!(header(request, "authorization"), format!("Bearer {TOKEN}"));
        assert_eq!(header(request, "accept"), "application/vnd.github+json");
        assert_eq!(header(request, "x-github-api-version"), "2022-11-28");
        assert!(header(request, "user-agent").starts_with("baton/"), "{:?}", request.headers);
    }
}

#[tokio::test]
async fn without_a_sha_the_dispatch_sends_an_empty_one() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, dispatched(1)).await;
    provider(&server).start(&request(None)).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["inputs"]["baton_sha"], "");
}

/// A workflow that declares `baton_traceparent` gets the build's span of the release's trace;
/// one that does not is never sent it (GitHub would refuse the dispatch), which is the default.
#[tokio::test]
async fn the_build_span_is_an_input_only_when_the_config_asks() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, dispatched(1)).await;
    let mut traced = config(&server, token());
    traced.traceparent = true;
    GitHubActionsBuildProvider::new(traced, http_client().unwrap(), &GitHubAppTokens::new())
        .unwrap()
        .start(&request(Some(SHA)))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let span = baton_providers::traceparent(&ReleaseId(RELEASE.into()), "build");
    assert_eq!(body["inputs"]["baton_traceparent"], json!(span), "{body}");

    // A workflow that does not declare it refuses the dispatch: Baton dispatches again without it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCHES))
        .and(wiremock::matchers::body_string_contains("baton_traceparent"))
        .respond_with(github_error(422, "Unexpected inputs provided: [\"baton_traceparent\"]"))
        .mount(&server)
        .await;
    answer(&server, "POST", DISPATCHES, dispatched(7)).await;
    let mut traced = config(&server, token());
    traced.traceparent = true;
    let github = GitHubActionsBuildProvider::new(traced, http_client().unwrap(), &GitHubAppTokens::new()).unwrap();
    assert_eq!(github.start(&request(Some(SHA))).await.unwrap().id, "7");
    let requests = server.received_requests().await.unwrap();
    let inputs: Vec<Value> = requests.iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["inputs"].clone()).collect();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[1], json!({ "environment": "production", "baton_release_id": RELEASE, "baton_sha": SHA }));
    // Any other refusal stays one.
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, github_error(422, "No ref found for: main")).await;
    let mut traced = config(&server, token());
    traced.traceparent = true;
    let github = GitHubActionsBuildProvider::new(traced, http_client().unwrap(), &GitHubAppTokens::new()).unwrap();
    assert!(github.start(&request(Some(SHA))).await.unwrap_err().message().contains("No ref found"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_204_dispatch_finds_its_run_by_listing() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, ResponseTemplate::new(204)).await;
    // The only dispatched run at the release's commit since the dispatch.
    answer_once(&server, "GET", RUNS, listed(vec![run(11, "queued", None)])).await;
    let mut named = run(13, "queued", None);
    named["display_title"] = json!(format!("release {RELEASE}"));
    answer_once(&server, "GET", RUNS, listed(vec![run(14, "queued", None), named, run(11, "queued", None)])).await;
    let github = provider(&server);

    let before = chrono::Utc::now();
    let handle = github.start(&request(Some(SHA))).await.unwrap();
    assert_eq!((handle.id.as_str(), handle.url.as_deref()), ("11", Some("https://github.com/acme/web/actions/runs/11")));
    // A run titled with the release id (run-name in the workflow) is certainly ours.
    assert_eq!(github.start(&request(Some(SHA))).await.unwrap().id, "13");

    let requests = server.received_requests().await.unwrap();
    let listing = &requests[1];
    assert_eq!(listing.url.path(), RUNS);
    let query: BTreeMap<String, String> = listing.url.query_pairs().into_owned().collect();
    assert_eq!(query["event"], "workflow_dispatch");
    assert_eq!(query["branch"], "main");
    assert_eq!(query["head_sha"], SHA);
    let created = query["created"].strip_prefix(">=").expect("a lower bound on the creation time");
    let created = chrono::DateTime::parse_from_rfc3339(created).unwrap();
    let slack = before.signed_duration_since(created);
    assert!(slack >= chrono::Duration::seconds(25) && slack <= chrono::Duration::seconds(35), "created {created}, dispatched {before}");
    assert_eq!(header(listing, "authorization"), format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn runs_that_cannot_be_tied_to_the_release_are_never_taken_for_its_own() {
    let untitled = || listed(vec![run(12, "queued", None), run(11, "queued", None)]);
    // Two untitled runs at the commit: either could be another environment's or a person's.
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, ResponseTemplate::new(204)).await;
    answer(&server, "GET", RUNS, untitled()).await;
    let github = provider(&server);
    let error = github.start(&request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("{error:?}") };
    assert!(said.contains("runs 12, 11") && said.contains("cannot tell which one this release started"), "{said}");
    assert!(said.contains("run-name: ${{ inputs.baton_release_id }}"), "{said}");
    // The look after a lost dispatch answer says so too, rather than finding none (which would
    // dispatch a second build) or taking the oldest.
    let error = github.find(&request(Some(SHA)), chrono::Utc::now()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("cannot tell")), "{error:?}");

    // One untitled run, but the release names no commit: nothing ties it to the release.
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, ResponseTemplate::new(204)).await;
    Mock::given(method("GET")).and(path(RUNS)).respond_with(listed(vec![])).up_to_n_times(1).mount(&server).await;
    answer(&server, "GET", RUNS, listed(vec![run(77, "in_progress", None)])).await;
    let github = provider(&server);
    let handle = travelled(&github.start(&request(None)).await.unwrap());
    assert_eq!(handle.id, "pending");
    let BuildProgress::Failed { reason } = github.poll(&handle).await.unwrap().progress else { panic!("an untitled run was taken") };
    assert!(reason.contains("runs 77") && reason.contains("the release names no commit"), "{reason}");
    let error = github.cancel(&handle).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("cannot tell")), "{error:?}");
    assert!(received_cancels(&server).await.is_empty(), "nobody's run is cancelled on a guess");
}

async fn received_cancels(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap().into_iter().filter(|request| request.url.path().ends_with("/cancel")).collect()
}

#[tokio::test]
async fn a_run_not_listed_yet_is_located_by_poll() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, ResponseTemplate::new(204)).await;
    Mock::given(method("GET")).and(path(RUNS)).respond_with(listed(vec![])).up_to_n_times(2).mount(&server).await;
    let mut ours = run(77, "completed", Some("success"));
    ours["display_title"] = json!(format!("release {RELEASE}"));
    answer(&server, "GET", RUNS, listed(vec![ours])).await;
    let github = provider(&server);

    let handle = travelled(&github.start(&request(None)).await.unwrap());
    assert_eq!((handle.id.as_str(), handle.url.as_deref()), ("pending", None));
    assert_eq!(github.poll(&handle).await.unwrap().progress, BuildProgress::Running);
    let BuildProgress::Succeeded { artifact } = github.poll(&handle).await.unwrap().progress else { panic!("not located") };
    assert_eq!(artifact.reference, "ghcr.io/acme/web:0123456-77");

    let requests = server.received_requests().await.unwrap();
    let query: BTreeMap<String, String> = requests[1].url.query_pairs().into_owned().collect();
    assert!(!query.contains_key("head_sha"), "no sha was requested: {query:?}");
}

#[tokio::test]
async fn a_run_that_never_appears_fails_the_build_after_a_while() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, ResponseTemplate::new(204)).await;
    answer(&server, "GET", RUNS, listed(vec![])).await;
    let github = provider(&server);
    let mut handle = github.start(&request(Some(SHA))).await.unwrap();

    let cancelled = github.cancel(&handle).await.unwrap_err();
    assert!(matches!(&cancelled, ProviderError::Unavailable { message: m, .. } if m.contains("not listed yet")), "{cancelled}");

    handle.state["locate"]["since"] = json!((chrono::Utc::now() - chrono::Duration::minutes(11)).to_rfc3339());
    let BuildProgress::Failed { reason } = github.poll(&handle).await.unwrap().progress else { panic!("still waiting") };
    assert!(reason.contains("no run of it appeared within 10 minutes") && reason.contains("release.yml"), "{reason}");
    github.cancel(&handle).await.unwrap();
}

#[tokio::test]
async fn an_unreadable_dispatch_answer_cancels_the_run_it_started_and_dispatches_no_other() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCHES))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>upstream glitch</html>"))
        .expect(1)
        .mount(&server)
        .await;
    answer(&server, "GET", RUNS, listed(vec![run(31, "queued", None)])).await;
    Mock::given(method("POST"))
        .and(path(format!("{}/cancel", run_path(31))))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    let error = provider(&server).start(&request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("a retry would dispatch again: {error:?}") };
    assert!(said.contains("unreadable answer") && said.contains("cancelled the build it started (GitHub Actions run 31)"), "{said}");
}

#[tokio::test]
async fn a_dispatch_answered_after_the_timeout_yields_one_run_that_is_found_and_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(DISPATCHES))
        .respond_with(dispatched(55).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&server)
        .await;
    let mut ours = run(55, "in_progress", None);
    ours["display_title"] = json!(format!("release {RELEASE}"));
    answer(&server, "GET", RUNS, listed(vec![run(56, "queued", None), ours])).await;
    answer(&server, "GET", &run_path(55), ResponseTemplate::new(200).set_body_json(run(55, "completed", Some("success")))).await;
    let mut config = config(&server, token());
    config.create_timeout = Duration::from_millis(300);
    let github = GitHubActionsBuildProvider::new(config, http_client().unwrap(), &GitHubAppTokens::new()).unwrap();
    let asked_at = chrono::Utc::now();

    let error = github.start(&request(Some(SHA))).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 300 ms")), "{error}");
    let found = github.find(&request(Some(SHA)), asked_at).await.unwrap().expect("the run the lost dispatch started");
    assert_eq!(found.id, "55", "the run named after the release, not a newer one");
    let BuildProgress::Succeeded { artifact } = github.poll(&travelled(&found)).await.unwrap().progress else { panic!("not followed") };
    assert_eq!(artifact.reference, "ghcr.io/acme/web:0123456-55");
}

#[tokio::test]
async fn rate_limit_windows_are_obeyed_to_their_end_primary_and_secondary() {
    for window in [2, 20, 120] {
        for kind in ["primary", "secondary", "429"] {
            let server = MockServer::start().await;
            let clock = support::ManualClock::new();
            let reset = {
                use baton_domain::ports::Clock;
                clock.now().timestamp() + window
            };
            let limited = match kind {
                "primary" => github_error(403, "API rate limit exceeded for user ID 1.")
                    .insert_header("x-ratelimit-limit", "5000")
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
                "secondary" => {
                    github_error(403, "You have exceeded a secondary rate limit.").insert_header("retry-after", window.to_string().as_str())
                }
                _ => github_error(429, "Too many requests").insert_header("retry-after", window.to_string().as_str()),
            };
            let times = support::limited_then(
                &server,
                "GET",
                &run_path(9),
                limited,
                ResponseTemplate::new(200).set_body_json(run(9, "in_progress", None)),
            )
            .await;
            let mut config = config(&server, token());
            config.rate_limits = support::own_limits(clock.clone());
            let github = GitHubActionsBuildProvider::new(config, http_client().unwrap(), &GitHubAppTokens::new()).unwrap();
            let handle = handle(9);
            let poll = support::window_is_obeyed(window, &clock, &times, || github.poll(&handle)).await;
            assert_eq!(poll.progress, BuildProgress::Running, "{kind} {window}");
        }
    }
}

#[tokio::test]
async fn statuses_and_conclusions_map_to_progress() {
    enum Expect {
        Running,
        Succeeded,
        Failed(&'static str),
    }
    let cases = [
        ("queued", None, Expect::Running),
        ("requested", None, Expect::Running),
        ("waiting", None, Expect::Running),
        ("pending", None, Expect::Running),
        ("in_progress", None, Expect::Running),
        ("completed", Some("success"), Expect::Succeeded),
        ("completed", Some("failure"), Expect::Failed("a job failed")),
        ("completed", Some("cancelled"), Expect::Failed("cancelled")),
        ("completed", Some("timed_out"), Expect::Failed("ran out of time")),
        ("completed", Some("action_required"), Expect::Failed("approve")),
        ("completed", Some("stale"), Expect::Failed("stale")),
        ("completed", Some("startup_failure"), Expect::Failed("workflow file")),
        ("completed", Some("skipped"), Expect::Failed("nothing was built")),
        ("completed", Some("neutral"), Expect::Failed("does not say anything was built")),
    ];
    let server = MockServer::start().await;
    let github = provider(&server);
    for (index, (status, conclusion, expected)) in cases.into_iter().enumerate() {
        let id = 500 + index as u64;
        answer(&server, "GET", &run_path(id), ResponseTemplate::new(200).set_body_json(run(id, status, conclusion))).await;
        let handle = handle(id);
        let progress = github.poll(&handle).await.unwrap().progress;
        let case = format!("{status}/{conclusion:?}: {progress:?}");
        match (expected, progress) {
            (Expect::Running, BuildProgress::Running) => {}
            (Expect::Succeeded, BuildProgress::Succeeded { artifact }) => {
                assert_eq!(artifact.reference, format!("ghcr.io/acme/web:0123456-{id}"), "{case}");
            }
            (Expect::Failed(why), BuildProgress::Failed { reason }) => {
                let conclusion = conclusion.unwrap();
                assert!(reason.contains(&format!("conclusion '{conclusion}'")) && reason.contains(why), "{case}");
                assert!(reason.contains(&format!("https://github.com/acme/web/actions/runs/{id}")), "{case}");
            }
            _ => panic!("unexpected progress for {case}"),
        }
    }
}

#[tokio::test]
async fn refusals_say_what_is_wrong_and_never_carry_the_token() {
    let cases = [
        (github_error(401, "Bad credentials"), "bad credentials (HTTP 401): Bad credentials"),
        (github_error(403, "Resource not accessible by integration"), "HTTP 403, the repository acme/web or its workflow release.yml"),
        (github_error(404, "Not Found"), "HTTP 404, the repository acme/web or its workflow release.yml"),
        (
            github_error(422, "Workflow does not have 'workflow_dispatch' trigger"),
            "(HTTP 422): Workflow does not have 'workflow_dispatch' trigger",
        ),
        (github_error(422, "No ref found for: main"), "No ref found for: main"),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "POST", DISPATCHES, response).await;
        let error = provider(&server).start(&request(Some(SHA))).await.unwrap_err();
        assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains(expected)), "{expected}: {error}");
        assert!(error.message().starts_with("dispatching workflow release.yml of acme/web on main"), "{error}");
        assert_token_free(&error);
    }
}

#[tokio::test]
async fn rate_limits_say_until_when() {
    let reset = chrono::Utc::now().timestamp() + 120;
    let primary = github_error(403, "API rate limit exceeded for installation ID 987654.")
        .insert_header("x-ratelimit-limit", "5000")
        .insert_header("x-ratelimit-remaining", "0")
        .insert_header("x-ratelimit-reset", reset.to_string().as_str());
    let cases = [
        (github_error(429, "Too many requests").insert_header("retry-after", "30"), 30),
        (primary, 120),
        (github_error(403, "You have exceeded a secondary rate limit.").insert_header("retry-after", "45"), 45),
        // GitHub's advice when a secondary limit says nothing of its end: a minute.
        (github_error(403, "You have exceeded a secondary rate limit."), 60),
    ];
    for (response, seconds) in cases {
        let server = MockServer::start().await;
        answer(&server, "GET", &run_path(9), response).await;
        let mut config = config(&server, token());
        config.rate_limits = baton_providers::RateLimits::new(std::sync::Arc::new(baton_domain::ports::SystemClock));
        let github = GitHubActionsBuildProvider::new(config, http_client().unwrap(), &GitHubAppTokens::new()).unwrap();
        let error = github.poll(&handle(9)).await.unwrap_err();
        let limit = error.rate_limit().unwrap_or_else(|| panic!("not a rate limit: {error}"));
        let left = (limit.until - chrono::Utc::now()).num_seconds();
        assert!((seconds - 5..=seconds).contains(&left), "{seconds}: {error}");
        assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("rate limit")), "{error}");
        assert_token_free(&error);
    }
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_next_call_succeeds() {
    let server = MockServer::start().await;
    // A proxy that echoes the request into its error page must not leak the token either.
    let echo = format!("<html>502 Bad Gateway\nauthorization: Bearer {TOKEN}</html>");
    answer_once(&server, "GET", &run_path(5), ResponseTemplate::new(502).set_body_string(echo)).await;
    answer(&server, "GET", &run_path(5), ResponseTemplate::new(200).set_body_json(run(5, "in_progress", None))).await;
    let github = provider(&server);
    let handle = handle(5);

    let error = github.poll(&handle).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("HTTP 502") && m.contains("Bearer ***")),
        "{error}"
    );
    assert_token_free(&error);
    assert_eq!(github.poll(&handle).await.unwrap().progress, BuildProgress::Running);
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(&server, "POST", DISPATCHES, dispatched(1).set_delay(Duration::from_secs(3))).await;
    let mut config = config(&server, token());
    config.create_timeout = Duration::from_millis(200);
    let github = GitHubActionsBuildProvider::new(config, http_client().unwrap(), &GitHubAppTokens::new()).unwrap();

    let started = Instant::now();
    let error = github.start(&request(None)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 200 ms")), "{error}");
}

#[tokio::test]
async fn a_malformed_run_names_the_provider_and_the_field() {
    let server = MockServer::start().await;
    let mut broken = run(8, "completed", Some("success"));
    broken["head_sha"] = Value::Null;
    answer(&server, "GET", &run_path(8), ResponseTemplate::new(200).set_body_json(broken)).await;
    let handle = handle(8);
    let error = provider(&server).poll(&handle).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("GitHub Actions run 8 of acme/web") && m.contains("field `head_sha`")),
        "{error}"
    );
}

#[tokio::test]
async fn cancel_accepts_202_and_409() {
    for status in [202, 409] {
        let server = MockServer::start().await;
        answer(&server, "POST", "/repos/acme/web/actions/runs/42/cancel", github_error(status, "ok or already completed")).await;
        let handle = handle(42);
        provider(&server).cancel(&handle).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(header(&requests[0], "authorization"), format!("Bearer {TOKEN}"));
    }
    let server = MockServer::start().await;
    answer(&server, "POST", "/repos/acme/web/actions/runs/42/cancel", github_error(404, "Not Found")).await;
    let handle = handle(42);
    let error = provider(&server).cancel(&handle).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("cancelling GitHub Actions run 42 of acme/web")),
        "{error}"
    );
}

#[tokio::test]
async fn foreign_and_damaged_handles_are_refused() {
    let server = MockServer::start().await;
    let github = provider(&server);
    let foreign = RunHandle { provider: "command".into(), ..handle(42) };
    let error = github.poll(&foreign).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("'command' provider")), "{error}");
    let damaged = RunHandle { id: "x".into(), ..handle(0) };
    let error = github.cancel(&damaged).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("not a run number")), "{error}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[test]
fn a_bad_config_is_refused_when_the_provider_is_built() {
    let server_uri = "http://127.0.0.1:9";
    let build = |change: &dyn Fn(&mut GitHubActionsConfig)| {
        let mut config = GitHubActionsConfig::new("acme", "web", "release.yml", token(), "web:{sha}");
        config.api_url = server_uri.into();
        change(&mut config);
        match GitHubActionsBuildProvider::new(config, http_client().unwrap(), &GitHubAppTokens::new()) {
            Err(ProviderError::Rejected { message, .. }) => message,
            other => panic!("expected Rejected, got {:?}", other.map(|_| "a provider")),
        }
    };
    assert!(build(&|c| c.artifact = "web:{commit}".into()).contains("unknown placeholder {commit}"));
    assert!(build(&|c| c.owner = "acme/other".into()).contains("owner 'acme/other' must be a single name"));
    assert!(build(&|c| c.api_url = "ftp://github.example".into()).contains("not an http(s) URL"));
    assert!(
        build(&|c| {
            c.inputs.insert("baton_sha".into(), "x".into());
        })
        .contains("baton_sha is set by Baton")
    );
    assert!(
        build(&|c| {
            c.inputs.insert("baton_traceparent".into(), "x".into());
        })
        .contains("baton_traceparent is set by Baton")
    );
    assert!(build(&|c| c.auth = GitHubAuth::Token(Secret::new(" ".into()))).contains("the token is empty"));
    let bad_key = build(&|c| c.auth = app("-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n"));
    assert!(bad_key.starts_with("GitHub Actions build of acme/web: the private key of GitHub App 123456 is unusable"), "{bad_key}");
    assert!(!bad_key.contains("TOPSECRET"), "{bad_key}");
}

#[test]
fn debug_output_hides_credentials() {
    let config = GitHubActionsConfig::new("acme", "web", "release.yml", token(), "web:{sha}");
    let app = GitHubActionsConfig::new("acme", "web", "release.yml", app(APP_KEY), "web:{sha}");
    let text = format!("{config:?} {app:?}");
    assert!(!text.contains("TOPSECRET") && !text.contains("PRIVATE KEY"), "{text}");
    assert!(text.contains("***"), "{text}");
}

// ---------------------------------------------------------------- GitHub App

/// The fake GitHub's token exchange: checks the JWT as GitHub would (RS256 signature with the
/// app's public key, `iss`, a lifetime of at most 10 minutes) and hands out numbered tokens
/// valid for `lifetime`.
struct Exchange {
    issued: Arc<AtomicUsize>,
    lifetime: chrono::Duration,
}

impl Respond for Exchange {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if let Err(why) = verify_jwt(header(request, "authorization")) {
            return github_error(401, &format!("A JSON web token could not be decoded: {why}"));
        }
        let number = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(201).set_body_json(json!({
            "token": format!("ghs_installation{number}"),
            "expires_at": (chrono::Utc::now() + self.lifetime).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "permissions": { "actions": "write", "metadata": "read" },
            "repository_selection": "selected",
        }))
    }
}

fn verify_jwt(authorization: &str) -> Result<(), String> {
    let jwt = authorization.strip_prefix("Bearer ").ok_or("no bearer token")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else { return Err(format!("{} parts", parts.len())) };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let public_der =
        STANDARD.decode(APP_PUBLIC_KEY.lines().filter(|line| !line.starts_with("-----")).collect::<String>()).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public_der)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &decode(signature)?)
        .map_err(|_| "bad signature")?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let (iat, exp, now) = (claims["iat"].as_i64().ok_or("iat")?, claims["exp"].as_i64().ok_or("exp")?, chrono::Utc::now().timestamp());
    if claims["iss"] != APP_ID {
        return Err(format!("iss {}", claims["iss"]));
    }
    if !(now - 70..=now - 50).contains(&iat) || exp <= now || exp - iat > 600 {
        return Err(format!("iat {iat} exp {exp} now {now}"));
    }
    Ok(())
}

async fn mount_exchange(server: &MockServer, lifetime: chrono::Duration) -> Arc<AtomicUsize> {
    let issued = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST")).and(path(EXCHANGE)).respond_with(Exchange { issued: issued.clone(), lifetime }).mount(server).await;
    issued
}

fn app_provider(server: &MockServer, key: &str, tokens: &GitHubAppTokens) -> GitHubActionsBuildProvider {
    GitHubActionsBuildProvider::new(config(server, app(key)), http_client().unwrap(), tokens).unwrap()
}

fn bearers(requests: &[Request], at: &str) -> Vec<String> {
    requests.iter().filter(|r| r.url.path() == at).map(|r| header(r, "authorization").to_owned()).collect()
}

#[tokio::test]
async fn an_app_token_is_exchanged_once_and_shared_across_providers() {
    let server = MockServer::start().await;
    let issued = mount_exchange(&server, chrono::Duration::hours(1)).await;
    answer(&server, "POST", DISPATCHES, dispatched(61)).await;
    answer(&server, "GET", &run_path(61), ResponseTemplate::new(200).set_body_json(run(61, "in_progress", None))).await;
    let tokens = GitHubAppTokens::new();

    // Each task invocation builds its own provider; the cache outlives them.
    let handle = app_provider(&server, APP_KEY, &tokens).start(&request(Some(SHA))).await.unwrap();
    assert_eq!(app_provider(&server, APP_KEY_PKCS8, &tokens).poll(&handle).await.unwrap().progress, BuildProgress::Running);

    assert_eq!(issued.load(Ordering::SeqCst), 1);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(bearers(&requests, DISPATCHES), ["Bearer ghs_installation1"]);
    assert_eq!(bearers(&requests, &run_path(61)), ["Bearer ghs_installation1"]);
    let exchange = requests.iter().find(|r| r.url.path() == EXCHANGE).unwrap();
    assert_eq!(header(exchange, "accept"), "application/vnd.github+json");
}

#[tokio::test]
async fn concurrent_calls_share_one_exchange() {
    let server = MockServer::start().await;
    let issued = mount_exchange(&server, chrono::Duration::hours(1)).await;
    answer(&server, "GET", &run_path(64), ResponseTemplate::new(200).set_body_json(run(64, "queued", None))).await;
    let tokens = GitHubAppTokens::new();
    let (first, second) = (app_provider(&server, APP_KEY, &tokens), app_provider(&server, APP_KEY, &tokens));

    let handle = handle(64);
    let (a, b) = tokio::join!(first.poll(&handle), second.poll(&handle));

    assert_eq!((a.unwrap().progress, b.unwrap().progress), (BuildProgress::Running, BuildProgress::Running));
    assert_eq!(issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_app_token_near_its_expiry_is_replaced() {
    let server = MockServer::start().await;
    // Inside the five minutes before expiry from the start: every call needs a new one.
    let issued = mount_exchange(&server, chrono::Duration::minutes(4)).await;
    answer(&server, "GET", &run_path(62), ResponseTemplate::new(200).set_body_json(run(62, "queued", None))).await;
    let github = app_provider(&server, APP_KEY, &GitHubAppTokens::new());
    let handle = handle(62);

    github.poll(&handle).await.unwrap();
    github.poll(&handle).await.unwrap();

    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(bearers(&requests, &run_path(62)), ["Bearer ghs_installation1", "Bearer ghs_installation2"]);
}

#[tokio::test]
async fn a_refused_app_token_is_not_used_again() {
    let server = MockServer::start().await;
    let issued = mount_exchange(&server, chrono::Duration::hours(1)).await;
    answer_once(&server, "GET", &run_path(63), github_error(401, "Bad credentials")).await;
    answer(&server, "GET", &run_path(63), ResponseTemplate::new(200).set_body_json(run(63, "queued", None))).await;
    let github = app_provider(&server, APP_KEY, &GitHubAppTokens::new());
    let handle = handle(63);

    let error = github.poll(&handle).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("bad credentials")), "{error}");
    assert_eq!(github.poll(&handle).await.unwrap().progress, BuildProgress::Running);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_app_jwt_says_which_app_and_installation() {
    let server = MockServer::start().await;
    answer(&server, "POST", EXCHANGE, github_error(404, "Not Found")).await;
    let error = app_provider(&server, APP_KEY, &GitHubAppTokens::new()).start(&request(None)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("installation 987654 of GitHub App 123456") && m.contains("HTTP 404")),
        "{error}"
    );
    assert!(!error.message().contains("eyJ"), "the JWT leaked: {error}");
}

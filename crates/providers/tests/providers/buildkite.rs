//! Contract tests of the Buildkite build provider against a local server that answers with the
//! shapes Buildkite documents for its REST Builds API (v2).

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::ports::{BuildProgress, BuildProvider, ProviderError, RunHandle};
use baton_domain::release::Artifact;
use baton_providers::BuildkiteBuild;
use baton_providers::BuildkiteBuildProvider;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{
    ManualClock, RELEASE, SHA, Secrets, answer, answer_once, assert_secret_free, build_request, build_span, client, limited_then,
    own_limits, received, travelled, window_is_obeyed,
};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "bkua_TOPSECRET0123456789abcdef";
const BUILDS: &str = "/v2/organizations/acme/pipelines/web-release/builds";
const BUILD: &str = "/v2/organizations/acme/pipelines/web-release/builds/57";
const CANCEL: &str = "/v2/organizations/acme/pipelines/web-release/builds/57/cancel";
const PAGE: &str = "https://buildkite.com/acme/web-release/builds/57";

fn spec(server: &MockServer) -> BuildkiteBuild {
    BuildkiteBuild {
        organization: "acme".into(),
        pipeline: "web-release".into(),
        token: SecretRef::Env("BUILDKITE_TOKEN".into()),
        env: BTreeMap::from([("REGION".to_string(), "eu-west-1".to_string())]),
        artifact: "acme/web:{short-sha}-b{build-number}".into(),
        api_url: Some(format!("{}/v2", server.uri())),
        events_secret: None,
    }
}

fn provider(server: &MockServer) -> BuildkiteBuildProvider {
    provider_on(server, &ManualClock::new())
}

/// The provider, its rate limits on `clock`.
fn provider_on(server: &MockServer, clock: &std::sync::Arc<ManualClock>) -> BuildkiteBuildProvider {
    BuildkiteBuildProvider::new(&spec(server), "catalog/web.yaml", Secrets::of(&[("BUILDKITE_TOKEN", TOKEN)]), client())
        .unwrap()
        .with_rate_limits(own_limits(clock.clone()))
}

/// When the builds below began to run, unless they are still waiting for an agent.
const STARTED: &str = "2026-01-01T12:00:20.000Z";

/// A build as Buildkite's create, get and cancel endpoints answer it (abridged).
fn build(state: &str, blocked: bool) -> Value {
    let waiting = matches!(state, "creating" | "scheduled");
    json!({
        "id": "01908131-7d9f-495e-a17b-80ed31276810",
        "graphql_id": "QnVpbGQtLS0wMTkwODEzMQ==",
        "url": "https://api.buildkite.com/v2/organizations/acme/pipelines/web-release/builds/57",
        "web_url": PAGE,
        "number": 57,
        "state": state,
        "blocked": blocked,
        "cancel_reason": null,
        "message": format!("Baton release {RELEASE}"),
        "commit": SHA,
        "branch": "main",
        "env": { "BATON_RELEASE_ID": RELEASE },
        "source": "api",
        "creator": { "id": "3d3c3bf0-7d58-4afe-8fe7-b3017d5504de", "name": "Baton" },
        "jobs": [],
        "created_at": "2026-01-01T12:00:00.000Z",
        "scheduled_at": "2026-01-01T12:00:00.000Z",
        "started_at": if waiting { Value::Null } else { json!(STARTED) },
        "finished_at": null,
        "meta_data": {},
        "pull_request": null,
    })
}

fn state(state: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(build(state, false))
}

fn buildkite_error(status: u16, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "message": text }))
}

fn handle() -> RunHandle {
    RunHandle {
        provider: "buildkite".into(),
        id: "acme/web-release/57".into(),
        url: Some(PAGE.into()),
        state: json!({ "release_id": RELEASE, "branch": "main", "sha": SHA }),
    }
}

fn authorization(request: &wiremock::Request) -> &str {
    request.headers.get("authorization").map(|value| value.to_str().unwrap()).unwrap_or_default()
}

#[tokio::test]
async fn a_build_is_created_for_the_release_commit_and_followed_until_it_passes() {
    let server = MockServer::start().await;
    answer(&server, "POST", BUILDS, ResponseTemplate::new(201).set_body_json(build("scheduled", false))).await;
    answer_once(&server, "GET", BUILD, state("running")).await;
    answer(&server, "GET", BUILD, state("passed")).await;
    let buildkite = provider(&server);

    let run = buildkite.start(&build_request(Some(SHA))).await.unwrap();
    assert_eq!(run, handle());
    let create = &received(&server, "POST", BUILDS).await[0];
    assert_eq!(authorization(create), format!("Bearer {TOKEN}"));
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body,
        json!({
            "commit": SHA,
            "branch": "main",
            "message": format!("Baton release {RELEASE}"),
            // TRACEPARENT: the build's span of the release's trace, for a step that traces.
            "env": { "BATON_RELEASE_ID": RELEASE, "BATON_SHA": SHA, "REGION": "eu-west-1", "TRACEPARENT": build_span() },
            "meta_data": { "baton-release-id": RELEASE },
        })
    );

    let run = travelled(&run);
    let running = buildkite.poll(&run).await.unwrap();
    assert_eq!((running.progress, running.started_at), (BuildProgress::Running, Some(STARTED.parse().unwrap())));
    let artifact =
        Artifact { reference: "acme/web:0123456-b57".into(), sha: SHA.into(), branch: "main".into(), build_url: Some(PAGE.into()) };
    assert_eq!(buildkite.poll(&run).await.unwrap().progress, BuildProgress::Succeeded { artifact });
    assert_eq!(authorization(&received(&server, "GET", BUILD).await[0]), format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn without_a_release_sha_the_branch_head_is_built() {
    let server = MockServer::start().await;
    answer(&server, "POST", BUILDS, ResponseTemplate::new(201).set_body_json(build("scheduled", false))).await;
    provider(&server).start(&build_request(None)).await.unwrap();
    let body: Value = serde_json::from_slice(&received(&server, "POST", BUILDS).await[0].body).unwrap();
    assert_eq!((&body["commit"], &body["env"]["BATON_SHA"]), (&json!("HEAD"), &json!("")));
}

#[tokio::test]
async fn every_state_maps_to_its_progress() {
    let running = [
        ("creating", false),
        ("scheduled", false),
        ("running", false),
        ("waiting", false),
        ("failing", false),
        ("blocked", true),
        // A block step's `blocked_state` is what the build shows while it waits for a person.
        ("passed", true),
        ("running", true),
        ("failed", true),
    ];
    for (name, blocked) in running {
        let server = MockServer::start().await;
        answer(&server, "GET", BUILD, ResponseTemplate::new(200).set_body_json(build(name, blocked))).await;
        let poll = provider(&server).poll(&handle()).await.unwrap();
        assert_eq!(poll.progress, BuildProgress::Running, "{name} blocked={blocked}");
        assert_eq!(poll.started_at.is_some(), build(name, blocked)["started_at"].is_string(), "{name}: a null start is no start");
    }
    let failed = [
        ("failed", "a job failed"),
        ("canceled", "cancelled it"),
        ("canceling", "being cancelled"),
        ("skipped", "skipped it"),
        ("not_run", "not run"),
        ("waiting_failed", "a step it waited on failed"),
    ];
    for (name, why) in failed {
        let server = MockServer::start().await;
        answer(&server, "GET", BUILD, state(name)).await;
        let progress = provider(&server).poll(&handle()).await.unwrap().progress;
        let BuildProgress::Failed { reason } = &progress else { panic!("{name}: {progress:?}") };
        assert!(reason.contains(&format!("'{name}'")) && reason.contains(why) && reason.contains(PAGE), "{reason}");
    }
}

#[tokio::test]
async fn refusals_name_the_token_reference_or_the_pipeline_never_the_token() {
    let cases = [
        (401, "refused the credentials (HTTP 401): check the token env:BUILDKITE_TOKEN"),
        (403, "denied it (HTTP 403): check the token env:BUILDKITE_TOKEN"),
        (404, "HTTP 404, Buildkite has no pipeline acme/web-release"),
    ];
    for (status, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "GET", BUILD, buildkite_error(status, &format!("No access for {TOKEN}"))).await;
        let error = provider(&server).poll(&handle()).await.unwrap_err();
        let ProviderError::Rejected { message: said, .. } = &error else { panic!("{status}: {error:?}") };
        assert!(said.contains(expected) && said.contains("No access for ***"), "{said}");
        assert_secret_free(said, TOKEN);
    }
}

#[tokio::test]
async fn rate_limits_are_waited_out_when_short_and_reported_when_long() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", BUILD, buildkite_error(429, "rate limited").insert_header("retry-after", "1")).await;
    answer(&server, "GET", BUILD, state("running")).await;
    let began = Instant::now();
    assert_eq!(provider(&server).poll(&handle()).await.unwrap().progress, BuildProgress::Running);
    assert!(began.elapsed() >= Duration::from_secs(1));

    // Without Retry-After, RateLimit-Reset says how many seconds remain.
    let server = MockServer::start().await;
    let limited = buildkite_error(429, "rate limited").insert_header("ratelimit-remaining", "0").insert_header("ratelimit-reset", "42");
    answer(&server, "GET", BUILD, limited).await;
    let error = provider(&server).poll(&handle()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("HTTP 429") && m.contains("Buildkite is rate limiting")),
        "{error}"
    );
    assert!(error.rate_limit().is_some(), "{error}");
}

#[tokio::test]
async fn rate_limit_windows_are_obeyed_to_their_end() {
    for window in [2, 20, 120] {
        let server = MockServer::start().await;
        let clock = ManualClock::new();
        let limited = buildkite_error(429, "rate limited")
            .insert_header("ratelimit-remaining", "0")
            .insert_header("ratelimit-reset", window.to_string().as_str());
        let times =
            limited_then(&server, "POST", BUILDS, limited, ResponseTemplate::new(201).set_body_json(build("scheduled", false))).await;
        let buildkite = provider_on(&server, &clock);
        let request = build_request(Some(SHA));
        let run = window_is_obeyed(window, &clock, &times, || buildkite.start(&request)).await;
        assert_eq!(run.id, "acme/web-release/57", "window {window}");
    }
}

/// Buildkite as its API behaves: a created build is listed (filtered by branch and meta-data)
/// even when the answer to the create never reached Baton.
async fn buildkite_that_creates(server: &MockServer, create: ResponseTemplate) {
    Mock::given(method("POST")).and(path(BUILDS)).respond_with(create).expect(1).mount(server).await;
    let mut listed = build("running", false);
    listed["meta_data"] = json!({ "baton-release-id": RELEASE });
    Mock::given(method("GET"))
        .and(path(BUILDS))
        .and(query_param("branch", "main"))
        .and(query_param("meta_data[baton-release-id]", RELEASE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([listed])))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_create_answered_after_the_timeout_yields_one_build_that_is_found_and_followed() {
    let server = MockServer::start().await;
    buildkite_that_creates(&server, ResponseTemplate::new(201).set_body_json(build("scheduled", false)).set_delay(Duration::from_secs(2)))
        .await;
    answer(&server, "GET", BUILD, state("passed")).await;
    let buildkite = provider(&server).with_create_timeout(Duration::from_millis(300));
    let asked_at = chrono::Utc::now();

    let error = buildkite.start(&build_request(Some(SHA))).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 300 ms")), "{error}");
    // What the retried task does first: look for the build the lost answer created.
    let found = buildkite.find(&build_request(Some(SHA)), asked_at).await.unwrap().expect("the build the first request created");
    assert_eq!(found, handle());
    let listing = &received(&server, "GET", BUILDS).await[0];
    let from: chrono::DateTime<chrono::Utc> = listing.url.query_pairs().find(|(key, _)| key == "created_from").unwrap().1.parse().unwrap();
    assert!(from <= asked_at && asked_at - from <= chrono::Duration::seconds(60), "{from}");
    assert!(matches!(buildkite.poll(&travelled(&found)).await.unwrap().progress, BuildProgress::Succeeded { .. }));
    // `expect(1)` on the create: the server verifies one build when it drops.
}

#[tokio::test]
async fn a_build_of_another_release_is_not_taken_for_this_ones() {
    let server = MockServer::start().await;
    let mut other = build("running", false);
    other["env"]["BATON_RELEASE_ID"] = json!("rel-web-other");
    answer(&server, "GET", BUILDS, ResponseTemplate::new(200).set_body_json(json!([other]))).await;
    assert_eq!(provider(&server).find(&build_request(Some(SHA)), chrono::Utc::now()).await.unwrap(), None);
}

#[tokio::test]
async fn a_malformed_create_answer_cancels_the_build_it_started() {
    let server = MockServer::start().await;
    buildkite_that_creates(&server, ResponseTemplate::new(201).set_body_string("<html>502 from a proxy</html>")).await;
    Mock::given(method("PUT")).and(path(CANCEL)).respond_with(state("canceling")).expect(1).mount(&server).await;
    let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("a retry would start a second build: {error:?}") };
    assert!(
        said.contains("unreadable answer") && said.contains("cancelled the build it started (Buildkite acme/web-release/57)"),
        "{said}"
    );
}

#[tokio::test]
async fn an_echoed_head_never_names_the_artifact() {
    let server = MockServer::start().await;
    let mut echoed = build("passed", false);
    echoed["commit"] = json!("HEAD");
    answer(&server, "GET", BUILD, ResponseTemplate::new(200).set_body_json(echoed)).await;
    let without_sha = RunHandle { state: json!({ "release_id": RELEASE, "branch": "main" }), ..handle() };
    let BuildProgress::Failed { reason } = provider(&server).poll(&without_sha).await.unwrap().progress else { panic!("named from HEAD") };
    assert!(reason.contains("'HEAD'") && reason.contains("--sha"), "{reason}");
    // With the release's commit, the artifact names it, whatever Buildkite echoes.
    let BuildProgress::Succeeded { artifact } = provider(&server).poll(&handle()).await.unwrap().progress else { panic!("failed") };
    assert_eq!((artifact.reference.as_str(), artifact.sha.as_str()), ("acme/web:0123456-b57", SHA));
    // A handle made before ids named their pipeline: the bare number still reads.
    let bare = RunHandle { id: "57".into(), ..handle() };
    assert!(matches!(provider(&server).poll(&bare).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn a_server_error_is_unavailable_until_buildkite_answers_again() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", BUILD, ResponseTemplate::new(503).set_body_string("upstream unavailable")).await;
    answer(&server, "GET", BUILD, state("passed")).await;
    let buildkite = provider(&server);
    let error = buildkite.poll(&handle()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("Buildkite answered HTTP 503: upstream unavailable")),
        "{error}"
    );
    assert!(matches!(buildkite.poll(&handle()).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn a_request_without_an_answer_in_time_is_unavailable() {
    let server = MockServer::start().await;
    answer(&server, "POST", BUILDS, ResponseTemplate::new(201).set_body_json(build("scheduled", false)).set_delay(Duration::from_secs(3)))
        .await;
    let buildkite = provider(&server).with_create_timeout(Duration::from_millis(250));
    let error = buildkite.start(&build_request(Some(SHA))).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 250 ms")), "{error}");
}

#[tokio::test]
async fn unreadable_builds_name_the_field() {
    let server = MockServer::start().await;
    let mut bad = build("running", false);
    bad["number"] = json!("fifty-seven");
    answer(&server, "GET", BUILD, ResponseTemplate::new(200).set_body_json(bad.clone())).await;
    let error = provider(&server).poll(&handle()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("unreadable answer, field `number`")), "{error}");

    answer(&server, "POST", BUILDS, ResponseTemplate::new(201).set_body_json(bad)).await;
    let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("a retry would start a second build: {error:?}") };
    assert!(said.contains("field `number`") && said.contains("not retried"), "{said}");
}

#[tokio::test]
async fn cancel_puts_to_the_build_and_a_finished_build_is_fine() {
    let server = MockServer::start().await;
    answer_once(&server, "PUT", CANCEL, state("canceling")).await;
    answer(&server, "PUT", CANCEL, buildkite_error(422, "Build can't be canceled because it's already finished")).await;
    let buildkite = provider(&server);
    buildkite.cancel(&handle()).await.unwrap();
    buildkite.cancel(&handle()).await.unwrap();
    let cancels = received(&server, "PUT", CANCEL).await;
    assert_eq!(cancels.len(), 2);
    assert_eq!(authorization(&cancels[0]), format!("Bearer {TOKEN}"));

    let server = MockServer::start().await;
    answer(&server, "PUT", CANCEL, buildkite_error(404, "Not Found")).await;
    let error = provider(&server).cancel(&handle()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("cancelling Buildkite build 57")), "{error}");
}

#[tokio::test]
async fn the_token_stays_out_of_handles_and_reasons() {
    let server = MockServer::start().await;
    let mut echoed = build("scheduled", false);
    echoed["env"]["LEAK"] = json!(TOKEN);
    answer(&server, "POST", BUILDS, ResponseTemplate::new(201).set_body_json(echoed)).await;
    answer(&server, "GET", BUILD, state("failed")).await;
    let buildkite = provider(&server);
    let run = buildkite.start(&build_request(Some(SHA))).await.unwrap();
    assert_secret_free(&serde_json::to_string(&run).unwrap(), TOKEN);
    let BuildProgress::Failed { reason } = buildkite.poll(&run).await.unwrap().progress else { panic!("failed") };
    assert_secret_free(&reason, TOKEN);
    let other = RunHandle { provider: "gitlab-ci".into(), ..handle() };
    let error = buildkite.poll(&other).await.unwrap_err();
    assert!(error.message().contains("not the Buildkite build provider"), "{error}");
}

#[test]
fn bad_slugs_and_templates_are_refused_when_the_provider_is_built() {
    let server_uri = "http://127.0.0.1:9/v2";
    let base = || BuildkiteBuild {
        organization: "acme".into(),
        pipeline: "web".into(),
        token: SecretRef::Env("BUILDKITE_TOKEN".into()),
        env: BTreeMap::new(),
        artifact: "web:{build-number}".into(),
        api_url: Some(server_uri.into()),
        events_secret: None,
    };
    let refused = |spec: BuildkiteBuild| {
        let error = BuildkiteBuildProvider::new(&spec, "catalog/web.yaml", Secrets::of(&[]), client()).err().unwrap();
        error.message().to_owned()
    };
    let said = refused(BuildkiteBuild { pipeline: "Web Release".into(), ..base() });
    assert!(said.starts_with("catalog/web.yaml: extensions.baton.build: buildkite pipeline: expected a slug"), "{said}");
    let said = refused(BuildkiteBuild { artifact: "web:{pipeline-id}".into(), ..base() });
    assert!(said.contains("unknown placeholder {pipeline-id}") && said.contains("{build-number}"), "{said}");
    let said = refused(BuildkiteBuild { api_url: Some("ftp://buildkite.example.com".into()), ..base() });
    assert!(said.contains("api-url 'ftp://buildkite.example.com/' is not an http(s) URL"), "{said}");
    assert!(BuildkiteBuildProvider::new(&BuildkiteBuild { api_url: None, ..base() }, "f", Secrets::of(&[]), client()).is_ok());
}

//! Contract tests of the CircleCI build provider against a local server that answers with the
//! shapes CircleCI documents for its API v2 (trigger a pipeline, get a pipeline, get a
//! pipeline's workflows, cancel a workflow).

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::error::chain_text;
use baton_domain::ports::{BuildProgress, BuildProvider, ProviderError, RunHandle};
use baton_domain::release::Artifact;
use baton_providers::CircleCiBuildProvider;
use baton_providers::{CircleCiBuild, PipelineParameter};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{
    ManualClock, RELEASE, SHA, Secrets, answer, answer_once, assert_secret_free, build_request, build_span, client, limited_then,
    own_limits, received, travelled, window_is_obeyed,
};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "CCIPAT_TOPSECRET_0123456789abcdef";
const PIPELINE_ID: &str = "5034460f-c7c4-4c43-9457-de07e2029e7b";
const TRIGGER: &str = "/api/v2/project/gh/acme/web/pipeline";
const PIPELINE: &str = "/api/v2/pipeline/5034460f-c7c4-4c43-9457-de07e2029e7b";
const WORKFLOWS: &str = "/api/v2/pipeline/5034460f-c7c4-4c43-9457-de07e2029e7b/workflow";
const PAGE: &str = "https://app.circleci.com/pipelines/gh/acme/web/42";
/// A commit other than the release's: the branch's head when it moved after the release was cut.
const MOVED: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn spec(server: &MockServer) -> CircleCiBuild {
    CircleCiBuild {
        project: "gh/acme/web".into(),
        token: SecretRef::Env("CIRCLE_TOKEN".into()),
        parameters: BTreeMap::from([
            ("deploy-env".to_string(), PipelineParameter::String("production".into())),
            ("replicas".to_string(), PipelineParameter::Integer(3)),
            ("dry-run".to_string(), PipelineParameter::Boolean(false)),
        ]),
        traceparent: false,
        artifact: "acme/web:{short-sha}-p{pipeline-number}".into(),
        api_url: Some(format!("{}/api/v2", server.uri())),
        events_secret: None,
    }
}

fn provider(server: &MockServer) -> CircleCiBuildProvider {
    provider_on(server, &ManualClock::new())
}

/// The provider, its rate limits on `clock`.
fn provider_on(server: &MockServer, clock: &std::sync::Arc<ManualClock>) -> CircleCiBuildProvider {
    CircleCiBuildProvider::new(&spec(server), "catalog/web.yaml", Secrets::of(&[("CIRCLE_TOKEN", TOKEN)]), client())
        .unwrap()
        .with_rate_limits(own_limits(clock.clone()))
}

/// The trigger's answer (201).
fn triggered() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": PIPELINE_ID, "state": "created", "number": 42, "created_at": "2026-01-01T12:00:00.000Z",
    }))
}

/// A pipeline as `GET /pipeline/{id}` answers it; `revision` is the commit it built.
fn pipeline(state: &str, revision: &str) -> Value {
    json!({
        "id": PIPELINE_ID,
        "errors": [],
        "project_slug": "gh/acme/web",
        "updated_at": "2026-01-01T12:00:05.000Z",
        "number": 42,
        "trigger_parameters": {},
        "state": state,
        "created_at": "2026-01-01T12:00:00.000Z",
        "trigger": { "type": "api", "received_at": "2026-01-01T12:00:00.000Z", "actor": { "login": "baton-bot", "avatar_url": null } },
        "vcs": {
            "provider_name": "GitHub",
            "target_repository_url": "https://github.com/acme/web",
            "origin_repository_url": "https://github.com/acme/web",
            "branch": "main",
            "revision": revision,
            "review_id": null,
            "review_url": null,
            "tag": null,
            "commit": { "subject": "Take the money", "body": "" },
        },
    })
}

fn pipeline_state(state: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(pipeline(state, SHA))
}

/// A page of workflows, each `(name, status)`, as `GET /pipeline/{id}/workflow` answers it.
/// CircleCI lists workflows newest first: each one here was created a second before the one
/// above it, the last at [`FIRST_WORKFLOW_CREATED`] when there are two.
fn workflow_page(workflows: &[(&str, &str)], next_page_token: Option<&str>) -> ResponseTemplate {
    let items: Vec<Value> = workflows
        .iter()
        .enumerate()
        .map(|(i, (name, status))| {
            json!({
                "pipeline_id": PIPELINE_ID,
                "id": workflow_id(name),
                "name": name,
                "project_slug": "gh/acme/web",
                "status": status,
                "started_by": "2a2c3c8e-0000-4000-8000-000000000000",
                "pipeline_number": 42,
                "created_at": format!("2026-01-01T12:00:{:02}.000Z", 10 - i),
                "stopped_at": null,
            })
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "items": items, "next_page_token": next_page_token }))
}

const FIRST_WORKFLOW_CREATED: &str = "2026-01-01T12:00:09.000Z";

/// The id CircleCI gives workflow `name` in these tests.
fn workflow_id(name: &str) -> String {
    format!("wf-{name}")
}

fn cancel_path(name: &str) -> String {
    format!("/api/v2/workflow/{}/cancel", workflow_id(name))
}

fn circleci_error(status: u16, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "message": text }))
}

/// A handle as `start` returns it, triggered `minutes_ago`.
fn handle(minutes_ago: i64) -> RunHandle {
    let triggered_at = chrono::Utc::now() - chrono::Duration::minutes(minutes_ago);
    RunHandle {
        provider: "circleci".into(),
        id: PIPELINE_ID.into(),
        url: Some(PAGE.into()),
        state: json!({ "release_id": RELEASE, "branch": "main", "number": 42, "sha": SHA, "triggered_at": triggered_at }),
    }
}

fn token_header(request: &wiremock::Request) -> &str {
    request.headers.get("circle-token").map(|value| value.to_str().unwrap()).unwrap_or_default()
}

#[tokio::test]
async fn a_pipeline_is_triggered_with_the_release_parameters_and_followed_until_every_workflow_succeeds() {
    let server = MockServer::start().await;
    answer(&server, "POST", TRIGGER, triggered()).await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    // Set up, no workflow yet; then one running beside one done; then both done.
    answer_once(&server, "GET", WORKFLOWS, workflow_page(&[], None)).await;
    answer_once(&server, "GET", WORKFLOWS, workflow_page(&[("build", "running"), ("lint", "success")], None)).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success"), ("lint", "success")], None)).await;
    let circleci = provider(&server);

    let began = chrono::Utc::now();
    let run = circleci.start(&build_request(Some(SHA))).await.unwrap();
    assert_eq!((run.provider.as_str(), run.id.as_str(), run.url.as_deref()), ("circleci", PIPELINE_ID, Some(PAGE)));
    assert_eq!((&run.state["release_id"], &run.state["branch"], &run.state["number"]), (&json!(RELEASE), &json!("main"), &json!(42)));
    let triggered_at: chrono::DateTime<chrono::Utc> = serde_json::from_value(run.state["triggered_at"].clone()).unwrap();
    assert!(triggered_at >= began - chrono::Duration::seconds(1) && triggered_at <= chrono::Utc::now());
    let trigger = &received(&server, "POST", TRIGGER).await[0];
    assert_eq!(token_header(trigger), TOKEN);
    let body: Value = serde_json::from_slice(&trigger.body).unwrap();
    assert_eq!(
        body,
        json!({
            "branch": "main",
            "parameters": {
                "baton-release-id": RELEASE, "baton-sha": SHA, "deploy-env": "production", "replicas": 3, "dry-run": false,
            },
        })
    );

    let run = travelled(&run);
    let set_up = circleci.poll(&run).await.unwrap();
    assert_eq!((set_up.progress, set_up.started_at), (BuildProgress::Running, None), "no workflow, no start");
    let running = circleci.poll(&run).await.unwrap();
    assert_eq!((running.progress, running.started_at), (BuildProgress::Running, Some(FIRST_WORKFLOW_CREATED.parse().unwrap())));
    let artifact =
        Artifact { reference: "acme/web:0123456-p42".into(), sha: SHA.into(), branch: "main".into(), build_url: Some(PAGE.into()) };
    assert_eq!(circleci.poll(&run).await.unwrap().progress, BuildProgress::Succeeded { artifact });
    assert!(received(&server, "GET", WORKFLOWS).await.iter().all(|request| token_header(request) == TOKEN));
}

#[tokio::test]
async fn the_artifact_names_the_commit_circleci_built_when_the_branch_moved() {
    let server = MockServer::start().await;
    answer(&server, "POST", TRIGGER, triggered()).await;
    answer(&server, "GET", PIPELINE, ResponseTemplate::new(200).set_body_json(pipeline("created", MOVED))).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success")], None)).await;
    let circleci = provider(&server);
    let run = circleci.start(&build_request(Some(SHA))).await.unwrap();
    let BuildProgress::Succeeded { artifact } = circleci.poll(&run).await.unwrap().progress else { panic!("succeeded") };
    assert_eq!((artifact.sha.as_str(), artifact.reference.as_str()), (MOVED, "acme/web:fedcba9-p42"));

    // Without a release sha the branch head is built, and `baton-sha` is empty.
    provider(&server).start(&build_request(None)).await.unwrap();
    let body: Value = serde_json::from_slice(&received(&server, "POST", TRIGGER).await[1].body).unwrap();
    assert_eq!(body["parameters"]["baton-sha"], json!(""));
}

/// Only a block that asks hands the pipeline its trace context: an undeclared parameter fails it.
#[tokio::test]
async fn the_build_span_is_a_parameter_only_when_the_block_asks() {
    let server = MockServer::start().await;
    answer(&server, "POST", TRIGGER, triggered()).await;
    provider(&server).start(&build_request(Some(SHA))).await.unwrap();
    let traced = CircleCiBuild { traceparent: true, ..spec(&server) };
    let provider = CircleCiBuildProvider::new(&traced, "catalog/web.yaml", Secrets::of(&[("CIRCLE_TOKEN", TOKEN)]), client()).unwrap();
    provider.start(&build_request(Some(SHA))).await.unwrap();
    let bodies: Vec<Value> =
        received(&server, "POST", TRIGGER).await.iter().map(|request| serde_json::from_slice(&request.body).unwrap()).collect();
    assert_eq!(bodies[0]["parameters"].get("baton-traceparent"), None, "{}", bodies[0]);
    assert_eq!(bodies[1]["parameters"]["baton-traceparent"], json!(build_span()), "{}", bodies[1]);
    let said = CircleCiBuildProvider::new(
        &CircleCiBuild { parameters: BTreeMap::from([("baton-traceparent".into(), PipelineParameter::Boolean(true))]), ..spec(&server) },
        "catalog/web.yaml",
        Secrets::of(&[]),
        client(),
    )
    .err()
    .unwrap();
    assert!(said.message().contains("`baton-traceparent` is set by Baton"), "{said}");
}

#[tokio::test]
async fn every_workflow_status_maps_to_its_progress() {
    for status in ["running", "failing", "on_hold"] {
        let server = MockServer::start().await;
        answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
        answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", status), ("lint", "success")], None)).await;
        assert_eq!(provider(&server).poll(&handle(1)).await.unwrap().progress, BuildProgress::Running, "{status}");
    }
    let failed = [
        ("failed", "a job failed"),
        ("error", "CircleCI could not run it"),
        ("canceled", "cancelled it"),
        ("unauthorized", "restricted context"),
        ("not_run", "did not run it"),
    ];
    for (status, why) in failed {
        let server = MockServer::start().await;
        answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
        answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", status), ("lint", "success")], None)).await;
        let progress = provider(&server).poll(&handle(1)).await.unwrap().progress;
        let BuildProgress::Failed { reason } = &progress else { panic!("{status}: {progress:?}") };
        let expected = format!("CircleCI pipeline 42 of project gh/acme/web failed: workflow 'build' is '{status}': ");
        assert!(reason.starts_with(&expected) && reason.contains(why) && reason.ends_with(&format!("; see {PAGE}")), "{reason}");
        assert!(!reason.contains("lint"), "only the workflows that failed are named: {reason}");
    }
}

#[tokio::test]
async fn an_errored_pipeline_fails_with_its_errors() {
    let server = MockServer::start().await;
    let mut errored = pipeline("errored", SHA);
    errored["errors"] = json!([
        { "type": "config", "message": "Unexpected argument(s): baton-sha" },
        { "type": "plan", "message": "Concurrency limit reached" },
    ]);
    answer(&server, "GET", PIPELINE, ResponseTemplate::new(200).set_body_json(errored)).await;
    let progress = provider(&server).poll(&handle(1)).await.unwrap().progress;
    let expected = format!(
        "CircleCI pipeline 42 of project gh/acme/web errored: config: Unexpected argument(s): baton-sha; plan: Concurrency limit \
         reached; see {PAGE}"
    );
    assert_eq!(progress, BuildProgress::Failed { reason: expected });
    assert!(received(&server, "GET", WORKFLOWS).await.is_empty(), "an errored pipeline has no workflows to list");
}

#[tokio::test]
async fn a_pipeline_that_never_starts_a_workflow_fails_after_ten_minutes() {
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[], None)).await;
    assert_eq!(provider(&server).poll(&handle(9)).await.unwrap().progress, BuildProgress::Running);
    let BuildProgress::Failed { reason } = provider(&server).poll(&handle(11)).await.unwrap().progress else { panic!("failed") };
    assert!(reason.contains("is 'created' and started no workflow within 10 minutes") && reason.contains(PAGE), "{reason}");
}

#[tokio::test]
async fn every_page_of_workflows_is_read() {
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    let second_page = || Mock::given(method("GET")).and(path(WORKFLOWS)).and(query_param("page-token", "page-2"));
    second_page().respond_with(workflow_page(&[("deploy-docs", "running")], None)).up_to_n_times(1).mount(&server).await;
    second_page().respond_with(workflow_page(&[("deploy-docs", "success")], None)).mount(&server).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success")], Some("page-2"))).await;
    let circleci = provider(&server);
    // The first page alone would say every workflow succeeded.
    assert_eq!(circleci.poll(&handle(1)).await.unwrap().progress, BuildProgress::Running);
    assert!(matches!(circleci.poll(&handle(1)).await.unwrap().progress, BuildProgress::Succeeded { .. }));
    assert_eq!(received(&server, "GET", WORKFLOWS).await.len(), 4);

    // An API that always has a next page is not followed for ever.
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success")], Some("again"))).await;
    let error = provider(&server).poll(&handle(1)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("still answers a next page after 50 pages")),
        "{error}"
    );
}

#[tokio::test]
async fn refusals_name_circleci_and_what_was_refused_never_the_token() {
    let cases = [
        (401, "CircleCI refused the credentials (HTTP 401): check the token env:CIRCLE_TOKEN"),
        (403, "CircleCI denied it (HTTP 403): check the token env:CIRCLE_TOKEN"),
        (404, "HTTP 404, CircleCI has no project gh/acme/web that this token can see"),
        (
            422,
            "triggering a pipeline of CircleCI project gh/acme/web on main with the parameters baton-release-id, baton-sha, \
             deploy-env, dry-run, replicas (its config must declare each): CircleCI answered HTTP 422",
        ),
        (400, "CircleCI answered HTTP 400"),
    ];
    for (status, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "POST", TRIGGER, circleci_error(status, &format!("Refused {TOKEN}: Unexpected argument(s): dry-run"))).await;
        let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
        let ProviderError::Rejected { message: said, .. } = &error else { panic!("{status}: {error:?}") };
        assert!(said.contains(expected) && said.contains("Refused ***: Unexpected argument(s): dry-run"), "{said}");
        assert_secret_free(said, TOKEN);
    }
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, circleci_error(404, "Pipeline not found")).await;
    let error = provider(&server).poll(&handle(1)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.starts_with("reading CircleCI pipeline 42 of project gh/acme/web: HTTP 404"))
    );
}

#[tokio::test]
async fn rate_limits_are_waited_out_when_short_and_reported_when_long() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", PIPELINE, circleci_error(429, "Too many requests").insert_header("retry-after", "1")).await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "running")], None)).await;
    let began = Instant::now();
    assert_eq!(provider(&server).poll(&handle(1)).await.unwrap().progress, BuildProgress::Running);
    assert!(began.elapsed() >= Duration::from_secs(1));

    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, circleci_error(429, "Too many requests").insert_header("retry-after", "120")).await;
    let began = Instant::now();
    let error = provider(&server).poll(&handle(1)).await.unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(5), "a long wait is the definition's to make");
    let ProviderError::Unavailable { message: said, .. } = &error else { panic!("{error:?}") };
    assert!(said.contains("CircleCI is rate limiting (HTTP 429), retry after 120 s: Too many requests"), "{said}");
    assert!(error.rate_limit().is_some(), "{error}");
}

#[tokio::test]
async fn rate_limit_windows_are_obeyed_to_their_end() {
    for window in [2, 20, 120] {
        for header in ["retry-after", "x-ratelimit-reset"] {
            let server = MockServer::start().await;
            let clock = ManualClock::new();
            let limited = circleci_error(429, "Too many requests")
                .insert_header("x-ratelimit-limit", "3000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(header, window.to_string().as_str());
            let times = limited_then(&server, "POST", TRIGGER, limited, triggered()).await;
            let circleci = provider_on(&server, &clock);
            let request = build_request(Some(SHA));
            let run = window_is_obeyed(window, &clock, &times, || circleci.start(&request)).await;
            assert_eq!(run.id, PIPELINE_ID, "{header} {window}");
        }
    }
}

/// CircleCI as its API behaves: a triggered pipeline is listed with the parameters it was
/// triggered with, even when the answer to the trigger never reached Baton.
async fn circleci_that_triggers(server: &MockServer, trigger: ResponseTemplate) {
    Mock::given(method("POST")).and(path(TRIGGER)).respond_with(trigger).expect(1).mount(server).await;
    let listed = |id: &str, number: u64, release: &str| {
        let mut listed = pipeline("created", SHA);
        listed["id"] = json!(id);
        listed["number"] = json!(number);
        listed["created_at"] = json!(chrono::Utc::now().to_rfc3339());
        listed["trigger_parameters"] = json!({ "baton-release-id": release, "baton-sha": SHA });
        listed
    };
    let items = json!([listed("another-pipeline", 43, "rel-web-other"), listed(PIPELINE_ID, 42, RELEASE)]);
    Mock::given(method("GET"))
        .and(path(TRIGGER))
        .and(query_param("branch", "main"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "items": items, "next_page_token": null })))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_trigger_answered_after_the_timeout_yields_one_pipeline_that_is_found_and_followed() {
    let server = MockServer::start().await;
    circleci_that_triggers(&server, triggered().set_delay(Duration::from_secs(2))).await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success")], None)).await;
    let circleci = provider(&server).with_create_timeout(Duration::from_millis(300));
    let asked_at = chrono::Utc::now();

    let error = circleci.start(&build_request(Some(SHA))).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 300 ms")), "{error}");
    let found = circleci.find(&build_request(Some(SHA)), asked_at).await.unwrap().expect("the pipeline the lost answer created");
    assert_eq!((found.id.as_str(), found.url.as_deref()), (PIPELINE_ID, Some(PAGE)));
    assert!(matches!(circleci.poll(&travelled(&found)).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn a_malformed_trigger_answer_cancels_the_pipeline_it_started() {
    let server = MockServer::start().await;
    circleci_that_triggers(&server, ResponseTemplate::new(201).set_body_string("<html>bad gateway</html>")).await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "running")], None)).await;
    Mock::given(method("POST"))
        .and(path(cancel_path("build")))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({ "message": "Accepted." })))
        .expect(1)
        .mount(&server)
        .await;
    let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("a retry would trigger a second pipeline: {error:?}") };
    assert!(said.contains(&format!("cancelled the build it started (CircleCI {PIPELINE_ID})")), "{said}");
}

#[tokio::test]
async fn a_server_error_is_unavailable_until_circleci_answers_again() {
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer_once(&server, "GET", WORKFLOWS, ResponseTemplate::new(502).set_body_string("bad gateway")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success")], None)).await;
    let circleci = provider(&server);
    let error = circleci.poll(&handle(1)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("CircleCI answered HTTP 502: bad gateway")),
        "{error}"
    );
    assert!(matches!(circleci.poll(&handle(1)).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn a_request_without_an_answer_in_time_is_unavailable() {
    let server = MockServer::start().await;
    answer(&server, "POST", TRIGGER, triggered().set_delay(Duration::from_secs(3))).await;
    let circleci = provider(&server).with_create_timeout(Duration::from_millis(250));
    let error = circleci.start(&build_request(Some(SHA))).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 250 ms")), "{error}");
}

#[tokio::test]
async fn unreadable_answers_name_the_field() {
    let server = MockServer::start().await;
    let mut bad = pipeline("created", SHA);
    bad["vcs"]["revision"] = json!(42);
    answer(&server, "GET", PIPELINE, ResponseTemplate::new(200).set_body_json(bad)).await;
    let error = provider(&server).poll(&handle(1)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("unreadable answer, field `vcs.revision`")),
        "{error}"
    );

    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, ResponseTemplate::new(200).set_body_json(json!({ "items": [{ "id": "w", "name": "build" }] }))).await;
    let error = provider(&server).poll(&handle(1)).await.unwrap_err();
    // The field is the message; what serde said of it is the cause.
    assert!(
        matches!(&error, ProviderError::Unavailable { .. }) && chain_text(&error).contains("field `items[0]`: missing field `status`"),
        "{error:?}"
    );

    // The trigger was accepted: a retry would start a second pipeline.
    answer(&server, "POST", TRIGGER, ResponseTemplate::new(201).set_body_json(json!({ "id": PIPELINE_ID, "number": "forty-two" }))).await;
    let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("a retry would trigger a second pipeline: {error:?}") };
    assert!(said.contains("field `number`") && said.contains("not retried"), "{said}");
}

#[tokio::test]
async fn the_token_stays_out_of_handles_and_reasons() {
    let server = MockServer::start().await;
    let echoed = ResponseTemplate::new(201).set_body_json(json!({
        "id": PIPELINE_ID, "state": "created", "number": 42, "created_at": "2026-01-01T12:00:00.000Z", "echo": TOKEN,
    }));
    answer(&server, "POST", TRIGGER, echoed).await;
    let mut errored = pipeline("errored", SHA);
    errored["errors"] = json!([{ "type": "permission", "message": "no access" }]);
    answer(&server, "GET", PIPELINE, ResponseTemplate::new(200).set_body_json(errored)).await;
    let circleci = provider(&server);
    let run = circleci.start(&build_request(Some(SHA))).await.unwrap();
    assert_secret_free(&serde_json::to_string(&run).unwrap(), TOKEN);
    let BuildProgress::Failed { reason } = circleci.poll(&run).await.unwrap().progress else { panic!("failed") };
    assert_secret_free(&reason, TOKEN);
    let other = RunHandle { provider: "buildkite".into(), ..handle(1) };
    let error = circleci.poll(&other).await.unwrap_err();
    assert!(error.message().contains("belongs to the 'buildkite' provider, not the CircleCI build provider"), "{error}");
}

#[tokio::test]
async fn cancel_stops_the_workflows_still_running_and_leaves_finished_ones_alone() {
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    let statuses = [("build", "running"), ("lint", "success"), ("approve-deploy", "on_hold"), ("test", "failing"), ("docs", "failed")];
    answer(&server, "GET", WORKFLOWS, workflow_page(&statuses, None)).await;
    let accepted = ResponseTemplate::new(202).set_body_json(json!({ "message": "Accepted." }));
    Mock::given(method("POST")).and(path(cancel_path("build"))).respond_with(accepted.clone()).expect(1).mount(&server).await;
    Mock::given(method("POST")).and(path(cancel_path("approve-deploy"))).respond_with(accepted.clone()).expect(1).mount(&server).await;
    Mock::given(method("POST")).and(path(cancel_path("test"))).respond_with(accepted).expect(1).mount(&server).await;
    provider(&server).cancel(&handle(1)).await.unwrap();
    assert!(received(&server, "POST", &cancel_path("build")).await.iter().all(|request| token_header(request) == TOKEN));
    server.verify().await;
    let cancels = server.received_requests().await.unwrap().into_iter().filter(|request| request.method.as_str() == "POST").count();
    assert_eq!(cancels, 3, "finished workflows are not cancelled");

    // A pipeline whose workflows all finished has nothing to cancel.
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "success"), ("docs", "canceled")], None)).await;
    provider(&server).cancel(&handle(1)).await.unwrap();
    assert!(server.received_requests().await.unwrap().iter().all(|request| request.method.as_str() == "GET"));
}

#[tokio::test]
async fn cancel_waits_for_a_first_workflow_and_reports_refusals() {
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("setup")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[], None)).await;
    let error = provider(&server).cancel(&handle(1)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("has no workflow yet: nothing to cancel")),
        "{error}"
    );
    // Past the window no workflow will start: there is nothing to cancel.
    provider(&server).cancel(&handle(11)).await.unwrap();

    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, pipeline_state("created")).await;
    answer(&server, "GET", WORKFLOWS, workflow_page(&[("build", "running")], None)).await;
    answer(&server, "POST", &cancel_path("build"), circleci_error(403, "Permission denied")).await;
    let error = provider(&server).cancel(&handle(1)).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("{error:?}") };
    assert!(said.starts_with("cancelling workflow build of CircleCI pipeline 42 of project gh/acme/web: CircleCI denied it (HTTP 403)"));
}

#[test]
fn bad_blocks_are_refused_when_the_provider_is_built() {
    let base = || CircleCiBuild {
        project: "gh/acme/web".into(),
        token: SecretRef::Env("CIRCLE_TOKEN".into()),
        parameters: BTreeMap::new(),
        traceparent: false,
        artifact: "web:{pipeline-number}".into(),
        api_url: None,
        events_secret: None,
    };
    let refused = |spec: CircleCiBuild| {
        let error = CircleCiBuildProvider::new(&spec, "catalog/web.yaml", Secrets::of(&[]), client()).err().unwrap();
        error.message().to_owned()
    };
    let said = refused(CircleCiBuild { project: "acme/web".into(), ..base() });
    assert!(said.starts_with("catalog/web.yaml: extensions.baton.build: circleci project: expected a project slug"), "{said}");
    let reserved = BTreeMap::from([("baton-sha".to_string(), PipelineParameter::String("x".into()))]);
    let said = refused(CircleCiBuild { parameters: reserved, ..base() });
    assert!(said.contains("parameters.baton-sha: `baton-sha` is set by Baton"), "{said}");
    let said = refused(CircleCiBuild { artifact: "web:{build-number}".into(), ..base() });
    assert!(said.contains("unknown placeholder {build-number}") && said.contains("{pipeline-number}"), "{said}");
    let said = refused(CircleCiBuild { api_url: Some("ftp://circleci.example.com".into()), ..base() });
    assert!(said.contains("api-url 'ftp://circleci.example.com/' is not an http(s) URL"), "{said}");
    assert!(CircleCiBuildProvider::new(&base(), "f", Secrets::of(&[]), client()).is_ok());
}

//! Contract tests of the GitLab CI build provider against a local server that answers with the
//! shapes GitLab documents for its Pipelines and Pipeline triggers APIs (REST v4).

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::error::chain_text;
use baton_domain::ports::{BuildProgress, BuildProvider, ProviderError, RunHandle};
use baton_domain::release::Artifact;
use baton_providers::GitLabCiBuildProvider;
use baton_providers::{GitLabCiBuild, GitLabProject};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{
    ManualClock, RELEASE, SHA, Secrets, answer, answer_once, assert_secret_free, build_request, build_span, client, limited_then,
    own_limits, received, travelled, window_is_obeyed,
};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "glpat-TOPSECRET0123456789";
const TRIGGER: &str = "glptt-TRIGGERSECRET0123456789";
/// `acme/web`, encoded as one path segment as GitLab wants it.
const CREATE: &str = "/api/v4/projects/acme%2Fweb/pipeline";
const TRIGGERED: &str = "/api/v4/projects/acme%2Fweb/trigger/pipeline";
const PIPELINE: &str = "/api/v4/projects/acme%2Fweb/pipelines/4242";
const CANCEL: &str = "/api/v4/projects/acme%2Fweb/pipelines/4242/cancel";
const PAGE: &str = "https://gitlab.example.com/acme/web/-/pipelines/4242";

fn spec(server: &MockServer, token: bool, trigger: bool) -> GitLabCiBuild {
    GitLabCiBuild {
        project: GitLabProject("acme/web".into()),
        token: token.then(|| SecretRef::Env("GITLAB_TOKEN".into())),
        trigger_token: trigger.then(|| SecretRef::Env("GITLAB_TRIGGER".into())),
        variables: BTreeMap::from([("DEPLOY_ENV".to_string(), "production".to_string())]),
        artifact: "registry.gitlab.com/acme/web:{short-sha}-{pipeline-id}".into(),
        api_url: Some(format!("{}/api/v4", server.uri())),
        events_secret: None,
    }
}

fn built(spec: &GitLabCiBuild) -> GitLabCiBuildProvider {
    built_on(spec, &ManualClock::new())
}

/// The provider, its rate limits on `clock`.
fn built_on(spec: &GitLabCiBuild, clock: &std::sync::Arc<ManualClock>) -> GitLabCiBuildProvider {
    let secrets = Secrets::of(&[("GITLAB_TOKEN", TOKEN), ("GITLAB_TRIGGER", TRIGGER)]);
    GitLabCiBuildProvider::new(spec, "catalog/web.yaml", secrets, client()).unwrap().with_rate_limits(own_limits(clock.clone()))
}

fn provider(server: &MockServer) -> GitLabCiBuildProvider {
    built(&spec(server, true, false))
}

/// When the pipelines below began to run, unless they are still waiting.
const STARTED: &str = "2026-01-01T12:00:30.000Z";

/// A pipeline as the create, trigger, get and cancel endpoints answer it (abridged).
fn pipeline(status: &str) -> Value {
    let waiting = matches!(status, "created" | "waiting_for_resource" | "preparing" | "pending" | "scheduled");
    json!({
        "id": 4242,
        "iid": 12,
        "project_id": 7,
        "sha": SHA,
        "ref": "main",
        "status": status,
        "source": "api",
        "created_at": "2026-01-01T12:00:00.000Z",
        "updated_at": "2026-01-01T12:00:01.000Z",
        "web_url": PAGE,
        "before_sha": "0000000000000000000000000000000000000000",
        "tag": false,
        "yaml_errors": null,
        "user": { "id": 1, "username": "baton-bot" },
        "started_at": if waiting { Value::Null } else { json!(STARTED) },
        "finished_at": null,
        "duration": null,
        "coverage": null,
        "detailed_status": { "icon": "status_pending", "text": "pending", "group": status },
    })
}

fn ok(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(pipeline(status))
}

fn created(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(pipeline(status))
}

fn gitlab_error(status: u16, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "message": text }))
}

/// The handle `start` returns for pipeline 4242.
fn handle() -> RunHandle {
    RunHandle {
        provider: "gitlab-ci".into(),
        id: "4242".into(),
        url: Some(PAGE.into()),
        state: json!({ "release_id": RELEASE, "branch": "main", "sha": SHA }),
    }
}

fn header<'r>(request: &'r wiremock::Request, name: &str) -> Option<&'r str> {
    request.headers.get(name).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn a_pipeline_is_created_with_the_release_variables_and_followed_until_it_succeeds() {
    let server = MockServer::start().await;
    answer(&server, "POST", CREATE, created("created")).await;
    answer_once(&server, "GET", PIPELINE, ok("running")).await;
    answer(&server, "GET", PIPELINE, ok("success")).await;
    let gitlab = provider(&server);

    let run = gitlab.start(&build_request(Some(SHA))).await.unwrap();
    assert_eq!(run, handle());
    let create = &received(&server, "POST", CREATE).await[0];
    assert_eq!(header(create, "private-token"), Some(TOKEN));
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body,
        json!({ "ref": "main", "variables": [
            { "key": "BATON_RELEASE_ID", "value": RELEASE },
            { "key": "BATON_SHA", "value": SHA },
            { "key": "DEPLOY_ENV", "value": "production" },
            // The build's span of the release's trace, for a job that traces.
            { "key": "TRACEPARENT", "value": build_span() },
        ] })
    );

    let run = travelled(&run);
    let running = gitlab.poll(&run).await.unwrap();
    assert_eq!((running.progress, running.started_at), (BuildProgress::Running, Some(STARTED.parse().unwrap())));
    let expected = Artifact {
        reference: "registry.gitlab.com/acme/web:0123456-4242".into(),
        sha: SHA.into(),
        branch: "main".into(),
        build_url: Some(PAGE.into()),
    };
    assert_eq!(gitlab.poll(&run).await.unwrap().progress, BuildProgress::Succeeded { artifact: expected });
    assert_eq!(header(&received(&server, "GET", PIPELINE).await[0], "private-token"), Some(TOKEN));
}

#[tokio::test]
async fn a_release_without_a_sha_sends_an_empty_baton_sha_and_baton_variables_win() {
    let server = MockServer::start().await;
    answer(&server, "POST", CREATE, created("pending")).await;
    let mut spec = spec(&server, true, false);
    spec.variables.insert("BATON_RELEASE_ID".into(), "forged".into());
    built(&spec).start(&build_request(None)).await.unwrap();
    let body: Value = serde_json::from_slice(&received(&server, "POST", CREATE).await[0].body).unwrap();
    let variables = body["variables"].as_array().unwrap();
    assert!(variables.contains(&json!({ "key": "BATON_SHA", "value": "" })), "{body}");
    assert!(variables.contains(&json!({ "key": "BATON_RELEASE_ID", "value": RELEASE })), "{body}");
    assert!(!body.to_string().contains("forged"), "{body}");
}

#[tokio::test]
async fn the_trigger_api_takes_its_token_in_the_form_and_polls_use_the_access_token() {
    let server = MockServer::start().await;
    answer(&server, "POST", TRIGGERED, created("created")).await;
    answer(&server, "GET", PIPELINE, ok("pending")).await;
    let gitlab = built(&spec(&server, true, true));

    let run = gitlab.start(&build_request(Some(SHA))).await.unwrap();
    assert_eq!(run, handle());
    let trigger = &received(&server, "POST", TRIGGERED).await[0];
    assert_eq!(header(trigger, "private-token"), None);
    assert!(trigger.url.query().is_none(), "the trigger token stays out of the URL: {}", trigger.url);
    // The form read back with the URL parser's query decoding, which is the same encoding.
    let form = reqwest::Url::parse(&format!("http://form/?{}", String::from_utf8_lossy(&trigger.body))).unwrap();
    let form: BTreeMap<String, String> = form.query_pairs().into_owned().collect();
    let span = build_span();
    let expected = [
        ("token", TRIGGER),
        ("ref", "main"),
        ("variables[BATON_RELEASE_ID]", RELEASE),
        ("variables[BATON_SHA]", SHA),
        ("variables[DEPLOY_ENV]", "production"),
        ("variables[TRACEPARENT]", span.as_str()),
    ];
    assert_eq!(form, expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    assert!(received(&server, "POST", CREATE).await.is_empty());

    assert_eq!(gitlab.poll(&run).await.unwrap().progress, BuildProgress::Running);
    assert_eq!(header(&received(&server, "GET", PIPELINE).await[0], "private-token"), Some(TOKEN));
}

#[tokio::test]
async fn with_a_trigger_token_alone_polls_are_anonymous_and_cancel_is_refused() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", PIPELINE, ok("running")).await;
    answer(&server, "GET", PIPELINE, gitlab_error(404, "404 Project Not Found")).await;
    let gitlab = built(&spec(&server, false, true));

    assert_eq!(gitlab.poll(&handle()).await.unwrap().progress, BuildProgress::Running);
    assert_eq!(header(&received(&server, "GET", PIPELINE).await[0], "private-token"), None);
    let hidden = gitlab.poll(&handle()).await.unwrap_err();
    assert!(matches!(hidden, ProviderError::Rejected { .. }), "{hidden}");

    let refused = gitlab.cancel(&handle()).await.unwrap_err();
    assert!(matches!(&refused, ProviderError::Rejected { message: m, .. } if m.contains("needs `token`") && m.contains(PAGE)), "{refused}");
    assert!(received(&server, "POST", CANCEL).await.is_empty());
}

#[tokio::test]
async fn every_status_maps_to_its_progress() {
    let running = ["created", "waiting_for_resource", "preparing", "pending", "running", "scheduled", "manual", "waiting_for_callback"];
    let failed =
        [("failed", "a job failed"), ("canceled", "cancelled it"), ("canceling", "being cancelled"), ("skipped", "nothing was built")];
    for status in running {
        let server = MockServer::start().await;
        answer(&server, "GET", PIPELINE, ok(status)).await;
        let poll = provider(&server).poll(&handle()).await.unwrap();
        assert_eq!(poll.progress, BuildProgress::Running, "{status}");
        assert_eq!(poll.started_at.is_some(), pipeline(status)["started_at"].is_string(), "{status}: a null start is no start");
    }
    for (status, why) in failed {
        let server = MockServer::start().await;
        answer(&server, "GET", PIPELINE, ok(status)).await;
        let progress = provider(&server).poll(&handle()).await.unwrap().progress;
        let BuildProgress::Failed { reason } = &progress else { panic!("{status}: {progress:?}") };
        assert!(reason.contains(&format!("'{status}'")) && reason.contains(why) && reason.contains(PAGE), "{reason}");
    }
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, ok("success")).await;
    assert!(matches!(provider(&server).poll(&handle()).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn refused_credentials_are_rejected_naming_the_reference_and_404_names_the_project() {
    for (status, text, expected) in [
        (401, "401 Unauthorized", "refused the credentials (HTTP 401): check the token env:GITLAB_TOKEN"),
        (403, "403 Forbidden", "denied it (HTTP 403): check the token env:GITLAB_TOKEN"),
        (404, "404 Project Not Found", "HTTP 404, GitLab has no project acme/web"),
    ] {
        let server = MockServer::start().await;
        answer(&server, "POST", CREATE, gitlab_error(status, text)).await;
        let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
        let ProviderError::Rejected { message: said, .. } = &error else { panic!("{status}: {error:?}") };
        assert!(said.contains(expected) && said.contains(text), "{said}");
        assert_secret_free(said, TOKEN);
    }
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_a_long_one_says_when() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", PIPELINE, gitlab_error(429, "Retry later").insert_header("retry-after", "1")).await;
    answer(&server, "GET", PIPELINE, ok("running")).await;
    let began = Instant::now();
    assert_eq!(provider(&server).poll(&handle()).await.unwrap().progress, BuildProgress::Running);
    assert!(began.elapsed() >= Duration::from_secs(1));

    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, gitlab_error(429, "Retry later").insert_header("retry-after", "90")).await;
    let gitlab = provider(&server);
    let error = gitlab.poll(&handle()).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("HTTP 429") && m.contains("GitLab is rate limiting")),
        "{error}"
    );
    let left = (error.rate_limit().expect("a rate limit").until - chrono::Utc::now()).num_seconds();
    assert!((85..=90).contains(&left), "{error}");
    assert!(gitlab.poll(&handle()).await.unwrap_err().rate_limit().is_some_and(|limit| !limit.answered));
    assert_eq!(received(&server, "GET", PIPELINE).await.len(), 1, "a long wait is the state machine's");
}

#[tokio::test]
async fn rate_limit_windows_are_obeyed_to_their_end() {
    for (window, header) in [(2, "retry-after"), (20, "ratelimit-reset"), (120, "retry-after")] {
        let server = MockServer::start().await;
        let clock = ManualClock::new();
        // RateLimit-Reset is a Unix time; GitLab sends both, Retry-After first.
        let value = if header == "retry-after" { window.to_string() } else { (chrono::Utc::now().timestamp() + window).to_string() };
        let limited = gitlab_error(429, "Retry later").insert_header(header, value.as_str());
        let times = limited_then(&server, "POST", CREATE, limited, created("created")).await;
        let gitlab = built_on(&spec(&server, true, false), &clock);
        let request = build_request(Some(SHA));
        let run = window_is_obeyed(window, &clock, &times, || gitlab.start(&request)).await;
        assert_eq!(run.id, "4242", "window {window}");
    }
}

/// GitLab as its API behaves: a created pipeline is listed, and its variables read, even when the
/// answer to the create never reached Baton.
async fn gitlab_that_creates(server: &MockServer, create: ResponseTemplate) {
    Mock::given(method("POST")).and(path(CREATE)).respond_with(create).expect(1).mount(server).await;
    let mut other = pipeline("running");
    other["id"] = json!(4241);
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/acme%2Fweb/pipelines"))
        .and(query_param("ref", "main"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([other, pipeline("running")])))
        .mount(server)
        .await;
    let variables = |release: &str| {
        ResponseTemplate::new(200).set_body_json(json!([
            { "key": "BATON_RELEASE_ID", "value": release, "variable_type": "env_var" },
            { "key": "DEPLOY_ENV", "value": "production", "variable_type": "env_var" },
        ]))
    };
    answer(server, "GET", "/api/v4/projects/acme%2Fweb/pipelines/4241/variables", variables("rel-web-other")).await;
    answer(server, "GET", "/api/v4/projects/acme%2Fweb/pipelines/4242/variables", variables(RELEASE)).await;
}

#[tokio::test]
async fn a_create_answered_after_the_timeout_yields_one_pipeline_that_is_found_and_followed() {
    let server = MockServer::start().await;
    gitlab_that_creates(&server, created("created").set_delay(Duration::from_secs(2))).await;
    answer(&server, "GET", PIPELINE, ok("success")).await;
    let gitlab = provider(&server).with_create_timeout(Duration::from_millis(300));
    let asked_at = chrono::Utc::now();

    let error = gitlab.start(&build_request(Some(SHA))).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 300 ms")), "{error}");
    let found = gitlab.find(&build_request(Some(SHA)), asked_at).await.unwrap().expect("the pipeline the lost answer created");
    assert_eq!(found.id, "4242", "the pipeline whose BATON_RELEASE_ID is the release's");
    assert!(matches!(gitlab.poll(&travelled(&found)).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn a_malformed_create_answer_cancels_the_pipeline_it_started() {
    let server = MockServer::start().await;
    gitlab_that_creates(&server, ResponseTemplate::new(201).set_body_string("<html>proxy error</html>")).await;
    Mock::given(method("POST")).and(path(CANCEL)).respond_with(ok("canceled")).expect(1).mount(&server).await;
    let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { message: said, .. } = &error else { panic!("a retry would create a second pipeline: {error:?}") };
    assert!(said.contains("cancelled the build it started (GitLab 4242)"), "{said}");
}

#[tokio::test]
async fn without_an_access_token_an_unanswered_create_is_not_sent_again() {
    let server = MockServer::start().await;
    let error = built(&spec(&server, false, true)).find(&build_request(Some(SHA)), chrono::Utc::now()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("needs `token`")), "{error}");
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_the_next_poll_succeeds() {
    let server = MockServer::start().await;
    answer_once(&server, "GET", PIPELINE, gitlab_error(502, "502 Bad Gateway")).await;
    answer(&server, "GET", PIPELINE, ok("success")).await;
    let gitlab = provider(&server);
    let error = gitlab.poll(&handle()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("GitLab answered HTTP 502")), "{error}");
    assert!(matches!(gitlab.poll(&handle()).await.unwrap().progress, BuildProgress::Succeeded { .. }));
}

#[tokio::test]
async fn a_slow_server_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(&server, "GET", PIPELINE, ok("running").set_delay(Duration::from_secs(3))).await;
    let gitlab = provider(&server).with_request_timeout(Duration::from_millis(200));
    let error = gitlab.poll(&handle()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 200 ms")), "{error}");
}

#[tokio::test]
async fn a_malformed_answer_names_the_field_and_a_created_pipeline_is_not_created_twice() {
    let server = MockServer::start().await;
    let mut bad = pipeline("running");
    bad["status"] = json!(7);
    answer(&server, "GET", PIPELINE, ResponseTemplate::new(200).set_body_json(bad)).await;
    let error = provider(&server).poll(&handle()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("unreadable answer, field `status`")), "{error}");

    let server = MockServer::start().await;
    let mut bad = pipeline("created");
    bad.as_object_mut().unwrap().remove("web_url");
    answer(&server, "POST", CREATE, ResponseTemplate::new(201).set_body_json(bad)).await;
    let error = provider(&server).start(&build_request(Some(SHA))).await.unwrap_err();
    let ProviderError::Rejected { .. } = &error else { panic!("a retry would create a second pipeline: {error:?}") };
    let said = chain_text(&error);
    assert!(said.contains("web_url") && said.contains("not retried"), "{said}");
}

#[tokio::test]
async fn cancel_asks_gitlab_to_cancel_the_pipeline() {
    let server = MockServer::start().await;
    answer(&server, "POST", CANCEL, ok("canceled")).await;
    provider(&server).cancel(&travelled(&handle())).await.unwrap();
    let cancels = received(&server, "POST", CANCEL).await;
    assert_eq!(cancels.len(), 1);
    assert_eq!(header(&cancels[0], "private-token"), Some(TOKEN));

    let server = MockServer::start().await;
    answer(&server, "POST", CANCEL, gitlab_error(403, "403 Forbidden")).await;
    let error = provider(&server).cancel(&handle()).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("cancelling GitLab pipeline 4242")), "{error}");
}

#[tokio::test]
async fn the_tokens_never_reach_a_handle_or_an_error() {
    let server = MockServer::start().await;
    let echo = format!("invalid token {TOKEN} / {TRIGGER}");
    answer(&server, "POST", TRIGGERED, created("created")).await;
    answer(&server, "GET", PIPELINE, gitlab_error(401, &echo)).await;
    answer(&server, "POST", CANCEL, gitlab_error(500, &echo)).await;
    let gitlab = built(&spec(&server, true, true));
    let run = gitlab.start(&build_request(Some(SHA))).await.unwrap();
    let text = serde_json::to_string(&run).unwrap();
    let poll = gitlab.poll(&run).await.unwrap_err();
    let cancel = gitlab.cancel(&run).await.unwrap_err();
    for text in [text.as_str(), poll.message(), cancel.message()] {
        assert_secret_free(text, TOKEN);
        assert_secret_free(text, TRIGGER);
    }
    assert!(poll.message().contains("invalid token ***"), "{poll}");
}

#[tokio::test]
async fn handles_of_other_providers_are_refused() {
    let server = MockServer::start().await;
    let other = RunHandle { provider: "buildkite".into(), ..handle() };
    let error = provider(&server).poll(&other).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("belongs to the 'buildkite' provider")), "{error}");
    let garbled = RunHandle { id: "pending".into(), ..handle() };
    let error = provider(&server).poll(&garbled).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("not a run number")), "{error}");
}

#[test]
fn bad_blocks_are_refused_before_any_request() {
    let server_uri = "http://127.0.0.1:9";
    let base = || GitLabCiBuild {
        project: GitLabProject("acme/web".into()),
        token: Some(SecretRef::Env("GITLAB_TOKEN".into())),
        trigger_token: None,
        variables: BTreeMap::new(),
        artifact: "web:{pipeline-id}".into(),
        api_url: Some(server_uri.into()),
        events_secret: None,
    };
    let refused = |spec: GitLabCiBuild| {
        let error = GitLabCiBuildProvider::new(&spec, "catalog/web.yaml", Secrets::of(&[]), client()).err().unwrap();
        error.message().to_owned()
    };
    let said = refused(GitLabCiBuild { project: GitLabProject("web".into()), ..base() });
    assert!(said.starts_with("catalog/web.yaml: extensions.baton.build: gitlab-ci project: expected a GitLab project"), "{said}");
    let said = refused(GitLabCiBuild { token: None, ..base() });
    assert!(said.contains("needs `token`, `trigger-token` or both"), "{said}");
    let said = refused(GitLabCiBuild { artifact: "web:{run-id}".into(), ..base() });
    assert!(said.contains("unknown placeholder {run-id}") && said.contains("{pipeline-id}"), "{said}");
    let said = refused(GitLabCiBuild { api_url: Some("gitlab.example.com".into()), ..base() });
    assert!(said.contains("api-url 'gitlab.example.com' is not a URL"), "{said}");
    assert!(GitLabCiBuildProvider::new(&GitLabCiBuild { api_url: None, ..base() }, "f", Secrets::of(&[]), client()).is_ok());
}

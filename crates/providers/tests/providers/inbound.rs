//! The provider-event receivers: each provider's callback, as the provider documents it (or as
//! Baton's documented template renders it), verified under the provider's own scheme and read
//! into the key the provider module keeps for the run. Each key is checked against a run the
//! provider module started on a local server: an event whose key differs finds no release.

use crate::support::{self, Secrets, answer, client, deploy_request};
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{BuildProvider, Deployer, EventReceiver, HealthGate, InboundRefused, InboundRequest, ProviderError};
use baton_domain::signing::hmac_sha256_hex;
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use baton_providers::*;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

const SECRET: &str = "events-TOPSECRET-0123456789";
const OTHER: &str = "another-services-secret";

fn secrets(values: &[&str]) -> Vec<Secret> {
    values.iter().map(|value| Secret::new((*value).to_owned())).collect()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn request(headers: &[(&str, String)], body: &[u8]) -> InboundRequest {
    request_at("/", headers, body)
}

fn request_at(path: &str, headers: &[(&str, String)], body: &[u8]) -> InboundRequest {
    let headers = headers.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
    InboundRequest { path: path.to_owned(), headers, body: body.to_vec() }
}

fn without(mut request: InboundRequest, header: &str) -> InboundRequest {
    request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case(header));
    request
}

fn tampered(mut request: InboundRequest) -> InboundRequest {
    request.body.extend_from_slice(b" ");
    request
}

/// The one event of a request that must be accepted.
fn one(receiver: &dyn EventReceiver, request: &InboundRequest, now: DateTime<Utc>) -> ProviderEvent {
    let mut events = receiver.receive(request, now).unwrap_or_else(|refused| panic!("{}: refused: {refused}", receiver.provider()));
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

/// Each case is refused as unauthenticated, with a reason containing its text.
fn assert_unauthenticated(receiver: &dyn EventReceiver, cases: Vec<(&str, InboundRequest, DateTime<Utc>, &str)>) {
    for (name, request, now, expected) in cases {
        let refused = receiver.receive(&request, now).expect_err(name);
        assert!(matches!(&refused, InboundRefused::Unauthenticated(why) if why.contains(expected)), "{name}: {refused}");
        assert!(!refused.to_string().contains(SECRET), "{name}: the secret in {refused}");
    }
}

fn assert_malformed(receiver: &dyn EventReceiver, request: &InboundRequest, now: DateTime<Utc>, expected: &str) {
    let refused = receiver.receive(request, now).unwrap_err();
    assert!(matches!(&refused, InboundRefused::Malformed(why) if why.contains(expected)), "{refused}");
}

fn failed_with(happened: &Happened, text: &str) -> bool {
    matches!(happened, Happened::Failed(why) if why.contains(text))
}

// ------------------------------------------------------------------ GitLab

const GITLAB_AT: &str = "2026-01-01T12:20:00Z";

/// A pipeline event as GitLab documents it (abridged), for pipeline `id`.
fn gitlab_event(id: u64, status: &str) -> Vec<u8> {
    let finished = if matches!(status, "success" | "failed" | "canceled") { json!("2026-01-01 12:20:00 UTC") } else { Value::Null };
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": id, "iid": 12, "ref": "main", "tag": false, "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
            "status": status, "detailed_status": status, "stages": ["build", "test"],
            "created_at": "2026-01-01 12:00:00 UTC", "finished_at": finished, "duration": 1200,
            "url": format!("https://gitlab.example.com/acme/web/-/pipelines/{id}"),
        },
        "project": { "id": 1, "path_with_namespace": "acme/web" },
        "builds": [],
    })
    .to_string()
    .into_bytes()
}

fn gitlab_request(body: &[u8], token: &str) -> InboundRequest {
    request(
        &[
            ("X-Gitlab-Event", "Pipeline Hook".into()),
            ("X-Gitlab-Token", token.into()),
            ("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e".into()),
            ("X-Gitlab-Webhook-UUID", "2f5d4d46-3e7e-4e2c-9e3b-7a2a1a3a9c1b".into()),
        ],
        body,
    )
}

#[test]
fn gitlab_pipeline_events_are_read_under_the_webhooks_token() {
    let gitlab = GitLabPipelineEvents::new(secrets(&[OTHER, SECRET])).unwrap();
    let now = at(GITLAB_AT);
    let event = one(&gitlab, &gitlab_request(&gitlab_event(9, "success"), SECRET), now);
    assert_eq!(event.key, WaitKey::new(WaitKind::Build, "gitlab-ci", "9"));
    assert_eq!((event.happened, event.delivery.as_str(), event.at), (Happened::Succeeded, "13792a34-cac6-4fda-95a8-c58e00a3954e", now));
    let other_service = one(&gitlab, &gitlab_request(&gitlab_event(9, "success"), OTHER), now);
    assert_eq!(other_service.happened, Happened::Succeeded, "either block's secret is accepted");

    let failed = one(&gitlab, &gitlab_request(&gitlab_event(9, "failed"), SECRET), now).happened;
    assert!(failed_with(&failed, "GitLab pipeline 9 is 'failed': a job failed"), "{failed:?}");
    for status in ["running", "pending", "manual", "created"] {
        assert_eq!(one(&gitlab, &gitlab_request(&gitlab_event(9, status), SECRET), now).happened, Happened::Progress, "{status}");
    }
    let push = request(&[("X-Gitlab-Event", "Push Hook".into()), ("X-Gitlab-Token", SECRET.into())], br#"{"object_kind": "push"}"#);
    assert_eq!(gitlab.receive(&push, now).unwrap(), vec![], "other events carry nothing a release waits for");
    let no_uuid = without(gitlab_request(&gitlab_event(9, "success"), SECRET), "X-Gitlab-Event-UUID");
    assert!(one(&gitlab, &no_uuid, now).delivery.starts_with("sha256:"), "without its header, the body's digest names the delivery");
}

#[test]
fn gitlab_requests_without_the_token_or_with_a_bad_body_are_refused() {
    let gitlab = GitLabPipelineEvents::new(secrets(&[SECRET])).unwrap();
    let now = at(GITLAB_AT);
    let body = gitlab_event(9, "success");
    assert_unauthenticated(
        &gitlab,
        vec![
            ("another secret", gitlab_request(&body, "not-the-secret"), now, "X-Gitlab-Token is not the configured secret"),
            ("a prefix of the secret", gitlab_request(&body, &SECRET[..10]), now, "not the configured secret"),
            ("no token", without(gitlab_request(&body, SECRET), "X-Gitlab-Token"), now, "missing X-Gitlab-Token"),
        ],
    );
    assert_malformed(&gitlab, &gitlab_request(b"{not json", SECRET), now, "not a GitLab pipeline event");
    assert_malformed(
        &gitlab,
        &gitlab_request(br#"{"object_kind": "pipeline", "object_attributes": {"id": "x"}}"#, SECRET),
        now,
        "object_attributes.id",
    );
    assert!(GitLabPipelineEvents::new(vec![]).is_err());
    assert!(GitLabPipelineEvents::new(secrets(&[""])).is_err());
}

#[tokio::test]
async fn a_gitlab_event_finds_the_pipeline_the_provider_started() {
    let server = MockServer::start().await;
    let created = json!({"id": 4711, "sha": "abc", "status": "created", "web_url": "https://gitlab.example.com/acme/web/-/pipelines/4711"});
    answer(&server, "POST", "/api/v4/projects/acme%2Fweb/pipeline", ResponseTemplate::new(201).set_body_json(created)).await;
    let spec = GitLabCiBuild {
        project: GitLabProject("acme/web".into()),
        token: Some(SecretRef::Env("GITLAB_TOKEN".into())),
        trigger_token: None,
        variables: Default::default(),
        artifact: "web:{pipeline-id}".into(),
        api_url: Some(format!("{}/api/v4", server.uri())),
        events_secret: Some(SecretRef::Env("GITLAB_HOOK".into())),
    };
    let provider = GitLabCiBuildProvider::new(&spec, "catalog/web.yaml", Secrets::of(&[("GITLAB_TOKEN", "glpat")]), client()).unwrap();
    let run = provider.start(&support::build_request(None)).await.unwrap();
    let gitlab = GitLabPipelineEvents::new(secrets(&[SECRET])).unwrap();
    let event = one(&gitlab, &gitlab_request(&gitlab_event(4711, "success"), SECRET), at(GITLAB_AT));
    assert_eq!(event.key, WaitKey::of_run(WaitKind::Build, &run));
}

// ------------------------------------------------------------------ Buildkite

const BUILDKITE_NOW: i64 = 1_767_270_000;

/// A build event as Buildkite documents it (abridged).
fn buildkite_event(event: &str, number: u64, state: &str, blocked: bool) -> Vec<u8> {
    json!({
        "event": event,
        "build": {
            "id": "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983", "number": number, "state": state, "blocked": blocked,
            "url": format!("https://api.buildkite.com/v2/organizations/acme/pipelines/web/builds/{number}"),
            "web_url": format!("https://buildkite.com/acme/web/builds/{number}"),
            "commit": "abc123", "branch": "main", "finished_at": "2026-01-01T12:20:00.000Z",
        },
        "pipeline": { "slug": "web" },
        "sender": { "id": "8a7693f8-dbae-4783-9137-84090fce9045", "name": "Some Person" },
    })
    .to_string()
    .into_bytes()
}

fn buildkite_signed(body: &[u8], timestamp: i64, secret: &str) -> InboundRequest {
    let signature = hmac_sha256_hex(secret.as_bytes(), &[timestamp.to_string().as_bytes(), b".", body]);
    request(
        &[
            ("X-Buildkite-Event", "build.finished".into()),
            ("X-Buildkite-Signature", format!("timestamp={timestamp},signature={signature}")),
        ],
        body,
    )
}

#[test]
fn buildkite_build_events_are_read_signed_or_with_the_token() {
    let buildkite = BuildkiteBuildEvents::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(BUILDKITE_NOW, 0).unwrap();
    let body = buildkite_event("build.finished", 42, "passed", false);
    let event = one(&buildkite, &buildkite_signed(&body, BUILDKITE_NOW - 10, SECRET), now);
    assert_eq!(event.key, WaitKey::new(WaitKind::Build, "buildkite", "acme/web/42"), "build numbers count per pipeline");
    assert_eq!((event.happened, event.at), (Happened::Succeeded, at("2026-01-01T12:20:00Z")));
    assert!(event.delivery.starts_with("sha256:"));
    let plain = request(&[("X-Buildkite-Event", "build.finished".into()), ("X-Buildkite-Token", SECRET.into())], &body);
    assert_eq!(one(&buildkite, &plain, now).key, event.key);

    let failed = one(&buildkite, &buildkite_signed(&buildkite_event("build.finished", 42, "failed", false), BUILDKITE_NOW, SECRET), now);
    assert!(failed_with(&failed.happened, "Buildkite build 42 is 'failed': a job failed"), "{failed:?}");
    for (event, state, blocked) in
        [("build.finished", "passed", true), ("build.running", "running", false), ("build.scheduled", "scheduled", false)]
    {
        let signed = buildkite_signed(&buildkite_event(event, 42, state, blocked), BUILDKITE_NOW, SECRET);
        assert_eq!(one(&buildkite, &signed, now).happened, Happened::Progress, "{event} {state} blocked={blocked}");
    }
    let ping = request(&[("X-Buildkite-Event", "ping".into()), ("X-Buildkite-Token", SECRET.into())], br#"{"event": "ping"}"#);
    assert_eq!(buildkite.receive(&ping, now).unwrap(), vec![]);
}

#[test]
fn buildkite_requests_unsigned_forged_or_stale_are_refused() {
    let buildkite = BuildkiteBuildEvents::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(BUILDKITE_NOW, 0).unwrap();
    let body = buildkite_event("build.finished", 42, "passed", false);
    let good = buildkite_signed(&body, BUILDKITE_NOW, SECRET);
    // A signature that fails is not retried as a token: the stronger claim decides.
    let mut both = buildkite_signed(&body, BUILDKITE_NOW, "not-the-secret");
    both.headers.push(("X-Buildkite-Token".into(), SECRET.into()));
    assert_unauthenticated(
        &buildkite,
        vec![
            ("another secret", buildkite_signed(&body, BUILDKITE_NOW, "not-the-secret"), now, "does not match"),
            ("a body changed after signing", tampered(good.clone()), now, "does not match"),
            ("a bad signature beside a good token", both, now, "does not match"),
            ("no signature", without(good.clone(), "X-Buildkite-Signature"), now, "missing X-Buildkite-Signature"),
            ("older than 5 minutes", good.clone(), DateTime::from_timestamp(BUILDKITE_NOW + 301, 0).unwrap(), "more than 5 minutes"),
            ("from the future", good.clone(), DateTime::from_timestamp(BUILDKITE_NOW - 301, 0).unwrap(), "more than 5 minutes"),
            (
                "not Buildkite's format",
                request(&[("X-Buildkite-Signature", "sha256=abc".into())], &body),
                now,
                "timestamp=<unix seconds>,signature=<hex>",
            ),
            ("a wrong token", request(&[("X-Buildkite-Token", "nope".into())], &body), now, "not the configured secret"),
        ],
    );
    assert_malformed(&buildkite, &buildkite_signed(br#"{"event": "build.finished"}"#, BUILDKITE_NOW, SECRET), now, "`build`");
    let elsewhere = String::from_utf8(body.clone()).unwrap().replace("/organizations/acme/pipelines/web/", "/builds/");
    assert_malformed(&buildkite, &buildkite_signed(elsewhere.as_bytes(), BUILDKITE_NOW, SECRET), now, "organization and pipeline");
}

#[tokio::test]
async fn a_buildkite_event_finds_the_build_the_provider_created() {
    let server = MockServer::start().await;
    let created = json!({"id": "f62a1b4d", "number": 1234, "web_url": "https://buildkite.com/acme/web/builds/1234", "state": "scheduled",
                         "url": "https://api.buildkite.com/v2/organizations/acme/pipelines/web/builds/1234",
                         "commit": "HEAD", "blocked": false, "env": {}});
    answer(&server, "POST", "/organizations/acme/pipelines/web/builds", ResponseTemplate::new(201).set_body_json(created)).await;
    let spec = BuildkiteBuild {
        organization: "acme".into(),
        pipeline: "web".into(),
        token: SecretRef::Env("BUILDKITE_TOKEN".into()),
        env: Default::default(),
        artifact: "web:{build-number}".into(),
        api_url: Some(server.uri()),
        events_secret: Some(SecretRef::Env("BUILDKITE_HOOK".into())),
    };
    let provider = BuildkiteBuildProvider::new(&spec, "catalog/web.yaml", Secrets::of(&[("BUILDKITE_TOKEN", "bkua")]), client()).unwrap();
    let run = provider.start(&support::build_request(None)).await.unwrap();
    let buildkite = BuildkiteBuildEvents::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(BUILDKITE_NOW, 0).unwrap();
    let event = one(&buildkite, &buildkite_signed(&buildkite_event("build.finished", 1234, "passed", false), BUILDKITE_NOW, SECRET), now);
    assert_eq!(event.key, WaitKey::of_run(WaitKind::Build, &run));
}

// ------------------------------------------------------------------ CircleCI

const CIRCLECI_AT: &str = "2026-01-01T12:20:00.317Z";
const PIPELINE_ID: &str = "1285fe1d-d3a6-44fc-8886-8979558254c4";

/// A workflow-completed event as CircleCI documents it (abridged).
fn circleci_event(pipeline: &str, status: &str, happened_at: &str) -> Vec<u8> {
    json!({
        "type": "workflow-completed",
        "id": "3888f21b-eaa7-38e3-8f3d-75a63bba8895",
        "happened_at": happened_at,
        "webhook": { "id": "cf8c4fdd-0587-4da1-b4ca-4fb4d3ea4d2e", "name": "baton" },
        "workflow": {
            "id": "fda08377-fe7e-46b1-8992-3a7aaecac9c3", "name": "build-test-deploy", "status": status,
            "created_at": "2026-01-01T12:00:00.000Z", "stopped_at": happened_at,
            "url": "https://app.circleci.com/pipelines/github/acme/web/130/workflows/fda08377",
        },
        "pipeline": { "id": pipeline, "number": 130, "created_at": "2026-01-01T11:59:59.000Z" },
        "project": { "id": "84996744-a854-4f5e-aea3-04e2851dc1d2", "name": "web", "slug": "github/acme/web" },
    })
    .to_string()
    .into_bytes()
}

fn circleci_signed(body: &[u8], secret: &str) -> InboundRequest {
    let signature = hmac_sha256_hex(secret.as_bytes(), &[body]);
    request(&[("circleci-event-type", "workflow-completed".into()), ("circleci-signature", format!("v1={signature}"))], body)
}

#[test]
fn circleci_workflow_events_are_read_under_the_webhooks_secret() {
    let circleci = CircleCiWorkflowEvents::new(secrets(&[SECRET])).unwrap();
    let now = at("2026-01-01T12:20:05Z");
    let event = one(&circleci, &circleci_signed(&circleci_event(PIPELINE_ID, "success", CIRCLECI_AT), SECRET), now);
    assert_eq!(event.key, WaitKey::new(WaitKind::Build, "circleci", PIPELINE_ID));
    assert_eq!(
        (event.happened, event.delivery.as_str(), event.at),
        (Happened::Succeeded, "3888f21b-eaa7-38e3-8f3d-75a63bba8895", at(CIRCLECI_AT))
    );
    for status in ["failed", "error", "canceled", "unauthorized"] {
        let failed = one(&circleci, &circleci_signed(&circleci_event(PIPELINE_ID, status, CIRCLECI_AT), SECRET), now).happened;
        assert!(failed_with(&failed, &format!("CircleCI workflow 'build-test-deploy' is '{status}'")), "{failed:?}");
    }
    // Later signature versions beside v1 are ignored.
    let mut versions = circleci_signed(&circleci_event(PIPELINE_ID, "success", CIRCLECI_AT), SECRET);
    versions.headers[1].1 = format!("{},v2=0123", versions.headers[1].1);
    assert_eq!(one(&circleci, &versions, now).happened, Happened::Succeeded);
    let mut job = circleci_signed(br#"{"type": "job-completed"}"#, SECRET);
    job.headers[0].1 = "job-completed".into();
    assert_eq!(circleci.receive(&job, now).unwrap(), vec![]);
}

#[test]
fn circleci_requests_unsigned_forged_or_stale_are_refused() {
    let circleci = CircleCiWorkflowEvents::new(secrets(&[SECRET])).unwrap();
    let now = at("2026-01-01T12:20:05Z");
    let body = circleci_event(PIPELINE_ID, "success", CIRCLECI_AT);
    let good = circleci_signed(&body, SECRET);
    let mut not_v1 = good.clone();
    not_v1.headers[1].1 = not_v1.headers[1].1.replace("v1=", "v2=");
    assert_unauthenticated(
        &circleci,
        vec![
            ("another secret", circleci_signed(&body, "not-the-secret"), now, "circleci-signature does not match"),
            ("a body changed after signing", tampered(good.clone()), now, "does not match"),
            ("no signature", without(good.clone(), "circleci-signature"), now, "missing circleci-signature"),
            ("no v1 signature", not_v1, now, "no v1 signature"),
            ("happened over 5 minutes ago", good.clone(), at("2026-01-01T12:25:01Z"), "happened_at is more than 5 minutes"),
        ],
    );
    assert_malformed(&circleci, &circleci_signed(br#"{"type": "workflow-completed", "id": "x"}"#, SECRET), now, "not a CircleCI");
}

#[tokio::test]
async fn a_circleci_event_finds_the_pipeline_the_provider_triggered() {
    let server = MockServer::start().await;
    let triggered = json!({"id": PIPELINE_ID, "number": 130, "state": "created", "created_at": "2026-01-01T11:59:59.000Z"});
    answer(&server, "POST", "/project/gh/acme/web/pipeline", ResponseTemplate::new(201).set_body_json(triggered)).await;
    let spec = CircleCiBuild {
        project: "gh/acme/web".into(),
        token: SecretRef::Env("CIRCLE_TOKEN".into()),
        parameters: Default::default(),
        traceparent: false,
        artifact: "web:{pipeline-number}".into(),
        api_url: Some(server.uri()),
        events_secret: Some(SecretRef::Env("CIRCLE_HOOK".into())),
    };
    let provider = CircleCiBuildProvider::new(&spec, "catalog/web.yaml", Secrets::of(&[("CIRCLE_TOKEN", "cct")]), client()).unwrap();
    let run = provider.start(&support::build_request(None)).await.unwrap();
    let circleci = CircleCiWorkflowEvents::new(secrets(&[SECRET])).unwrap();
    let event = one(&circleci, &circleci_signed(&circleci_event(PIPELINE_ID, "success", CIRCLECI_AT), SECRET), at(CIRCLECI_AT));
    assert_eq!(event.key, WaitKey::of_run(WaitKind::Build, &run));
}

// ------------------------------------------------------------------ GitHub

fn workflow_run(action: &str, id: u64, conclusion: Option<&str>) -> Vec<u8> {
    json!({
        "action": action,
        "workflow_run": {
            "id": id, "name": "release", "head_branch": "main", "head_sha": "0123456789abcdef0123456789abcdef01234567",
            "status": if action == "completed" { "completed" } else { "in_progress" }, "conclusion": conclusion,
            "html_url": format!("https://github.com/acme/web/actions/runs/{id}"),
            "created_at": "2026-01-01T12:00:01Z", "updated_at": "2026-01-01T12:20:00Z",
        },
        "workflow": { "id": 161335, "path": ".github/workflows/release.yml" },
        "repository": { "name": "web", "full_name": "acme/web" },
    })
    .to_string()
    .into_bytes()
}

#[test]
fn github_workflow_runs_read_as_the_provider_reads_a_run() {
    let [event] = &workflow_run_events(&workflow_run("completed", 30433642, Some("success")), "d-1").unwrap()[..] else { panic!() };
    assert_eq!(event.key, WaitKey::new(WaitKind::Build, "github-actions", "30433642"));
    assert_eq!((&event.happened, event.delivery.as_str(), event.at), (&Happened::Succeeded, "d-1", at("2026-01-01T12:20:00Z")));
    for (conclusion, meaning) in
        [("failure", "a job failed"), ("cancelled", "someone or something cancelled it"), ("timed_out", "a job ran out of time")]
    {
        let events = workflow_run_events(&workflow_run("completed", 30433642, Some(conclusion)), "d-2").unwrap();
        assert!(failed_with(&events[0].happened, &format!("ended with conclusion '{conclusion}': {meaning}")), "{events:?}");
    }
    for (action, conclusion) in [("requested", None), ("in_progress", None), ("completed", None)] {
        let events = workflow_run_events(&workflow_run(action, 30433642, conclusion), "d-3").unwrap();
        assert_eq!(events[0].happened, Happened::Progress, "{action}");
    }
    let refused = workflow_run_events(br#"{"action": "completed"}"#, "d-4").unwrap_err();
    assert!(matches!(&refused, InboundRefused::Malformed(why) if why.contains("workflow_run")), "{refused}");
}

#[tokio::test]
async fn a_workflow_run_finds_the_run_the_provider_dispatched() {
    let server = MockServer::start().await;
    let dispatched = json!({"workflow_run_id": 30433642, "run_url": "https://api.github.com/repos/acme/web/actions/runs/30433642",
                            "html_url": "https://github.com/acme/web/actions/runs/30433642"});
    answer(
        &server,
        "POST",
        "/repos/acme/web/actions/workflows/release.yml/dispatches",
        ResponseTemplate::new(200).set_body_json(dispatched),
    )
    .await;
    let mut config = GitHubActionsConfig::new("acme", "web", "release.yml", GitHubAuth::Token(Secret::new("ghp".into())), "web:{run-id}");
    config.api_url = server.uri();
    let provider = GitHubActionsBuildProvider::new(config, client(), &GitHubAppTokens::new()).unwrap();
    let run = provider.start(&support::build_request(None)).await.unwrap();
    let events = workflow_run_events(&workflow_run("completed", 30433642, Some("success")), "d-1").unwrap();
    assert_eq!(events[0].key, WaitKey::of_run(WaitKind::Build, &run));
}

// ------------------------------------------------------------------ Argo CD

/// The body Baton's notification template (docs/events.md) renders.
fn argo_note(phase: &str, sync: &str, health: &str) -> Vec<u8> {
    let finished = if phase == "Running" { "" } else { "2026-01-01T12:20:00Z" };
    json!({"app": "web-canary", "namespace": "argocd", "revision": "0123abc", "phase": phase, "sync": sync, "health": health,
           "finished_at": finished})
    .to_string()
    .into_bytes()
}

fn with_token(body: &[u8], token: &str) -> InboundRequest {
    request(&[("Content-Type", "application/json".into()), ("X-Baton-Token", token.into())], body)
}

#[test]
fn argo_cd_notifications_read_as_the_deployer_reads_an_application() {
    let argo = ArgoCdNotifications::new(secrets(&[SECRET])).unwrap();
    let now = at("2026-01-01T12:20:02Z");
    let events = argo.receive(&with_token(&argo_note("Succeeded", "Synced", "Healthy"), SECRET), now).unwrap();
    let keys: Vec<&WaitKey> = events.iter().map(|event| &event.key).collect();
    assert_eq!(
        keys,
        [&WaitKey::new(WaitKind::Rollout, "argo-cd", "web-canary"), &WaitKey::new(WaitKind::Rollout, "argo-cd", "argocd/web-canary")],
        "a target is the application's name, or its namespace and name"
    );
    assert!(events.iter().all(|event| event.happened == Happened::Succeeded && event.at == at("2026-01-01T12:20:00Z")));
    assert_ne!(events[0].delivery, events[1].delivery, "one delivery per key, each claimed once");
    let cases = [
        ("Failed", "OutOfSync", "Missing", "ended Failed"),
        ("Error", "OutOfSync", "Healthy", "ended Error"),
        ("Succeeded", "Synced", "Degraded", "the application is Degraded"),
    ];
    for (phase, sync, health, text) in cases {
        let events = argo.receive(&with_token(&argo_note(phase, sync, health), SECRET), now).unwrap();
        assert!(failed_with(&events[0].happened, text), "{phase} {sync} {health}: {events:?}");
    }
    for (phase, sync, health) in [("Running", "OutOfSync", "Progressing"), ("Succeeded", "Synced", "Progressing")] {
        let events = argo.receive(&with_token(&argo_note(phase, sync, health), SECRET), now).unwrap();
        assert_eq!(events[0].happened, Happened::Progress, "{phase} {sync} {health}");
    }
    let body = argo_note("Succeeded", "Synced", "Healthy");
    assert_unauthenticated(
        &argo,
        vec![
            ("another token", with_token(&body, "not-the-secret"), now, "X-Baton-Token is not the configured secret"),
            ("no token", request(&[], &body), now, "missing X-Baton-Token"),
        ],
    );
    assert_malformed(&argo, &with_token(b"app=web", SECRET), now, "Argo CD notification");
    assert_malformed(&argo, &with_token(br#"{"app": ""}"#, SECRET), now, "names no app");
}

#[tokio::test]
async fn an_argo_cd_notification_finds_the_sync_the_deployer_started() {
    let server = MockServer::start().await;
    let application = json!({
        "metadata": {"name": "web-canary", "namespace": "argocd"},
        "spec": {"source": {"repoURL": "https://github.com/acme/web-deploy.git", "targetRevision": "main"}},
        "status": {"sync": {"status": "Synced", "revision": "fedcba98"}, "health": {"status": "Healthy"}},
    });
    answer(&server, "GET", "/api/v1/applications/web-canary", ResponseTemplate::new(200).set_body_json(&application)).await;
    answer(&server, "POST", "/api/v1/applications/web-canary/sync", ResponseTemplate::new(200).set_body_json(&application)).await;
    let spec = ArgoCdDeploy {
        server: server.uri(),
        token: SecretRef::Env("ARGOCD_TOKEN".into()),
        revision: "{sha}".into(),
        events_secret: Some(SecretRef::Env("ARGOCD_HOOK".into())),
    };
    let deployer = ArgoCdDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[("ARGOCD_TOKEN", "argo")]), client()).unwrap();
    let run = deployer.start(&deploy_request("web-canary")).await.unwrap();
    let argo = ArgoCdNotifications::new(secrets(&[SECRET])).unwrap();
    let events = argo.receive(&with_token(&argo_note("Succeeded", "Synced", "Healthy"), SECRET), at("2026-01-01T12:20:02Z")).unwrap();
    assert!(events.iter().any(|event| event.key == WaitKey::of_run(WaitKind::Rollout, &run)), "{events:?} for {run:?}");
}

// ------------------------------------------------------------------ Datadog

/// The body Baton's payload template (docs/events.md) renders: Datadog fills in strings.
fn datadog_note(monitor: &str, transition: &str) -> Vec<u8> {
    json!({"id": "7276351893345619013", "monitor": monitor, "transition": transition, "date": "1767269999000"}).to_string().into_bytes()
}

#[test]
fn datadog_monitor_notifications_fail_bakes_on_alert_only() {
    let datadog = DatadogMonitorEvents::new(secrets(&[SECRET])).unwrap();
    let now = at("2026-01-01T12:20:02Z");
    let event = one(&datadog, &with_token(&datadog_note("1234", "Triggered"), SECRET), now);
    assert_eq!(event.key, WaitKey::new(WaitKind::Bake, "datadog-monitor", "1234"));
    assert_eq!(event.key, monitor_key(1234));
    assert!(failed_with(&event.happened, "Datadog monitor #1234 entered Alert (Triggered)"), "{event:?}");
    assert_eq!((event.delivery.as_str(), event.at), ("datadog:7276351893345619013", DateTime::from_timestamp(1_767_269_999, 0).unwrap()));
    assert!(failed_with(&one(&datadog, &with_token(&datadog_note("1234", "Re-Triggered"), SECRET), now).happened, "Re-Triggered"));
    for transition in ["Recovered", "Warn", "No Data", "Renotify"] {
        assert_eq!(one(&datadog, &with_token(&datadog_note("1234", transition), SECRET), now).happened, Happened::Progress, "{transition}");
    }
    let numbers = json!({"id": 1, "monitor": 1234, "transition": "Triggered", "date": 1767269999000_u64}).to_string();
    assert_eq!(one(&datadog, &with_token(numbers.as_bytes(), SECRET), now).key, monitor_key(1234), "numbers read as well as text");
    let body = datadog_note("1234", "Triggered");
    assert_unauthenticated(
        &datadog,
        vec![
            ("another token", with_token(&body, "not-the-secret"), now, "not the configured secret"),
            ("no token", request(&[], &body), now, "missing X-Baton-Token"),
        ],
    );
    assert_malformed(&datadog, &with_token(&datadog_note("$ALERT_ID", "Triggered"), SECRET), now, "expected a whole number");
    assert_malformed(&datadog, &with_token(br#"{"monitor": "1"}"#, SECRET), now, "monitor notification");
}

#[tokio::test]
async fn a_datadog_notification_names_a_monitor_the_gate_parks_on() {
    let server = MockServer::start().await;
    let spec = DatadogGate {
        monitors: vec![1234],
        tags: vec![],
        site: "datadoghq.com".into(),
        api_url: Some(server.uri()),
        api_key: SecretRef::Env("DD_API_KEY".into()),
        app_key: SecretRef::Env("DD_APP_KEY".into()),
        unhealthy: vec!["Alert".into()],
        events_secret: Some(SecretRef::Env("DD_HOOK".into())),
    };
    let secrets_of_gate = Secrets::of(&[("DD_API_KEY", "api"), ("DD_APP_KEY", "app")]);
    let gate = DatadogMonitorsGate::new(&spec, "web", "production", "catalog/web.yaml", secrets_of_gate, client()).unwrap();
    let keys = gate.bake_keys().await.unwrap().expect("a named monitor with a webhook parks");
    let datadog = DatadogMonitorEvents::new(secrets(&[SECRET])).unwrap();
    let event = one(&datadog, &with_token(&datadog_note("1234", "Triggered"), SECRET), at("2026-01-01T12:20:02Z"));
    assert_eq!(keys, vec![event.key]);
    let other = one(&datadog, &with_token(&datadog_note("1235", "Triggered"), SECRET), at("2026-01-01T12:20:02Z"));
    assert!(!keys.contains(&other.key), "another monitor's alert is not this bake's");
}

// ------------------------------------------------------------------ the webhook deployer's callback

const CALLBACK_NOW: i64 = 1_767_270_000;
/// The callback URL's path Baton hands out for target `web-1` of release `rel-1`.
const CALLBACK_PATH: &str = "/webhook/rel-1/web-1";

fn callback_to(path: &str, body: &Value, t: i64, secret: &str) -> InboundRequest {
    let body = body.to_string().into_bytes();
    request_at(path, &[(CALLBACK_SIGNATURE_HEADER, callback_signature(secret.as_bytes(), t, path, &body))], &body)
}

fn callback(body: &Value, t: i64, secret: &str) -> InboundRequest {
    callback_to(CALLBACK_PATH, body, t, secret)
}

#[test]
fn webhook_callbacks_are_read_under_batons_signature() {
    let callbacks = WebhookCallbacks::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(CALLBACK_NOW, 0).unwrap();
    let event = one(&callbacks, &callback(&json!({"id": "7", "state": "succeeded"}), CALLBACK_NOW - 2, SECRET), now);
    assert_eq!(event.key, WaitKey::new(WaitKind::Rollout, "webhook", "rel-1/web-1/7"), "the URL names the release and target");
    assert_eq!((event.happened, event.at), (Happened::Succeeded, DateTime::from_timestamp(CALLBACK_NOW - 2, 0).unwrap()));
    let failed = json!({"id": "7", "state": "failed", "reason": format!("pods crash-looping (token {SECRET})")});
    let failed = one(&callbacks, &callback(&failed, CALLBACK_NOW, SECRET), now).happened;
    assert_eq!(
        failed,
        Happened::Failed("the webhook reports run 7 failed: pods crash-looping (token ***)".into()),
        "the secret is blanked"
    );
    let running = one(&callbacks, &callback(&json!({"id": "7", "state": "running"}), CALLBACK_NOW, SECRET), now);
    assert_eq!(running.happened, Happened::Progress);

    let good = callback(&json!({"id": "7", "state": "succeeded"}), CALLBACK_NOW, SECRET);
    let elsewhere = |path: &str| InboundRequest { path: path.to_owned(), ..good.clone() };
    assert_unauthenticated(
        &callbacks,
        vec![
            ("another secret", callback(&json!({"id": "7", "state": "succeeded"}), CALLBACK_NOW, "not-the-secret"), now, "does not match"),
            ("a body changed after signing", tampered(good.clone()), now, "does not match"),
            ("sent to another release's URL", elsewhere("/webhook/rel-2/web-1"), now, "does not match"),
            ("sent to another target's URL", elsewhere("/webhook/rel-1/web-2"), now, "does not match"),
            ("no signature", without(good.clone(), "X-Baton-Signature"), now, "missing X-Baton-Signature"),
            ("older than 5 minutes", good.clone(), DateTime::from_timestamp(CALLBACK_NOW + 301, 0).unwrap(), "more than 5 minutes"),
            (
                "the outgoing format",
                request_at(CALLBACK_PATH, &[("X-Baton-Signature", "sha256=00".into())], &good.body),
                now,
                "t=<unix seconds>,v1=<hex>",
            ),
        ],
    );
    let stale_signed_anew = {
        // The timestamp is signed: moving it forward breaks the signature.
        let mut request = good.clone();
        request.headers[0].1 = request.headers[0].1.replace(&format!("t={CALLBACK_NOW}"), &format!("t={}", CALLBACK_NOW + 400));
        request
    };
    assert_unauthenticated(
        &callbacks,
        vec![("a moved timestamp", stale_signed_anew, DateTime::from_timestamp(CALLBACK_NOW + 400, 0).unwrap(), "does not match")],
    );
    assert_malformed(&callbacks, &callback(&json!({"id": "7", "state": "done"}), CALLBACK_NOW, SECRET), now, "unknown variant");
    assert_malformed(&callbacks, &callback(&json!({"id": "", "state": "failed"}), CALLBACK_NOW, SECRET), now, "names no run");
    for path in ["/webhook", "/webhook/rel-1", "/webhook/rel-1/web-1/more", "/webhook//web-1"] {
        let signed = callback_to(path, &json!({"id": "7", "state": "succeeded"}), CALLBACK_NOW, SECRET);
        assert_malformed(&callbacks, &signed, now, "is not /webhook/<release>/<target>");
    }
}

#[tokio::test]
async fn a_webhook_callback_finds_the_run_the_endpoint_started_and_the_request_says_where_to_call() {
    let server = MockServer::start().await;
    let started = json!({"status_url": format!("{}/runs/7", server.uri()), "id": "7"});
    answer(&server, "POST", "/hooks/deploy", ResponseTemplate::new(202).set_body_json(started)).await;
    let spec = WebhookDeploy { url: format!("{}/hooks/deploy", server.uri()), secret: SecretRef::Env("WEBHOOK_SECRET".into()) };
    let deployer = WebhookDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[("WEBHOOK_SECRET", SECRET)]), client())
        .unwrap()
        .with_events_url("https://events.example.com/");
    let callbacks = WebhookCallbacks::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(CALLBACK_NOW, 0).unwrap();
    // Two targets answered the same run id: each callback URL, and so each key, is its own.
    let mut keys = Vec::new();
    for (at, target) in ["eu-west-1", "apps/web 1"].into_iter().enumerate() {
        let request = deploy_request(target);
        let run = deployer.start(&request).await.unwrap();
        let sent: Value = serde_json::from_slice(&support::received(&server, "POST", "/hooks/deploy").await[at].body).unwrap();
        let url = sent["callback_url"].as_str().unwrap();
        let path = url.strip_prefix("https://events.example.com").unwrap_or_else(|| panic!("under the events URL: {url}"));
        assert!(path.starts_with(&format!("/webhook/{}/", request.release_id)) && path.matches('/').count() == 3, "{path}");

        let event = one(&callbacks, &callback_to(path, &json!({"id": run.id, "state": "succeeded"}), CALLBACK_NOW, SECRET), now);
        assert_eq!(Some(event.key.clone()), deployer.wait_key(&run), "{target}: the key the release parks on");
        keys.push(event.key);
    }
    assert_ne!(keys[0], keys[1]);
}

// ------------------------------------------------------------------ the provider table

/// A catalog entry as a team writes it, building on `build` and deploying through a webhook.
fn entry(name: &str, build: &str) -> baton_domain::catalog::ServiceEntry {
    let text = format!(
        "schema-version: v2.2\ndd-service: {name}\nteam: web-team\nextensions:\n  baton:\n    environment: production\n    \
         release-branch: main\n    build: {build}\n    deploy:\n      provider: webhook\n      url: https://deploy.example/hooks\n      \
         secret: env:WEBHOOK_SECRET\n      waves: [{{name: all, targets: [web-1]}}]\n    \
         health: {{gates: [{{provider: http, url: https://web.example/health}}]}}\n"
    );
    let (mut services, diagnostics) = baton_domain::catalog::CatalogLoader::new(registry()).parse(&format!("{name}.yaml"), &text);
    assert_eq!(diagnostics, vec![], "{text}");
    services.remove(0)
}

#[tokio::test]
async fn the_table_hands_out_a_receiver_checking_every_secret_the_catalog_names() {
    let gitlab = |hook: &str| {
        format!("{{provider: gitlab-ci, project: acme/web, token: env:GITLAB_TOKEN, artifact: \"web:{{pipeline-id}}\"{hook}}}")
    };
    let entries = [
        entry("web", &gitlab(", events-secret: env:WEB_HOOK")),
        entry("api", &gitlab(", events-secret: env:API_HOOK")),
        entry("batch", &gitlab("")),
    ];
    let resolver = Secrets::of(&[("WEB_HOOK", SECRET), ("API_HOOK", OTHER), ("WEBHOOK_SECRET", SECRET)]);
    let dir = tempfile::tempdir().unwrap();
    let providers = LocalProviders::new(dir.path().into(), None, resolver, None).unwrap();

    let receiver = providers.receiver("gitlab-ci", &entries).await.unwrap();
    assert_eq!(receiver.provider(), "gitlab-ci");
    for token in [SECRET, OTHER] {
        assert_eq!(
            one(receiver.as_ref(), &gitlab_request(&gitlab_event(9, "success"), token), at(GITLAB_AT)).happened,
            Happened::Succeeded
        );
    }
    assert!(receiver.receive(&gitlab_request(&gitlab_event(9, "success"), "GITLAB_TOKEN"), at(GITLAB_AT)).is_err());

    let callbacks = providers.receiver("webhook", &entries).await.unwrap();
    let now = DateTime::from_timestamp(CALLBACK_NOW, 0).unwrap();
    assert_eq!(
        one(callbacks.as_ref(), &callback(&json!({"id": "7", "state": "succeeded"}), CALLBACK_NOW, SECRET), now).happened,
        Happened::Succeeded
    );

    let refused = |result: Result<Box<dyn EventReceiver>, ProviderError>| match result {
        Err(ProviderError::Rejected { message, .. }) => message,
        other => panic!("expected a refusal, got {:?}", other.map(|receiver| receiver.provider().to_owned())),
    };
    let none = refused(providers.receiver("buildkite", &entries).await);
    assert!(none.contains("no catalog entry's `buildkite` block names the secret of its events"), "{none}");
    let unknown = refused(providers.receiver("slack", &entries).await);
    assert!(unknown.contains("Baton receives no events from `slack`: expected one of gitlab-ci, buildkite, circleci"), "{unknown}");
    let unset = Secrets::of(&[]);
    let providers = LocalProviders::new(dir.path().into(), None, unset, None).unwrap();
    assert!(refused(providers.receiver("gitlab-ci", &entries).await).contains("WEB_HOOK"), "an unresolvable secret is named");
}

#[test]
fn every_receiving_provider_is_a_registered_one() {
    let table = ProviderTable::standard();
    let receiving = table.receiving();
    assert_eq!(receiving, ["gitlab-ci", "buildkite", "circleci", "argo-cd", "webhook", "datadog"]);
    for provider in receiving {
        let (slot, receive) = table.receive(provider).unwrap();
        let made = (receive.make)(secrets(&[SECRET])).unwrap();
        assert_eq!(made.provider(), provider, "the receiver answers for its table entry");
        assert!(table.registry().find(slot, provider).is_some());
        assert!((receive.make)(vec![]).is_err(), "{provider}: a receiver without a secret would accept anything");
    }
}

#[test]
fn a_retried_or_replayed_call_carries_the_delivery_of_the_first() {
    // The caller acts on a delivery once: a provider's retry, signed anew, and a captured call
    // replayed within the window must name the same delivery as the first.
    let buildkite = BuildkiteBuildEvents::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(BUILDKITE_NOW, 0).unwrap();
    let body = buildkite_event("build.finished", 42, "passed", false);
    let first = one(&buildkite, &buildkite_signed(&body, BUILDKITE_NOW - 60, SECRET), now);
    let retried = one(&buildkite, &buildkite_signed(&body, BUILDKITE_NOW, SECRET), now);
    assert_eq!(first.delivery, retried.delivery);
    let other = one(&buildkite, &buildkite_signed(&buildkite_event("build.finished", 43, "passed", false), BUILDKITE_NOW, SECRET), now);
    assert_ne!(first.delivery, other.delivery, "another build is another delivery");

    let callbacks = WebhookCallbacks::new(secrets(&[SECRET])).unwrap();
    let now = DateTime::from_timestamp(CALLBACK_NOW, 0).unwrap();
    let done = json!({"id": "7", "state": "succeeded"});
    let first = one(&callbacks, &callback(&done, CALLBACK_NOW - 30, SECRET), now);
    assert_eq!(first.delivery, one(&callbacks, &callback(&done, CALLBACK_NOW, SECRET), now).delivery);

    let gitlab = GitLabPipelineEvents::new(secrets(&[SECRET])).unwrap();
    let replayed = gitlab_request(&gitlab_event(9, "success"), SECRET);
    assert_eq!(one(&gitlab, &replayed, at(GITLAB_AT)).delivery, one(&gitlab, &replayed, at(GITLAB_AT)).delivery);

    let datadog = DatadogMonitorEvents::new(secrets(&[SECRET])).unwrap();
    let alert = with_token(&datadog_note("1234", "Triggered"), SECRET);
    assert_eq!(one(&datadog, &alert, at(GITLAB_AT)).delivery, one(&datadog, &alert, at(GITLAB_AT)).delivery);
}

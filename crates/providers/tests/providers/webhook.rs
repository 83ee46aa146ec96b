//! Contract tests of the webhook deployer against a local endpoint that answers as the
//! contract in the deployer's module docs (and docs/catalog.md) says.

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::error::chain_text;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle};
use baton_domain::release::ReleaseId;
use baton_providers::WebhookDeploy;
use baton_providers::WebhookDeployer;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant};
use support::{RELEASE, SHA, Secrets, answer, answer_once, artifact, assert_secret_free, client, release_id, travelled};
use wiremock::{MockServer, Request, ResponseTemplate};

const SECRET: &str = "whsec_TOPSECRET_0123456789";
const SECRET_REF: &str = "WEBHOOK_SECRET";
const DEPLOY: &str = "/hooks/deploy";
const STATUS: &str = "/runs/7";

fn deployer_at(url: String) -> WebhookDeployer {
    let spec = WebhookDeploy { url, secret: SecretRef::Env(SECRET_REF.into()) };
    WebhookDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[(SECRET_REF, SECRET)]), client())
        .unwrap()
        .with_rate_limits(crate::support::fresh_limits())
}

fn deployer(server: &MockServer) -> WebhookDeployer {
    deployer_at(format!("{}{DEPLOY}", server.uri()))
}

fn request(rollback: bool) -> DeployRequest {
    DeployRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: release_id(),
        wave: "canary".into(),
        target: "eu-west-1".into(),
        artifact: artifact(),
        rollback,
        undoes: None,
    }
}

/// The documented answer to a deploy: where to follow the run, and its id.
fn started(status_url: &str) -> ResponseTemplate {
    ResponseTemplate::new(202).set_body_json(json!({ "status_url": status_url, "id": "7" }))
}

fn status(state: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "state": state }))
}

/// A deploy answered with a status URL on the same server.
async fn accepting(server: &MockServer) {
    answer(server, "POST", DEPLOY, started(&format!("{}{STATUS}", server.uri()))).await;
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.get(name).map(|value| value.to_str().unwrap()).unwrap_or_default()
}

/// Checks a request's signature the way an endpoint would, with the `hmac` crate (the deployer
/// signs with `ring`), and that its timestamp is recent.
fn assert_signed(request: &Request) {
    let timestamp = header(request, "x-baton-timestamp");
    let sent: i64 = timestamp.parse().unwrap_or_else(|_| panic!("timestamp {timestamp:?}"));
    assert!((chrono::Utc::now().timestamp() - sent).abs() <= 5, "timestamp {sent} is not recent");
    let signature = header(request, "x-baton-signature");
    let signature = hex::decode(signature.strip_prefix("sha256=").unwrap_or_else(|| panic!("signature {signature:?}"))).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    assert!(mac.verify_slice(&signature).is_ok(), "the signature does not verify for {} {}", request.method, request.url);
}

#[tokio::test]
async fn a_signed_deploy_is_followed_until_it_succeeds() {
    let server = MockServer::start().await;
    accepting(&server).await;
    answer_once(&server, "GET", STATUS, status("running")).await;
    answer(&server, "GET", STATUS, status("succeeded")).await;
    let webhook = deployer(&server);

    let handle = webhook.start(&request(false)).await.unwrap();
    assert_eq!((handle.provider.as_str(), handle.id.as_str()), ("webhook", "7"));
    let handle = travelled(&handle);
    assert_eq!(webhook.poll(&handle).await.unwrap(), DeployProgress::Running);
    assert_eq!(webhook.poll(&handle).await.unwrap(), DeployProgress::Succeeded);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "service": "web",
            "environment": "production",
            "release_id": RELEASE,
            "wave": "canary",
            "target": "eu-west-1",
            "artifact": {
                "reference": "ghcr.io/acme/web:0123456",
                "sha": SHA,
                "branch": "main",
                "build_url": "https://github.com/acme/web/actions/runs/42",
            },
            "rollback": false,
            "undoes": null,
        })
    );
    assert_eq!(header(&requests[0], "content-type"), "application/json");
    assert_eq!(header(&requests[0], "idempotency-key"), format!("{RELEASE}/canary/eu-west-1/deploy"));
    // The deploy's span of the release's trace (the `otlp` exporter's span of this deploy).
    let span = baton_providers::traceparent(&ReleaseId(RELEASE.into()), "wave/canary/deploy/eu-west-1");
    assert_eq!(header(&requests[0], "traceparent"), span);
    for request in &requests {
        assert_signed(request);
    }
    // Polls are signed over an empty body and carry no key: a GET changes nothing.
    assert!(requests[1].body.is_empty() && header(&requests[1], "idempotency-key").is_empty());
}

#[tokio::test]
async fn every_state_maps_to_its_progress() {
    let cases: [(Value, Result<DeployProgress, &str>); 6] = [
        (json!({ "state": "running" }), Ok(DeployProgress::Running)),
        (json!({ "state": "succeeded" }), Ok(DeployProgress::Succeeded)),
        (
            json!({ "state": "failed", "reason": "helm upgrade timed out\n  after 5m" }),
            Ok(DeployProgress::Failed {
                reason: "the webhook reports run 7 on target eu-west-1 failed: helm upgrade timed out after 5m".into(),
            }),
        ),
        (
            json!({ "state": "failed" }),
            Ok(DeployProgress::Failed { reason: "the webhook reports run 7 on target eu-west-1 failed: it gave no reason".into() }),
        ),
        (json!({ "state": "paused" }), Err("field `state`: unknown variant `paused`, expected one of `running`, `succeeded`, `failed`")),
        (json!({ "reason": "?" }), Err("the body: missing field `state`")),
    ];
    for (answer_body, expected) in cases {
        let server = MockServer::start().await;
        accepting(&server).await;
        answer(&server, "GET", STATUS, ResponseTemplate::new(200).set_body_json(&answer_body)).await;
        let webhook = deployer(&server);
        let handle = webhook.start(&request(false)).await.unwrap();
        let progress = webhook.poll(&handle).await;
        match (&progress, expected) {
            (Ok(progress), Ok(expected)) => assert_eq!(progress, &expected, "{answer_body}"),
            // A status the contract does not define is a broken answer: retried, and named.
            (Err(error @ ProviderError::Unavailable { .. }), Err(expected)) => {
                let text = chain_text(error);
                assert!(text.contains(expected), "{answer_body}: {text}")
            }
            _ => panic!("{answer_body}: {progress:?}"),
        }
    }
}

#[tokio::test]
async fn a_rollback_names_the_run_it_undoes() {
    let server = MockServer::start().await;
    accepting(&server).await;
    let mut rollback = request(true);
    rollback.artifact.reference = String::new();
    rollback.undoes = Some(RunHandle { provider: "webhook".into(), id: "run-41".into(), url: None, state: Value::Null });
    deployer(&server).start(&rollback).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!((&body["rollback"], &body["undoes"], &body["artifact"]["reference"]), (&json!(true), &json!("run-41"), &json!("")));
    assert_eq!(header(&requests[0], "idempotency-key"), format!("{RELEASE}/canary/eu-west-1/rollback"));
    let span = baton_providers::traceparent(&ReleaseId(RELEASE.into()), "rollback/canary/eu-west-1");
    assert_eq!(header(&requests[0], "traceparent"), span, "a rollback's span is its putting back");
    assert_signed(&requests[0]);
}

#[tokio::test]
async fn the_idempotency_key_is_stable_across_a_retried_start() {
    let server = MockServer::start().await;
    answer_once(&server, "POST", DEPLOY, ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>")).await;
    accepting(&server).await;
    let webhook = deployer(&server);

    let error = webhook.start(&request(false)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("HTTP 502") && m.contains("Bad Gateway")),
        "{error}"
    );
    webhook.start(&request(false)).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(header(&requests[0], "idempotency-key"), header(&requests[1], "idempotency-key"));
    assert_eq!(requests[0].body, requests[1].body);
    requests.iter().for_each(assert_signed);
}

#[tokio::test]
async fn refused_credentials_and_unknown_urls_are_rejected_without_the_secret() {
    // An endpoint that echoes what it got must not make the secret reach an error.
    let echo = format!("{{\"error\": \"bad signature for key {SECRET}\"}}");
    let cases = [
        (401, "refused the credentials (HTTP 401)"),
        (403, "denied it (HTTP 403)"),
        (404, "HTTP 404, nothing answers at http://127.0.0.1"),
        (400, "answered HTTP 400"),
    ];
    for (code, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "POST", DEPLOY, ResponseTemplate::new(code).set_body_string(echo.clone())).await;
        let error = deployer(&server).start(&request(false)).await.unwrap_err();
        let ProviderError::Rejected { message: text, .. } = &error else { panic!("HTTP {code}: {error}") };
        assert!(text.contains(expected), "HTTP {code}: {text}");
        if code == 401 || code == 403 {
            assert!(text.contains("X-Baton-Signature with the secret env:WEBHOOK_SECRET"), "{text}");
        }
        assert!(text.contains("bad signature for key ***"), "{text}");
        assert_secret_free(text, SECRET);
    }
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_a_long_one_says_when() {
    let server = MockServer::start().await;
    answer_once(&server, "POST", DEPLOY, ResponseTemplate::new(429).insert_header("retry-after", "1")).await;
    accepting(&server).await;
    let started = Instant::now();
    deployer(&server).start(&request(false)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let server = MockServer::start().await;
    answer(&server, "POST", DEPLOY, ResponseTemplate::new(429).insert_header("retry-after", "120")).await;
    let started = Instant::now();
    let error = deployer(&server).start(&request(false)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("rate limiting (HTTP 429), retry after 120 s")),
        "{error}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_the_next_poll_succeeds() {
    let server = MockServer::start().await;
    accepting(&server).await;
    answer_once(&server, "GET", STATUS, ResponseTemplate::new(503)).await;
    answer(&server, "GET", STATUS, status("succeeded")).await;
    let webhook = deployer(&server);
    let handle = webhook.start(&request(false)).await.unwrap();

    let error = webhook.poll(&handle).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("reading the status of webhook run 7") && m.contains("HTTP 503")),
        "{error}"
    );
    assert_eq!(webhook.poll(&handle).await.unwrap(), DeployProgress::Succeeded);
}

#[tokio::test]
async fn a_slow_endpoint_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(&server, "POST", DEPLOY, started("/runs/7").set_delay(Duration::from_secs(3))).await;
    let webhook = deployer(&server).with_request_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = webhook.start(&request(false)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 200 ms")), "{error}");
}

#[tokio::test]
async fn a_malformed_answer_names_the_field() {
    let cases = [
        (ResponseTemplate::new(202).set_body_string("accepted"), "unreadable answer, the body: expected value"),
        (ResponseTemplate::new(202).set_body_json(json!({ "id": "7" })), "missing field `status_url`"),
        (ResponseTemplate::new(200).set_body_json(json!({ "status_url": "/runs/7", "id": 7 })), "field `id`: invalid type: integer `7`"),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, "POST", DEPLOY, response).await;
        let error = deployer(&server).start(&request(false)).await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Unavailable { .. })
                && chain_text(&error).contains(expected)
                && error.message().contains("asking the webhook"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn ids_and_status_urls_too_long_to_keep_are_refused() {
    let long_path = format!("/runs/{}", "x".repeat(3000));
    let cases = [(json!(""), json!("/runs/7")), (json!("i".repeat(201)), json!("/runs/7")), (json!("7"), json!(long_path))];
    for (id, status_url) in cases {
        let server = MockServer::start().await;
        answer(&server, "POST", DEPLOY, ResponseTemplate::new(202).set_body_json(json!({ "status_url": status_url, "id": id }))).await;
        let error = deployer(&server).start(&request(false)).await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("the answer's id must have 1 to 200 characters and its status_url at most 2048")),
            "{error}"
        );
    }
}

#[tokio::test]
async fn status_urls_stay_on_the_webhooks_host() {
    // Relative, and the same host on another port, are the endpoint's own.
    for (status_url, resolved) in [("/runs/7", None), ("http://127.0.0.1:9/x", Some("http://127.0.0.1:9/x"))] {
        let server = MockServer::start().await;
        answer(&server, "POST", DEPLOY, started(status_url)).await;
        let handle = deployer(&server).start(&request(false)).await.unwrap();
        let expected = resolved.map(str::to_owned).unwrap_or_else(|| format!("{}{status_url}", server.uri()));
        assert_eq!(handle.state["status_url"], json!(expected), "{status_url}");
    }
    for status_url in ["http://169.254.169.254/latest/meta-data/", "http://localhost/runs/7", "file:///etc/passwd"] {
        let server = MockServer::start().await;
        answer(&server, "POST", DEPLOY, started(status_url)).await;
        let error = deployer(&server).start(&request(false)).await.unwrap_err();
        assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("the status_url")), "{status_url}: {error}");
    }
    // A handle whose state was changed on the way is checked again before it is polled.
    let server = MockServer::start().await;
    let forged = RunHandle {
        provider: "webhook".into(),
        id: "7".into(),
        url: None,
        state: json!({ "status_url": "http://169.254.169.254/latest/meta-data/", "target": "eu-west-1" }),
    };
    let error = deployer(&server).poll(&forged).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("is not on the webhook's host 127.0.0.1")),
        "{error}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_secret_never_reaches_a_handle_or_a_reason() {
    let server = MockServer::start().await;
    accepting(&server).await;
    answer(
        &server,
        "GET",
        STATUS,
        ResponseTemplate::new(200).set_body_json(json!({ "state": "failed", "reason": format!("key {SECRET} refused") })),
    )
    .await;
    let webhook = deployer(&server);
    let handle = webhook.start(&request(false)).await.unwrap();
    assert_secret_free(&serde_json::to_string(&handle).unwrap(), SECRET);
    let DeployProgress::Failed { reason } = webhook.poll(&handle).await.unwrap() else { panic!("not failed") };
    assert!(reason.ends_with("key *** refused"), "{reason}");
    assert_secret_free(&reason, SECRET);

    // An unresolvable secret is refused by name, before anything is sent.
    let spec = WebhookDeploy { url: format!("{}{DEPLOY}", server.uri()), secret: SecretRef::Env("UNSET_SECRET".into()) };
    let unresolved = WebhookDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[]), client()).unwrap();
    let error = unresolved.start(&request(false)).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("env:UNSET_SECRET")), "{error}");
}

#[test]
fn urls_that_cannot_be_called_are_rejected_when_built() {
    for (url, expected) in [("ftp://deploy.example.com/x", "is not an http(s) URL"), ("deploy.example.com/hook", "is not a URL")] {
        let spec = WebhookDeploy { url: url.into(), secret: SecretRef::Env(SECRET_REF.into()) };
        let Err(ProviderError::Rejected { message: text, .. }) =
            WebhookDeployer::new(&spec, "catalog/web.yaml", Secrets::of(&[]), client())
        else {
            panic!("{url} was accepted")
        };
        assert!(text.starts_with("catalog/web.yaml: extensions.baton.deploy: webhook url") && text.contains(expected), "{text}");
    }
}

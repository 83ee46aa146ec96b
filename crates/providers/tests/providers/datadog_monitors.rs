//! Contract tests of the Datadog monitors gate against a local server that answers as
//! Datadog's Monitors API does (`GET /api/v1/monitor`, "Get all monitor details").

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::error::chain_text;
use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError};
use baton_providers::DatadogGate;
use baton_providers::DatadogMonitorsGate;
use baton_providers::monitor_key;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Secrets, artifact, assert_secret_free, client, release_id};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "dd_api_TOPSECRET_0123456789abcdef";
const APP_KEY: &str = "dd_app_TOPSECRET_fedcba9876543210";
const MONITORS: &str = "/api/v1/monitor";
const SERVICE_TAGS: [&str; 3] = ["service:web", "env:production", "team:payments"];

fn spec(server: &MockServer, unhealthy: &[&str]) -> DatadogGate {
    DatadogGate {
        monitors: vec![],
        tags: vec!["team:payments".into()],
        site: "datadoghq.eu".into(),
        api_url: Some(server.uri()),
        api_key: SecretRef::Env("DD_API_KEY".into()),
        app_key: SecretRef::Env("DD_APP_KEY".into()),
        unhealthy: unhealthy.iter().map(|state| state.to_string()).collect(),
        events_secret: None,
    }
}

fn gate_with(server: &MockServer, unhealthy: &[&str]) -> DatadogMonitorsGate {
    let secrets = Secrets::of(&[("DD_API_KEY", API_KEY), ("DD_APP_KEY", APP_KEY)]);
    DatadogMonitorsGate::new(&spec(server, unhealthy), "web", "production", "catalog/web.yaml", secrets, client())
        .unwrap()
        .with_rate_limits(support::fresh_limits())
}

fn gate(server: &MockServer) -> DatadogMonitorsGate {
    gate_with(server, &["Alert"])
}

fn request() -> HealthRequest {
    HealthRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: release_id(),
        wave: "canary".into(),
        targets: vec!["web-canary".into()],
        artifact: artifact(),
    }
}

/// A monitor as the list answers it (abridged), carrying the service's tags.
fn monitor(id: i64, name: &str, state: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "type": "metric alert",
        "query": "avg(last_5m):sum:trace.http.request.errors{service:web,env:production} > 10",
        "message": "@slack-payments",
        "tags": SERVICE_TAGS,
        "options": { "notify_no_data": false, "thresholds": { "critical": 10 } },
        "overall_state": state,
        "overall_state_modified": "2026-01-01T12:00:00+00:00",
        "created": "2025-06-01T10:00:00.000000+00:00",
        "modified": "2025-06-01T10:00:00.000000+00:00",
        "multi": false,
        "priority": null,
        "restricted_roles": null,
        "creator": { "email": "ops@acme.example", "handle": "ops@acme.example", "name": "Ops" },
    })
}

fn listed(monitors: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(Value::Array(monitors))
}

/// Datadog's error body: `{"errors": [...]}`.
fn datadog_error(status: u16, errors: &[&str]) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "errors": errors }))
}

async fn answer(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET")).and(path(MONITORS)).respond_with(response).mount(server).await;
}

async fn answer_once(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("GET")).and(path(MONITORS)).respond_with(response).up_to_n_times(1).mount(server).await;
}

async fn sample(gate: &DatadogMonitorsGate) -> Result<GateReading, ProviderError> {
    gate.sample(&request()).await
}

#[tokio::test]
async fn healthy_monitors_make_a_healthy_sample() {
    let server = MockServer::start().await;
    answer(&server, listed(vec![monitor(101, "web 5xx rate", "OK"), monitor(102, "web p99 latency", "OK")])).await;
    let gate = gate(&server);
    assert_eq!(gate.describe(), "Datadog monitors tagged service:web, env:production, team:payments");
    assert_eq!(
        sample(&gate).await.unwrap(),
        GateReading::Healthy { saw: "2 monitors, none Alert: #101 web 5xx rate (OK); #102 web p99 latency (OK)".into() }
    );

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let query: Vec<(String, String)> = requests[0].url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let expected = [("monitor_tags", "service:web,env:production,team:payments"), ("page", "0"), ("page_size", "1000")];
    assert_eq!(query, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    assert_eq!(requests[0].headers.get("dd-api-key").unwrap(), API_KEY);
    assert_eq!(requests[0].headers.get("dd-application-key").unwrap(), APP_KEY);
}

#[tokio::test]
async fn every_overall_state_counts_as_the_gate_says() {
    // (monitor states, the gate's unhealthy states, Ok(healthy saw) or Err(unhealthy saw))
    type Case<'a> = (&'a [&'a str], &'a [&'a str], Result<&'a str, &'a str>);
    let cases: [Case<'_>; 7] = [
        (&["OK", "Alert"], &["Alert"], Err("1 of 2 monitors Alert: #2 m2 (Alert); #1 m1 (OK)")),
        (&["Warn", "No Data"], &["Alert"], Ok("2 monitors, none Alert: #1 m1 (Warn); #2 m2 (No Data)")),
        (&["OK", "Warn"], &["Alert", "Warn"], Err("1 of 2 monitors Alert or Warn: #2 m2 (Warn); #1 m1 (OK)")),
        (&["No Data"], &["Alert", "No Data"], Err("1 of 1 monitor Alert or No Data: #1 m1 (No Data)")),
        (&["Alert"], &["alert"], Err("1 of 1 monitor alert: #1 m1 (Alert)")),
        (&["Ignored", "Skipped", "Unknown"], &["Alert"], Ok("3 monitors, none Alert: #1 m1 (Ignored); #2 m2 (Skipped); #3 m3 (Unknown)")),
        (&["OK"], &["Alert"], Ok("1 monitor, none Alert: #1 m1 (OK)")),
    ];
    for (states, unhealthy, expected) in cases {
        let server = MockServer::start().await;
        let monitors = states.iter().enumerate().map(|(i, state)| monitor(i as i64 + 1, &format!("m{}", i + 1), state)).collect();
        answer(&server, listed(monitors)).await;
        let reading = sample(&gate_with(&server, unhealthy)).await.unwrap();
        let expected = match expected {
            Ok(saw) => GateReading::Healthy { saw: saw.into() },
            Err(saw) => GateReading::Unhealthy { saw: saw.into() },
        };
        assert_eq!(reading, expected, "{states:?} against {unhealthy:?}");
    }
}

#[tokio::test]
async fn monitors_without_every_tag_are_not_judged() {
    let server = MockServer::start().await;
    let mut other_env = monitor(2, "web errors staging", "Alert");
    other_env["tags"] = json!(["service:web", "env:staging", "team:payments"]);
    answer(&server, listed(vec![monitor(1, "web errors", "OK"), other_env])).await;
    assert_eq!(sample(&gate(&server)).await.unwrap(), GateReading::Healthy { saw: "1 monitor, none Alert: #1 web errors (OK)".into() });
}

#[tokio::test]
async fn every_page_is_read() {
    let server = MockServer::start().await;
    let page = |n: &str, response: ResponseTemplate| {
        Mock::given(method("GET")).and(path(MONITORS)).and(query_param("page", n)).respond_with(response)
    };
    page("0", listed(vec![monitor(1, "a", "OK"), monitor(2, "b", "OK")])).mount(&server).await;
    page("1", listed(vec![monitor(3, "c", "Alert")])).mount(&server).await;
    let reading = sample(&gate(&server).with_page_size(2)).await.unwrap();
    assert_eq!(reading, GateReading::Unhealthy { saw: "1 of 3 monitors Alert: #3 c (Alert); #1 a (OK); #2 b (OK)".into() });
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn what_a_sample_saw_is_bounded_with_the_bad_monitors_first() {
    let server = MockServer::start().await;
    let mut monitors: Vec<Value> = (1..=60).map(|i| monitor(i, &format!("web check number {i} with a long name"), "OK")).collect();
    monitors.push(monitor(99, "web is down", "Alert"));
    answer(&server, listed(monitors)).await;
    let GateReading::Unhealthy { saw } = sample(&gate(&server)).await.unwrap() else { panic!("healthy") };
    assert!(saw.starts_with("1 of 61 monitors Alert: #99 web is down (Alert); #1 "), "{saw}");
    assert!(saw.chars().count() <= 301 && saw.ends_with('…'), "{} chars: {saw}", saw.chars().count());
}

#[tokio::test]
async fn no_monitor_with_the_tags_is_a_configuration_problem() {
    let server = MockServer::start().await;
    answer(&server, listed(vec![])).await;
    let error = sample(&gate(&server)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. } if m.starts_with("no Datadog monitor carries the tags service:web, env:production, team:payments")),
        "{error}"
    );
}

#[tokio::test]
async fn refused_keys_are_rejected_by_reference_without_their_values() {
    let cases = [
        (
            datadog_error(403, &["Forbidden"]),
            "Datadog denied it (HTTP 403): check the API key env:DD_API_KEY and the application key env:DD_APP_KEY",
        ),
        (datadog_error(401, &["Unauthorized"]), "Datadog refused the credentials (HTTP 401): check the API key env:DD_API_KEY"),
        (datadog_error(404, &["Not found"]), "HTTP 404, http://127.0.0.1"),
        (datadog_error(400, &[&format!("invalid key {API_KEY} / {APP_KEY}")]), "Datadog answered HTTP 400: invalid key *** / ***"),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, response).await;
        let error = sample(&gate(&server)).await.unwrap_err();
        let ProviderError::Rejected { message: text, .. } = &error else { panic!("{error}") };
        assert!(text.contains(expected), "{text}");
        assert_secret_free(text, "TOPSECRET");
    }
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_a_long_one_says_when() {
    let limited = |reset: &str| {
        datadog_error(429, &["Rate limit exceeded"]).insert_header("x-ratelimit-reset", reset).insert_header("x-ratelimit-remaining", "0")
    };
    let server = MockServer::start().await;
    answer_once(&server, limited("1")).await;
    answer(&server, listed(vec![monitor(1, "a", "OK")])).await;
    let started = Instant::now();
    assert!(matches!(sample(&gate(&server)).await.unwrap(), GateReading::Healthy { .. }));
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());

    let server = MockServer::start().await;
    answer(&server, limited("30")).await;
    let error = sample(&gate(&server)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("Datadog is rate limiting (HTTP 429), retry after 30 s: Rate limit exceeded")),
        "{error}"
    );
}

#[tokio::test]
async fn rate_limit_windows_are_obeyed_to_their_end_whichever_header_names_them() {
    for window in [2, 20, 120] {
        for header in ["retry-after", "x-ratelimit-reset"] {
            let server = MockServer::start().await;
            let clock = support::ManualClock::new();
            let limited = datadog_error(429, &["Rate limit exceeded"])
                .insert_header("x-ratelimit-limit", "1000")
                .insert_header("x-ratelimit-period", "3600")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(header, window.to_string().as_str());
            let times = support::limited_then(&server, "GET", MONITORS, limited, listed(vec![monitor(1, "a", "OK")])).await;
            let gate = gate(&server).with_rate_limits(support::own_limits(clock.clone()));
            let reading = support::window_is_obeyed(window, &clock, &times, || sample(&gate)).await;
            assert!(matches!(reading, GateReading::Healthy { .. }), "{header} {window}: {reading:?}");
        }
    }
}

#[tokio::test]
async fn a_rate_limit_holds_every_gate_with_the_same_key_and_no_other() {
    let server = MockServer::start().await;
    answer_once(&server, datadog_error(429, &["Rate limit exceeded"]).insert_header("x-ratelimit-reset", "60")).await;
    answer(&server, listed(vec![monitor(1, "a", "OK")])).await;
    let limits = support::own_limits(support::ManualClock::new());
    let first = gate(&server).with_rate_limits(limits.clone());
    assert!(sample(&first).await.unwrap_err().rate_limit().is_some_and(|limit| limit.answered));
    // Another service's gate with the same keys, on the same host: held back, nothing sent.
    let secrets = Secrets::of(&[("DD_API_KEY", API_KEY), ("DD_APP_KEY", APP_KEY)]);
    let other = DatadogMonitorsGate::new(&spec(&server, &["Alert"]), "api", "production", "catalog/api.yaml", secrets, client())
        .unwrap()
        .with_rate_limits(limits.clone());
    let held = sample(&other).await.unwrap_err();
    assert!(held.rate_limit().is_some_and(|limit| !limit.answered && limit.service == "Datadog"), "{held}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // Another organisation's key is its own quota.
    let secrets = Secrets::of(&[("DD_API_KEY", "dd_api_other_TOPSECRET"), ("DD_APP_KEY", APP_KEY)]);
    let elsewhere = DatadogMonitorsGate::new(&spec(&server, &["Alert"]), "web", "production", "catalog/web.yaml", secrets, client())
        .unwrap()
        .with_rate_limits(limits);
    assert!(matches!(sample(&elsewhere).await.unwrap(), GateReading::Healthy { .. }));
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_the_next_sample_succeeds() {
    let server = MockServer::start().await;
    answer_once(&server, ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>")).await;
    answer(&server, listed(vec![monitor(1, "a", "OK")])).await;
    let gate = gate(&server);
    let error = sample(&gate).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Unavailable { message: m, .. } if m.starts_with("listing the Datadog monitors tagged service:web") && m.contains("HTTP 502")),
        "{error}"
    );
    assert!(matches!(sample(&gate).await.unwrap(), GateReading::Healthy { .. }));
}

#[tokio::test]
async fn a_slow_api_times_out_as_unavailable() {
    let server = MockServer::start().await;
    answer(&server, listed(vec![monitor(1, "a", "OK")]).set_delay(Duration::from_secs(3))).await;
    let gate = gate(&server).with_request_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = sample(&gate).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(matches!(&error, ProviderError::Unavailable { message: m, .. } if m.contains("no answer within 200 ms")), "{error}");
}

#[tokio::test]
async fn a_malformed_list_names_the_field() {
    let mut stateless = monitor(1, "a", "OK");
    stateless.as_object_mut().unwrap().remove("overall_state");
    let cases = [
        (ResponseTemplate::new(200).set_body_string("<html>login</html>"), "unreadable answer, the body: expected value"),
        (listed(vec![monitor(1, "a", "OK"), stateless]), "unreadable answer, field `[1]`: missing field `overall_state`"),
        (
            ResponseTemplate::new(200).set_body_json(json!({ "monitors": [] })),
            "unreadable answer, the body: invalid type: map, expected a sequence",
        ),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        answer(&server, response).await;
        let error = sample(&gate(&server)).await.unwrap_err();
        assert!(matches!(&error, ProviderError::Unavailable { .. }) && chain_text(&error).contains(expected), "{error:?}");
    }
}

#[tokio::test]
async fn unresolvable_keys_are_refused_by_reference() {
    let server = MockServer::start().await;
    let secrets = Secrets::of(&[("DD_API_KEY", API_KEY)]);
    let gate = DatadogMonitorsGate::new(&spec(&server, &["Alert"]), "web", "production", "catalog/web.yaml", secrets, client()).unwrap();
    let error = sample(&gate).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m == "secret env:DD_APP_KEY is not set"), "{error}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[test]
fn bad_gates_are_rejected_when_built() {
    let server_uri = "http://127.0.0.1:9";
    let base = DatadogGate {
        monitors: vec![],
        tags: vec![],
        site: "datadoghq.com".into(),
        api_url: Some(server_uri.into()),
        api_key: SecretRef::Env("DD_API_KEY".into()),
        app_key: SecretRef::Env("DD_APP_KEY".into()),
        unhealthy: vec!["Alert".into()],
        events_secret: None,
    };
    let cases = [
        (
            DatadogGate { api_url: Some("api.datadoghq.com".into()), ..base.clone() },
            "API URL 'api.datadoghq.com' is not a URL: relative URL without a base (from site or api-url)",
        ),
        (DatadogGate { unhealthy: vec![], ..base.clone() }, "unhealthy lists no state"),
        (
            DatadogGate { monitors: vec![1234], tags: vec!["team:payments".into()], ..base.clone() },
            "names monitors by id and selects them by tags: expected one of monitors or tags",
        ),
    ];
    for (spec, expected) in cases {
        let built = DatadogMonitorsGate::new(&spec, "web", "production", "catalog/web.yaml", Secrets::of(&[]), client());
        let Err(ProviderError::Rejected { message: text, .. }) = built else { panic!("{spec:?} was accepted") };
        assert!(text.starts_with("catalog/web.yaml: extensions.baton.health.gates: datadog ") && text.contains(expected), "{text}");
    }
}

// ------------------------------------------------------------------ monitors named by id

fn named(server: &MockServer, ids: &[i64], events_secret: Option<&str>) -> DatadogMonitorsGate {
    let spec = DatadogGate {
        monitors: ids.to_vec(),
        tags: vec![],
        events_secret: events_secret.map(|name| SecretRef::Env(name.into())),
        ..spec(server, &["Alert"])
    };
    let secrets = Secrets::of(&[("DD_API_KEY", API_KEY), ("DD_APP_KEY", APP_KEY)]);
    DatadogMonitorsGate::new(&spec, "web", "production", "catalog/web.yaml", secrets, client())
        .unwrap()
        .with_rate_limits(support::fresh_limits())
}

async fn answer_monitor(server: &MockServer, id: i64, response: ResponseTemplate) {
    Mock::given(method("GET")).and(path(format!("{MONITORS}/{id}"))).respond_with(response).mount(server).await;
}

#[tokio::test]
async fn monitors_named_by_id_are_read_one_by_one_whatever_their_tags() {
    let server = MockServer::start().await;
    let mut untagged = monitor(102, "checkout p99", "Alert");
    untagged["tags"] = json!([]);
    answer_monitor(&server, 101, ResponseTemplate::new(200).set_body_json(monitor(101, "web 5xx rate", "OK"))).await;
    answer_monitor(&server, 102, ResponseTemplate::new(200).set_body_json(untagged)).await;
    let gate = named(&server, &[101, 102], None);

    assert_eq!(gate.describe(), "Datadog monitors #101, #102");
    assert_eq!(
        sample(&gate).await.unwrap(),
        GateReading::Unhealthy { saw: "1 of 2 monitors Alert: #102 checkout p99 (Alert); #101 web 5xx rate (OK)".into() }
    );
    let requests = server.received_requests().await.unwrap();
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    assert_eq!(paths, ["/api/v1/monitor/101", "/api/v1/monitor/102"]);
    assert_eq!(requests[0].headers.get("dd-application-key").unwrap(), APP_KEY);
}

#[tokio::test]
async fn a_named_monitor_that_does_not_exist_is_rejected_by_its_id() {
    let server = MockServer::start().await;
    answer_monitor(&server, 7, datadog_error(404, &["Monitor not found"])).await;
    let error = sample(&named(&server, &[7], None)).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::Rejected { message: m, .. }
            if m.starts_with("reading the Datadog monitor #7: http://127.0.0.1") && m.ends_with("has no such monitor (HTTP 404): check the gate's monitors and site")),
        "{error}"
    );
}

#[tokio::test]
async fn a_bake_parks_on_named_monitors_whose_webhook_baton_receives_only() {
    let server = MockServer::start().await;
    let keys = |gate: DatadogMonitorsGate| async move { gate.bake_keys().await.unwrap() };
    assert_eq!(keys(named(&server, &[101, 102], Some("DD_HOOK"))).await, Some(vec![monitor_key(101), monitor_key(102)]));
    assert_eq!(keys(named(&server, &[101], None)).await, None, "no events-secret: no webhook reaches Baton");
    let tagged = DatadogGate { events_secret: Some(SecretRef::Env("DD_HOOK".into())), ..spec(&server, &["Alert"]) };
    let tagged = DatadogMonitorsGate::new(&tagged, "web", "production", "catalog/web.yaml", Secrets::of(&[]), client()).unwrap();
    assert_eq!(keys(tagged).await, None, "a tag selection samples");
    assert!(server.received_requests().await.unwrap().is_empty(), "keys cost no call");
}

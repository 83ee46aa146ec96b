//! Contract tests of the telemetry exporters: the `datadog` exporter against a local server that
//! answers as Datadog's DORA Metrics API (`POST /api/v2/dora/deployment`, `/dora/failure`) and
//! Events API (`POST /api/v1/events`) do, and the `cloudwatch-emf` exporter's lines read as the
//! Embedded Metric Format specification says CloudWatch reads them.

use crate::support;

use baton_domain::catalog::SecretRef;
use baton_domain::error::chain_text;
use baton_domain::ports::{ProviderError, TelemetryEvent, TelemetryExporter, TelemetryKind};
use baton_domain::release::{Release, ReleaseStatus, Rollup, Stage, Trigger, TriggerKind, WaveRecord, WaveStatus};
use baton_providers::{DatadogExport, DatadogExporter, DatadogSend, EmfExport, EmfExporter, EmfSink};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{ManualClock, SHA, Secrets, artifact, assert_secret_free, client, own_limits, release_id};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const API_KEY: &str = "dd_api_TOPSECRET_0123456789abcdef";
const DEPLOYMENT: &str = "/api/v2/dora/deployment";
const FAILURE: &str = "/api/v2/dora/failure";
const EVENTS: &str = "/api/v1/events";
const REPOSITORY: &str = "https://github.com/acme/web";

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, hour, minute, 0).unwrap()
}

fn wave(name: &str, status: WaveStatus, started: bool) -> WaveRecord {
    WaveRecord {
        name: name.into(),
        targets: vec![format!("web-{name}")],
        status,
        started_at: started.then(|| at(12, 10)),
        finished_at: None,
        deploy_url: None,
        deploys: Vec::new(),
        bake_started_at: None,
        gates: Vec::new(),
    }
}

/// A release of `web` that ended `status` at 12:30, having started at 12:00.
fn release(status: ReleaseStatus) -> Release {
    Release {
        id: release_id(),
        service: "web".into(),
        environment: "production".into(),
        status,
        stage: Stage::Done,
        trigger: Trigger::new(TriggerKind::Merge, "pr-42".into(), None),
        branch: "main".into(),
        sha: Some(SHA.into()),
        changed_at: Some(at(11, 0)),
        artifact: Some(artifact()),
        build: None,
        previous_artifact: None,
        waves: vec![wave("canary", WaveStatus::Healthy, true), wave("rest", WaveStatus::Pending, false)],
        created_at: at(11, 59),
        heartbeat_at: None,
        started_at: Some(at(12, 0)),
        finished_at: Some(at(12, 30)),
        failure: None,
        execution: None,
        approvals: Vec::new(),
        notifier_state: Default::default(),
        cancel_requested: None,
        changes: None,
        cost: None,
        version: 3,
    }
}

fn event(kind: TelemetryKind, release: Release) -> TelemetryEvent {
    TelemetryEvent { kind, release, team: Some("payments".into()), repository_url: Some(REPOSITORY.into()), at: at(12, 30) }
}

fn finished(status: ReleaseStatus, figures: Rollup) -> TelemetryEvent {
    event(TelemetryKind::ReleaseFinished { figures }, release(status))
}

fn deployed() -> Rollup {
    Rollup { deployments: 1, lead_time_seconds_total: 5400, lead_time_samples: 1, ..Rollup::default() }
}

fn rolled_back() -> Rollup {
    Rollup { deployments: 1, failed_deployments: 1, rollbacks: 1, ..Rollup::default() }
}

fn spec(server: &MockServer, send: DatadogSend) -> DatadogExport {
    DatadogExport { site: "datadoghq.eu".into(), api_url: Some(server.uri()), api_key: SecretRef::Env("DD_API_KEY".into()), send }
}

/// An exporter with rate-limit holds of its own, so one test's limit does not leak into the next.
fn exporter_with(server: &MockServer, send: DatadogSend) -> DatadogExporter {
    let secrets = Secrets::of(&[("DD_API_KEY", API_KEY)]);
    DatadogExporter::new(&spec(server, send), "catalog/web.yaml", secrets, client())
        .unwrap()
        .with_rate_limits(own_limits(ManualClock::new()))
}

fn exporter(server: &MockServer) -> DatadogExporter {
    exporter_with(server, DatadogSend::All)
}

/// Datadog's DORA answer: the event's id and type.
fn accepted(kind: &str) -> ResponseTemplate {
    ResponseTemplate::new(202).set_body_json(json!({ "data": { "id": "4242", "type": kind } }))
}

/// Datadog's error body: `{"errors": [...]}`.
fn datadog_error(status: u16, errors: &[&str]) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "errors": errors }))
}

async fn answer(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("POST")).and(path(at)).and(header("dd-api-key", API_KEY)).respond_with(response).mount(server).await;
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap()
}

#[tokio::test]
async fn a_finished_deployment_is_one_dora_deployment_event() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, accepted("dora_deployment")).await;
    exporter(&server).export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1, "a success is no failure");
    assert_eq!(sent[0].url.path(), DEPLOYMENT);
    assert_eq!(
        body(&sent[0]),
        json!({ "data": { "attributes": {
            "service": "web",
            "env": "production",
            "version": "ghcr.io/acme/web:0123456",
            "team": "payments",
            "started_at": nanos(at(12, 0)),
            "finished_at": nanos(at(12, 30)),
            "id": release_id().0,
            "git": { "repository_url": REPOSITORY, "commit_sha": SHA },
            "custom_tags": ["baton_status:succeeded"],
        } } })
    );
}

#[tokio::test]
async fn a_rolled_back_deployment_is_also_a_dora_failure() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, accepted("dora_deployment")).await;
    answer(&server, FAILURE, ResponseTemplate::new(200).set_body_json(json!({ "data": { "id": "43", "type": "dora_failure" } }))).await;
    let mut event = finished(ReleaseStatus::RolledBack, rolled_back());
    event.release.failure = Some(baton_domain::release::Failure {
        error: "Baton.HealthCheckFailed".into(),
        cause: "wave canary is unhealthy".into(),
        stage: Some(Stage::Deploy),
    });
    exporter(&server).export(&event).await.unwrap();
    let sent = requests(&server).await;
    let paths: Vec<&str> = sent.iter().map(|request| request.url.path()).collect();
    assert_eq!(paths, [DEPLOYMENT, FAILURE]);
    let failure = body(&sent[1]);
    assert_eq!(
        failure,
        json!({ "data": { "attributes": {
            "services": ["web"],
            "env": "production",
            "version": "ghcr.io/acme/web:0123456",
            "team": "payments",
            "started_at": nanos(at(12, 0)),
            "finished_at": nanos(at(12, 30)),
            "name": format!("web {} rolled-back: wave canary is unhealthy", release_id()),
            "id": release_id().0,
            "git": { "repository_url": REPOSITORY, "commit_sha": SHA },
        } } })
    );
}

#[tokio::test]
async fn a_release_that_deployed_nothing_sends_no_dora_event() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, accepted("dora_deployment")).await;
    exporter(&server).export(&finished(ReleaseStatus::Failed, Rollup::default())).await.unwrap();
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_cancelled_release_that_deployed_a_wave_sends_no_dora_event() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, accepted("dora_deployment")).await;
    answer(&server, FAILURE, accepted("dora_failure")).await;
    let mut cancelled = release(ReleaseStatus::Cancelled);
    cancelled.waves[0].status = WaveStatus::RolledBack;
    let figures = baton_domain::rules::dora::rollup_delta(&cancelled, &[]);
    exporter(&server).export(&event(TelemetryKind::ReleaseFinished { figures }, cancelled)).await.unwrap();
    assert!(requests(&server).await.is_empty(), "a person's cancel is neither a deployment nor a failure");
}

#[tokio::test]
async fn each_wave_is_one_event_tagged_for_the_services_graphs() {
    let server = MockServer::start().await;
    answer(&server, EVENTS, ResponseTemplate::new(202).set_body_json(json!({ "status": "ok", "event": { "id": 1, "url": "u" } }))).await;
    let exporter = exporter(&server);
    let kinds = [
        (TelemetryKind::WaveStarted { wave: "canary".into() }, "info", "web production: wave canary (1/2) started"),
        (TelemetryKind::WaveHealthy { wave: "canary".into() }, "success", "web production: wave canary (1/2) healthy"),
        (TelemetryKind::WaveRolledBack { wave: "canary".into() }, "warning", "web production: wave canary (1/2) rolled back"),
    ];
    for (kind, ..) in &kinds {
        exporter.export(&event(kind.clone(), release(ReleaseStatus::Running))).await.unwrap();
    }
    // The build's end and the release's are no wave markers.
    exporter.export(&event(TelemetryKind::BuildFinished, release(ReleaseStatus::Running))).await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(sent.len(), kinds.len());
    for (request, (_, alert_type, title)) in sent.iter().zip(&kinds) {
        let marker = body(request);
        assert_eq!(marker["title"], *title);
        assert_eq!(marker["alert_type"], *alert_type);
        assert_eq!(marker["date_happened"], at(12, 30).timestamp());
        assert_eq!(marker["aggregation_key"], release_id().0);
        assert_eq!(
            marker["tags"],
            json!(["service:web", "env:production", "wave:canary", "version:ghcr.io/acme/web:0123456", "team:payments", "source:baton"])
        );
        assert!(marker["text"].as_str().unwrap().contains(SHA), "{marker}");
    }
}

#[tokio::test]
async fn send_picks_dora_events_or_markers() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, accepted("dora_deployment")).await;
    answer(&server, EVENTS, ResponseTemplate::new(202).set_body_json(json!({ "status": "ok" }))).await;
    let wave_started = event(TelemetryKind::WaveStarted { wave: "canary".into() }, release(ReleaseStatus::Running));
    exporter_with(&server, DatadogSend::Dora).export(&wave_started).await.unwrap();
    exporter_with(&server, DatadogSend::Markers).export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap();
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_400_is_refused_at_once_quoting_datadogs_errors() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, datadog_error(400, &["Invalid attribute 'started_at': must be before finished_at"])).await;
    let error = exporter(&server).export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected { .. }), "{error:?}");
    let text = chain_text(&error);
    assert!(text.contains("HTTP 400: Invalid attribute 'started_at': must be before finished_at"), "{text}");
    assert_eq!(requests(&server).await.len(), 1, "a refusal is not sent again");
}

#[tokio::test]
async fn a_403_names_the_key_and_never_shows_it() {
    let server = MockServer::start().await;
    // A proxy that echoes the key it was given.
    answer(&server, EVENTS, datadog_error(403, &[&format!("Forbidden: key {API_KEY}")])).await;
    let wave_started = event(TelemetryKind::WaveStarted { wave: "canary".into() }, release(ReleaseStatus::Running));
    let error = exporter(&server).export(&wave_started).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected { .. }), "{error:?}");
    let text = chain_text(&error);
    assert!(text.contains("HTTP 403") && text.contains("env:DD_API_KEY"), "{text}");
    assert_secret_free(&text, API_KEY);
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_once() {
    let server = MockServer::start().await;
    let times = support::limited_then(
        &server,
        "POST",
        DEPLOYMENT,
        datadog_error(429, &["Too many requests"]).insert_header("retry-after", "1"),
        accepted("dora_deployment"),
    )
    .await;
    exporter(&server).export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap();
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 2);
    assert!(times[1] - times[0] >= Duration::from_secs(1), "sent again {:?} later", times[1] - times[0]);
}

#[tokio::test]
async fn a_long_rate_limit_is_not_waited_for_and_holds_the_next_export_back() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, datadog_error(429, &["Too many requests"]).insert_header("x-ratelimit-reset", "60")).await;
    let exporter = exporter(&server);
    let started = Instant::now();
    let error = exporter.export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
    let limit = error.rate_limit().unwrap_or_else(|| panic!("not a rate limit: {error}"));
    assert!(limit.answered);
    let held = exporter.export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap_err();
    assert!(held.rate_limit().is_some_and(|limit| !limit.answered), "{held}");
    assert_eq!(requests(&server).await.len(), 1, "nothing is sent before the reset");
}

#[tokio::test]
async fn a_5xx_is_tried_once_more() {
    let server = MockServer::start().await;
    let times =
        support::limited_then(&server, "POST", DEPLOYMENT, datadog_error(503, &["Service Unavailable"]), accepted("dora_deployment")).await;
    exporter(&server).export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap();
    assert_eq!(times.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_outage_is_given_up_after_two_attempts() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, datadog_error(500, &["Internal Server Error"])).await;
    let error = exporter(&server).export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable { .. }), "{error:?}");
    assert!(chain_text(&error).contains("HTTP 500: Internal Server Error"), "{error}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_server_that_does_not_answer_costs_two_timeouts_at_most() {
    let server = MockServer::start().await;
    answer(&server, DEPLOYMENT, accepted("dora_deployment").set_delay(Duration::from_secs(5))).await;
    let exporter = exporter(&server).with_request_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = exporter.export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(error.message().contains("no answer within 200 ms"), "{error}");
    assert_eq!(requests(&server).await.len(), 2);
}

// ------------------------------------------------------------------ CloudWatch EMF

/// One metric an EMF line yields: namespace, dimension name and value pairs, name, unit, value.
type EmfMetric = (String, Vec<(String, String)>, String, String, f64);

/// Reads an EMF line as CloudWatch does (the specification's rules), answering its metrics.
fn read_emf(line: &str) -> Vec<EmfMetric> {
    let root: Value = serde_json::from_str(line).expect("an EMF line is one JSON object");
    let aws = root["_aws"].as_object().expect("the `_aws` member");
    assert!(aws["Timestamp"].as_i64().is_some_and(|ms| ms > 0), "Timestamp is epoch milliseconds");
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics is an array");
    let mut metrics = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("a Namespace").to_owned();
        assert!(!namespace.is_empty() && namespace.len() <= 255);
        let sets = directive["Dimensions"].as_array().expect("Dimensions is an array of dimension sets");
        let declared = directive["Metrics"].as_array().expect("Metrics is an array");
        assert!(declared.len() <= 100, "at most 100 metrics per directive");
        for set in sets {
            let names = set.as_array().expect("a dimension set is an array");
            assert!(names.len() <= 30, "at most 30 dimensions per set");
            let dimensions: Vec<(String, String)> = names
                .iter()
                .map(|name| {
                    let name = name.as_str().expect("a dimension is a member's name");
                    let value = root[name].as_str().unwrap_or_else(|| panic!("dimension {name} names no string member"));
                    (name.to_owned(), value.to_owned())
                })
                .collect();
            for metric in declared {
                let name = metric["Name"].as_str().expect("a metric Name");
                let unit = metric["Unit"].as_str().unwrap_or("None");
                assert!(["Seconds", "Count", "Milliseconds", "None"].contains(&unit), "unit {unit}");
                let value = root[name].as_f64().unwrap_or_else(|| panic!("metric {name} names no number member"));
                metrics.push((namespace.clone(), dimensions.clone(), name.to_owned(), unit.to_owned(), value));
            }
        }
    }
    metrics
}

#[tokio::test]
async fn a_finished_release_is_one_emf_line_of_its_figures() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let exporter = EmfExporter::new(&EmfExport { namespace: "Acme/Releases".into() }, EmfSink::Memory(Arc::clone(&lines)));
    let figures = Rollup { restores: 1, restore_seconds_total: 7200, ..deployed() };
    exporter.export(&finished(ReleaseStatus::Succeeded, figures)).await.unwrap();
    // Waves and builds are no figures.
    exporter.export(&event(TelemetryKind::WaveStarted { wave: "canary".into() }, release(ReleaseStatus::Running))).await.unwrap();
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1);
    let metrics = read_emf(&lines[0]);
    let dimensions = vec![
        ("service".to_owned(), "web".to_owned()),
        ("team".to_owned(), "payments".to_owned()),
        ("environment".to_owned(), "production".to_owned()),
    ];
    let expected = [
        ("Deployments", "Count", 1.0),
        ("FailedDeployments", "Count", 0.0),
        ("Rollbacks", "Count", 0.0),
        ("Redeployments", "Count", 0.0),
        ("DurationSeconds", "Seconds", 1800.0),
        ("Waves", "Count", 1.0),
        ("LeadTimeSeconds", "Seconds", 5400.0),
        ("LeadTimeFallbacks", "Count", 0.0),
        ("RestoreSeconds", "Seconds", 7200.0),
        ("Succeeded", "Count", 1.0),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(name, unit, value)| ("Acme/Releases".to_owned(), dimensions.clone(), name.to_string(), unit.to_string(), *value))
        .collect();
    assert_eq!(metrics, expected);
    let root: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(root["_aws"]["Timestamp"], at(12, 30).timestamp_millis());
    assert_eq!((root["release_id"].as_str(), root["sha"].as_str()), (Some(release_id().0.as_str()), Some(SHA)));
}

#[tokio::test]
async fn a_lead_time_fallen_back_to_the_releases_own_commit_is_counted() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let exporter = EmfExporter::new(&EmfExport { namespace: "Baton".into() }, EmfSink::Memory(Arc::clone(&lines)));
    exporter.export(&finished(ReleaseStatus::Succeeded, Rollup { lead_time_fallbacks: 1, ..deployed() })).await.unwrap();
    let metrics = read_emf(&lines.lock().unwrap()[0]);
    let metric = |name: &str| metrics.iter().find(|m| m.2 == name).map(|m| (m.3.as_str(), m.4));
    assert_eq!((metric("LeadTimeSeconds"), metric("LeadTimeFallbacks")), (Some(("Seconds", 5400.0)), Some(("Count", 1.0))));
}

#[tokio::test]
async fn a_rolled_back_release_counts_as_a_failed_deployment_and_a_team_less_one_has_two_dimensions() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let exporter = EmfExporter::new(&EmfExport { namespace: "Baton".into() }, EmfSink::Memory(Arc::clone(&lines)));
    let mut rolled = finished(ReleaseStatus::RolledBack, rolled_back());
    rolled.team = None;
    exporter.export(&rolled).await.unwrap();
    let metrics = read_emf(&lines.lock().unwrap()[0]);
    let value = |name: &str| metrics.iter().find(|m| m.2 == name).map(|m| m.4);
    assert_eq!((value("FailedDeployments"), value("Rollbacks"), value("RolledBack")), (Some(1.0), Some(1.0), Some(1.0)));
    assert_eq!((value("Succeeded"), value("LeadTimeSeconds"), value("LeadTimeFallbacks")), (None, None, None));
    let names: Vec<&str> = metrics[0].1.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["service", "environment"]);
}

#[tokio::test]
async fn a_cancelled_release_counts_as_cancelled_and_in_no_dora_figure() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let exporter = EmfExporter::new(&EmfExport { namespace: "Baton".into() }, EmfSink::Memory(Arc::clone(&lines)));
    let cancelled = release(ReleaseStatus::Cancelled);
    let figures = baton_domain::rules::dora::rollup_delta(&cancelled, &[]);
    exporter.export(&event(TelemetryKind::ReleaseFinished { figures }, cancelled)).await.unwrap();
    let metrics = read_emf(&lines.lock().unwrap()[0]);
    let value = |name: &str| metrics.iter().find(|m| m.2 == name).map(|m| m.4);
    assert_eq!((value("Deployments"), value("FailedDeployments"), value("Rollbacks")), (Some(0.0), Some(0.0), Some(0.0)));
    assert_eq!((value("Cancelled"), value("RolledBack"), value("Failed")), (Some(1.0), None, None));
}

#[tokio::test]
async fn emf_lines_append_to_a_file_one_per_release() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.emf.jsonl");
    let exporter = EmfExporter::new(&EmfExport { namespace: "Baton".into() }, EmfSink::File(file.clone()));
    exporter.export(&finished(ReleaseStatus::Succeeded, deployed())).await.unwrap();
    exporter.export(&finished(ReleaseStatus::RolledBack, rolled_back())).await.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    lines.iter().for_each(|line| assert!(!read_emf(line).is_empty()));
}

// ------------------------------------------------------------------ OpenTelemetry (OTLP/HTTP JSON)

/// A rolled-back release as its record ends: built 12:01-12:05, wave canary deployed 12:10-12:12
/// and baked (one gate, unhealthy at 12:20), both targets put back 12:21-12:23.
fn traced_release() -> Release {
    use baton_domain::release::{BuildRecord, BuildStatus, DeployStatus, GateRecord, RunHandle, TargetDeploy};
    let deploy = |target: &str, rollback: bool, started: DateTime<Utc>, finished: DateTime<Utc>| TargetDeploy {
        target: target.into(),
        rollback,
        run: Some(RunHandle { provider: "argo-cd".into(), id: format!("{target}-run"), url: None, state: Value::Null }),
        status: DeployStatus::Succeeded,
        reason: None,
        started_at: started,
        finished_at: Some(finished),
    };
    let mut release = release(ReleaseStatus::RolledBack);
    release.build = Some(BuildRecord {
        provider: "github-actions".into(),
        run_id: "42".into(),
        url: Some("https://github.com/acme/web/actions/runs/42".into()),
        queued_at: at(12, 1),
        started_at: Some(at(12, 2)),
        finished_at: Some(at(12, 5)),
        status: BuildStatus::Succeeded,
        attempts: 1,
        reason: None,
        state: Value::Null,
    });
    let canary = &mut release.waves[0];
    canary.status = WaveStatus::RolledBack;
    canary.targets = vec!["web-1".into(), "web-2".into()];
    canary.finished_at = Some(at(12, 20));
    canary.bake_started_at = Some(at(12, 12));
    canary.deploys = vec![
        deploy("web-1", false, at(12, 10), at(12, 11)),
        deploy("web-2", false, at(12, 10), at(12, 12)),
        deploy("web-1", true, at(12, 21), at(12, 22)),
        deploy("web-2", true, at(12, 21), at(12, 23)),
    ];
    canary.gates = vec![GateRecord {
        gate: "HTTP https://web/health".into(),
        samples: 9,
        healthy_in_a_row: 0,
        unhealthy_in_a_row: 1,
        last: Some("HTTP 503".into()),
        last_at: Some(at(12, 20)),
        history: Vec::new(),
    }];
    release
}

/// One span as a receiver decoded it.
struct Span {
    name: String,
    id: String,
    parent: Option<String>,
    start: i64,
    end: i64,
    status: u64,
    attributes: Vec<(String, String)>,
}

/// What a receiver decoded: the trace ids seen, the resource's attributes, the spans.
struct Decoded {
    trace_ids: std::collections::BTreeSet<String>,
    resource: Vec<(String, String)>,
    spans: Vec<Span>,
}

fn attributes(list: &Value) -> Vec<(String, String)> {
    let value = |v: &Value| v.get("stringValue").or(v.get("intValue")).and_then(Value::as_str).unwrap().to_owned();
    list.as_array().unwrap().iter().map(|a| (a["key"].as_str().unwrap().to_owned(), value(&a["value"]))).collect()
}

/// Decodes an `ExportTraceServiceRequest` as OTLP/JSON defines it: lowerCamelCase fields, hex
/// ids, 64-bit times as decimal strings, enums as integers.
fn decode_traces(body: &[u8]) -> Decoded {
    let request: Value = serde_json::from_slice(body).unwrap();
    let resource_spans = request["resourceSpans"].as_array().unwrap();
    assert_eq!(resource_spans.len(), 1);
    let resource = attributes(&resource_spans[0]["resource"]["attributes"]);
    let mut decoded = Decoded { trace_ids: Default::default(), resource, spans: Vec::new() };
    for scope in resource_spans[0]["scopeSpans"].as_array().unwrap() {
        assert_eq!(scope["scope"]["name"], "baton");
        for span in scope["spans"].as_array().unwrap() {
            let hex = |field: &str, len: usize| {
                let id = span[field].as_str().unwrap().to_owned();
                assert!(id.len() == len && id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{field} {id}");
                id
            };
            decoded.trace_ids.insert(hex("traceId", 32));
            let time = |field: &str| span[field].as_str().unwrap().parse::<i64>().unwrap();
            let parent = span.get("parentSpanId").map(|_| hex("parentSpanId", 16));
            decoded.spans.push(Span {
                name: span["name"].as_str().unwrap().to_owned(),
                id: hex("spanId", 16),
                parent,
                start: time("startTimeUnixNano"),
                end: time("endTimeUnixNano"),
                status: span["status"]["code"].as_u64().unwrap(),
                attributes: attributes(&span["attributes"]),
            });
        }
    }
    decoded
}

#[tokio::test]
async fn a_finished_release_is_one_trace_that_a_collector_decodes() {
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "partialSuccess": {} })))
        .mount(&collector)
        .await;
    let exporter =
        baton_providers::OtlpExporter::new(&baton_providers::OtlpExport { endpoint: collector.uri() }, "catalog/web.yaml", client())
            .unwrap();
    let finished = event(TelemetryKind::ReleaseFinished { figures: rolled_back() }, traced_release());
    exporter.export(&finished).await.unwrap();
    // Only the release's end sends the trace.
    exporter.export(&event(TelemetryKind::WaveStarted { wave: "canary".into() }, traced_release())).await.unwrap();
    let sent = requests(&collector).await;
    assert_eq!(sent.len(), 1);
    let trace = decode_traces(&sent[0].body);

    assert_eq!(trace.trace_ids.len(), 1, "one trace");
    assert_eq!(trace.trace_ids.first().unwrap(), &baton_providers::trace_id(&release_id()));
    for (key, value) in [("service.name", "web"), ("deployment.environment.name", "production"), ("team.name", "payments")] {
        assert!(trace.resource.contains(&(key.to_owned(), value.to_owned())), "{key}: {:?}", trace.resource);
    }
    let by_name = |name: &str| trace.spans.iter().find(|span| span.name == name).unwrap_or_else(|| panic!("no span {name}"));
    let names: Vec<&str> = trace.spans.iter().map(|span| span.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "release web to production",
            "build 42",
            "wave canary",
            "deploy web-1",
            "deploy web-2",
            "bake canary",
            "gate HTTP https://web/health",
            "rollback",
            "rollback web-1",
            "rollback web-2",
        ]
    );
    // Parents: the release is the root; the build, the wave and the rollback hang from it; the
    // deploys and the bake from the wave; the gate from the bake; the targets put back from the rollback.
    let id = |name: &str| Some(by_name(name).id.clone());
    let parents = [
        ("release web to production", None),
        ("build 42", id("release web to production")),
        ("wave canary", id("release web to production")),
        ("deploy web-1", id("wave canary")),
        ("bake canary", id("wave canary")),
        ("gate HTTP https://web/health", id("bake canary")),
        ("rollback", id("release web to production")),
        ("rollback web-2", id("rollback")),
    ];
    for (name, parent) in parents {
        assert_eq!(by_name(name).parent, parent, "{name}");
    }
    // Timing: each span as the record says, every child within its parent.
    let times = |name: &str| (by_name(name).start, by_name(name).end);
    let ns = |at: DateTime<Utc>| at.timestamp_nanos_opt().unwrap();
    assert_eq!(times("release web to production"), (ns(at(11, 59)), ns(at(12, 30))));
    assert_eq!(times("build 42"), (ns(at(12, 1)), ns(at(12, 5))));
    assert_eq!(times("wave canary"), (ns(at(12, 10)), ns(at(12, 20))));
    assert_eq!(times("deploy web-2"), (ns(at(12, 10)), ns(at(12, 12))));
    assert_eq!(times("bake canary"), (ns(at(12, 12)), ns(at(12, 20))));
    assert_eq!(times("rollback"), (ns(at(12, 21)), ns(at(12, 23))));
    for span in &trace.spans {
        assert!(span.start <= span.end, "{} ends before it starts", span.name);
        if let Some(parent) = &span.parent {
            let parent = trace.spans.iter().find(|p| &p.id == parent).expect("the parent is in the trace");
            assert!(parent.start <= span.start && span.end <= parent.end, "{} is not within {}", span.name, parent.name);
        }
    }
    // Outcome: the release, the wave, its bake and its gate failed; the build, the deploys and the rollback did not.
    let status = |name: &str| by_name(name).status;
    assert_eq!(
        [status("release web to production"), status("wave canary"), status("bake canary"), status("gate HTTP https://web/health")],
        [2, 2, 2, 2]
    );
    assert_eq!([status("build 42"), status("deploy web-1"), status("rollback")], [1, 1, 1]);
    // Attributes: the commit and the release on the root, what each part was.
    let attribute = |name: &str, key: &str| by_name(name).attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(attribute("release web to production", "vcs.ref.head.revision").as_deref(), Some(SHA));
    assert_eq!(attribute("release web to production", "baton.release_id"), Some(release_id().0));
    assert_eq!(attribute("release web to production", "baton.status").as_deref(), Some("rolled-back"));
    assert_eq!(attribute("deploy web-1", "baton.run").as_deref(), Some("argo-cd web-1-run"));
    assert_eq!(attribute("gate HTTP https://web/health", "baton.gate.samples").as_deref(), Some("9"));
    assert_eq!(attribute("build 42", "url.full").as_deref(), Some("https://github.com/acme/web/actions/runs/42"));
    // The build's span is the one its TRACEPARENT names.
    let parent = baton_providers::traceparent(&release_id(), "build");
    assert_eq!(parent, format!("00-{}-{}-01", trace.trace_ids.first().unwrap(), by_name("build 42").id));
}

#[tokio::test]
async fn a_collector_that_refuses_or_is_unavailable_is_told_once_or_twice() {
    let collector = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400).set_body_string("bad trace")).mount(&collector).await;
    let exporter =
        baton_providers::OtlpExporter::new(&baton_providers::OtlpExport { endpoint: collector.uri() }, "catalog/web.yaml", client())
            .unwrap();
    let event = event(TelemetryKind::ReleaseFinished { figures: rolled_back() }, traced_release());
    let error = exporter.export(&event).await.unwrap_err();
    assert!(matches!(error, ProviderError::Rejected { .. }) && chain_text(&error).contains("HTTP 400: bad trace"), "{error}");
    assert_eq!(requests(&collector).await.len(), 1, "OTLP: a 400 is never retried");

    let busy = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&busy).await;
    let exporter =
        baton_providers::OtlpExporter::new(&baton_providers::OtlpExport { endpoint: busy.uri() }, "catalog/web.yaml", client()).unwrap();
    assert!(matches!(exporter.export(&event).await, Err(ProviderError::Unavailable { .. })));
    assert_eq!(requests(&busy).await.len(), 2, "a 503 is tried once more");
}

// ------------------------------------------------------------------ Datadog CI Visibility

#[tokio::test]
async fn a_followed_build_is_one_ci_pipeline_tagged_with_the_service() {
    let server = MockServer::start().await;
    answer(&server, "/api/v2/ci/pipeline", ResponseTemplate::new(202).set_body_json(json!({}))).await;
    let built = event(TelemetryKind::BuildFinished, traced_release());
    exporter_with(&server, DatadogSend::Ci).export(&built).await.unwrap();
    // Ci sends no wave marker; a build not ended yet is no pipeline.
    let wave_started = event(TelemetryKind::WaveStarted { wave: "canary".into() }, traced_release());
    exporter_with(&server, DatadogSend::Ci).export(&wave_started).await.unwrap();
    let mut running = traced_release();
    running.build.as_mut().unwrap().finished_at = None;
    exporter(&server).export(&event(TelemetryKind::BuildFinished, running)).await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        body(&sent[0]),
        json!({ "data": { "type": "cipipeline_resource_request", "attributes": {
            "provider_name": "custom",
            "env": "production",
            "resource": {
                "level": "pipeline",
                "unique_id": format!("{}-build-1", release_id()),
                "name": "web build (github-actions)",
                "url": "https://github.com/acme/web/actions/runs/42",
                "start": "2026-01-01T12:02:00.000Z",
                "end": "2026-01-01T12:05:00.000Z",
                "status": "success",
                "partial_retry": false,
                "pipeline_id": "42",
                "queue_time": 60000,
                "tags": [
                    "service:web",
                    "env:production",
                    "source:baton",
                    "team:payments",
                    format!("git.repository_url:{REPOSITORY}"),
                    format!("git.commit.sha:{SHA}"),
                    "git.branch:main",
                    format!("baton.release_id:{}", release_id()),
                ],
            },
        } } })
    );
}

#[tokio::test]
async fn a_failed_build_is_an_errored_pipeline_with_its_reason() {
    let server = MockServer::start().await;
    answer(&server, "/api/v2/ci/pipeline", ResponseTemplate::new(202)).await;
    let mut failed = traced_release();
    let build = failed.build.as_mut().unwrap();
    build.status = baton_domain::release::BuildStatus::Failed;
    build.reason = Some("tests failed".into());
    build.started_at = None;
    exporter(&server).export(&event(TelemetryKind::BuildFinished, failed)).await.unwrap();
    let resource = body(&requests(&server).await[0])["data"]["attributes"]["resource"].clone();
    assert_eq!((resource["status"].as_str(), resource["error"]["message"].as_str()), (Some("error"), Some("tests failed")));
    assert_eq!(resource["start"], "2026-01-01T12:01:00.000Z", "no start reported: from Baton's request");
    assert!(resource.get("queue_time").is_none());
}

/// The stack's CloudWatch dashboard (infra/template.yaml's ReleaseDashboard) draws what this
/// exporter writes: every metric its SEARCH expressions name is one an EMF line carries, in the
/// namespace and with the dimension sets the lines declare.
#[tokio::test]
async fn the_stacks_dashboard_searches_only_for_metrics_the_emf_lines_carry() {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.yaml")).unwrap();
    let body = template.split_once("DashboardBody: !Sub |").expect("the stack has a dashboard").1;
    let body: String =
        body.lines().skip(1).take_while(|line| line.starts_with("        ") || line.trim().is_empty()).collect::<Vec<_>>().join("\n");
    let substituted =
        body.replace("${AWS::Region}", "us-east-1").replace("${ReleaseStateMachine}", "arn:aws:states:us-east-1:1:stateMachine:x");
    let dashboard: Value = serde_json::from_str(&substituted).expect("the dashboard body is JSON once substituted");

    let lines = Arc::new(Mutex::new(Vec::new()));
    let exporter = EmfExporter::new(&EmfExport { namespace: "Baton".into() }, EmfSink::Memory(Arc::clone(&lines)));
    // With a team and without: the two dimension sets the dashboard searches.
    for team in [true, false] {
        let figures = Rollup { restores: 1, restore_seconds_total: 7200, ..deployed() };
        for mut event in [finished(ReleaseStatus::Succeeded, figures), finished(ReleaseStatus::RolledBack, rolled_back())] {
            if !team {
                event.team = None;
            }
            exporter.export(&event).await.unwrap();
        }
    }
    let written: Vec<EmfMetric> = lines.lock().unwrap().iter().flat_map(|line| read_emf(line)).collect();

    let mut searched = 0;
    for widget in dashboard["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let Some(expression) = metric[0]["expression"].as_str() else { continue };
            let schema = expression.split_once("{").unwrap().1.split_once('}').unwrap().0;
            let mut parts = schema.split(',');
            let namespace = parts.next().unwrap();
            let mut dimensions: Vec<&str> = parts.collect();
            dimensions.sort_unstable();
            for name in expression
                .split("MetricName=\\\"")
                .skip(1)
                .map(|rest| rest.split('\\').next().unwrap())
                .chain(expression.split("MetricName=\"").skip(1).map(|rest| rest.split('"').next().unwrap()))
            {
                searched += 1;
                let found = written.iter().any(|(ns, dims, metric, _, _)| {
                    let mut keys: Vec<&str> = dims.iter().map(|(k, _)| k.as_str()).collect();
                    keys.sort_unstable();
                    ns == namespace && metric == name && keys == dimensions
                });
                assert!(found, "the dashboard searches {namespace} {dimensions:?} {name}, which no EMF line carries");
            }
        }
    }
    assert!(searched >= 8, "the dashboard's SEARCH expressions were read: {searched}");
}

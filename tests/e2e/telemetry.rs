//! Whole releases with telemetry exporters: what reaches Datadog, CloudWatch and an OTLP
//! collector when they are up, and a release that goes on unhindered when they are down, its timeline saying what did
//! not go out.

use baton_asl::ExecutionStatus;
use baton_domain::release::{EventKind, ReleaseStatus, Stage};
use baton_domain::telemetry::EXPORT_BUDGET;
use baton_e2e::*;
use baton_local_runner::LocalConfig;
use serde_json::Value;
use std::time::Instant;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "dd_api_e2e_TOPSECRET_0123456789";

/// The service's `telemetry` block: Datadog at `api_url` with the key in `variable`, EMF, and an
/// OTLP collector at `collector`.
fn telemetry(api_url: &str, variable: &str, collector: &str) -> String {
    format!(
        "    telemetry:\n      - provider: datadog\n        api-url: \"{api_url}\"\n        api-key: env:{variable}\n      - provider: cloudwatch-emf\n        namespace: Acme\n      - provider: otlp\n        endpoint: \"{collector}\"\n"
    )
}

fn set_key(variable: &str) {
    // SAFETY: each test sets its own variable before any thread of it reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(variable, KEY)
    };
}

/// Datadog (answering 202 to requests with the key in `variable`) and an OTLP collector (200),
/// and a service exporting to both and to EMF.
async fn exporting_fixture(variable: &str) -> (MockServer, MockServer, Fixture) {
    let datadog = MockServer::start().await;
    Mock::given(method("POST")).and(header("dd-api-key", KEY)).respond_with(ResponseTemplate::new(202)).mount(&datadog).await;
    let collector = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&collector).await;
    let fixture = Fixture::new();
    set_key(variable);
    fixture.write_catalog(SERVICE, &telemetry(&datadog.uri(), variable, &collector.uri()));
    (datadog, collector, fixture)
}

#[tokio::test]
async fn a_release_reaches_datadog_cloudwatch_and_a_collector_as_it_goes() {
    let (datadog, collector, fixture) = exporting_fixture("BATON_E2E_DD_KEY_UP").await;
    let baton = fixture.baton();
    let outcome = baton.run("exec-telemetry", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-telemetry").await;
    assert_consistent(&baton, &release).await;

    // Each wave started, then healthy, in order; then the release as a DORA deployment.
    let sent = datadog.received_requests().await.unwrap_or_default();
    let seen: Vec<(String, String)> = sent
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let attributes = &body["data"]["attributes"];
            let what = body["title"].as_str().or(attributes["id"].as_str()).or(attributes["resource"]["unique_id"].as_str());
            let what = what.expect("a marker's title, a DORA event's id or a pipeline's unique id").to_owned();
            (request.url.path().to_owned(), what)
        })
        .collect();
    // The build first, as a CI pipeline.
    let mut expected = vec![("/api/v2/ci/pipeline".to_owned(), format!("{}-build-1", release.id))];
    for (i, (wave, _)) in WAVES.iter().enumerate() {
        for what in ["started", "healthy"] {
            expected
                .push(("/api/v1/events".to_owned(), format!("{SERVICE} {ENVIRONMENT}: wave {wave} ({}/{}) {what}", i + 1, WAVES.len())));
        }
    }
    expected.push(("/api/v2/dora/deployment".to_owned(), release.id.0.clone()));
    assert_eq!(seen, expected);
    let deployment: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    let git = &deployment["data"]["attributes"]["git"];
    assert_eq!((git["repository_url"].as_str(), git["commit_sha"].as_str()), (Some("https://github.com/acme/checkout"), Some("4f2a9c1e")));

    let emf = std::fs::read_to_string(LocalConfig::emf_log(&fixture.state_dir())).unwrap();
    let lines: Vec<Value> = emf.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{emf}");
    assert_eq!((lines[0]["Deployments"].as_u64(), lines[0]["Waves"].as_u64()), (Some(1), Some(WAVES.len() as u64)));
    assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["service", "team", "environment"]]));
    let timeline = baton.ports().store.events(&release.id).await.unwrap();
    assert!(timeline.iter().all(|event| event.kind != EventKind::ExportFailed), "{timeline:#?}");

    // One trace, whose spans follow the release as its record and history tell it: the build,
    // then each wave in order (its targets' deploys, its bake, its gate), all ended well.
    let traces = collector.received_requests().await.unwrap_or_default();
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].url.path(), "/v1/traces");
    let request: Value = serde_json::from_slice(&traces[0].body).unwrap();
    let spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().map(|span| span["name"].as_str().unwrap()).collect();
    let build = release.build.as_ref().expect("the build is recorded");
    let mut expected = vec![format!("release {SERVICE} to {ENVIRONMENT}"), format!("build {}", build.run_id)];
    assert_eq!(release.waves.iter().map(|wave| wave.name.as_str()).collect::<Vec<_>>(), WAVES.map(|(wave, _)| wave));
    for wave in &release.waves {
        expected.push(format!("wave {}", wave.name));
        // A wave's targets start at once: their spans come in the order the record has them.
        expected.extend(wave.deploys.iter().map(|deploy| format!("deploy {}", deploy.target)));
        expected.push(format!("bake {}", wave.name));
        expected.push("gate command".to_owned());
    }
    let names: Vec<String> =
        names.into_iter().map(|name| if name.starts_with("gate ") { "gate command".to_owned() } else { name.to_owned() }).collect();
    assert_eq!(names, expected);
    assert!(spans.iter().all(|span| span["status"]["code"] == 1), "every part ended well");
    let trace_ids: std::collections::BTreeSet<&str> = spans.iter().map(|span| span["traceId"].as_str().unwrap()).collect();
    assert_eq!(trace_ids.len(), 1);
    // The stages start in the order the history ran them.
    let starts: Vec<i64> = spans
        .iter()
        .skip(1)
        .filter(|span| !span.get("parentSpanId").is_some_and(|parent| parent != &spans[0]["spanId"]))
        .map(|span| span["startTimeUnixNano"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(starts.windows(2).all(|pair| pair[0] <= pair[1]), "{starts:?}");
}

#[tokio::test]
async fn a_release_with_every_exporter_down_ends_as_soon_and_says_what_did_not_go_out() {
    // The baseline: the same release without telemetry.
    let plain = Fixture::new();
    let baton = plain.baton();
    let started = Instant::now();
    assert_status(&baton.run("exec-plain", cli_input("cli-1")).await, ExecutionStatus::Succeeded);
    let baseline = started.elapsed();

    // Datadog on a port nothing listens on; the EMF file's path taken by a directory.
    let fixture = Fixture::new();
    set_key("BATON_E2E_DD_KEY_DOWN");
    fixture.write_catalog(SERVICE, &telemetry("http://127.0.0.1:9", "BATON_E2E_DD_KEY_DOWN", "http://127.0.0.1:9"));
    std::fs::create_dir_all(LocalConfig::emf_log(&fixture.state_dir())).unwrap();
    let baton = fixture.baton();
    let started = Instant::now();
    let outcome = baton.run("exec-down", cli_input("cli-1")).await;
    let elapsed = started.elapsed();
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-down").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    assert_consistent(&baton, &release).await;
    assert!(elapsed < baseline + EXPORT_BUDGET, "{elapsed:?} against {baseline:?} without exporters");

    let failed: Vec<(Stage, Option<String>, String)> = baton
        .ports()
        .store
        .events(&release.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.kind == EventKind::ExportFailed)
        .map(|event| (event.stage, event.wave, event.message))
        .collect();
    let datadog = |stage: Stage, wave: Option<&str>, what: &str| {
        failed.iter().any(|(s, w, message)| {
            *s == stage && w.as_deref() == wave && message.starts_with(&format!("datadog: could not export {what}:"))
        })
    };
    for (wave, _) in WAVES {
        assert!(datadog(Stage::Deploy, Some(wave), &format!("wave {wave} started")), "{failed:#?}");
        assert!(datadog(Stage::Deploy, Some(wave), &format!("wave {wave} healthy")), "{failed:#?}");
    }
    assert!(datadog(Stage::Done, None, "release finished"), "{failed:#?}");
    assert!(datadog(Stage::Build, None, "build finished"), "{failed:#?}");
    let emf = failed.iter().filter(|(_, _, message)| message.starts_with("cloudwatch-emf: could not export release finished:"));
    assert_eq!(emf.count(), 1, "{failed:#?}");
    let otlp = failed.iter().filter(|(_, _, message)| message.starts_with("otlp: could not export release finished:"));
    assert_eq!(otlp.count(), 1, "{failed:#?}");
    // Datadog: the build, each wave's start and health, the release; EMF and OTLP: the release.
    assert_eq!(failed.len(), 1 + 2 * WAVES.len() + 1 + 2, "{failed:#?}");
    assert!(failed.iter().all(|(_, _, message)| !message.contains(KEY)));
}

#[tokio::test]
async fn a_rolled_back_release_is_a_dora_failure_wave_markers_and_a_trace_that_ends_in_its_rollback() {
    let (datadog, collector, fixture) = exporting_fixture("BATON_E2E_DD_KEY_ROLLBACK").await;
    let baton = fixture.baton();
    assert_status(&baton.run("exec-first", cli_input("cli-1")).await, ExecutionStatus::Succeeded);
    let sent_before = datadog.received_requests().await.unwrap_or_default().len();
    fixture.set("unhealthy-one-region");
    assert_outcome(&baton.run("exec-bad", cli_input("cli-2")).await, "rolled-back", "Baton.HealthCheckFailed");

    let release = release_of(&baton, "exec-bad").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);

    // Datadog: the build, canary started and healthy, one-region started, then each wave rolled
    // back (the failing one first), then the deployment and its failure.
    let sent = datadog.received_requests().await.unwrap_or_default();
    let seen: Vec<String> = sent[sent_before..]
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            body["title"].as_str().map(str::to_owned).unwrap_or_else(|| request.url.path().to_owned())
        })
        .collect();
    let title = |wave: &str, index: usize, what: &str| format!("{SERVICE} {ENVIRONMENT}: wave {wave} ({index}/3) {what}");
    assert_eq!(
        seen,
        [
            "/api/v2/ci/pipeline".to_owned(),
            title("canary", 1, "started"),
            title("canary", 1, "healthy"),
            title("one-region", 2, "started"),
            title("one-region", 2, "rolled back"),
            title("canary", 1, "rolled back"),
            "/api/v2/dora/deployment".to_owned(),
            "/api/v2/dora/failure".to_owned(),
        ]
    );

    // The trace: the same stages in the same order, ending in the rollback, with the outcome.
    let traces = collector.received_requests().await.unwrap_or_default();
    assert_eq!(traces.len(), 2, "one trace per release");
    let request: Value = serde_json::from_slice(&traces[1].body).unwrap();
    let spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap();
    let root_children: Vec<(&str, u64)> = spans
        .iter()
        .filter(|span| span.get("parentSpanId") == Some(&spans[0]["spanId"]))
        .map(|span| (span["name"].as_str().unwrap(), span["status"]["code"].as_u64().unwrap()))
        .collect();
    let build = format!("build {}", release.build.as_ref().unwrap().run_id);
    assert_eq!(root_children, [(build.as_str(), 1), ("wave canary", 2), ("wave one-region", 2), ("rollback", 1)]);
    assert_eq!(spans[0]["status"]["code"], 2, "the release did not succeed");
    let put_back: Vec<&str> = spans.iter().filter_map(|span| span["name"].as_str()).filter(|name| name.starts_with("rollback ")).collect();
    let mut expected: Vec<String> = Vec::new();
    for wave in &release.waves {
        expected.extend(wave.deploys.iter().filter(|deploy| deploy.rollback).map(|deploy| format!("rollback {}", deploy.target)));
    }
    assert_eq!(put_back, expected);
    assert_eq!(put_back.len(), 3, "box-1, use1-a and use1-b were put back");
}

//! record-metrics prices a release from its execution's history, read with GetExecutionHistory
//! on LocalStack's Step Functions, and says on the timeline why when it cannot.

use crate::common;

use baton_aws::stepfunctions::SfnHistories;
use baton_domain::catalog::FsCatalog;
use baton_domain::flow::{Outcome, OutcomeStatus, RecordMetricsRequest, ReleaseContext};
use baton_domain::ports::{ReleaseStore, SystemClock};
use baton_domain::release::{EventKind, Release, ReleaseStatus, Stage};
use baton_domain::support::Ports;
use baton_providers::{EnvSecretResolver, LocalProviders};
use baton_store_sqlite::SqliteStore;
use serde_json::json;
use std::sync::Arc;

const FINISH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A store holding one running release of `service`, and the catalog that names it.
async fn ports(dir: &std::path::Path, service: &str) -> (Ports, Release) {
    let catalog = dir.join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    let entry = format!(
        "schema-version: v2.2\ndd-service: {service}\nteam: web\nextensions:\n  baton:\n    environment: production\n    \
         release-branch: main\n    build: {{provider: command, command: [echo, web:1]}}\n    deploy:\n      provider: command\n      \
         command: [\"true\"]\n      waves: [{{name: all, targets: [eu-1]}}]\n    health:\n      \
         gates: [{{provider: command, command: [\"true\"]}}]\n"
    );
    std::fs::write(catalog.join(format!("{service}.yaml")), entry).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("baton.db")).unwrap());
    let mut release = baton_contract::release_at(&format!("rel-{service}-1"), service, "production", chrono::Utc::now());
    release.status = ReleaseStatus::Running;
    release.stage = Stage::Deploy;
    store.create_release(&release, &release.id.0).await.unwrap();
    let providers = LocalProviders::new(dir.join("workspace"), None, Arc::new(EnvSecretResolver), None).unwrap();
    let ports = Ports {
        store,
        catalog: Arc::new(FsCatalog::open(baton_providers::registry(), &catalog).unwrap()),
        providers: Arc::new(providers),
        clock: Arc::new(SystemClock),
    };
    (ports, release)
}

fn request(release: &Release, execution: &str) -> RecordMetricsRequest {
    RecordMetricsRequest {
        release: ReleaseContext {
            id: release.id.clone(),
            service: release.service.clone(),
            environment: release.environment.clone(),
            branch: release.branch.clone(),
            sha: None,
        },
        outcome: Outcome { status: OutcomeStatus::Failed, error: None, action_needed: None },
        execution: Some(execution.to_owned()),
    }
}

#[tokio::test]
async fn record_metrics_prices_a_release_from_its_execution_history() {
    let config = common::sdk_config().await;
    let client = aws_sdk_sfn::Client::new(&config);
    // Three states entered, no task: 3 transitions at $0.025 per 1,000, nothing for Lambda.
    let machine = common::state_machine(
        &config,
        &common::unique("ReleaseStateMachine"),
        json!({
            "StartAt": "Register",
            "States": {
                "Register": {"Type": "Pass", "Next": "Hold"},
                "Hold": {"Type": "Wait", "Seconds": 0, "Next": "Done"},
                "Done": {"Type": "Succeed"}
            }
        }),
    )
    .await;
    let started = client.start_execution().state_machine_arn(&machine).name(common::unique("run")).send().await.expect("start");
    common::finished_execution(&client, started.execution_arn(), FINISH_LIMIT).await;

    let dir = tempfile::tempdir().unwrap();
    let (ports, release) = ports(dir.path(), &common::unique("web")).await;
    let histories = SfnHistories::new(client.clone(), None);
    baton_record_metrics::record(&ports, Some(&histories), request(&release, started.execution_arn())).await.expect("recorded");

    let recorded = ports.store.get_release(&release.id).await.unwrap().unwrap();
    let cost = recorded.cost.expect("a cost on the record");
    assert_eq!((cost.transitions, cost.invocations), (3, 0));
    assert!((cost.dollars - 0.000_075).abs() < 1e-12, "{cost:?}");
    assert_eq!(cost.lambda_gb_seconds, 0.0);
    let events = ports.store.events(&release.id).await.unwrap();
    assert!(events.iter().all(|event| event.kind != EventKind::CostUnknown), "{events:#?}");
    assert_eq!(events.last().map(|event| event.kind), Some(EventKind::Failed), "the ending stays last: {events:#?}");
}

#[tokio::test]
async fn a_history_that_cannot_be_read_leaves_the_cost_empty_and_says_why() {
    let config = common::sdk_config().await;
    let histories = SfnHistories::new(aws_sdk_sfn::Client::new(&config), None);
    let dir = tempfile::tempdir().unwrap();
    let (ports, release) = ports(dir.path(), &common::unique("web")).await;
    let missing = format!("arn:aws:states:us-east-1:000000000000:execution:{}:gone", common::unique("ReleaseStateMachine"));

    baton_record_metrics::record(&ports, Some(&histories), request(&release, &missing)).await.expect("the release still closes");

    let recorded = ports.store.get_release(&release.id).await.unwrap().unwrap();
    assert_eq!((recorded.status, recorded.cost), (ReleaseStatus::Failed, None));
    let events = ports.store.events(&release.id).await.unwrap();
    let unknown: Vec<&str> = events.iter().filter(|e| e.kind == EventKind::CostUnknown).map(|e| e.message.as_str()).collect();
    assert_eq!(unknown.len(), 1, "{events:#?}");
    assert!(unknown[0].starts_with("cost unknown: cannot read the execution's history: "), "{}", unknown[0]);
    assert!(unknown[0].contains(&missing), "names the execution: {}", unknown[0]);
    assert_eq!(events.last().map(|event| event.kind), Some(EventKind::Failed), "{events:#?}");
}

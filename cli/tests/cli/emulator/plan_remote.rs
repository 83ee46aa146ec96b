//! `baton plan --remote` against a catalog table and a release table on DynamoDB Local: the
//! entry comes from the pushed catalog, the rollback target and durations from the records.

use baton_aws::DynamoStore;
use baton_aws::catalog::{catalog_items, cloud_loader, push_catalog};
use baton_domain::ports::ReleaseStore;
use baton_domain::release::Release;
use baton_local_stack::tables::create_template_table;
use std::process::Command;

const LEDGER: &str = r#"schema-version: v2.2
dd-service: ledger
team: payments
extensions:
  baton:
    environment: production
    release-branch: main
    build:
      provider: codebuild
      project: ledger
      artifact: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ledger:{sha}"
    deploy:
      provider: ecs
      cluster: payments
      container: app
      waves:
        - {name: canary, targets: [eu-1], bake: 30s}
        - {name: rest, targets: [eu-2, eu-3], bake: 5m}
    health:
      gates:
        - provider: cloudwatch
          alarm-prefix: ledger-
"#;

/// A release of ledger that shipped `reference`.
fn shipped(id: &str, reference: &str) -> Release {
    let now = chrono::Utc::now();
    serde_json::from_value(serde_json::json!({
        "id": id, "service": "ledger", "environment": "production", "status": "succeeded", "stage": "done",
        "trigger": {"kind": "cli", "id": format!("cli-{id}")}, "branch": "main", "created_at": now, "finished_at": now,
        "artifact": {"reference": reference, "sha": "4f2a9c1e", "branch": "main"},
    }))
    .expect("a release record")
}

#[test]
fn plan_remote_reads_the_stack_catalog_and_records() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(baton_aws::sdk_config()).unwrap();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (catalog, releases) = (format!("cli-plan-catalog-{suffix}"), format!("cli-plan-releases-{suffix}"));
    runtime.block_on(create_template_table(&client, "CatalogTable", &catalog)).expect("DynamoDB Local (scripts/emulators.sh start)");
    runtime.block_on(create_template_table(&client, "ReleaseTable", &releases)).unwrap();
    let items = catalog_items(&cloud_loader(baton_providers::registry()), "catalog/ledger.yaml", LEDGER).expect("a valid entry");
    runtime.block_on(push_catalog(&client, &catalog, &items)).unwrap();
    let store = DynamoStore::new(client, &releases);
    runtime.block_on(store.create_release(&shipped("rel-ledger-1", "ledger:4f2a9c1e"), "k1")).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["plan", "ledger", "--json", "--remote", "--catalog-table", &catalog, "--release-table", &releases])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let plan = &json["plan"];
    assert_eq!(json["entry"]["source"], "catalog/ledger.yaml");
    assert_eq!(plan["waves"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect::<Vec<_>>(), ["canary", "rest"]);
    assert_eq!(plan["expected"]["bakes_seconds"], 330);
    assert_eq!(plan["rollback_to"]["reference"], "ledger:4f2a9c1e");
    assert!(json["cost"]["polling"]["transitions"].as_u64().unwrap() > 0, "{json}");
}

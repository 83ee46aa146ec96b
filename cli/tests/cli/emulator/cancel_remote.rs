//! `baton cancel --remote` against a release table on DynamoDB Local: the request lands on the
//! record and in its timeline (the local stack's test shows the execution acting on it).

use baton_aws::DynamoStore;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{EventKind, Release, ReleaseStatus, Stage};
use baton_local_stack::tables::create_template_table;
use std::process::Command;

fn running_release(id: &str) -> Release {
    serde_json::from_value(serde_json::json!({
        "id": id, "service": "web", "environment": "prod", "status": "running", "stage": "deploy",
        "trigger": {"kind": "cli", "id": format!("cli-{id}")}, "branch": "main", "created_at": chrono::Utc::now(),
    }))
    .expect("a release record")
}

fn cancel(table: &str, id: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["cancel", id, "--reason", "wrong commit", "--remote", "--table", table])
        .args(extra)
        .env("USER", "ann")
        .output()
        .unwrap()
}

#[test]
fn cancel_remote_asks_the_release_on_its_record_and_refuses_a_closed_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(baton_aws::sdk_config()).unwrap();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("cli-cancel-{}", uuid::Uuid::new_v4().simple());
    runtime.block_on(create_template_table(&client, "ReleaseTable", &table)).expect("DynamoDB Local (scripts/emulators.sh start)");
    let store = DynamoStore::new(client, &table);
    let release = running_release("rel-web-1");
    runtime.block_on(store.create_release(&release, "k1")).unwrap();

    let asked = cancel(&table, "rel-web-1", &["--json"]);
    assert_eq!(asked.status.code(), Some(0), "{}", String::from_utf8_lossy(&asked.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(answer["cancel_requested"], "ann cancelled the release: wrong commit");
    let record = runtime.block_on(store.get_release(&release.id)).unwrap().unwrap();
    assert_eq!(record.cancel_requested.as_deref(), Some("ann cancelled the release: wrong commit"));
    assert_eq!(record.status, ReleaseStatus::Running, "the execution closes it, not the command");
    let events = runtime.block_on(store.events(&release.id)).unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::Cancelled), "{events:?}");

    let missing = cancel(&table, "rel-web-404", &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", String::from_utf8_lossy(&missing.stderr));
    let mut closed = record;
    closed.status = ReleaseStatus::Cancelled;
    closed.stage = Stage::Done;
    runtime.block_on(store.put_release(&closed)).unwrap();
    let late = cancel(&table, "rel-web-1", &[]);
    assert_eq!(late.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("cancelled: there is nothing to cancel"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
}

//! `baton freezes --remote` against a catalog table on DynamoDB Local, filled by `baton catalog
//! push`: the windows listed are the pushed ones, the service's own and the organisation's
//! `freezes.yaml`, not the local catalog's.

use baton_local_stack::tables::create_template_table;
use std::path::Path;
use std::process::{Command, Output};

const SERVICE_FREEZE: &str = "    freeze:
      on-freeze: refuse
      windows:
        - {name: launch, reason: the launch, start: \"2026-12-20T00:00:00+01:00\", end: \"2027-01-04T00:00:00+01:00\"}
";

const ORGANISATION_FREEZES: &str = "windows:
  - {name: weekend, reason: nobody on call, every: \"0 16 * * FRI\", time-zone: Europe/Paris, duration: 64h}
";

/// examples/cloud/inventory-api.yaml (a catalog `push` takes: no local command) with its own
/// freeze window, and the organisation's `freezes.yaml` beside it.
fn catalog_with_freezes(dir: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cloud/inventory-api.yaml");
    let text = std::fs::read_to_string(&example).unwrap();
    let frozen = text.replacen("    release-branch: main\n", &format!("    release-branch: main\n{SERVICE_FREEZE}"), 1);
    assert_ne!(frozen, text, "{} still has `release-branch: main`", example.display());
    std::fs::write(dir.join("inventory-api.yaml"), frozen).unwrap();
    std::fs::write(dir.join("freezes.yaml"), ORGANISATION_FREEZES).unwrap();
}

fn baton(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton")).args(args).current_dir(cwd).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn freezes_remote_lists_the_windows_of_the_pushed_catalog() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(baton_aws::sdk_config()).unwrap();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("cli-freezes-{}", uuid::Uuid::new_v4().simple());
    runtime.block_on(create_template_table(&client, "CatalogTable", &table)).expect("DynamoDB Local (scripts/emulators.sh start)");
    let pushed = tempfile::tempdir().unwrap();
    catalog_with_freezes(pushed.path());
    let push = baton(&["catalog", "push", &pushed.path().display().to_string(), "--table", &table], pushed.path());
    assert_eq!(push.status.code(), Some(0), "{}", stderr(&push));
    // The local catalog, where the command runs, has no windows: what is listed was pushed.
    let elsewhere = tempfile::tempdir().unwrap();

    // Saturday 2026-12-26 noon in Paris: inside both windows.
    let at = "2026-12-26T11:00:00Z";
    let listed = baton(&["freezes", "--remote", "--table", &table, "--at", at, "--json"], elsewhere.path());
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let answer: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let services = answer["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{answer}");
    let service = &services[0];
    assert_eq!(
        (&service["service"], &service["environment"], &service["on_freeze"]),
        (&"inventory-api".into(), &"production".into(), &"refuse".into())
    );
    let mut in_force: Vec<&str> = service["in_force"].as_array().unwrap().iter().map(|w| w["window"].as_str().unwrap()).collect();
    in_force.sort();
    assert_eq!(in_force, ["launch", "weekend"], "{service}");
    // The launch ends on Sunday night, inside the next weekend: open on Monday 08:00 in Paris.
    assert_eq!(service["open_at"], "2027-01-04T07:00:00Z", "{service}");

    let text = baton(&["freezes", "--remote", "--table", &table, "--service", "inventory-api", "--at", at], elsewhere.path());
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("inventory-api (production): frozen until 2027-01-04T07:00:00+00:00 (releases are refused)"), "{text}");
    assert!(text.contains("in force: freeze window `weekend` (nobody on call) until 2026-12-28T07:00:00+00:00"), "{text}");

    let missing = baton(&["freezes", "--remote", "--table", &table, "--service", "web"], elsewhere.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains(&format!("no valid service `web` in catalog table {table}")), "{}", stderr(&missing));
}

#[test]
fn freezes_remote_without_a_table_says_where_to_find_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["freezes", "--remote"])
        .env_remove("BATON_CATALOG_TABLE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--remote needs the catalog table"), "{}", stderr(&output));
    assert!(stderr(&output).contains("BATON_CATALOG_TABLE"), "{}", stderr(&output));
}

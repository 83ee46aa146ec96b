//! The stack's own function binaries run as Lambda runs them, against the template's tables on
//! DynamoDB Local: a release that succeeds, one that rolls back, and the IAM check of every
//! AWS operation the functions performed on the way.
//!
//! The function binaries are built here (`CARGO_BIN_EXE_*` only names this crate's own
//! binaries, and a binary left in the target directory by an earlier build may be stale), with
//! the packages and targets of `scripts/test.sh`'s `cargo test`: cargo then unifies
//! features as that build did and reuses it, where `cargo build -p <function>` would compile the
//! AWS SDK a second time (five minutes of a clean CI run).

use baton_asl::{Clock, ExecutionStatus};
use baton_domain::release::ReleaseStatus;
use baton_local_stack::{LocalStack, StackOptions, iam};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

const HINT: &str =
    "run scripts/emulators.sh start, then eval \"$(scripts/emulators.sh env)\" before cargo test (scripts/test.sh does both)";

pub(super) fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// The directory the function binaries are in, built once per test run.
pub(super) fn function_binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // This test runs as <target>/debug/deps/<name>-<hash>: its target directory and profile.
        let profile_dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let template = std::fs::read_to_string(repo("infra/template.yaml")).unwrap();
        let packages: Vec<&str> = template.lines().filter_map(|l| l.trim().strip_prefix("Binary: ")).collect();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let started = Instant::now();
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "--quiet", "--workspace", "--all-targets"]).current_dir(repo(""));
        // Cargo gives this test its package's CARGO_* variables; a build script that watches one
        // (ring's watches CARGO_MANIFEST_DIR) would otherwise run again and rebuild its dependents.
        // CARGO_INCREMENTAL (0 in CI, .ci/run) stays: it is part of every workspace crate's profile.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|name| name.starts_with("CARGO_") && !matches!(name, "CARGO_HOME" | "CARGO_INCREMENTAL")) {
                command.env_remove(&name);
            }
        }
        command.env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().unwrap() == "release" {
            command.arg("--release");
        }
        let status = command.status().expect("run cargo build for the function binaries");
        assert!(status.success(), "cargo build of the workspace (for {packages:?}) failed");
        for package in &packages {
            assert!(profile_dir.join(package).is_file(), "the build left no {package} in {}", profile_dir.display());
        }
        eprintln!("function binaries built in {:?}", started.elapsed());
        profile_dir
    })
}

fn require_local_dynamodb() {
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL_DYNAMODB is not set: {HINT}"));
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("no DynamoDB answers at {url}: {e}; {HINT}"));
}

async fn stack(state_dir: &Path) -> LocalStack {
    stack_of(state_dir, repo("examples/catalog")).await
}

/// The stack with `catalog` pushed.
pub(super) async fn stack_of(state_dir: &Path, catalog: PathBuf) -> LocalStack {
    stack_with(state_dir, catalog, BTreeMap::new(), Vec::new()).await
}

/// A stack of its own (tables named after a fresh stack name) with `catalog` pushed, the
/// template's `parameters` set and `function_env` given to every function.
pub(super) async fn stack_with(
    state_dir: &Path,
    catalog: PathBuf,
    parameters: BTreeMap<String, String>,
    function_env: Vec<(String, String)>,
) -> LocalStack {
    require_local_dynamodb();
    let stack_name = format!("test-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let options = StackOptions {
        template: repo("infra/template.yaml"),
        stack_name,
        binaries: function_binaries().to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        catalog,
        // Bakes and backoffs take no time; the functions' timeouts still run on the wall clock.
        clock: Clock::Virtual,
        parameters,
        function_env,
    };
    LocalStack::up(&options).await.unwrap_or_else(|e| panic!("the local stack: {e}"))
}

/// Taking any one grant the runs used out of the template would deny a call they made.
pub(super) fn every_used_grant_is_needed(stack: &LocalStack) {
    for (principal, performed) in &stack.operations().unwrap() {
        for (grant, only_this) in iam::needed(stack.template(), principal, performed).unwrap() {
            assert!(!only_this.is_empty(), "{principal}: {grant:?} was used, but other grants cover every call it allowed");
        }
    }
}

/// record-metrics read the execution's history from the stack (its GetExecutionHistory) while it
/// ran: the record's cost counts every state and task up to record-metrics' own start.
fn assert_priced_by_its_history(release: &baton_domain::release::Release, outcome: &baton_asl::ExecutionOutcome) {
    let history: Vec<serde_json::Value> = outcome.history.iter().map(|event| serde_json::to_value(event).unwrap()).collect();
    let entered = history
        .iter()
        .position(|e| e["type"] == "TaskStateEntered" && e["stateEnteredEventDetails"]["name"] == "RecordMetrics")
        .expect("the execution entered RecordMetrics");
    let started = entered + history[entered..].iter().position(|e| e["type"].as_str().unwrap().ends_with("Started")).unwrap();
    let read = baton_domain::rules::cost::usage(&history[..=started]);
    let cost = release.cost.as_ref().unwrap_or_else(|| panic!("{} has no cost", release.id));
    assert_eq!((cost.transitions, cost.invocations), (read.transitions, read.invocations), "{cost:?}");
    assert!(cost.invocations >= 8 && cost.transitions > cost.invocations, "every task up to RecordMetrics: {cost:?}");
}

pub(super) fn signal(service: &str) -> serde_json::Value {
    json!({"service": service, "trigger": {"kind": "cli", "id": uuid::Uuid::new_v4().to_string(), "actor": "test"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_and_a_rollback_run_through_the_function_binaries_within_their_iam_policies() {
    let state = tempfile::tempdir().unwrap();
    let stack = stack(state.path()).await;

    let started = Instant::now();
    let outcome = stack.run("hello-web", signal("hello-web")).await;
    eprintln!("hello-web: {:?} in {:?}", outcome.status, started.elapsed());
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    let release = stack.release("hello-web", &outcome).await.unwrap().expect("the release is in the release table");
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    assert_priced_by_its_history(&release, &outcome);
    let load_catalog = stack.functions().find(|f| f.spec().binary == "baton-load-catalog").unwrap();
    assert_eq!(load_catalog.cold_starts(), 1, "register, acquire and unlock share one warm environment");

    let started = Instant::now();
    let outcome = stack.run("flaky-api", signal("flaky-api")).await;
    eprintln!("flaky-api: {:?} in {:?}", outcome.status, started.elapsed());
    let release = stack.release("flaky-api", &outcome).await.unwrap().expect("the release is in the release table");
    assert_eq!(release.status, ReleaseStatus::RolledBack, "{:?}: {:?}", outcome.error, outcome.cause);
    // A clean rollback is an outcome, not a fault: the execution succeeds (no failed-execution
    // alarm) and its output names it.
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    assert_eq!(outcome.output.as_ref().and_then(|o| o.pointer("/outcome/status")), Some(&json!("rolled-back")));

    let reports = stack.iam_reports().unwrap();
    let text = iam::render(&reports);
    eprintln!("IAM check:\n{text}");
    let ran: Vec<&str> = reports.keys().map(String::as_str).collect();
    for principal in [
        "LoadCatalogFunction",
        "TriggerBuildFunction",
        "PollBuildFunction",
        "DeployWaveFunction",
        "CheckHealthFunction",
        "NotifyFunction",
        "RecordMetricsFunction",
        "ReleaseStateMachine",
    ] {
        assert!(ran.contains(&principal), "{principal} recorded nothing: {ran:?}");
    }
    assert!(reports.values().all(|r| r.denied.is_empty()), "operations the template's policies do not allow:\n{text}");
    assert!(reports.values().all(|r| r.unused.is_empty()), "grants no run used and no comment explains:\n{text}");
    every_used_grant_is_needed(&stack);
    stack.shutdown();
}

//! Releases survive their process: a killed or interrupted `baton release` leaves a journal that
//! `baton show --history` reads and `baton resume` runs on, or rolls back, to a closed record,
//! a free lock and targets that run what the record says.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TARGETS: [&str; 6] = ["web-use1-a", "web-use1-b", "web-use1-c", "web-usw2-a", "web-usw2-b", "web-euw1-a"];

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog")
}

fn baton(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton")).args(args).arg("--state-dir").arg(state).output().expect("run baton")
}

/// A local command that takes the catalog.
fn baton_with_catalog(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .arg("--catalog")
        .arg(examples())
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run baton")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}

fn newest(state: &Path) -> Value {
    serde_json::from_slice::<Value>(&baton(state, &["history", "hello-web", "--json"]).stdout).unwrap_or_default()[0].clone()
}

/// Starts `baton release hello-web` with its bakes (5 s each: time to stop it in one).
fn start_release(state: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "hello-web", "--json", "--catalog"])
        .arg(examples())
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton release")
}

/// Waits until the newest release's first wave bakes.
fn wait_for_the_canary_to_bake(state: &Path) {
    let started = Instant::now();
    while newest(state)["waves"][0]["status"] != "baking" {
        assert!(started.elapsed() < Duration::from_secs(60), "the canary never baked: {}", newest(state));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What each of hello-web's targets runs (the example deploy writes it to its `current` file).
fn deployed(state: &Path) -> Vec<Option<String>> {
    let target = |name: &str| state.join("workspace/hello-web/targets").join(name).join("current");
    TARGETS.iter().map(|name| std::fs::read_to_string(target(name)).ok().map(|text| text.trim().to_owned())).collect()
}

fn history_types(state: &Path, id: &str) -> Vec<String> {
    let show = baton(state, &["show", id, "--history", "--json"]);
    assert_eq!(show.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&show.stderr));
    json(&show)["history"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_killed_release_shows_its_history_so_far_and_resumes_to_the_end() {
    let state = tempfile::tempdir().unwrap();
    let mut release = start_release(state.path());
    wait_for_the_canary_to_bake(state.path());
    release.kill().unwrap();
    release.wait().unwrap();
    let killed = newest(state.path());
    let id = killed["id"].as_str().unwrap();
    assert_eq!(killed["status"], "running", "SIGKILL leaves no time to record anything");

    let types = history_types(state.path(), id);
    assert_eq!(types[0], "ExecutionStarted");
    assert!(types.iter().any(|t| t == "MapIterationStarted"), "the journal holds the deploy so far: {types:?}");
    assert!(!types.iter().any(|t| t.starts_with("Execution") && t != "ExecutionStarted"), "and no end: {types:?}");

    let resumed = baton_with_catalog(state.path(), &["resume", id, "--no-wait", "--json"]);
    assert_eq!(resumed.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&resumed.stderr));
    let record = &json(&resumed)["release"];
    assert_eq!((record["id"].as_str(), record["status"].as_str()), (Some(id), Some("succeeded")));
    assert!(String::from_utf8_lossy(&resumed.stderr).contains(&format!("resuming {id} (hello-web) at DeployWaves")));
    let artifact = record["artifact"]["reference"].as_str().unwrap().to_owned();
    assert_eq!(deployed(state.path()), vec![Some(artifact); TARGETS.len()], "every target runs the release's artifact");

    let types = history_types(state.path(), id);
    assert_eq!(types.iter().filter(|t| *t == "ExecutionStarted").count(), 2, "the resumed run follows the killed one: {types:?}");
    assert_eq!(types.last().map(String::as_str), Some("ExecutionSucceeded"));
    let unlock = baton_with_catalog(state.path(), &["unlock", "hello-web", "--reason", "check", "--json"]);
    assert_eq!(json(&unlock)["freed"], false, "the resumed release freed its lock");

    let again = baton_with_catalog(state.path(), &["resume", id]);
    assert_eq!(again.status.code(), Some(2), "a closed release has nothing to resume");
    assert!(String::from_utf8_lossy(&again.stderr).contains("is succeeded: there is nothing to resume"));
}

#[test]
fn a_killed_release_rolls_back_on_request() {
    let state = tempfile::tempdir().unwrap();
    let mut release = start_release(state.path());
    wait_for_the_canary_to_bake(state.path());
    release.kill().unwrap();
    release.wait().unwrap();
    let id = newest(state.path())["id"].as_str().unwrap().to_owned();
    assert!(deployed(state.path())[0].is_some(), "the canary was deployed");

    let rolled = baton_with_catalog(state.path(), &["resume", &id, "--rollback", "--no-wait", "--json"]);
    assert_eq!(rolled.status.code(), Some(1), "a rolled-back release exits 1: {}", String::from_utf8_lossy(&rolled.stderr));
    let record = &json(&rolled)["release"];
    assert_eq!(record["status"], "rolled-back");
    assert_eq!(record["failure"]["error"], "Baton.Interrupted", "{record}");
    assert_eq!(deployed(state.path()), vec![None; TARGETS.len()], "the service's first release: nothing was live before");

    let show = json(&baton(state.path(), &["show", &id, "--json"]));
    let resumed: Vec<&Value> = show["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{show}");
    assert!(resumed[0]["message"].as_str().unwrap().contains("is rolling the release back from DeployWaves"), "{show}");
}

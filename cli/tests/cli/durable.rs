//! Releases survive their process: a killed or interrupted `baton release` leaves a journal that
//! `baton show --history` reads and `baton resume` runs on, or rolls back, to a closed record,
//! a free lock and targets that run what the record says.

use crate::support::{baton_command, examples};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const TARGETS: [&str; 6] = ["web-use1-a", "web-use1-b", "web-use1-c", "web-usw2-a", "web-usw2-b", "web-euw1-a"];

pub(crate) fn baton(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton")).args(args).arg("--state-dir").arg(state).output().expect("run baton")
}

/// A local command that takes the catalog.
pub(crate) fn baton_with_catalog(state: &Path, args: &[&str]) -> Output {
    baton_command(state, &examples(), args).output().expect("run baton")
}

pub(crate) fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}

pub(crate) fn newest(state: &Path) -> Value {
    serde_json::from_slice::<Value>(&baton(state, &["history", "hello-web", "--json"]).stdout).unwrap_or_default()[0].clone()
}

/// Starts `baton release hello-web` with its bakes (5 s each: time to stop it in one).
fn start_release(state: &Path) -> Child {
    baton_command(state, &examples(), &["release", "hello-web", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton release")
}

/// Waits until the newest release's first wave bakes.
pub(crate) fn wait_for_the_canary_to_bake(state: &Path) {
    let started = Instant::now();
    while newest(state)["waves"][0]["status"] != "baking" {
        assert!(started.elapsed() < Duration::from_secs(60), "the canary never baked: {}", newest(state));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What each of hello-web's targets runs (the example deploy writes it to its `current` file).
pub(crate) fn deployed(state: &Path) -> Vec<Option<String>> {
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

    // Run where no ./catalog is, without --catalog: the release's record names its catalog.
    let elsewhere = tempfile::tempdir().unwrap();
    let here = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command.args(args).arg("--state-dir").arg(state.path()).current_dir(elsewhere.path()).env_remove("BATON_CATALOG");
        command.output().expect("run baton")
    };
    let lost = here(&["release", "hello-web", "--no-wait"]);
    assert_eq!(lost.status.code(), Some(2));
    let said = String::from_utf8_lossy(&lost.stderr);
    assert!(
        said.contains("no catalog at catalog") && said.contains("hint: pass the catalog directory (or file) with --catalog DIR"),
        "{said}"
    );
    let rolled = here(&["resume", &id, "--rollback", "--no-wait", "--json"]);
    assert_eq!(
        rolled.status.code(),
        Some(5),
        "a person's rollback ends it cancelled (exit 5): {}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    let record = &json(&rolled)["release"];
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["failure"]["error"], "Baton.Interrupted", "{record}");
    assert_eq!(deployed(state.path()), vec![None; TARGETS.len()], "the service's first release: nothing was live before");

    let show = json(&baton(state.path(), &["show", &id, "--json"]));
    let resumed: Vec<&Value> = show["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "resumed").collect();
    assert_eq!(resumed.len(), 1, "{show}");
    assert!(resumed[0]["message"].as_str().unwrap().contains("is rolling the release back from DeployWaves"), "{show}");
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().expect("run kill");
    assert!(sent.success(), "kill -{name}");
}

pub(crate) fn events_of(state: &Path, id: &str, kind: &str) -> Vec<String> {
    let show = json(&baton(state, &["show", id, "--json"]));
    let events = show["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind);
    events.map(|e| e["message"].as_str().unwrap().to_owned()).collect()
}

/// Starts `baton release hello-web --sha <sha>` with its bakes, as [`start_release`] does.
pub(crate) fn start_release_of(state: &Path, sha: &str) -> Child {
    baton_command(state, &examples(), &["release", "hello-web", "--sha", sha, "--json"])
        .env("USER", "ann")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton release")
}

/// The next release of hello-web, of commit `sha`: it ships that commit and nothing older.
pub(crate) fn next_release_ships_only(state: &Path, sha: &str, extra: &[&str]) -> Output {
    let mut args = vec!["release", "hello-web", "--sha", sha, "--no-wait", "--json"];
    args.extend_from_slice(extra);
    let next = baton_with_catalog(state, &args);
    assert_eq!(next.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&next.stderr));
    let newer = &json(&next)["release"];
    assert_eq!(newer["artifact"]["reference"], format!("hello-web@{sha}"), "{newer}");
    assert_eq!(deployed(state), vec![Some(format!("hello-web@{sha}")); TARGETS.len()], "every target runs the newest commit");
    next
}

#[test]
fn sigint_stops_a_release_which_rolls_back_ends_cancelled_frees_its_lock_and_exits_130() {
    let state = tempfile::tempdir().unwrap();
    let release = start_release_of(state.path(), "aaa1111");
    wait_for_the_canary_to_bake(state.path());
    signal(&release, "INT");
    let stopped = release.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("SIGINT: stopping the release: rolling back what it touched"), "{stderr}");
    let record = &json(&stopped)["release"];
    let id = record["id"].as_str().unwrap().to_owned();
    assert_eq!((&record["status"], &record["waves"][0]["status"]), (&json!("cancelled"), &json!("rolled-back")), "{record}");
    assert_eq!(record["failure"]["error"], "Baton.Interrupted");
    assert_eq!(events_of(state.path(), &id, "cancelled")[0], "ann cancelled the release: SIGINT on `baton release`", "who stopped it");
    assert_eq!(deployed(state.path()), vec![None; TARGETS.len()], "nothing was live before the service's first release");
    let unlock = baton_with_catalog(state.path(), &["unlock", "hello-web", "--reason", "check", "--json"]);
    assert_eq!(json(&unlock)["freed"], false, "the stopped release freed its lock");

    let next = next_release_ships_only(state.path(), "bbb2222", &[]);
    assert!(!String::from_utf8_lossy(&next.stderr).contains(&id), "nothing is left to pick up: {}", String::from_utf8_lossy(&next.stderr));
}

#[test]
fn a_second_signal_leaves_the_release_interrupted_and_cancel_rolls_it_back_saying_who_and_why() {
    let state = tempfile::tempdir().unwrap();
    let release = start_release_of(state.path(), "aaa1111");
    wait_for_the_canary_to_bake(state.path());
    // Two kinds, so the second is not merged into the first while both are pending.
    signal(&release, "TERM");
    signal(&release, "INT");
    let stopped = release.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!([Some(130), Some(143)].contains(&stopped.status.code()), "exit {:?}: {stderr}", stopped.status.code());
    let id = json(&stopped)["release"]["id"].as_str().unwrap().to_owned();
    assert_eq!(json(&stopped)["release"]["status"], "interrupted", "{stderr}");
    assert!(
        stderr.contains(&format!("{id} is left interrupted and holds the lock of hello-web: `baton resume {id} --rollback`")),
        "{stderr}"
    );

    let cancel = baton_with_catalog(state.path(), &["cancel", &id, "--reason", "wrong commit", "--json"]);
    assert_eq!(cancel.status.code(), Some(5), "cancelled: {}", String::from_utf8_lossy(&cancel.stderr));
    let record = &json(&cancel)["release"];
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["failure"]["error"], "Baton.Interrupted");
    assert_eq!(deployed(state.path()), vec![None; TARGETS.len()], "nothing was live before the service's first release");
    let unlock = baton_with_catalog(state.path(), &["unlock", "hello-web", "--reason", "check", "--json"]);
    assert_eq!(json(&unlock)["freed"], false, "the cancelled release freed its lock");

    let again = baton_with_catalog(state.path(), &["cancel", &id, "--reason", "twice"]);
    assert_eq!(again.status.code(), Some(2), "a closed release cannot be cancelled");
}

/// A release of commit aaa1111 SIGKILLed while its canary bakes, and its id.
fn killed_in_the_canary_bake() -> (tempfile::TempDir, String) {
    let state = tempfile::tempdir().unwrap();
    let mut release = start_release_of(state.path(), "aaa1111");
    wait_for_the_canary_to_bake(state.path());
    release.kill().unwrap();
    release.wait().unwrap();
    let id = newest(state.path())["id"].as_str().unwrap().to_owned();
    (state, id)
}

#[test]
fn a_killed_release_is_superseded_by_the_next_release_rather_than_shipped() {
    let (state, id) = killed_in_the_canary_bake();
    assert_eq!(deployed(state.path())[0].as_deref(), Some("hello-web@aaa1111"), "the canary runs the killed release's commit");

    let next = next_release_ships_only(state.path(), "bbb2222", &[]);
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(
        stderr.contains(&format!("release {id} of hello-web was left running by an earlier run: this release supersedes it: rolling back")),
        "{stderr}"
    );
    let killed = json(&baton(state.path(), &["show", &id, "--json"]))["release"].clone();
    assert_eq!((&killed["status"], &killed["waves"][0]["status"]), (&json!("cancelled"), &json!("rolled-back")), "{killed}");
    assert!(killed["failure"]["cause"].as_str().unwrap().contains("superseded"), "{killed}");
}

#[test]
fn resume_interrupted_runs_a_killed_release_on_before_the_next_one() {
    let (state, id) = killed_in_the_canary_bake();

    let next = next_release_ships_only(state.path(), "bbb2222", &["--resume-interrupted"]);
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(stderr.contains(&format!("release {id} of hello-web was left running by an earlier run: running it on")), "{stderr}");
    let newer = &json(&next)["release"];
    assert_ne!(newer["id"].as_str(), Some(id.as_str()), "one JSON object: the new release's");
    let picked_up = json(&baton(state.path(), &["show", &id, "--json"]))["release"].clone();
    assert_eq!(picked_up["status"], "succeeded", "{picked_up}");
}

#[test]
fn cancel_stops_a_live_release_which_rolls_itself_back() {
    let state = tempfile::tempdir().unwrap();
    let release = start_release(state.path());
    wait_for_the_canary_to_bake(state.path());
    let id = newest(state.path())["id"].as_str().unwrap().to_owned();

    let cancel = baton_with_catalog(state.path(), &["cancel", &id, "--reason", "pager went off", "--json"]);
    assert_eq!(cancel.status.code(), Some(5), "cancelled: {}", String::from_utf8_lossy(&cancel.stderr));
    assert_eq!(json(&cancel)["release"]["status"], "cancelled");
    let live = release.wait_with_output().unwrap();
    // It stops at its next task (the record's request) or at its next beat (the run's): either
    // way its own process rolls it back and closes it.
    assert_eq!(live.status.code(), Some(5), "the release's own process rolled it back: {}", String::from_utf8_lossy(&live.stderr));
    let record = &json(&live)["release"];
    assert_eq!((&record["status"], &record["waves"][0]["status"]), (&json!("cancelled"), &json!("rolled-back")), "{record}");
    assert_eq!(deployed(state.path()), vec![None; TARGETS.len()]);
}

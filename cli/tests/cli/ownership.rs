//! One process per release. Every local run of a release claims it in the store and beats for it:
//! a lock holder killed with SIGKILL is noticed by its silence within seconds and closed by the
//! newer release waiting for it (never run on over newer work), and `baton resume`, `baton
//! cancel` and a new `baton release` racing for one killed release leave it to exactly one of
//! them, each history event written once.
//!
//! `cargo test --workspace --test cli -- ownership::` races twice; `scripts/crash.sh race [runs]` runs the
//! full race (`BATON_RACE_RUNS`, 200 by default there).

use crate::durable::{TARGETS, baton, deployed, json};
use crate::support::{baton_command, examples};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// A local command that takes the catalog, started.
fn spawn(state: &Path, args: &[&str]) -> Child {
    baton_command(state, &examples(), args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start baton")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn releases(state: &Path) -> Vec<Value> {
    let history = baton(state, &["history", "hello-web", "--limit", "1000", "--json"]);
    serde_json::from_slice::<Value>(&history.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

fn record(state: &Path, id: &str) -> Value {
    json(&baton(state, &["show", id, "--json"]))
}

/// Waits until `done` holds for the service's releases, for at most three minutes: the CLI's
/// tests run beside the rest of the suite (scripts/test.sh), and a loaded machine is slow.
fn wait_until(state: &Path, what: &str, done: impl Fn(&[Value]) -> bool) {
    let started = Instant::now();
    loop {
        let releases = releases(state);
        if done(&releases) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "{what} never happened: {releases:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn by_sha<'a>(releases: &'a [Value], sha: &str) -> Option<&'a Value> {
    releases.iter().find(|r| r["sha"] == sha)
}

/// Starts a release of `sha` with its bakes and SIGKILLs it while its canary bakes; answers its id.
fn a_release_killed_while_its_canary_bakes(state: &Path, sha: &str) -> String {
    let mut holder = spawn(state, &["release", "hello-web", "--sha", sha, "--json"]);
    wait_until(state, "the canary bake", |r| by_sha(r, sha).is_some_and(|r| r["waves"][0]["status"] == "baking"));
    holder.kill().unwrap();
    holder.wait().unwrap();
    by_sha(&releases(state), sha).unwrap()["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_killed_lock_holder_is_closed_by_the_newer_release_waiting_for_it_within_30_s() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let mut holder = spawn(state, &["release", "hello-web", "--sha", "aaa1111", "--json"]);
    wait_until(state, "the canary bake", |r| by_sha(r, "aaa1111").is_some_and(|r| r["waves"][0]["status"] == "baking"));
    let waiter = spawn(state, &["release", "hello-web", "--sha", "bbb2222", "--no-wait", "--json"]);
    wait_until(state, "the newer release's wait", |r| by_sha(r, "bbb2222").is_some_and(|r| r["status"] == "queued"));
    holder.kill().unwrap();
    let killed_at = chrono::Utc::now();
    holder.wait().unwrap();

    let waited = waiter.wait_with_output().unwrap();
    assert_eq!(waited.status.code(), Some(0), "stderr: {}", stderr(&waited));
    let newer = &json(&waited)["release"];
    assert_eq!(newer["status"], "succeeded", "{newer}");
    let all = releases(state);
    let dead = by_sha(&all, "aaa1111").unwrap();
    assert_eq!(dead["status"], "failed", "the dead holder is closed, not run on: {dead}");
    assert_eq!(dead["failure"]["error"], "Baton.Interrupted", "{dead}");
    let why = dead["failure"]["cause"].as_str().unwrap();
    assert!(why.contains("stopped beating") && why.contains(newer["id"].as_str().unwrap()), "{why}");

    // The waiter took the lock within 30 s of the kill.
    let at = |field: &Value| chrono::DateTime::parse_from_rfc3339(field.as_str().unwrap()).unwrap().with_timezone(&chrono::Utc);
    let waited_for = (at(&newer["started_at"]) - killed_at).to_std().unwrap_or_default();
    assert!(waited_for < Duration::from_secs(30), "the waiter took the lock {waited_for:?} after the kill");
    assert_eq!(deployed(state), vec![Some("hello-web@bbb2222".to_owned()); TARGETS.len()], "the newer release runs everywhere");

    // The next release finds nothing to pick up: the dead one is closed, and stays behind.
    let next = spawn(state, &["release", "hello-web", "--sha", "ccc3333", "--no-wait", "--json"]).wait_with_output().unwrap();
    assert_eq!(next.status.code(), Some(0), "stderr: {}", stderr(&next));
    assert!(!stderr(&next).contains(dead["id"].as_str().unwrap()), "the dead release was not picked up: {}", stderr(&next));
    assert_eq!(deployed(state), vec![Some("hello-web@ccc3333".to_owned()); TARGETS.len()]);
    let unlock = baton(state, &["unlock", "hello-web", "--environment", "production", "--reason", "check", "--json"]);
    assert_eq!(json(&unlock)["freed"], false, "no lock is left held");
}

/// What a process printed when it ran the killed release: each pick-up path says so once.
fn ran(output: &Output, id: &str) -> bool {
    let text = stderr(output);
    [format!("resuming {id} "), format!("rolling back {id} "), format!("rolling {id} back (at"), format!("picking {id} up at")]
        .iter()
        .any(|said| text.contains(said.as_str()))
}

/// The journal of `id`'s execution: each run's events follow the previous run's end (or its kill),
/// numbered once.
fn assert_runs_never_overlap(state: &Path, id: &str) {
    let show = baton(state, &["show", id, "--history", "--json"]);
    let history = json(&show)["history"].as_array().cloned().unwrap();
    let ids: Vec<u64> = history.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "every event numbered once, in order");
    let types: Vec<&str> = history.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let starts: Vec<usize> = types.iter().enumerate().filter(|(_, t)| **t == "ExecutionStarted").map(|(i, _)| i).collect();
    // The first run was killed; every later one but the last ended before the next began.
    for window in starts.windows(2).skip(1) {
        let ended = types[window[0]..window[1]].iter().any(|t| t.starts_with("Execution") && *t != "ExecutionStarted");
        assert!(ended, "a run began before the one before it ended: {types:?}");
    }
}

#[test]
fn resume_cancel_and_a_new_release_racing_for_a_killed_release_leave_it_to_one_process() {
    let runs: usize = std::env::var("BATON_RACE_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(2);
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let mut outcomes = BTreeSet::new();
    for run in 0..runs {
        // Commits are hex: the killed release's, then the new one's.
        let killed_sha = format!("{:07x}", 0xa00_0000 + run);
        let killed = a_release_killed_while_its_canary_bakes(state, &killed_sha);
        let sha = format!("{:07x}", 0xb00_0000 + run);
        let racers = [
            spawn(state, &["resume", &killed, "--no-wait", "--json"]),
            spawn(state, &["cancel", &killed, "--reason", "race", "--json"]),
            spawn(state, &["release", "hello-web", "--sha", &sha, "--no-wait", "--json"]),
        ];
        let outputs: Vec<Output> = racers.into_iter().map(|racer| racer.wait_with_output().unwrap()).collect();
        let said = || outputs.iter().map(stderr).collect::<Vec<_>>().join("\n---\n");
        let runners = outputs.iter().filter(|output| ran(output, &killed)).count();
        assert_eq!(runners, 1, "run {run}: exactly one process runs the killed release:\n{}", said());
        assert!(!said().contains("UNIQUE constraint"), "run {run}: no event written twice:\n{}", said());
        assert_runs_never_overlap(state, &killed);

        let all = releases(state);
        let closed = by_sha(&all, &killed_sha).unwrap();
        assert!(["succeeded", "cancelled"].contains(&closed["status"].as_str().unwrap()), "run {run}: {closed}");
        outcomes.insert(closed["status"].as_str().unwrap().to_owned());
        let newer = by_sha(&all, &sha).unwrap();
        assert_eq!(newer["status"], "succeeded", "run {run}: the new release ran after it: {newer}\n{}", said());
        let artifact = newer["artifact"]["reference"].as_str().unwrap().to_owned();
        assert_eq!(deployed(state), vec![Some(artifact); TARGETS.len()], "run {run}: every target runs what the newest record says");
        let resumed = record(state, &killed)["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "resumed").count();
        assert!((1..=2).contains(&resumed), "run {run}: picked up once (and rolled back by its owner on the cancel): {resumed}");
    }
    eprintln!("{runs} races: the killed release ended {outcomes:?}");
}

//! `baton approve` from another process: the organisation's default approval gates every
//! production wave, the running `baton release` parks on each, and an approval recorded by
//! another `baton` process reaches it; refusals change nothing, and `baton show` says who
//! approved, when, from where and why.

use crate::durable::{baton, json};
use crate::support::{baton_command, examples};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `baton approve <args>` as `user`.
fn approve(state: &Path, user: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton")).arg("approve").args(args).arg("--state-dir").arg(state).env("USER", user).output().unwrap()
}

fn record(state: &Path) -> Option<Value> {
    let history = baton(state, &["history", "hello-web", "--limit", "1", "--json"]);
    serde_json::from_slice::<Value>(&history.stdout).ok()?.as_array()?.first().cloned()
}

/// Waits until the release's wave `wave` waits for approval; answers the release's id.
fn waiting_on(state: &Path, wave: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(release) = record(state)
            && let Some(last) = release["approvals"].as_array().and_then(|a| a.last())
            && last["wave"] == wave
            && last["decision"].is_null()
        {
            assert!(last.get("token").is_none(), "the token is never shown: {last}");
            return release["id"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "wave {wave} never asked for approval: {:#?}", record(state));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_approval_recorded_by_another_process_reaches_the_running_release() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let me = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let default = format!(r#"{{"required": true, "approvers": ["{me}"], "timeout": "10m", "four-eyes": false}}"#);
    let release = baton_command(state, &examples(), &["release", "hello-web", "--sha", "abc1234", "--no-wait", "--json"])
        .env("BATON_APPROVAL_DEFAULT", &default)
        .env("USER", &me)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton release");

    let id = waiting_on(state, "canary");
    let stranger = approve(state, "mallory", &[&id]);
    assert_eq!(stranger.status.code(), Some(2), "{}", String::from_utf8_lossy(&stranger.stderr));
    assert!(String::from_utf8_lossy(&stranger.stderr).contains("mallory is not among the approvers of wave canary"));
    assert!(record(state).unwrap()["approvals"][0]["decision"].is_null(), "a refused answer changes nothing");

    for wave in ["canary", "one-region", "rest"] {
        let id = waiting_on(state, wave);
        let approved = approve(state, &me, &[&id, "--reason", "checked the graphs"]);
        assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));
        let said = String::from_utf8_lossy(&approved.stdout);
        assert!(said.contains(&format!("wave {wave} approved by {me} via the CLI: checked the graphs")), "{said}");
    }
    let ended = release.wait_with_output().unwrap();
    assert!(ended.status.success(), "{}", String::from_utf8_lossy(&ended.stderr));
    let ended = json(&ended);
    assert_eq!(ended["release"]["status"], "succeeded", "{ended:#}");
    let approvals = ended["release"]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 3);
    assert!(approvals.iter().all(|a| a["decision"]["delivered"] == true && a.get("token").is_none()), "{approvals:#?}");

    let show = baton(state, &["show", &id]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains(&format!("approval  wave rest approved by {me} via the CLI: checked the graphs at ")), "{shown}");
}

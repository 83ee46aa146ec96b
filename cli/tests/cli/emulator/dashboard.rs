//! `baton dashboard` in a real browser (Debian's headless Chromium, driven by
//! scripts/browser.py over the DevTools protocol), on a store filled by real releases of the
//! example services: each view loads with no console error and no failed request, shows what
//! the store holds (gate samples charted, Slack threads linked), and a release started while the
//! Now view is open appears without a reload.
//! Screenshots at laptop and phone widths are kept in `target/tmp/dashboard-screenshots/`.

use crate::support::{Served, baton_command, examples};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn browser_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/browser.py")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium_present() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&chromium).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "no {chromium}: the browser tests need Debian's chromium; `scripts/emulators.sh start` installs it (or apt-get install chromium)"
    );
}

fn release(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut command = baton_command(state, &examples(), &[&["release"], args, &["--no-wait", "--json"]].concat());
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("baton release {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    summary["release"].clone()
}

/// The dashboard served on a free loopback port, and its base URL.
fn serve(state: &Path) -> (Served, String) {
    let mut child = baton_command(state, &examples(), &["dashboard", "--serve", "127.0.0.1:0", "--refresh", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|word| word.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}")).to_owned();
    (Served(child), url)
}

/// What browser.py saw: `value`, `console`, `failed`, `reloaded`.
fn view(url: &str, name: &str, expression: &str) -> Value {
    let shots = screenshots().join(name);
    let out =
        Command::new("python3").arg(browser_script()).arg(url).args(["--eval", expression, "--screenshots"]).arg(&shots).output().unwrap();
    assert!(out.status.success(), "browser.py on {url}: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["console"], serde_json::json!([]), "{name}: console errors on {url}");
    assert_eq!(seen["failed"], serde_json::json!([]), "{name}: failed requests on {url}");
    for shot in seen["screenshots"].as_array().unwrap() {
        assert!(std::fs::metadata(shot.as_str().unwrap()).unwrap().len() > 1000, "{name}: an empty screenshot {shot}");
    }
    serde_json::from_str(seen["value"].as_str().unwrap()).unwrap()
}

const ROWS: &str = "[...document.querySelectorAll('table#ID tr[data-release]')].map(r => [r.dataset.release, r.dataset.status])";

fn rows(table: &str) -> String {
    ROWS.replace("ID", table)
}

fn statuses(releases: &[&Value]) -> Vec<Value> {
    releases.iter().map(|r| serde_json::json!([r["id"], r["status"]])).collect()
}

#[test]
fn every_view_shows_the_store_in_a_real_browser_and_the_now_view_updates_live() {
    chromium_present();
    let state = tempfile::tempdir().unwrap();
    let state = state.path();
    let shipped = release(state, &["hello-web", "--sha", "aaaaaaa"], &[]);
    let broken = release(state, &["hello-web", "--sha", "bbbbbbb"], &[("EXAMPLE_BUILD_FAILS", "1")]);
    let rolled_back = release(state, &["flaky-api"], &[]);
    let again = release(state, &["hello-web", "--sha", "ccccccc"], &[]);
    assert_eq!(
        [&shipped, &broken, &rolled_back, &again].map(|r| r["status"].as_str().unwrap().to_owned()),
        ["succeeded", "failed", "rolled-back", "succeeded"]
    );
    // The Slack notifier keeps its message's permalink (tested against Slack's documented
    // answers in the providers and e2e tests); here the record says it as it would.
    let thread = "https://acme.slack.com/archives/C0RELEASES/p1700000000000100";
    let slack = serde_json::json!({"notifier_state": {"slack": {"channel": "C0RELEASES", "ts": "1700000000.000100", "permalink": thread}}});
    let db = rusqlite::Connection::open(baton_store_sqlite::database_path(state)).unwrap();
    let patched = db
        .execute(
            "UPDATE releases SET body = json_patch(body, ?1) WHERE id = ?2",
            rusqlite::params![slack.to_string(), rolled_back["id"].as_str()],
        )
        .unwrap();
    assert_eq!(patched, 1);
    drop(db);
    let (server, base) = serve(state);

    // Now: the last day's outcomes, newest first; nothing open yet.
    let now = view(
        &base,
        "now",
        &format!(
            "JSON.stringify({{recent: {}, open: document.querySelectorAll('table#open tr').length, \
             threads: [...document.querySelectorAll('table#recent tr[data-release] .slack-thread a')].map(a => [a.closest('tr').dataset.release, a.href])}})",
            rows("recent")
        ),
    );
    assert_eq!(now["recent"], serde_json::json!(statuses(&[&again, &rolled_back, &broken, &shipped])));
    assert_eq!(now["open"], 0);
    assert_eq!(now["threads"], serde_json::json!([[rolled_back["id"], thread]]), "the Slack thread is linked on its release's row");

    // Service: its timeline and figures match the store's.
    let service = view(
        &format!("{base}services/hello-web.html"),
        "service",
        &format!(
            "JSON.stringify({{rows: {}, deployments: Number(document.querySelector('[data-figure=deployments]').dataset.value), \
             bars: [...document.querySelectorAll('rect.bar-deployments')].reduce((n, b) => n + Number(b.dataset.deployments), 0), \
             builds: Number(document.querySelector('[data-figure=builds]').dataset.value), team: document.querySelector('dl.entry dd').textContent}})",
            rows("releases")
        ),
    );
    assert_eq!(service["rows"], serde_json::json!(statuses(&[&again, &broken, &shipped])));
    let dora = baton_json(state, &["dora", "hello-web", "--json"]);
    assert_eq!(service["deployments"], dora["deployments"]);
    assert_eq!(service["bars"], dora["deployments"], "the weekly chart draws every deployment");
    assert_eq!(service["builds"], 3);
    assert_eq!(service["team"], "web-platform");

    // Release: every wave drawn, the timeline's events listed.
    let id = rolled_back["id"].as_str().unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_baton")).args(["show", id, "--history", "--json", "--state-dir"]).arg(state).output().unwrap();
    let shown: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("baton show: {}", String::from_utf8_lossy(&out.stderr)));
    let page = view(
        &format!("{base}releases/{id}.html"),
        "release",
        "JSON.stringify({waves: [...document.querySelectorAll('table#waves tr[data-wave]')].map(r => [r.dataset.wave, r.dataset.status]), \
         drawn: document.querySelectorAll('svg.waves rect').length, events: document.querySelectorAll('table#timeline tr[data-event]').length, \
         history: [...document.querySelectorAll('table#history tr[data-history-type]')].map(r => r.dataset.historyType), \
         thread: document.querySelector('.slack-thread a')?.href, \
         gates: [...document.querySelectorAll('svg.gate-samples')].map(s => [s.dataset.wave, Number(s.dataset.samples), \
           [...s.querySelectorAll('rect')].map(r => r.dataset.healthy === 'true')])})",
    );
    assert_eq!(page["thread"], thread, "the release page links its Slack thread");
    let kept: Vec<Value> = shown["release"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| {
            w["gates"].as_array().into_iter().flatten().map(move |g| {
                let healthy: Vec<&Value> = g["history"].as_array().unwrap().iter().map(|s| &s["healthy"]).collect();
                serde_json::json!([w["name"], g["samples"], healthy])
            })
        })
        .collect();
    assert!(!kept.is_empty(), "the rolled-back release's gates were sampled: {shown}");
    assert_eq!(page["gates"], serde_json::json!(kept), "a chart a gate, a bar a kept sample");
    let waves: Vec<Value> = shown["release"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| serde_json::json!([w["name"], w["status"].as_str().unwrap().replace('-', " ")]))
        .collect();
    assert_eq!(page["waves"], serde_json::json!(waves));
    assert!(page["drawn"].as_u64().unwrap() >= 2, "the started waves are drawn: {page}");
    assert_eq!(page["events"], shown["events"].as_array().unwrap().len());
    let history: Vec<&Value> = shown["history"].as_array().unwrap().iter().map(|e| &e["type"]).collect();
    assert!(history.len() > 10, "the execution's history is journaled: {history:?}");
    assert_eq!(page["history"], serde_json::json!(history), "the execution history, event by event");

    // Team: its services and their deployments.
    let team = view(
        &format!("{base}teams/web-platform.html"),
        "team",
        "JSON.stringify([...document.querySelectorAll('table#services tr[data-service]')].map(r => [r.dataset.service, Number(r.dataset.deployments)]).sort())",
    );
    assert_eq!(team, serde_json::json!([["hello-api", 0], ["hello-web", dora["deployments"]]]));

    // Organisation and repository: every service, and the repository's own.
    let organisation = view(
        &format!("{base}organisation.html"),
        "organisation",
        "JSON.stringify([...document.querySelectorAll('table#services tr[data-service]')].map(r => r.dataset.service).sort())",
    );
    assert_eq!(organisation, serde_json::json!(["flaky-api", "hello-api", "hello-web"]));
    let repository = view(
        &format!("{base}repositories/acme~2fhello-web.html"),
        "repository",
        "JSON.stringify([...document.querySelectorAll('table#services tr[data-service]')].map(r => [r.dataset.service, Number(r.dataset.deployments)]))",
    );
    assert_eq!(repository, serde_json::json!([["hello-web", dora["deployments"]]]));

    // Live: a release started while the Now view is open shows up in it, with no reload.
    let mut watcher = Command::new("python3")
        .arg(browser_script())
        .arg(&base)
        .args(["--announce-load", "--timeout", "60", "--wait-for", "document.querySelector('table#open tr[data-release]')"])
        .args(["--eval", "JSON.stringify(document.querySelector('table#open tr[data-release]').dataset.release)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(watcher.stdout.take().unwrap());
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "loaded");
    // Real bakes (no --no-wait): it runs long enough to be seen running.
    let live =
        baton_command(state, &examples(), &["release", "hello-web", "--sha", "ddddddd", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    line.clear();
    said.read_line(&mut line).unwrap();
    assert!(watcher.wait().unwrap().success());
    let seen: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(seen["reloaded"], false, "the page updated in place");
    assert_eq!(seen["console"], serde_json::json!([]));
    let shown_id: String = serde_json::from_str(seen["value"].as_str().unwrap()).unwrap();
    let ended: Value = serde_json::from_slice(&live.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(shown_id, ended["release"]["id"].as_str().unwrap(), "the open row is the release just started");
    drop(server);

    // The static export opens from the file system with the same checks.
    let site = tempfile::tempdir().unwrap();
    let written = baton_command(state, &examples(), &["dashboard", "--out", site.path().to_str().unwrap()]).output().unwrap();
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let index = format!("file://{}", site.path().join("index.html").display());
    let exported = view(&index, "export-now", &format!("JSON.stringify({})", rows("recent")));
    assert_eq!(exported.as_array().unwrap().len(), 5, "every release ended today: {exported}");
    let service_file = format!("file://{}", site.path().join("services/hello-web.html").display());
    let exported = view(&service_file, "export-service", &format!("JSON.stringify({})", rows("releases")));
    let live = serde_json::json!([ended["release"]["id"], ended["release"]["status"]]);
    assert_eq!(exported, serde_json::json!([&[live], &statuses(&[&again, &broken, &shipped])[..]].concat()));
}

fn baton_json(state: &Path, args: &[&str]) -> Value {
    let out = baton_command(state, &examples(), args).output().unwrap();
    assert!(out.status.success(), "baton {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

//! The crash campaign: `baton release` of the example service is SIGKILLed at stage boundaries
//! and at random moments, each next release picking up the killed one (superseding it: rolling
//! it back, or every third time running it on with `--resume-interrupted`); then one last release, and the service must be consistent: every
//! record closed, no lock held, every target running the artifact the newest record says, and
//! every killed release resumed or rolled back.
//!
//! `cargo test --test crash` runs a short fixed campaign (a kill at each of six stage
//! boundaries); `scripts/crash.sh [kills]` runs a long one (`BATON_CRASH_KILLS`, boundaries and
//! random moments; `BATON_CRASH_SEED` replays one) and prints its figures.

use crate::support::{baton_command, examples};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TARGETS: [&str; 6] = ["web-use1-a", "web-use1-b", "web-use1-c", "web-usw2-a", "web-usw2-b", "web-euw1-a"];

/// Top-level states a release spends time in, in order: a kill when one is entered.
const BOUNDARIES: [&str; 6] = ["Acquire", "TriggerBuild", "WaitForBuild", "DeployWaves", "RecordMetrics", "NotifyFinished"];

/// A release with its bakes skipped takes about this long: random kills fall within it.
const RANDOM_WITHIN: Duration = Duration::from_millis(2500);

#[derive(Debug, Clone, Copy)]
enum Kill {
    AtState(&'static str),
    After(Duration),
}

#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    /// The process had ended before the kill came.
    ended_first: usize,
    /// Releases open when their process was killed.
    left_open: BTreeSet<String>,
}

fn baton(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton")).args(args).arg("--state-dir").arg(state).output().expect("run baton")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}\nstderr: {}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}

fn releases(state: &Path) -> Vec<Value> {
    let history = baton(state, &["history", "hello-web", "--limit", "10000", "--json"]);
    serde_json::from_slice::<Value>(&history.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

/// The top-level and inner states the newest release's execution entered so far, read straight
/// from the store: `baton show` per poll would be too slow to stop a release at a boundary.
fn entered_by_newest(db: &rusqlite::Connection, known: &BTreeSet<String>) -> Vec<String> {
    let newest: Option<String> =
        db.query_row("SELECT body FROM releases ORDER BY created_at DESC, id DESC LIMIT 1", [], |row| row.get(0)).ok();
    let Some(release) = newest.and_then(|body| serde_json::from_str::<Value>(&body).ok()) else { return Vec::new() };
    if known.contains(release["id"].as_str().unwrap_or_default()) {
        return Vec::new(); // still picking up an earlier release
    }
    let Some(execution) = release["execution"].as_str() else { return Vec::new() };
    let Ok(mut select) = db.prepare("SELECT body FROM journal WHERE execution = ?1 ORDER BY seq") else { return Vec::new() };
    let bodies = select.query_map([execution], |row| row.get::<_, String>(0)).map(|rows| rows.flatten().collect::<Vec<_>>());
    bodies
        .unwrap_or_default()
        .iter()
        .filter_map(|body| serde_json::from_str::<Value>(body).ok())
        .filter_map(|event| event["stateEnteredEventDetails"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn release_then_kill(state: &Path, kill: Kill, run_on: bool, figures: &mut Figures) {
    let known: BTreeSet<String> = releases(state).iter().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    command.args(["release", "hello-web", "--no-wait", "--json", "--catalog"]).arg(examples()).arg("--state-dir").arg(state);
    if run_on {
        command.arg("--resume-interrupted");
    }
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start baton release");
    let started = Instant::now();
    match kill {
        Kill::After(delay) => std::thread::sleep(delay),
        Kill::AtState(state_name) => {
            let db = rusqlite::Connection::open(state.join("baton.db")).expect("open the store");
            while !entered_by_newest(&db, &known).iter().any(|name| name == state_name) {
                if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    figures.kills += 1;
    if child.try_wait().unwrap().is_some() {
        figures.ended_first += 1;
        return;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let open = releases(state).into_iter().filter(|r| matches!(r["status"].as_str(), Some("running" | "queued" | "interrupted")));
    figures.left_open.extend(open.filter_map(|r| r["id"].as_str().map(str::to_owned)));
}

/// Runs the campaign, checks the service is consistent after it, and prints the figures.
fn campaign(kills: &[Kill]) {
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut figures = Figures::default();
    for (n, kill) in kills.iter().enumerate() {
        release_then_kill(state.path(), *kill, n % 3 == 2, &mut figures);
    }
    let last = baton_command(state.path(), &examples(), &["release", "hello-web", "--no-wait", "--json"]).output().unwrap();
    assert_eq!(last.status.code(), Some(0), "the release after the campaign: {}", String::from_utf8_lossy(&last.stderr));
    let newest = json(&last)["release"].clone();
    assert_eq!(newest["status"], "succeeded");

    let all = releases(state.path());
    let status = |r: &Value| r["status"].as_str().unwrap_or_default().to_owned();
    for release in &all {
        assert!(
            ["succeeded", "failed", "rolled-back", "superseded", "cancelled"].contains(&status(release).as_str()),
            "not closed: {release}"
        );
    }
    let unlock = baton(state.path(), &["unlock", "hello-web", "--environment", "production", "--reason", "check", "--json"]);
    assert_eq!(json(&unlock)["freed"], false, "a lock was left held");
    let artifact = newest["artifact"]["reference"].as_str().unwrap();
    for target in TARGETS {
        let current = std::fs::read_to_string(state.path().join("workspace/hello-web/targets").join(target).join("current")).unwrap();
        assert_eq!(current.trim(), artifact, "{target} runs what the newest record says");
    }
    let (mut resumed, mut rolled_back) = (0, 0);
    for id in &figures.left_open {
        let show = json(&baton(state.path(), &["show", id, "--json"]));
        let picked_up = show["events"].as_array().unwrap().iter().any(|e| e["kind"] == "resumed");
        assert!(picked_up, "release {id}, killed open, was never picked up: {show}");
        match show["release"]["status"].as_str() {
            Some("rolled-back" | "failed" | "cancelled") => rolled_back += 1,
            _ => resumed += 1,
        }
    }
    println!(
        "crash campaign: {} kills ({} after the process had ended), {} releases left open by a kill: {resumed} resumed to the end, \
         {rolled_back} rolled back or closed (failed, cancelled); {} releases in all; {:.1} s",
        figures.kills,
        figures.ended_first,
        figures.left_open.len(),
        all.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_release_killed_at_each_stage_boundary_is_picked_up_and_the_service_ends_consistent() {
    campaign(&BOUNDARIES.map(Kill::AtState));
}

/// `scripts/crash.sh` runs it: BATON_CRASH_KILLS kills, every boundary in turn, and as many at
/// random moments.
#[test]
#[ignore = "long: scripts/crash.sh runs it"]
fn crash_campaign() {
    let kills: usize = std::env::var("BATON_CRASH_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(40);
    let seed: u64 = std::env::var("BATON_CRASH_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1
    });
    println!("crash campaign: seed {seed} (BATON_CRASH_SEED replays it)");
    let mut random = seed;
    let plan: Vec<Kill> = (0..kills)
        .map(|n| {
            if n % 2 == 0 {
                Kill::AtState(BOUNDARIES[(n / 2) % BOUNDARIES.len()])
            } else {
                // xorshift64: enough to spread the moments, and replayable from the seed.
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                Kill::After(Duration::from_millis(random % RANDOM_WITHIN.as_millis() as u64))
            }
        })
        .collect();
    campaign(&plan);
}

// ---------------------------------------------------------------- side effects under kill

/// A service whose commands log what they did, when they finish, to `ops.log` in the workspace:
/// a build, a deploy or a rollback of one target. Releases of a `bad…` commit fail their health
/// gate and roll back. Commands take a moment, bakes one second: a kill lands inside them.
fn ops_catalog(dir: &Path) {
    let script = |name: &str, body: &str| std::fs::write(dir.join(name), format!("set -eu\n{body}")).unwrap();
    script("build.sh", "sleep 0.4\necho \"build $BATON_RELEASE_ID ok\" >> \"$BATON_WORKSPACE/ops.log\"\necho \"ops@$BATON_SHA\"\n");
    script(
        "deploy.sh",
        "action=deploy; [ \"${BATON_ROLLBACK:-false}\" = true ] && action=rollback\nsleep 0.3\n\
         mkdir -p \"$BATON_WORKSPACE/targets/$BATON_TARGET\"\n\
         if [ -z \"${BATON_ARTIFACT:-}\" ]; then rm -f \"$BATON_WORKSPACE/targets/$BATON_TARGET/current\"; \
         else printf '%s\\n' \"$BATON_ARTIFACT\" > \"$BATON_WORKSPACE/targets/$BATON_TARGET/current\"; fi\n\
         echo \"$action $BATON_TARGET ${BATON_ARTIFACT:-nothing} $BATON_RELEASE_ID ok\" >> \"$BATON_WORKSPACE/ops.log\"\n",
    );
    script("health.sh", "case \"$BATON_ARTIFACT\" in *@bad*) echo unhealthy >&2; exit 1;; esac\n");
    let waves: String = [("canary", "[t-1]"), ("half", "[t-2, t-3]"), ("rest", "[t-4, t-5, t-6]")]
        .iter()
        .map(|(name, targets)| format!("        - name: {name}\n          targets: {targets}\n          bake: 1s\n"))
        .collect();
    let entry = format!(
        "schema-version: v2.2\ndd-service: ops\nteam: web\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    \
         build:\n      provider: command\n      command: [\"sh\", \"build.sh\"]\n      timeout: 1m\n    \
         deploy:\n      provider: command\n      command: [\"sh\", \"deploy.sh\"]\n      timeout: 1m\n      waves:\n{waves}    \
         health:\n      interval: 1s\n      gates:\n        - provider: command\n          command: [\"sh\", \"health.sh\"]\n"
    );
    std::fs::write(dir.join("ops.yaml"), entry).unwrap();
}

/// Where an ops release is stopped, and how.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// SIGKILL once the newest release's execution entered this top-level state.
    KillAt(&'static str),
    /// SIGKILL while the first wave bakes.
    KillInBake,
    /// This signal once the rollback began.
    SignalInRollback(&'static str),
}

fn ops_releases(state: &Path) -> Vec<Value> {
    let history = baton(state, &["history", "ops", "--limit", "10000", "--json"]);
    serde_json::from_slice::<Value>(&history.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

fn ops_release(catalog: &Path, state: &Path, sha: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "ops", "--sha", sha, "--json", "--catalog"])
        .arg(catalog)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start baton release")
}

/// Releases `sha` and stops it as `stop` says; answers whether the stop landed (the release had
/// not ended first).
fn release_then_stop(catalog: &Path, state: &Path, sha: &str, stop: Stop) -> bool {
    let known: BTreeSet<String> = ops_releases(state).iter().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect();
    let mut child = ops_release(catalog, state, sha);
    let db = rusqlite::Connection::open(state.join("baton.db")).expect("open the store");
    let started = Instant::now();
    let reached = || match stop {
        Stop::KillAt(name) => entered_by_newest(&db, &known).iter().any(|entered| entered == name),
        Stop::SignalInRollback(_) => entered_by_newest(&db, &known).iter().any(|entered| entered == "RollbackWaves"),
        Stop::KillInBake => ops_releases(state).iter().any(|r| r["sha"] == sha && r["waves"][0]["status"] == "baking"),
    };
    while !reached() {
        if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(60) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if child.try_wait().unwrap().is_some() {
        return false;
    }
    match stop {
        Stop::SignalInRollback(signal) => {
            // Inside a rollback command, not between two.
            std::thread::sleep(Duration::from_millis(150));
            let sent = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().expect("run kill");
            assert!(sent.success());
        }
        Stop::KillAt(_) | Stop::KillInBake => child.kill().unwrap(),
    }
    child.wait().unwrap();
    true
}

/// The figures of an ops campaign.
#[derive(Debug, Default)]
struct OpsFigures {
    stops: usize,
    landed: usize,
    rolled_back: usize,
}

/// Stops releases of the ops service as `plan` says (a `bad…` commit rolls back), each next
/// release picking the stopped one up, then a last good release; then checks what the records
/// say against what the commands logged.
fn ops_campaign(plan: &[(&str, Stop)]) -> OpsFigures {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, state) = (dir.path().join("catalog"), dir.path().join("state"));
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    ops_catalog(&catalog);
    let mut figures = OpsFigures::default();
    for (sha, stop) in plan {
        figures.stops += 1;
        figures.landed += usize::from(release_then_stop(&catalog, &state, sha, *stop));
    }
    let last = ops_release(&catalog, &state, "f1a1000");
    let last = last.wait_with_output().unwrap();
    assert_eq!(last.status.code(), Some(0), "the release after the campaign");

    let all = ops_releases(&state);
    let ops = std::fs::read_to_string(state.join("workspace/ops/ops.log")).unwrap_or_default();
    let said = |line: &str| ops.lines().any(|l| l == line);
    for release in &all {
        let (id, status) = (release["id"].as_str().unwrap(), release["status"].as_str().unwrap());
        assert!(["succeeded", "failed", "rolled-back", "superseded", "cancelled"].contains(&status), "not closed: {release}");
        // Every build, deploy and rollback here succeeds: none may be recorded failed.
        assert_ne!(status, "rollback-failed", "{release}");
        let error = release["failure"]["error"].as_str().unwrap_or_default();
        assert!(!["Baton.BuildFailed", "Baton.DeployFailed"].contains(&error), "a command that finished recorded failed: {release}");
        // A release superseded (or stopped) while it built stops following its build: it keeps no artifact.
        if said(&format!("build {id} ok")) && !matches!(status, "superseded" | "cancelled") {
            assert!(release["artifact"].is_object(), "its build finished, so the record has its artifact: {release}");
        }
        figures.rolled_back += usize::from(matches!(status, "rolled-back" | "cancelled"));
    }
    let unlock = baton(&state, &["unlock", "ops", "--environment", "production", "--reason", "check", "--json"]);
    assert_eq!(json(&unlock)["freed"], false, "a lock was left held");
    for target in ["t-1", "t-2", "t-3", "t-4", "t-5", "t-6"] {
        let current = std::fs::read_to_string(state.join("workspace/ops/targets").join(target).join("current")).unwrap();
        assert_eq!(current.trim(), "ops@f1a1000", "{target} runs the newest release's artifact");
    }
    figures
}

/// A kill during a build, a deploy, a bake and a rollback, and SIGTERM and SIGINT during a
/// rollback: every record matches what the commands did.
#[test]
fn kills_and_signals_inside_commands_leave_records_that_match_what_the_commands_did() {
    let figures = ops_campaign(&[
        // Commits are hex; a `bad…` one fails its health gate.
        ("a000001", Stop::KillAt("WaitForBuild")),
        ("a000002", Stop::KillAt("DeployWaves")),
        ("a000003", Stop::KillInBake),
        ("bad0001", Stop::KillAt("RollbackWaves")),
        ("bad0002", Stop::SignalInRollback("TERM")),
        ("bad0003", Stop::SignalInRollback("INT")),
    ]);
    println!("ops campaign: {figures:?}");
    assert!(figures.landed >= 4, "most stops landed inside their release: {figures:?}");
}

/// `scripts/crash.sh ops [rounds]` runs it: the short plan over and over.
#[test]
#[ignore = "long: scripts/crash.sh runs it"]
fn ops_crash_campaign() {
    let rounds: usize = std::env::var("BATON_OPS_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(5);
    let stops = [
        Stop::KillAt("WaitForBuild"),
        Stop::KillAt("DeployWaves"),
        Stop::KillInBake,
        Stop::KillAt("RollbackWaves"),
        Stop::SignalInRollback("TERM"),
        Stop::SignalInRollback("INT"),
    ];
    let shas: Vec<String> =
        (0..rounds * stops.len()).map(|n| if n % 6 >= 3 { format!("bad{n:04x}") } else { format!("a00{n:04x}") }).collect();
    let plan: Vec<(&str, Stop)> = shas.iter().zip(stops.iter().cycle()).map(|(sha, stop)| (sha.as_str(), *stop)).collect();
    let figures = ops_campaign(&plan);
    println!("ops crash campaign: {rounds} rounds, {figures:?}");
}

//! A burst of signals for many services at once on the embedded run (the real definition and
//! handlers, the SQLite store, command providers, bakes skipped as `--no-wait` skips them):
//! every (service, commit) is released once, one release at a time per service, and the newest
//! signal of each service ships last.
//!
//! CI runs a small burst; `scripts/load.sh` runs the full one (1,000 signals for 200 services)
//! and prints its time and peak memory.

use baton_asl::{Clock, ExecutionStatus};
use baton_domain::release::{LockKey, Release, ReleaseStatus};
use baton_e2e::*;
use baton_local_runner::{LocalBaton, LocalConfig};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;

/// Commits per service: each is signalled once or more, so some signals repeat one.
const COMMITS: usize = 3;

struct Burst {
    services: usize,
    signals: usize,
}

/// The signals of the burst, interleaved across services as webhooks would bring them: the
/// `round`-th signal of service `s` names commit `round % COMMITS` (so rounds past [`COMMITS`]
/// repeat a commit, as a redelivered webhook or a retried CLI call does).
fn signals(burst: &Burst) -> Vec<(String, String)> {
    let per_service = burst.signals / burst.services;
    assert!(per_service > COMMITS, "every service gets each commit and at least one repeat");
    (0..per_service)
        .flat_map(|round| (0..burst.services).map(move |s| (service(s), format!("c0ffee{s:03}{:02}", round % COMMITS))))
        .collect()
}

fn service(index: usize) -> String {
    format!("svc-{index:03}")
}

/// Peak resident memory of this process so far (Linux: `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

async fn run_burst(burst: Burst) {
    let fixture = Fixture::with_waves(&[("all".to_owned(), vec!["host-1".to_owned()])]);
    for s in 0..burst.services {
        fixture.write_catalog(&service(s), "");
    }
    // Lock waits, build polls and retries at a hundredth of their length; bakes skipped.
    let config = LocalConfig { skip_bakes: true, ..fixture.config(Clock::Scaled(100)) };
    let baton = LocalBaton::open(config).expect("local baton");
    let signals = signals(&burst);

    let started = Instant::now();
    let handles: Vec<_> = signals
        .iter()
        .enumerate()
        .map(|(n, (service, sha))| {
            let input = json!({"service": service, "sha": sha, "trigger": {"kind": "cli", "id": format!("{ENVIRONMENT}/main/{sha}"), "actor": "load"}});
            baton.start(&format!("burst-{n:04}"), input)
        })
        .collect();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.outcome().await);
    }
    let elapsed = started.elapsed();

    for outcome in &outcomes {
        // Released, Superseded and AlreadyReleasing all succeed: no signal gave up on the lock.
        assert_status(outcome, ExecutionStatus::Succeeded);
    }
    let mut shipped = 0;
    for s in 0..burst.services {
        let name = service(s);
        let releases = baton.ports().store.list_releases(&name, None, 100).await.expect("list releases");
        shipped += check_service(&baton, &name, &releases).await;
        let expected: BTreeSet<String> = signals.iter().filter(|(of, _)| *of == name).map(|(_, sha)| sha.clone()).collect();
        let released: BTreeSet<String> = releases.iter().filter_map(|r| r.sha.clone()).collect();
        assert_eq!(released, expected, "{name}: one release per signalled commit");
        assert_eq!(releases.len(), expected.len(), "{name}: no commit released twice: {releases:#?}");
    }
    let records = burst.services * COMMITS;
    eprintln!(
        "load: {} signals for {} services -> {records} releases ({shipped} shipped, {} superseded) in {:.1} s; peak RSS {}",
        signals.len(),
        burst.services,
        records - shipped,
        elapsed.as_secs_f64(),
        peak_rss_mib().map(|mib| format!("{mib:.0} MiB")).unwrap_or_else(|| "unknown".into())
    );
}

/// One service's releases after the burst: all closed, never two running at once, the newest
/// signal shipped and shipped last, the lock free. Returns how many shipped (every one that ran
/// succeeded).
async fn check_service(baton: &LocalBaton, service: &str, releases: &[Release]) -> usize {
    let mut by_age: Vec<&Release> = releases.iter().collect();
    by_age.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let newest = by_age.last().expect("the service has releases");
    assert_eq!(newest.status, ReleaseStatus::Succeeded, "{service}: the newest signal ships: {by_age:#?}");

    let mut ran: Vec<&Release> = by_age.iter().copied().filter(|r| r.started_at.is_some()).collect();
    for release in &by_age {
        match release.status {
            ReleaseStatus::Succeeded => assert!(release.started_at.is_some() && release.finished_at.is_some(), "{release:#?}"),
            ReleaseStatus::Superseded => assert!(release.started_at.is_none(), "a superseded release never ran: {release:#?}"),
            other => panic!("{service}: release {} ended {other}", release.id),
        }
    }
    ran.sort_by_key(|r| r.started_at);
    for pair in ran.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{service}: {} started before {} finished: {ran:#?}", pair[1].id, pair[0].id);
    }
    assert_eq!(ran.last().map(|r| &r.id), Some(&newest.id), "{service}: the newest signal shipped last");
    let holder = baton.ports().store.lock_holder(&LockKey::new(service, ENVIRONMENT), chrono::Utc::now()).await.expect("lock holder");
    assert_eq!(holder, None, "{service}: the lock is free");
    ran.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_signals_releases_each_commit_once_and_the_newest_last() {
    run_burst(Burst { services: 12, signals: 60 }).await;
}

/// The full burst, for `scripts/load.sh` (minutes on two cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full load test: scripts/load.sh"]
async fn a_burst_of_1000_signals_for_200_services() {
    run_burst(Burst { services: 200, signals: 1000 }).await;
}

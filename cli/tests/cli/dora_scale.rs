//! `baton dora` over a large store: a generated organisation (services, teams, a year of
//! releases) loaded into the embedded store's tables, then `baton dora --team` run as a user
//! runs it. The figures must be exact (the generator knows them) and the time and the store's
//! size are printed. CI runs a small organisation; `bench/dora.sh` the full one (1,000,000
//! release records, 2,000 services, 50 teams).

use crate::support::{Served, baton_command, examples};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

struct Organisation {
    services: usize,
    teams: usize,
    records: usize,
    days: i64,
}

/// A deploy program this machine lacks (beside the catalog file).
const RELEASE_MACHINE_ONLY: &str = "deploy-from-the-release-machine";

/// Writes the catalog (one file per service) and fills the store's tables as record-metrics
/// would have: a release row per record, and per service and day the rollup and its lead-time
/// sketch buckets. Every release deploys; every tenth one rolls back. Returns, per team, the
/// deployments and failed deployments of the last `window` days.
fn generate(org: &Organisation, catalog: &Path, state: &Path, window: i64) -> Vec<(u64, u64)> {
    for service in 0..org.services {
        // One service of the team timed deploys with a program only its release machine has:
        // a report, run elsewhere, still counts it.
        let deploy = if service == org.teams / 2 { format!("./{RELEASE_MACHINE_ONLY}") } else { "true".into() };
        let entry = format!(
            "schema-version: v2.2\ndd-service: svc-{service:04}\nteam: team-{:02}\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    build: {{provider: command, command: [\"true\"]}}\n    deploy:\n      provider: command\n      command: [\"{deploy}\"]\n      waves:\n        - {{name: all, targets: [a]}}\n    health:\n      gates:\n        - {{provider: command, command: [\"true\"]}}\n",
            service % org.teams
        );
        std::fs::write(catalog.join(format!("svc-{service:04}.yaml")), entry).unwrap();
    }
    // The store and a real record to copy, made by baton itself: the example service's release.
    let released = baton(state, &examples(), &["release", "hello-web", "--no-wait", "--json"]);
    assert!(released.status.success(), "{}", String::from_utf8_lossy(&released.stderr));
    let mut conn = rusqlite::Connection::open(baton_store_sqlite::database_path(state)).unwrap();
    let (example_id, body): (String, String) =
        conn.query_row("SELECT id, body FROM releases WHERE service = 'hello-web'", [], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
    let tx = conn.transaction().unwrap();
    let today = Utc::now().date_naive();
    let first_day = today - Duration::days(org.days - 1);
    let window_start = today - Duration::days(window - 1);
    let per_service = org.records / org.services;
    let mut team_figures = vec![(0u64, 0u64); org.teams];
    let lead_bucket = baton_domain::sketch::Sketch::bucket(1800.0);
    {
        let mut release = tx
            .prepare("INSERT INTO releases (id, service, environment, created_at, status, body, version) VALUES (?1, ?2, 'production', ?3, ?4, ?5, 3)")
            .unwrap();
        let mut rollup = tx
            .prepare(
                "INSERT INTO rollups (service, environment, day, deployments, failed_deployments, rollbacks, lead_time_seconds_total,
                     lead_time_samples, restore_seconds_total, restores, redeployments)
                 VALUES (?1, 'production', ?2, ?3, ?4, ?4, ?5, ?6, 0, 0, 0)",
            )
            .unwrap();
        let mut bucket = tx
            .prepare("INSERT INTO rollup_buckets (service, environment, day, figure, bucket, count) VALUES (?1, 'production', ?2, 'lead', ?3, ?4)")
            .unwrap();
        for service in 0..org.services {
            let name = format!("svc-{service:04}");
            let mut days: std::collections::BTreeMap<NaiveDate, (u64, u64)> = Default::default();
            for n in 0..per_service {
                // Spread over the year, a few a day.
                let day = first_day + Duration::days((n as i64 * org.days) / per_service as i64);
                let at: DateTime<Utc> = Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap()) + Duration::seconds(n as i64 % 3600);
                let failed = n % 10 == 9;
                let status = if failed { "rolled-back" } else { "succeeded" };
                let id = format!("rel-{name}-{}-{n:06}", at.format("%Y%m%d%H%M%S"));
                release
                    .execute(rusqlite::params![
                        id,
                        name,
                        at.timestamp_micros(),
                        status,
                        body.replace(&example_id, &id).replace("hello-web", &name)
                    ])
                    .unwrap();
                let entry = days.entry(day).or_default();
                entry.0 += 1;
                entry.1 += u64::from(failed);
            }
            for (day, (deployments, failed)) in days {
                let succeeded = deployments - failed;
                rollup.execute(rusqlite::params![name, day.num_days_from_ce(), deployments, failed, succeeded * 1800, succeeded]).unwrap();
                if succeeded > 0 {
                    bucket.execute(rusqlite::params![name, day.num_days_from_ce(), lead_bucket, succeeded]).unwrap();
                }
                if day >= window_start {
                    let team = &mut team_figures[service % org.teams];
                    team.0 += deployments;
                    team.1 += failed;
                }
            }
        }
    }
    tx.commit().unwrap();
    team_figures
}

fn baton(state: &Path, catalog: &Path, args: &[&str]) -> std::process::Output {
    baton_command(state, catalog, args).output().expect("run baton")
}

fn run(org: Organisation, repeats: usize) {
    let catalog = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let expected = generate(&org, catalog.path(), state.path(), 90);
    let loaded_in = started.elapsed();
    let size: u64 = std::fs::read_dir(state.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();

    let team = org.teams / 2;
    // The binary timed: this build's, or another (bench/dora.sh --release times a release build).
    let timed = std::env::var_os("BATON_DORA_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_baton").into());
    let mut times = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let args = ["dora", "--team", &format!("team-{team:02}"), "--since", "90d", "--json"];
        // The arguments of this build's command, given to the binary timed.
        let command = baton_command(state.path(), catalog.path(), &args);
        let output = Command::new(&timed).args(command.get_args()).output().expect("run baton");
        times.push(started.elapsed());
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let (deployments, failed) = expected[team];
        assert_eq!((report["deployments"].as_u64(), report["failed_deployments"].as_u64()), (Some(deployments), Some(failed)));
        assert_eq!(report["services"].as_array().unwrap().len(), org.services / org.teams);
        let p50 = report["lead_time"]["p50_seconds"].as_f64().unwrap();
        assert!((p50 - 1800.0).abs() <= 18.0, "lead time median {p50}");
    }
    // Releases stay as strict: the catalog's check refuses the program it cannot find.
    let validate = Command::new(env!("CARGO_BIN_EXE_baton")).args(["catalog", "validate"]).arg(catalog.path()).output().unwrap();
    assert_eq!(validate.status.code(), Some(1), "{}", String::from_utf8_lossy(&validate.stdout));
    assert!(String::from_utf8_lossy(&validate.stdout).contains(RELEASE_MACHINE_ONLY), "{}", String::from_utf8_lossy(&validate.stdout));
    // The first run reads the whole catalog; the others find the team's services in the index it kept.
    let first = times[0];
    times.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "dora at scale: {} release records, {} services, {} teams, {} days: loaded in {:.1} s, store {:.1} MiB; \
         `baton dora --team --since 90d` ({} services, {}) over {repeats} runs: p50 {:.1} ms, max {:.1} ms, \
         first (the catalog read in full) {:.1} ms",
        org.records,
        org.services,
        org.teams,
        org.days,
        loaded_in.as_secs_f64(),
        size as f64 / (1024.0 * 1024.0),
        org.services / org.teams,
        Path::new(&timed).display(),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        ms(first),
    );
}

#[test]
fn a_teams_figures_over_a_generated_organisation_are_exact() {
    run(Organisation { services: 40, teams: 4, records: 4_000, days: 365 }, 2);
}

/// `--team` finds its services through the catalog index kept in the state directory; an edit
/// of a service's team (same size, same second) shows in the next report.
#[test]
fn a_team_report_sees_a_catalog_edit_made_after_the_index() {
    let org = Organisation { services: 8, teams: 2, records: 80, days: 30 };
    let (catalog, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(&org, catalog.path(), state.path(), 30);
    // Files edited long ago: an index is kept only over a catalog that has settled.
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let settle = |file: &Path| std::fs::File::options().write(true).open(file).unwrap().set_modified(long_ago).unwrap();
    for file in std::fs::read_dir(catalog.path()).unwrap() {
        settle(&file.unwrap().path());
    }
    let services = |team: &str| {
        let output = baton(state.path(), catalog.path(), &["dora", "--team", team, "--since", "30d", "--json"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        report["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(services("team-01"), ["svc-0001", "svc-0003", "svc-0005", "svc-0007"]);
    assert!(state.path().join(baton_domain::catalog::REPORT_INDEX_FILE).is_file(), "the index is kept beside the store");
    assert_eq!(services("team-01"), ["svc-0001", "svc-0003", "svc-0005", "svc-0007"], "from the index");

    let moved = catalog.path().join("svc-0003.yaml");
    std::fs::write(&moved, std::fs::read_to_string(&moved).unwrap().replace("team: team-01", "team: team-00")).unwrap();
    settle(&moved);
    assert_eq!(services("team-01"), ["svc-0001", "svc-0005", "svc-0007"]);
    assert_eq!(services("team-00"), ["svc-0000", "svc-0002", "svc-0003", "svc-0004", "svc-0006"]);
}

#[test]
#[ignore = "the full benchmark: bench/dora.sh"]
fn dora_at_scale() {
    let records = std::env::var("BATON_DORA_RECORDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    run(Organisation { services: 2_000, teams: 50, records, days: 365 }, 10);
}

/// The status, body and time of a GET of `path` from the dashboard at `address`.
fn get(address: &str, path: &str) -> (u16, String, std::time::Duration) {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: dashboard\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let elapsed = started.elapsed();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body, elapsed)
}

/// `baton dashboard` over the generated organisation: each view's time to answer and its
/// weight, and a team page's deployments checked against what was generated.
fn serve_dashboard(org: Organisation, repeats: usize) {
    let catalog = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let expected = generate(&org, catalog.path(), state.path(), 90);
    let timed = std::env::var_os("BATON_DORA_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_baton").into());
    let command = baton_command(state.path(), catalog.path(), &["dashboard", "--serve", "127.0.0.1:0"]);
    let mut server = Served(Command::new(&timed).args(command.get_args()).stdout(std::process::Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.0.stdout.take().unwrap()), &mut line).unwrap();
    let address = line.split_whitespace().find_map(|w| w.strip_prefix("http://")).unwrap().trim_end_matches('/').to_owned();
    let team = org.teams / 2;
    let views = [
        ("now", "/".to_owned()),
        ("team", format!("/teams/team-{team:02}.html")),
        ("service", "/services/svc-0000.html".to_owned()),
        ("organisation", "/organisation.html".to_owned()),
    ];
    let mut figures = Vec::new();
    for (name, path) in &views {
        let mut times = Vec::new();
        let mut weight = 0;
        for _ in 0..repeats {
            let (status, body, elapsed) = get(&address, path);
            assert_eq!(status, 200, "{path}: {body}");
            times.push(elapsed);
            weight = body.len();
            if *name == "team" {
                let marker = format!(r#"data-figure="deployments" data-value="{}""#, expected[team].0);
                assert!(body.contains(&marker), "the team page shows the generated deployments ({marker})");
            }
        }
        times.sort();
        figures.push(format!(
            "{name} p50 {:.1} ms, max {:.1} ms, {:.1} KB",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0,
            weight as f64 / 1024.0
        ));
    }
    drop(server);
    println!(
        "dashboard at scale: {} release records, {} services, {} teams ({}), over {repeats} requests each: {}",
        org.records,
        org.services,
        org.teams,
        Path::new(&timed).display(),
        figures.join("; ")
    );
}

#[test]
fn the_dashboard_over_a_generated_organisation_shows_a_teams_figures() {
    serve_dashboard(Organisation { services: 40, teams: 4, records: 4_000, days: 365 }, 2);
}

#[test]
#[ignore = "the full benchmark: bench/dashboard.sh"]
fn dashboard_at_scale() {
    let records = std::env::var("BATON_DORA_RECORDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    serve_dashboard(Organisation { services: 2_000, teams: 50, records, days: 365 }, 10);
}

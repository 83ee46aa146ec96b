//! The site over a real embedded store: the pages it lists, what a hostile record cannot do to
//! them, and the server's refusals.

use crate::{ServeError, Site, export, serve};
use baton_contract::release_at;
use baton_domain::catalog::{CatalogLoader, ServiceEntry};
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{BuildRecord, BuildStatus, Failure, GateRecord, GateSample, ReleaseStatus, Stage, WaveRecord, WaveStatus};
use baton_domain::release::{Rollup, RollupKey};
use baton_store_sqlite::SqliteStore;
use chrono::{TimeDelta, Utc};
use std::io::{Read, Write};
use std::sync::Arc;

const ENTRY: &str = "
schema-version: v2.2
dd-service: web
team: platform
links:
  - {name: Source, type: repo, url: https://github.com/Acme/web}
extensions:
  baton:
    environment: production
    release-branch: main
    build: {provider: command, command: [sh, build.sh]}
    deploy:
      provider: command
      command: [sh, deploy.sh]
      waves:
        - {name: canary, targets: [a], bake: 5m}
        - {name: rest, targets: [b, c]}
    health: {gates: [{provider: command, command: [sh, health.sh]}]}
";

fn entry() -> ServiceEntry {
    let (mut entries, diagnostics) = CatalogLoader::new(baton_providers::registry()).parse("web.yaml", ENTRY);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    entries.remove(0)
}

/// A wave whose gate kept 6 samples of 7 taken, the fourth of those kept unhealthy.
fn watched_wave(baked_from: chrono::DateTime<Utc>) -> WaveRecord {
    let history: Vec<GateSample> = (0..6).map(|i| GateSample { at: baked_from + TimeDelta::seconds(30 * i), healthy: i != 3 }).collect();
    WaveRecord {
        name: "canary".into(),
        targets: vec!["a".into()],
        status: WaveStatus::Unhealthy,
        started_at: Some(baked_from - TimeDelta::minutes(1)),
        finished_at: Some(baked_from + TimeDelta::minutes(3)),
        deploy_url: None,
        deploys: Vec::new(),
        bake_started_at: Some(baked_from),
        gates: vec![GateRecord { gate: "<b>alarms</b>".into(), samples: 7, history, ..GateRecord::default() }],
    }
}

const SLACK_THREAD: &str = "https://acme.slack.com/archives/C1/p13";

/// A store with one finished release whose record holds markup and a script URL, and one running.
async fn site() -> Site {
    let store = SqliteStore::in_memory().unwrap();
    let now = Utc::now();
    let mut hostile = release_at("rel-web-1", "web", "production", now - TimeDelta::hours(2));
    hostile.status = ReleaseStatus::Failed;
    hostile.stage = Stage::Done;
    hostile.finished_at = Some(now - TimeDelta::hours(1));
    hostile.branch = "<img src=x onerror=alert(1)>".into();
    hostile.failure =
        Some(Failure { error: "Baton.BuildFailed".into(), cause: "<script>alert(1)</script>".into(), stage: Some(Stage::Build) });
    hostile.build = Some(BuildRecord {
        provider: "command".into(),
        run_id: "1".into(),
        url: Some("javascript:alert(1)".into()),
        queued_at: now - TimeDelta::hours(2),
        started_at: None,
        finished_at: Some(now - TimeDelta::hours(1)),
        status: BuildStatus::Failed,
        attempts: 1,
        reason: None,
        state: serde_json::Value::Null,
    });
    hostile.waves = vec![watched_wave(now - TimeDelta::minutes(100))];
    hostile.notifier_state.insert("slack".into(), serde_json::json!({"channel": "C1", "ts": "1.2", "permalink": "javascript:alert(1)"}));
    hostile.cost = Some(baton_domain::rules::cost::Cost { transitions: 187, invocations: 52, lambda_gb_seconds: 3.25, dollars: 0.0078125 });
    store.create_release(&hostile, "k1").await.unwrap();
    let mut running = release_at("rel-web-2", "web", "production", now - TimeDelta::minutes(3));
    running.status = ReleaseStatus::Running;
    running.notifier_state.insert("slack".into(), serde_json::json!({"channel": "C1", "ts": "1.3", "permalink": SLACK_THREAD}));
    store.create_release(&running, "k2").await.unwrap();
    // Interrupted days ago, it still holds the service's lock for `baton resume`.
    let mut interrupted = release_at("rel-web-0", "web", "production", now - TimeDelta::days(3));
    interrupted.status = ReleaseStatus::Interrupted;
    store.create_release(&interrupted, "k0").await.unwrap();
    let lock = baton_domain::release::LockKey::new("web", "production");
    store.try_lock(&lock, &interrupted.id, now, std::time::Duration::from_secs(3600)).await.unwrap();
    Site::new(Arc::new(store), vec![entry()], 30)
}

#[tokio::test]
async fn a_record_cannot_put_markup_or_a_script_link_on_a_page() {
    let site = site().await;
    for path in ["index.html", "services/web.html", "releases/rel-web-1.html"] {
        let page = site.page(path, Utc::now()).await.unwrap().unwrap().body;
        assert!(!page.contains("<script>alert") && !page.contains("<img src=x"), "{path} carries the record's markup");
        assert!(!page.contains("javascript:"), "{path} links a script URL");
    }
    let release = site.page("releases/rel-web-1.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(release.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the cause is shown, escaped");
}

#[tokio::test]
async fn the_release_page_charts_each_gates_kept_samples() {
    let site = site().await;
    let page = site.page("releases/rel-web-1.html", Utc::now()).await.unwrap().unwrap().body;
    let chart_at = page.find(r#"<svg class="chart gate-samples""#).expect("a chart of the gate's samples");
    let chart = &page[chart_at..chart_at + page[chart_at..].find("</svg>").unwrap()];
    assert!(
        chart.contains(r#"data-wave="canary" data-gate="&lt;b&gt;alarms&lt;/b&gt;" data-kept="6" data-healthy="5" data-samples="7""#),
        "{chart}"
    );
    let drawn: Vec<&str> = chart.match_indices(r#"data-healthy=""#).skip(1).map(|(at, _)| &chart[at + 14..at + 15]).collect();
    assert_eq!(drawn, ["t", "t", "t", "f", "t", "t"], "one bar a sample, in time order");
    assert!(page.contains("the latest 6 of 7"), "the caption says older samples were dropped");
    let none = site.page("releases/rel-web-2.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(!none.contains("gate-samples"), "no samples, no chart");
}

/// Histories as the journal or GetExecutionHistory give them; `exec-gone` cannot be read.
struct Histories;

#[async_trait::async_trait]
impl crate::ExecutionHistories for Histories {
    async fn history(&self, execution: &str, limit: usize) -> Result<Vec<serde_json::Value>, baton_domain::ports::StoreError> {
        if execution == "exec-gone" {
            return Err(baton_domain::ports::StoreError::refused("GetExecutionHistory: ExecutionDoesNotExist"));
        }
        let event = |id: usize| {
            serde_json::json!({
                "id": id, "previousEventId": id - 1, "type": "TaskScheduled",
                "timestamp": format!("2026-12-06T10:00:{:02}.000Z", id % 60),
                "taskScheduledEventDetails": {"resource": "arn:aws:states:::lambda:invoke", "resourceType": "lambda"},
            })
        };
        Ok((1..=crate::HISTORY_EVENTS + 40).map(event).take(limit).collect())
    }
}

#[tokio::test]
async fn the_release_page_shows_the_execution_history_or_why_it_cannot() {
    let store = SqliteStore::in_memory().unwrap();
    for (id, execution) in [("rel-web-1", "exec-1"), ("rel-web-2", "exec-gone")] {
        let mut release = release_at(id, "web", "production", Utc::now() - TimeDelta::hours(1));
        release.execution = Some(execution.into());
        store.create_release(&release, id).await.unwrap();
    }
    let site = Site::new(Arc::new(store), vec![entry()], 30).with_histories(Arc::new(Histories));
    let page = site.page("releases/rel-web-1.html", Utc::now()).await.unwrap().unwrap().body;
    assert_eq!(page.matches(r#"<tr data-history-type="TaskScheduled">"#).count(), crate::HISTORY_EVENTS, "a page shows a bounded history");
    assert!(page.contains("<td>invoke</td>") && page.contains("The first 500 events."), "{page}");
    let gone = site.page("releases/rel-web-2.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(gone.contains("Cannot read the execution history: ") && gone.contains("ExecutionDoesNotExist"), "{gone}");
    assert!(gone.contains(r#"<table id="waves">"#), "the record is still shown");
}

#[tokio::test]
async fn each_release_links_its_slack_thread_where_it_is_shown() {
    let site = site().await;
    let thread = format!(r#"<span class="slack-thread"><a href="{SLACK_THREAD}" rel="noopener noreferrer">Slack thread</a></span>"#);
    for path in ["index.html", "services/web.html", "releases/rel-web-2.html"] {
        let page = site.page(path, Utc::now()).await.unwrap().unwrap().body;
        assert_eq!(page.matches(&thread).count(), 1, "{path} links the running release's thread once: {page}");
    }
    let without = site.page("releases/rel-web-0.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(without.contains("<dt>slack</dt><dd>-</dd>"), "no message, no link");
}

#[tokio::test]
async fn each_release_shows_its_cost_once_counted() {
    let site = site().await;
    let cost = r#"<span class="cost" data-dollars="0.0078125" title="187 state transitions, 52 task invocations, 3.25 Lambda GB-s">$0.0078</span>"#;
    for path in ["services/web.html", "releases/rel-web-1.html"] {
        let page = site.page(path, Utc::now()).await.unwrap().unwrap().body;
        assert_eq!(page.matches(cost).count(), 1, "{path} shows the counted release's cost once: {page}");
    }
    let uncounted = site.page("releases/rel-web-0.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(uncounted.contains("<dt>cost</dt><dd>-</dd>"), "not counted, no figure");
}

#[tokio::test]
async fn the_dora_figures_say_how_many_lead_times_are_approximate() {
    let store = SqliteStore::in_memory().unwrap();
    let key = RollupKey { service: "web".into(), environment: "production".into(), day: Utc::now().date_naive() };
    let mut measured =
        Rollup { deployments: 3, lead_time_samples: 3, lead_time_seconds_total: 3 * 3600, lead_time_fallbacks: 2, ..Rollup::default() };
    for _ in 0..3 {
        measured.lead_times.add(3600.0);
    }
    store.add_rollup(&key, &measured).await.unwrap();
    let approximated = Site::new(Arc::new(store), vec![entry()], 30);
    let approximate = r#"<div class="muted" data-figure="lead-time-fallbacks" data-value="2">2 approximate: measured from a deployment's own commit alone</div>"#;
    for path in ["services/web.html", "teams/platform.html", "organisation.html"] {
        let page = approximated.page(path, Utc::now()).await.unwrap().unwrap().body;
        assert_eq!(page.matches(approximate).count(), 1, "{path}: {page}");
    }
    let exact = site().await.page("services/web.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(!exact.contains("lead-time-fallbacks"), "no fallback, nothing said: {exact}");
}

#[tokio::test]
async fn the_site_lists_every_view_and_writes_each_as_a_file() {
    let site = site().await;
    let paths = site.paths().await.unwrap();
    assert_eq!(
        paths,
        [
            "index.html",
            "organisation.html",
            "teams/platform.html",
            "repositories/acme~2fweb.html",
            "services/web.html",
            "releases/rel-web-2.html",
            "releases/rel-web-1.html",
            "releases/rel-web-0.html"
        ]
    );
    let now = Site::page(&site, "index.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(now.contains(r#"data-figure="open" data-value="2""#), "the running release and the old interrupted one are open: {now}");
    assert!(now.contains(r#"data-release="rel-web-0""#) && now.contains(r#"data-lock="web""#), "found by the lock it holds");
    assert!(site.page("services/nobody.html", Utc::now()).await.unwrap().is_none());
    assert!(site.page("teams/nobody.html", Utc::now()).await.unwrap().is_none());
    let repository = site.page("repositories/acme~2fweb.html", Utc::now()).await.unwrap().unwrap().body;
    assert!(repository.contains(r#"data-service="web""#), "the repository's page lists its services");
    assert!(site.page("repositories/acme~2fother.html", Utc::now()).await.unwrap().is_none());
    assert!(site.page("releases/rel-none.html", Utc::now()).await.unwrap().is_none());
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(export(&site, dir.path(), Utc::now()).await.unwrap(), paths.len());
    for path in &paths {
        assert!(dir.path().join(path).is_file(), "{path} written");
    }
}

/// The status line and body of a GET (or `method`) to `address`.
async fn request(address: std::net::SocketAddr, method: &str, target: &str, headers: &str) -> (u16, String) {
    let request = format!("{method} {target} HTTP/1.1\r\nHost: dashboard\r\nConnection: close\r\n{headers}\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, answer)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn served_on_loopback_it_answers_reads_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(Arc::new(site().await), listener, None));
    let (status, answer) = request(address, "GET", "/", "").await;
    assert_eq!(status, 200);
    assert!(answer.contains("content-security-policy: default-src 'none'"), "{answer}");
    assert_eq!(request(address, "GET", "/services/web.html", "").await.0, 200);
    assert_eq!(request(address, "GET", "/api/now.json", "").await.0, 200);
    assert_eq!(request(address, "GET", "/services/../../etc/passwd", "").await.0, 404);
    assert_eq!(request(address, "POST", "/", "Content-Length: 0\r\n").await.0, 405);
}

#[tokio::test]
async fn beyond_loopback_it_needs_a_token_and_asks_for_it() {
    let open = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    assert!(matches!(serve(Arc::new(site().await), open, None).await, Err(ServeError::ExposedWithoutToken(_))));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(Arc::new(site().await), listener, Some("s3cret".into())));
    assert_eq!(request(address, "GET", "/", "").await.0, 401);
    assert_eq!(request(address, "GET", "/", "Authorization: Bearer wrong\r\n").await.0, 401);
    assert_eq!(request(address, "GET", "/", "Authorization: Bearer s3cret\r\n").await.0, 200);
    let (status, answer) = request(address, "GET", "/?token=s3cret", "").await;
    assert_eq!(status, 200);
    assert!(answer.to_lowercase().contains("set-cookie: baton-dashboard-token=s3cret; httponly"), "{answer}");
    assert_eq!(request(address, "GET", "/", "Cookie: baton-dashboard-token=s3cret\r\n").await.0, 200);
}

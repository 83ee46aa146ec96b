//! What the contract suite cannot see: files, schema versions, corrupt records, SQLite's
//! locking across connections and staying off the async runtime's threads.

use baton_contract::release_at;
use baton_domain::ports::{Created, ReleaseStore, StoreError};
use baton_domain::release::{LockKey, Release, ReleaseId, Rollup, RollupKey, Stage, StageEvent};
use baton_store_sqlite::{SqliteStore, database_path, default_state_dir};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 15, 9, 26).unwrap()
}

fn release(id: &str) -> Release {
    release_at(id, "web", "prod", at())
}

fn event(id: &str) -> StageEvent {
    StageEvent {
        release_id: ReleaseId(id.into()),
        at: at(),
        stage: Stage::Build,
        wave: None,
        target: None,
        kind: baton_domain::release::EventKind::Started,
        message: "build".into(),
    }
}

fn rollup_key() -> RollupKey {
    RollupKey { service: "web".into(), environment: "prod".into(), day: NaiveDate::from_ymd_opt(2026, 3, 14).unwrap() }
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("a raw connection")
}

fn expect_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, mentions: &[&str]) {
    match result {
        Err(StoreError::Corrupt { message, .. }) => {
            for needle in mentions {
                assert!(message.contains(needle), "{message:?} should mention {needle:?}");
            }
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn open_creates_directories_and_a_wal_database_that_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = database_path(&dir.path().join("nested").join("state"));
    let store = SqliteStore::open(&path).expect("open creates what is missing");
    store.create_release(&release("rel-web-1"), "k1").await.unwrap();
    store.append_event(&event("rel-web-1")).await.unwrap();
    store.try_lock(&LockKey::new("web", "prod"), &ReleaseId("rel-web-1".into()), at(), Duration::from_secs(60)).await.unwrap();
    store.add_rollup(&rollup_key(), &Rollup { deployments: 2, ..Rollup::default() }).await.unwrap();
    drop(store);

    let conn = raw(&path);
    let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert!(version >= 1, "the schema version is recorded, found {version}");
    drop(conn);

    let reopened = SqliteStore::open(&path).expect("reopen");
    assert_eq!(reopened.get_release(&ReleaseId("rel-web-1".into())).await.unwrap(), Some(release("rel-web-1")));
    assert_eq!(reopened.events(&ReleaseId("rel-web-1".into())).await.unwrap(), vec![event("rel-web-1")]);
    assert!(reopened.lock_holder(&LockKey::new("web", "prod"), at()).await.unwrap().is_some());
    let day = rollup_key().day;
    assert_eq!(reopened.rollups("web", "prod", day, day).await.unwrap()[0].1.deployments, 2);
    assert_eq!(reopened.create_release(&release("rel-web-2"), "k1").await.unwrap(), Created::Existing(ReleaseId("rel-web-1".into())));
    let again: i64 = raw(&path).pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert_eq!(again, version, "reopening migrates nothing");
}

/// A database written before releases had versions: its rows read as version 0, and the first
/// conditional write takes them from there.
#[tokio::test]
async fn releases_from_before_versions_read_as_version_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let legacy = serde_json::to_value(release("rel-web-1")).unwrap();
    let mut body = legacy.as_object().unwrap().clone();
    body.remove("version");
    drop(SqliteStore::open(&path).unwrap());
    let conn = raw(&path);
    // What version 1 had: no version column, no journal or run owners, no rollup buckets, no kept
    // entries, no status and creation indexes, no lead time fallbacks, no waits.
    conn.execute_batch(
        "DROP INDEX releases_by_status; DROP INDEX releases_by_created;
         ALTER TABLE releases DROP COLUMN version; DROP TABLE journal; DROP TABLE run_owners;
         ALTER TABLE rollups DROP COLUMN redeployments; ALTER TABLE rollups DROP COLUMN lead_time_fallbacks; DROP TABLE rollup_buckets; DROP TABLE release_entries;
         DROP TABLE waits; PRAGMA user_version = 1",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO releases (id, service, environment, created_at, status, body) VALUES ('rel-web-1', 'web', 'prod', ?1, 'queued', ?2)",
        rusqlite::params![at().timestamp_micros(), serde_json::Value::Object(body).to_string()],
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).expect("the schema migrates");
    let read = store.get_release(&ReleaseId("rel-web-1".into())).await.unwrap().expect("the legacy release is readable");
    assert_eq!(read, release("rel-web-1"), "a record without a version reads as version 0");
    assert_eq!(store.put_release(&read).await.unwrap(), 1);
    assert!(matches!(store.put_release(&read).await, Err(StoreError::Conflict { .. })), "and is conditional from then on");
}

#[test]
fn a_schema_from_a_newer_baton_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    drop(SqliteStore::open(&path).unwrap());
    raw(&path).pragma_update(None, "user_version", 999).unwrap();
    expect_corrupt(SqliteStore::open(&path), &[&path.display().to_string(), "999"]);
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    std::fs::write(&path, "these are release notes, not a database ".repeat(200)).unwrap();
    expect_corrupt(SqliteStore::open(&path), &[&path.display().to_string()]);
}

#[test]
fn an_unusable_state_dir_is_unavailable_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    match SqliteStore::open(&file.join("baton.db")) {
        Err(StoreError::Unavailable { message, .. }) => assert!(message.contains("not-a-dir"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn unreadable_records_are_corrupt_and_name_their_release() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_release(&release("rel-web-1"), "k1").await.unwrap();
    store.create_release(&release("rel-web-2"), "k2").await.unwrap();
    store.append_event(&event("rel-web-1")).await.unwrap();
    let conn = raw(&path);
    conn.execute("UPDATE releases SET body = '{\"id\": \"rel-web-1\", \"status\": \"paused\"}' WHERE id = 'rel-web-1'", []).unwrap();
    conn.execute("UPDATE releases SET body = replace(body, 'rel-web-2', 'rel-web-9') WHERE id = 'rel-web-2'", []).unwrap();
    conn.execute("UPDATE events SET body = 'not json'", []).unwrap();

    expect_corrupt(store.get_release(&ReleaseId("rel-web-1".into())).await, &["rel-web-1"]);
    expect_corrupt(store.get_release(&ReleaseId("rel-web-2".into())).await, &["rel-web-2", "rel-web-9"]);
    expect_corrupt(store.list_releases("web", None, 10).await, &["rel-web-"]);
    expect_corrupt(store.events(&ReleaseId("rel-web-1".into())).await, &["rel-web-1"]);

    let key = LockKey::new("web", "prod");
    store.try_lock(&key, &ReleaseId("rel-web-1".into()), at(), Duration::from_secs(60)).await.unwrap();
    conn.execute("UPDATE locks SET expires_at = 9223372036854775807", []).unwrap();
    expect_corrupt(store.lock_holder(&key, at()).await, &["web#prod"]);

    conn.execute("INSERT INTO rollups VALUES ('web', 'prod', 739000, -1, 0, 0, 0, 0, 0, 0, 0, 0)", []).unwrap();
    let day = NaiveDate::from_num_days_from_ce_opt(739000).unwrap();
    expect_corrupt(store.rollups("web", "prod", day, day).await, &["rollups"]);
    // A sketch bucket whose day has no rollup.
    conn.execute("DELETE FROM rollups", []).unwrap();
    conn.execute("INSERT INTO rollups VALUES ('web', 'prod', 739000, 1, 0, 0, 0, 0, 0, 0, 0, 0)", []).unwrap();
    conn.execute("INSERT INTO rollup_buckets VALUES ('web', 'prod', 739001, 'lead', 5, 1)", []).unwrap();
    let next = day.succ_opt().unwrap();
    expect_corrupt(store.rollups("web", "prod", day, next).await, &["739001", "no rollup of that day"]);
}

#[tokio::test]
async fn a_held_write_lock_makes_writes_unavailable_while_reads_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let store = SqliteStore::open(&path).unwrap().with_busy_timeout(Duration::from_millis(50)).unwrap();
    store.create_release(&release("rel-web-1"), "k1").await.unwrap();

    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    match store.create_release(&release("rel-web-2"), "k2").await {
        Err(StoreError::Unavailable { message, .. }) => assert!(message.contains("create_release"), "{message}"),
        other => panic!("a write behind another connection's lock must be Unavailable, got {other:?}"),
    }
    assert!(store.get_release(&ReleaseId("rel-web-1".into())).await.unwrap().is_some(), "WAL readers do not wait for writers");

    other.execute_batch("COMMIT").unwrap();
    assert_eq!(store.create_release(&release("rel-web-2"), "k2").await.unwrap(), Created::New(ReleaseId("rel-web-2".into())));
}

/// Every report opens the store: opening one already at this schema version writes nothing, so
/// it neither waits for a release's write lock nor leaves anything to checkpoint (an fsync of the
/// whole database, on close, that grew with the store).
#[tokio::test]
async fn opening_an_up_to_date_store_writes_nothing_and_waits_for_no_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    SqliteStore::open(&path).unwrap().create_release(&release("rel-web-1"), "k1").await.unwrap();

    let writer = raw(&path);
    writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let store = SqliteStore::open(&path).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "opened in {:?}, behind the writer", started.elapsed());
    assert!(store.get_release(&ReleaseId("rel-web-1".into())).await.unwrap().is_some());
    writer.execute_batch("COMMIT").unwrap();
    let wal = std::fs::metadata(dir.path().join("baton.db-wal")).map_or(0, |meta| meta.len());
    assert_eq!(wal, 0, "nothing written to the write-ahead log");
}

/// On a single-threaded runtime, a store call waiting for SQLite's lock must leave the thread
/// free: the lock below is released by this very task, so blocking it would time out.
#[tokio::test(flavor = "current_thread")]
async fn waiting_for_the_database_does_not_block_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let store = SqliteStore::open(&path).unwrap();
    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let writer = store.clone();
    let write = tokio::spawn(async move { writer.create_release(&release("rel-web-1"), "k1").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!write.is_finished(), "the write waits for the lock");
    other.execute_batch("COMMIT").unwrap();

    let created = tokio::time::timeout(Duration::from_secs(2), write).await.expect("the write proceeds once the lock is free");
    assert_eq!(created.unwrap().unwrap(), Created::New(ReleaseId("rel-web-1".into())));
}

/// Many connections writing at once: every write lands, none fails on a lock conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_many_connections_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.db");
    let stores: Vec<SqliteStore> = (0..8).map(|_| SqliteStore::open(&path).unwrap()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = stores[i % stores.len()].clone();
        tasks.spawn(async move {
            store.create_release(&release(&format!("rel-web-{i}")), &format!("k{i}")).await?;
            store.add_rollup(&rollup_key(), &Rollup { deployments: 1, ..Rollup::default() }).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap().expect("every racing write succeeds");
    }
    assert_eq!(stores[0].list_releases("web", None, 100).await.unwrap().len(), 64);
    let day = rollup_key().day;
    assert_eq!(stores[1].rollups("web", "prod", day, day).await.unwrap()[0].1.deployments, 64);
}

#[tokio::test]
async fn a_release_id_taken_under_another_key_conflicts() {
    let store = SqliteStore::in_memory().unwrap();
    store.create_release(&release("rel-web-1"), "k1").await.unwrap();
    match store.create_release(&release("rel-web-1"), "k2").await {
        Err(StoreError::Conflict { message, .. }) => assert!(message.contains("rel-web-1"), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.create_release(&release("rel-web-2"), "k2").await.unwrap(),
        Created::New(ReleaseId("rel-web-2".into())),
        "the refused key stays free"
    );
}

#[tokio::test]
async fn out_of_range_leases_and_counters_are_refused_without_writing() {
    let store = SqliteStore::in_memory().unwrap();
    let key = LockKey::new("web", "prod");
    let holder = ReleaseId("rel-web-1".into());
    assert!(matches!(store.try_lock(&key, &holder, at(), Duration::MAX).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.lock_holder(&key, at()).await.unwrap(), None);

    let day = rollup_key().day;
    let too_big = Rollup { restores: u64::MAX, ..Rollup::default() };
    assert!(matches!(store.add_rollup(&rollup_key(), &too_big).await, Err(StoreError::Conflict { .. })));
    assert_eq!(store.rollups("web", "prod", day, day).await.unwrap(), vec![]);

    let max = Rollup { lead_time_seconds_total: i64::MAX as u64, ..Rollup::default() };
    store.add_rollup(&rollup_key(), &max).await.unwrap();
    match store.add_rollup(&rollup_key(), &Rollup { lead_time_seconds_total: 1, deployments: 1, ..Rollup::default() }).await {
        Err(StoreError::Conflict { message, .. }) => assert!(message.contains("web/prod/2026-03-14"), "{message}"),
        other => panic!("an overflowing sum must be refused, got {other:?}"),
    }
    assert_eq!(store.rollups("web", "prod", day, day).await.unwrap(), vec![(day, max)], "a refused add changes nothing");
}

#[test]
fn the_default_state_dir_is_baton_under_the_data_dir() {
    let dir = default_state_dir();
    match dirs::data_dir() {
        Some(data) => assert_eq!(dir, data.join("baton")),
        None => assert_eq!(dir, Path::new(".baton")),
    }
    assert_eq!(database_path(&dir), dir.join("baton.db"));
}

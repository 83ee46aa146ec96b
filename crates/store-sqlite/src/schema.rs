//! The database schema, as numbered migrations. `PRAGMA user_version` records how many have
//! run; a database opened by an older Baton is brought up to date, one written by a newer
//! Baton is refused rather than guessed at.

use crate::failure::Failure;
use baton_domain::ports::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// Migration `n` (0-based) takes the schema from version `n` to `n + 1`. Append only: a
/// released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: releases, idempotency keys, events, locks, rollups.
    //
    // Timestamps are INTEGER microseconds since the Unix epoch (UTC) so they order as numbers;
    // rollup days are INTEGER days from the Common Era (chrono's num_days_from_ce), likewise.
    r#"
    CREATE TABLE releases (
        id          TEXT    NOT NULL PRIMARY KEY,
        service     TEXT    NOT NULL,
        environment TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        status      TEXT    NOT NULL,
        body        TEXT    NOT NULL
    ) STRICT;
    -- list_releases, with and without an environment: both walk an index backwards, no sort.
    CREATE INDEX releases_by_service ON releases (service, created_at, id);
    CREATE INDEX releases_by_service_environment ON releases (service, environment, created_at, id);

    CREATE TABLE idempotency_keys (
        key        TEXT NOT NULL PRIMARY KEY,
        release_id TEXT NOT NULL REFERENCES releases (id)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE events (
        -- AUTOINCREMENT never reuses a value, so seq is append order: it breaks ties in `at`.
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        release_id TEXT    NOT NULL,
        at         INTEGER NOT NULL,
        body       TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX events_by_release ON events (release_id, at, seq);

    CREATE TABLE locks (
        key        TEXT    NOT NULL PRIMARY KEY,
        holder     TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE rollups (
        service                 TEXT    NOT NULL,
        environment             TEXT    NOT NULL,
        day                     INTEGER NOT NULL,
        deployments             INTEGER NOT NULL,
        failed_deployments      INTEGER NOT NULL,
        rollbacks               INTEGER NOT NULL,
        lead_time_seconds_total INTEGER NOT NULL,
        lead_time_samples       INTEGER NOT NULL,
        restore_seconds_total   INTEGER NOT NULL,
        restores                INTEGER NOT NULL,
        PRIMARY KEY (service, environment, day)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 2: release versions, for writes conditioned on the version they read. Rows written
    // before read as version 0, as do their bodies, which have no version.
    r#"
    ALTER TABLE releases ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: the local runner's journal: each execution's history events as they happen, so a
    // killed release can be read and resumed. seq runs on across the execution's resumed runs.
    r#"
    CREATE TABLE journal (
        execution TEXT    NOT NULL,
        seq       INTEGER NOT NULL,
        body      TEXT    NOT NULL,
        PRIMARY KEY (execution, seq)
    ) STRICT;
    -- Local runs in progress: the running process's heartbeat (microseconds), so another
    -- process tells a live run from a killed one, and a person's request to cancel it.
    CREATE TABLE runs (
        execution TEXT    NOT NULL PRIMARY KEY,
        beat_at   INTEGER NOT NULL,
        cancel    TEXT
    ) STRICT;
    "#,
    // 4: DORA quantiles. Each rollup's lead times and times to restore as sketch buckets
    // (baton_domain::sketch), counters added to like the rollup's own; and redeployments.
    // Days rolled up before have no buckets: their means stay, their quantiles are unknown.
    r#"
    ALTER TABLE rollups ADD COLUMN redeployments INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE rollup_buckets (
        service     TEXT    NOT NULL,
        environment TEXT    NOT NULL,
        day         INTEGER NOT NULL,
        figure      TEXT    NOT NULL,
        bucket      INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        PRIMARY KEY (service, environment, day, figure, bucket)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 5: runs become owned (ReleaseStore::claim_run): one owner at a time, fenced. A run's row
    // outlives its owner (owner NULL once ended) so that the next claim's fence is greater.
    r#"
    DROP TABLE runs;
    CREATE TABLE run_owners (
        run     TEXT    NOT NULL PRIMARY KEY,
        owner   TEXT,
        fence   INTEGER NOT NULL,
        beat_at INTEGER NOT NULL,
        cancel  TEXT
    ) STRICT, WITHOUT ROWID;
    "#,
    // 6: the catalog entry each release was registered with (ReleaseStore::keep_entry), read by
    // its tasks instead of carried in the execution's state.
    r#"
    CREATE TABLE release_entries (
        release_id TEXT NOT NULL PRIMARY KEY,
        entry      TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;
    "#,
    // 7: the Now view (ReleaseStore::open_or_created_since) reads the open releases and the
    // last day's across services, by index rather than through every record.
    r#"
    CREATE INDEX releases_by_status ON releases (status);
    CREATE INDEX releases_by_created ON releases (created_at);
    "#,
    // 8: deployments whose lead time fell back to their own commit, counted like the rest.
    r#"
    ALTER TABLE rollups ADD COLUMN lead_time_fallbacks INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: releases parked on a provider's event (WaitRegistry), one row per key and release.
    r#"
    CREATE TABLE waits (
        key        TEXT    NOT NULL,
        release_id TEXT    NOT NULL,
        token      TEXT    NOT NULL,
        until      INTEGER NOT NULL,
        PRIMARY KEY (key, release_id)
    ) STRICT, WITHOUT ROWID;
    "#,
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`SCHEMA_VERSION`]. A database already there is only read: every
/// command opens the store, and a write on each open (the version, rewritten) would make every
/// reader a writer, waiting for a release's write lock and checkpointing on close. The
/// immediate transaction serialises processes opening the same older or fresh database at
/// once: the second sees the first's work.
pub(crate) fn migrate(conn: &mut Connection, location: &str) -> Result<(), Failure> {
    if applied(conn, location)? == MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for migration in &MIGRATIONS[applied(&tx, location)?..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// How many migrations the database has had, refusing a version this build does not know.
fn applied(conn: &Connection, location: &str) -> Result<usize, Failure> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(found).ok().filter(|&applied| applied <= MIGRATIONS.len()).ok_or_else(|| {
        StoreError::corrupt(format!(
            "{location}: schema version {found} is not one this Baton knows (0 to {SCHEMA_VERSION}); \
                 a newer Baton wrote it, or it was edited by hand"
        ))
    })?;
    Ok(applied)
}

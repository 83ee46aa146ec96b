//! The embedded release store: SQLite, implementing baton-domain's [`ReleaseStore`].
//!
//! One [`SqliteStore`] owns one connection. Every call runs on tokio's blocking pool
//! (`spawn_blocking`), never on a runtime worker, and calls through one store take turns on
//! its connection. Several stores or processes may share a database file: writes take
//! SQLite's write lock up front (`BEGIN IMMEDIATE`) and wait up to [`BUSY_TIMEOUT`] for it,
//! after which the call fails with [`StoreError::Unavailable`], worth retrying.
//!
//! Records are kept as JSON next to the columns the queries need; timestamps in those
//! columns are microseconds since the Unix epoch, so lock expiry and orderings are exact to
//! the microsecond, and the JSON keeps the records' timestamps to the nanosecond.

mod failure;
mod journal;
mod schema;

use async_trait::async_trait;
use baton_domain::catalog::ServiceEntry;
use baton_domain::ports::{Beat, Claim, Created, LockOutcome, ReleaseStore, RunOwner, StoreError, WaitRegistry};
use baton_domain::redact::scrub_owned;
use baton_domain::release::{LockInfo, LockKey, Release, ReleaseId, ReleaseStatus, Rollup, RollupKey, StageEvent, TaskToken};
use baton_domain::sketch::Sketch;
use baton_domain::waits::{Parked, WaitKey};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use failure::Failure;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The database's file name inside the state directory.
pub const DATABASE_FILE: &str = "baton.db";

/// How long a write waits for another connection's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Baton keeps local state unless told otherwise (the CLI's `--state-dir`): the
/// platform's data directory (`~/.local/share/baton` on Linux, `~/Library/Application
/// Support/baton` on macOS), or `.baton` in the working directory when there is none
/// (no home directory).
pub fn default_state_dir() -> PathBuf {
    dirs::data_dir().map_or_else(|| PathBuf::from(".baton"), |dir| dir.join("baton"))
}

/// The database file of a state directory.
pub fn database_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DATABASE_FILE)
}

/// The SQLite release store. Cloning is cheap and shares the connection.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The database file, or `:memory:`; prefixes error messages.
    location: String,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the database at `path`, in
    /// WAL mode, migrating its schema to this version. Blocks briefly: call it at startup,
    /// not from a hot async path.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| {
                StoreError::unavailable(format!("{location}: cannot create directory {}", parent.display())).caused_by(err)
            })?;
        }
        let conn = Connection::open(path).map_err(|err| Failure::from(err).into_store_error(&location))?;
        Self::init(conn, location, true)
    }

    /// A private database that lives as long as the store: for tests and dry runs.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let location = ":memory:".to_owned();
        let conn = Connection::open_in_memory().map_err(|err| Failure::from(err).into_store_error(&location))?;
        Self::init(conn, location, false)
    }

    fn init(mut conn: Connection, location: String, file: bool) -> Result<SqliteStore, StoreError> {
        let configure = |conn: &mut Connection| -> Result<(), Failure> {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            if file {
                // WAL lets readers (another `baton status`) proceed while a release writes.
                let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    return Err(StoreError::unavailable(format!("{location}: SQLite refused WAL mode (journal_mode is {mode})")).into());
                }
                // Safe with WAL: a power cut may lose the last commits, never consistency.
                conn.pragma_update(None, "synchronous", "NORMAL")?;
            }
            conn.pragma_update(None, "foreign_keys", true)?;
            schema::migrate(conn, &location)
        };
        configure(&mut conn).map_err(|failure| failure.into_store_error(&location))?;
        Ok(SqliteStore { inner: Arc::new(Inner { location, conn: Mutex::new(conn) }) })
    }

    /// Sets how long writes wait for another connection's write lock (default [`BUSY_TIMEOUT`])
    /// before failing with [`StoreError::Unavailable`].
    pub fn with_busy_timeout(self, timeout: Duration) -> Result<SqliteStore, StoreError> {
        let set = self.inner.conn.lock().unwrap_or_else(PoisonError::into_inner).busy_timeout(timeout);
        set.map_err(|err| Failure::from(err).into_store_error(&self.inner.location))?;
        Ok(self)
    }

    /// Runs `work` on the connection, on the blocking pool.
    async fn call<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic inside `work` rolled its transaction back while unwinding, so the
            // connection behind a poisoned lock is still sound.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn).map_err(|failure| failure.into_store_error(&format!("{}: {operation}", inner.location)))
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(StoreError::unavailable(format!("{}: {operation}", self.inner.location)).caused_by(err)),
        }
    }

    /// A service's releases created at `since` (microseconds) or later, newest first, at most
    /// `limit` (negative: all of them).
    async fn list(
        &self,
        operation: &'static str,
        service: &str,
        environment: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Release>, StoreError> {
        let service = service.to_owned();
        let environment = environment.map(str::to_owned);
        self.call(operation, move |conn| {
            // Two statements rather than `(?2 IS NULL OR environment = ?2)`, which would keep
            // the planner from using the environment index.
            match environment {
                Some(environment) => decode_releases(&mut conn.prepare_cached(LIST_BY_SERVICE_ENVIRONMENT)?.query(params![
                    service,
                    environment,
                    since,
                    limit
                ])?),
                None => decode_releases(&mut conn.prepare_cached(LIST_BY_SERVICE)?.query(params![service, since, limit])?),
            }
        })
        .await
    }

    /// Runs `work` in a transaction that holds the write lock from its start, so what it
    /// reads stays true until it commits, across connections and processes.
    async fn write<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, Failure> + Send + 'static,
    {
        self.call(operation, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = work(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

// list_releases and releases_since, newest first, from a creation time (microseconds) on, at
// most LIMIT of them (SQLite reads a negative LIMIT as none). The id breaks ties so that the
// order is stable.
const LIST_BY_SERVICE: &str =
    "SELECT id, body FROM releases WHERE service = ?1 AND created_at >= ?2 ORDER BY created_at DESC, id DESC LIMIT ?3";
const LIST_BY_SERVICE_ENVIRONMENT: &str = "SELECT id, body FROM releases WHERE service = ?1 AND environment = ?2 AND created_at >= ?3 \
     ORDER BY created_at DESC, id DESC LIMIT ?4";

/// The columns of a release row, computed before the blocking call takes them.
struct ReleaseRow {
    id: String,
    service: String,
    environment: String,
    created_at: i64,
    status: &'static str,
    /// The version this row is stored at; the body carries it too.
    version: i64,
    body: String,
}

impl ReleaseRow {
    /// The row of `release` stored at `version`.
    fn new(release: &Release, version: u64) -> Result<ReleaseRow, StoreError> {
        let stored_version = i64::try_from(version)
            .map_err(|_| StoreError::conflict(format!("release {}: version {version} is beyond what the store counts", release.id)))?;
        let body = serde_json::to_string(&Release { version, ..release.clone() })
            .map_err(|err| StoreError::corrupt(format!("release {}: cannot be encoded as JSON", release.id)).caused_by(err))?;
        // Records outlive the process and are shown to anyone who can read the store.
        let body = scrub_owned(body);
        Ok(ReleaseRow {
            id: release.id.0.clone(),
            service: release.service.clone(),
            environment: release.environment.clone(),
            created_at: release.created_at.timestamp_micros(),
            status: release.status.as_str(),
            version: stored_version,
            body,
        })
    }

    /// The row replacing `release`, which was read at `release.version`, and that version.
    fn next(release: &Release) -> Result<(ReleaseRow, i64), StoreError> {
        let read = i64::try_from(release.version)
            .map_err(|_| StoreError::conflict(format!("release {}: version {} is not one the store wrote", release.id, release.version)))?;
        Ok((ReleaseRow::new(release, release.version + 1)?, read))
    }
}

fn decode_release(id: &str, body: &str) -> Result<Release, StoreError> {
    let release: Release = serde_json::from_str(body)
        .map_err(|err| StoreError::corrupt(format!("release {id}: the stored record is not a readable release")).caused_by(err))?;
    if release.id.0 != id {
        return Err(StoreError::corrupt(format!("release {id}: the stored record names another release, {}", release.id)));
    }
    Ok(release)
}

fn decode_releases(rows: &mut rusqlite::Rows<'_>) -> Result<Vec<Release>, Failure> {
    let mut releases = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let body: String = row.get(1)?;
        releases.push(decode_release(&id, &body)?);
    }
    Ok(releases)
}

fn lock_info(row: &Row<'_>) -> rusqlite::Result<(String, i64)> {
    Ok((row.get(0)?, row.get(1)?))
}

fn decode_lock(key: &str, (holder, expires_at): (String, i64)) -> Result<LockInfo, StoreError> {
    let expires_at = DateTime::from_timestamp_micros(expires_at)
        .ok_or_else(|| StoreError::corrupt(format!("lock {key}: expires_at {expires_at} is not a representable time")))?;
    Ok(LockInfo { holder: ReleaseId(holder), expires_at })
}

fn decode_rollup(row: &Row<'_>) -> Result<(NaiveDate, Rollup), Failure> {
    let day: i32 = row.get(0)?;
    let day = NaiveDate::from_num_days_from_ce_opt(day)
        .ok_or_else(|| StoreError::corrupt(format!("rollup day {day} is not a representable date")))?;
    let rollup = Rollup {
        deployments: row.get(1)?,
        failed_deployments: row.get(2)?,
        rollbacks: row.get(3)?,
        lead_time_seconds_total: row.get(4)?,
        lead_time_samples: row.get(5)?,
        restore_seconds_total: row.get(6)?,
        restores: row.get(7)?,
        redeployments: row.get(8)?,
        lead_time_fallbacks: row.get(9)?,
        ..Rollup::default()
    };
    Ok((day, rollup))
}

const LEAD_TIMES: &str = "lead";
const RESTORE_TIMES: &str = "restore";

/// The rollup's sketches, by the name their buckets are stored under.
fn sketches(rollup: &Rollup) -> [(&'static str, &Sketch); 2] {
    [(LEAD_TIMES, &rollup.lead_times), (RESTORE_TIMES, &rollup.restore_times)]
}

#[async_trait]
impl WaitRegistry for SqliteStore {
    async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
        let (key, release, token, until) = (wait.key.to_string(), wait.release.0.clone(), wait.token.expose().to_owned(), wait.until);
        self.write("park", move |tx| {
            tx.prepare_cached(
                "INSERT INTO waits (key, release_id, token, until) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key, release_id) DO UPDATE SET token = excluded.token, until = excluded.until",
            )?
            .execute(params![key, release, token, until.timestamp_micros()])?;
            Ok(())
        })
        .await
    }

    async fn take(&self, key: &WaitKey, now: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
        let wanted = key.clone();
        let now = now.timestamp_micros();
        self.write("take", move |tx| {
            let key = wanted.to_string();
            let rows: Vec<(String, String, i64)> = tx
                .prepare_cached("DELETE FROM waits WHERE key = ?1 RETURNING release_id, token, until")?
                .query_map([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            // Waits nobody's event came for (their tasks timed out) go with the next take.
            tx.prepare_cached("DELETE FROM waits WHERE until <= ?1")?.execute([now])?;
            let mut taken = Vec::new();
            for (release, token, until) in rows.into_iter().filter(|(_, _, until)| *until > now) {
                let until = DateTime::from_timestamp_micros(until)
                    .ok_or_else(|| StoreError::corrupt(format!("wait on {key} for {release}: until {until} is out of range")))?;
                taken.push(Parked { key: wanted.clone(), release: ReleaseId(release), token: TaskToken(token), until });
            }
            Ok(taken)
        })
        .await
    }
}

#[async_trait]
impl ReleaseStore for SqliteStore {
    async fn create_release(&self, release: &Release, idempotency_key: &str) -> Result<Created, StoreError> {
        let row = ReleaseRow::new(release, release.version)?;
        let key = idempotency_key.to_owned();
        self.write("create_release", move |tx| {
            let existing: Option<String> =
                tx.prepare_cached("SELECT release_id FROM idempotency_keys WHERE key = ?1")?.query_row([&key], |r| r.get(0)).optional()?;
            if let Some(existing) = existing {
                return Ok(Created::Existing(ReleaseId(existing)));
            }
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO releases (id, service, environment, created_at, status, version, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![row.id, row.service, row.environment, row.created_at, row.status, row.version, row.body])?;
            if inserted == 0 {
                return Err(StoreError::conflict(format!("release {} already exists under another idempotency key", row.id)).into());
            }
            tx.prepare_cached("INSERT INTO idempotency_keys (key, release_id) VALUES (?1, ?2)")?.execute(params![key, row.id])?;
            Ok(Created::New(ReleaseId(row.id)))
        })
        .await
    }

    async fn get_release(&self, id: &ReleaseId) -> Result<Option<Release>, StoreError> {
        let id = id.0.clone();
        self.call("get_release", move |conn| {
            let body: Option<String> =
                conn.prepare_cached("SELECT body FROM releases WHERE id = ?1")?.query_row([&id], |r| r.get(0)).optional()?;
            Ok(body.map(|body| decode_release(&id, &body)).transpose()?)
        })
        .await
    }

    async fn keep_entry(&self, id: &ReleaseId, entry: &ServiceEntry) -> Result<(), StoreError> {
        let id = id.0.clone();
        // Kept as the catalog holds it, unscrubbed: it is configuration the tasks act on.
        let entry = serde_json::to_string(entry)
            .map_err(|err| StoreError::corrupt(format!("release {id}: the catalog entry cannot be encoded as JSON")).caused_by(err))?;
        self.write("keep_entry", move |tx| {
            tx.prepare_cached("INSERT INTO release_entries (release_id, entry) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
                .execute(params![id, entry])?;
            Ok(())
        })
        .await
    }

    async fn kept_entry(&self, id: &ReleaseId) -> Result<Option<ServiceEntry>, StoreError> {
        let id = id.0.clone();
        self.call("kept_entry", move |conn| {
            let entry: Option<String> = conn
                .prepare_cached("SELECT entry FROM release_entries WHERE release_id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let decode = |entry: String| {
                serde_json::from_str(&entry)
                    .map_err(|err| StoreError::corrupt(format!("release {id}: the kept catalog entry is not readable")).caused_by(err))
            };
            Ok(entry.map(decode).transpose()?)
        })
        .await
    }

    async fn put_release(&self, release: &Release) -> Result<u64, StoreError> {
        let (row, read) = ReleaseRow::next(release)?;
        let version = release.version + 1;
        self.write("put_release", move |tx| {
            replace_release(tx, &row, read)?;
            Ok(version)
        })
        .await
    }

    async fn request_cancel(&self, id: &ReleaseId, reason: &str) -> Result<bool, StoreError> {
        let (id, reason) = (id.0.clone(), reason.to_owned());
        self.write("request_cancel", move |tx| {
            let body: Option<String> =
                tx.prepare_cached("SELECT body FROM releases WHERE id = ?1")?.query_row([&id], |r| r.get(0)).optional()?;
            let Some(mut release) = body.map(|body| decode_release(&id, &body)).transpose()? else { return Ok(false) };
            if release.status.is_terminal() {
                return Ok(false);
            }
            if release.cancel_requested.is_none() {
                release.cancel_requested = Some(reason);
                // A new version: a writer holding the record as it was read before conflicts,
                // reads it again and keeps the request.
                let (row, read) = ReleaseRow::next(&release)?;
                replace_release(tx, &row, read)?;
            }
            Ok(true)
        })
        .await
    }

    async fn list_releases(&self, service: &str, environment: Option<&str>, limit: usize) -> Result<Vec<Release>, StoreError> {
        self.list("list_releases", service, environment, i64::MIN, i64::try_from(limit).unwrap_or(i64::MAX)).await
    }

    async fn releases_since(&self, service: &str, environment: Option<&str>, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        self.list("releases_since", service, environment, since.timestamp_micros(), -1).await
    }

    async fn open_or_created_since(&self, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        let mut values: Vec<rusqlite::types::Value> = ReleaseStatus::OPEN.iter().map(|s| s.as_str().to_owned().into()).collect();
        let statuses = vec!["?"; values.len()].join(", ");
        values.push(since.timestamp_micros().into());
        self.call("open_or_created_since", move |conn| {
            let sql = format!(
                "SELECT id, body FROM releases WHERE status IN ({statuses}) UNION SELECT id, body FROM releases WHERE created_at >= ?"
            );
            decode_releases(&mut conn.prepare_cached(&sql)?.query(rusqlite::params_from_iter(values))?)
        })
        .await
    }

    async fn append_event(&self, event: &StageEvent) -> Result<(), StoreError> {
        let release_id = event.release_id.0.clone();
        let at = event.at.timestamp_micros();
        let body = serde_json::to_string(event)
            .map_err(|err| StoreError::corrupt(format!("an event of release {release_id} cannot be encoded as JSON")).caused_by(err))?;
        let body = scrub_owned(body);
        self.write("append_event", move |tx| {
            tx.prepare_cached("INSERT INTO events (release_id, at, body) VALUES (?1, ?2, ?3)")?.execute(params![release_id, at, body])?;
            Ok(())
        })
        .await
    }

    async fn events(&self, id: &ReleaseId) -> Result<Vec<StageEvent>, StoreError> {
        let id = id.0.clone();
        self.call("events", move |conn| {
            let mut statement = conn.prepare_cached("SELECT seq, body FROM events WHERE release_id = ?1 ORDER BY at, seq")?;
            let mut rows = statement.query([&id])?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let body: String = row.get(1)?;
                let event = serde_json::from_str(&body)
                    .map_err(|err| StoreError::corrupt(format!("release {id}: event {seq} is not a readable event")).caused_by(err))?;
                events.push(event);
            }
            Ok(events)
        })
        .await
    }

    async fn try_lock(&self, key: &LockKey, holder: &ReleaseId, now: DateTime<Utc>, lease: Duration) -> Result<LockOutcome, StoreError> {
        let key = key.0.clone();
        let holder = holder.0.clone();
        let now = now.timestamp_micros();
        let expires_at = i64::try_from(lease.as_micros())
            .ok()
            .and_then(|lease| now.checked_add(lease))
            .filter(|&at| DateTime::from_timestamp_micros(at).is_some())
            .ok_or_else(|| StoreError::conflict(format!("lock {key}: a lease of {lease:?} ends beyond the representable time range")))?;
        self.write("try_lock", move |tx| {
            // One statement decides: insert when free, take over when ours or expired, else leave it.
            let taken = tx
                .prepare_cached(
                    "INSERT INTO locks (key, holder, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE locks.holder = excluded.holder OR locks.expires_at <= ?4",
                )?
                .execute(params![key, holder, expires_at, now])?;
            if taken == 1 {
                return Ok(LockOutcome::Acquired);
            }
            let current = tx.prepare_cached("SELECT holder, expires_at FROM locks WHERE key = ?1")?.query_row([&key], lock_info)?;
            Ok(LockOutcome::HeldBy(decode_lock(&key, current)?))
        })
        .await
    }

    async fn unlock(&self, key: &LockKey, holder: &ReleaseId) -> Result<bool, StoreError> {
        let key = key.0.clone();
        let holder = holder.0.clone();
        self.write("unlock", move |tx| {
            let deleted = tx.prepare_cached("DELETE FROM locks WHERE key = ?1 AND holder = ?2")?.execute([&key, &holder])?;
            Ok(deleted == 1)
        })
        .await
    }

    async fn lock_holder(&self, key: &LockKey, now: DateTime<Utc>) -> Result<Option<LockInfo>, StoreError> {
        let key = key.0.clone();
        let now = now.timestamp_micros();
        self.call("lock_holder", move |conn| {
            let current = conn
                .prepare_cached("SELECT holder, expires_at FROM locks WHERE key = ?1 AND expires_at > ?2")?
                .query_row(params![key, now], lock_info)
                .optional()?;
            Ok(current.map(|current| decode_lock(&key, current)).transpose()?)
        })
        .await
    }

    async fn add_rollup(&self, key: &RollupKey, delta: &Rollup) -> Result<(), StoreError> {
        let key = key.clone();
        let delta = delta.clone();
        self.write("add_rollup", move |tx| add_to_rollup(tx, &key, &delta)).await
    }

    async fn close_release(&self, release: &Release, rollup: &RollupKey, delta: &Rollup) -> Result<u64, StoreError> {
        let (row, read) = ReleaseRow::next(release)?;
        let version = release.version + 1;
        let rollup = rollup.clone();
        let delta = delta.clone();
        let lock = LockKey::new(&release.service, &release.environment).0;
        self.write("close_release", move |tx| {
            replace_release(tx, &row, read)?;
            if delta != Rollup::default() {
                add_to_rollup(tx, &rollup, &delta)?;
            }
            tx.prepare_cached("DELETE FROM locks WHERE key = ?1 AND holder = ?2")?.execute([&lock, &row.id])?;
            Ok(version)
        })
        .await
    }

    async fn rollups(
        &self,
        service: &str,
        environment: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Rollup)>, StoreError> {
        let service = service.to_owned();
        let environment = environment.to_owned();
        self.call("rollups", move |conn| {
            let range = params![service, environment, from.num_days_from_ce(), to.num_days_from_ce()];
            let mut statement = conn.prepare_cached(
                "SELECT day, deployments, failed_deployments, rollbacks, lead_time_seconds_total, lead_time_samples,
                     restore_seconds_total, restores, redeployments, lead_time_fallbacks
                 FROM rollups WHERE service = ?1 AND environment = ?2 AND day BETWEEN ?3 AND ?4 ORDER BY day",
            )?;
            let mut rows = statement.query(range)?;
            let mut rollups = Vec::new();
            while let Some(row) = rows.next()? {
                rollups.push(decode_rollup(row)?);
            }
            let mut buckets = conn.prepare_cached(
                "SELECT day, figure, bucket, count FROM rollup_buckets
                 WHERE service = ?1 AND environment = ?2 AND day BETWEEN ?3 AND ?4",
            )?;
            let mut rows = buckets.query(range)?;
            while let Some(row) = rows.next()? {
                let (day, figure, bucket, count): (i32, String, i32, u64) = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
                let rollup = NaiveDate::from_num_days_from_ce_opt(day)
                    .and_then(|day| rollups.binary_search_by_key(&day, |(d, _)| *d).ok())
                    .map(|at| &mut rollups[at].1);
                let sketch = match (rollup, figure.as_str()) {
                    (Some(rollup), LEAD_TIMES) => &mut rollup.lead_times,
                    (Some(rollup), RESTORE_TIMES) => &mut rollup.restore_times,
                    _ => {
                        return Err(StoreError::corrupt(format!(
                            "rollup bucket {figure}/{bucket} of day {day}: no rollup of that day, or no such figure"
                        ))
                        .into());
                    }
                };
                sketch.add_count(bucket, count);
            }
            Ok(rollups)
        })
        .await
    }

    async fn claim_run(&self, run: &str, owner: &str, now: DateTime<Utc>, stale_after: Duration) -> Result<Claim, StoreError> {
        let (run, owner) = (run.to_owned(), owner.to_owned());
        let stale_before = now.timestamp_micros().saturating_sub(i64::try_from(stale_after.as_micros()).unwrap_or(i64::MAX));
        let now = now.timestamp_micros();
        self.write("claim_run", move |tx| {
            // One statement decides: insert when new, take over when ended, ours or silent, else leave it.
            let fence: Option<i64> = tx
                .prepare_cached(
                    "INSERT INTO run_owners (run, owner, fence, beat_at) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (run) DO UPDATE SET
                         fence = CASE WHEN run_owners.owner = excluded.owner THEN run_owners.fence ELSE run_owners.fence + 1 END,
                         owner = excluded.owner, beat_at = excluded.beat_at, cancel = NULL
                     WHERE run_owners.owner IS NULL OR run_owners.owner = excluded.owner OR run_owners.beat_at <= ?4
                     RETURNING fence",
                )?
                .query_row(params![run, owner, now, stale_before], |row| row.get(0))
                .optional()?;
            match fence {
                Some(fence) => Ok(Claim::Claimed { fence: fence.unsigned_abs() }),
                None => Ok(Claim::OwnedBy(current_owner(tx, &run)?.ok_or_else(|| StoreError::corrupt(format!("run {run}: no owner")))?)),
            }
        })
        .await
    }

    async fn beat_run(&self, run: &str, fence: u64, now: DateTime<Utc>) -> Result<Beat, StoreError> {
        let run = run.to_owned();
        let (fence, now) = (i64::try_from(fence).unwrap_or(i64::MAX), now.timestamp_micros());
        self.write("beat_run", move |tx| {
            let beat: Option<Option<String>> = tx
                .prepare_cached("UPDATE run_owners SET beat_at = ?3 WHERE run = ?1 AND fence = ?2 AND owner IS NOT NULL RETURNING cancel")?
                .query_row(params![run, fence, now], |row| row.get(0))
                .optional()?;
            match beat {
                Some(cancel) => Ok(Beat::Owned { cancel }),
                None => Ok(Beat::Lost(current_owner(tx, &run)?)),
            }
        })
        .await
    }

    async fn run_owner(&self, run: &str) -> Result<Option<RunOwner>, StoreError> {
        let run = run.to_owned();
        self.call("run_owner", move |conn| current_owner(conn, &run)).await
    }

    async fn cancel_run(&self, run: &str, reason: &str) -> Result<bool, StoreError> {
        let (run, reason) = (run.to_owned(), reason.to_owned());
        self.write("cancel_run", move |tx| {
            let asked =
                tx.prepare_cached("UPDATE run_owners SET cancel = ?2 WHERE run = ?1 AND owner IS NOT NULL")?.execute([&run, &reason])?;
            Ok(asked == 1)
        })
        .await
    }

    async fn end_run(&self, run: &str, fence: u64) -> Result<bool, StoreError> {
        let run = run.to_owned();
        let fence = i64::try_from(fence).unwrap_or(i64::MAX);
        self.write("end_run", move |tx| {
            let ended = tx
                .prepare_cached("UPDATE run_owners SET owner = NULL, cancel = NULL WHERE run = ?1 AND fence = ?2 AND owner IS NOT NULL")?
                .execute(params![run, fence])?;
            Ok(ended == 1)
        })
        .await
    }
}

/// The owner of `run`, if it has one.
fn current_owner(conn: &Connection, run: &str) -> Result<Option<RunOwner>, Failure> {
    let row: Option<(String, i64, i64, Option<String>)> = conn
        .prepare_cached("SELECT owner, fence, beat_at, cancel FROM run_owners WHERE run = ?1 AND owner IS NOT NULL")?
        .query_row([run], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .optional()?;
    let Some((owner, fence, beat_at, cancel)) = row else { return Ok(None) };
    let beat_at = DateTime::from_timestamp_micros(beat_at)
        .ok_or_else(|| StoreError::corrupt(format!("run {run}: heartbeat {beat_at} is not a representable time")))?;
    Ok(Some(RunOwner { owner, fence: fence.unsigned_abs(), beat_at, cancel }))
}

/// Replaces the release row if it is still at version `read`.
fn replace_release(tx: &Transaction<'_>, row: &ReleaseRow, read: i64) -> Result<(), Failure> {
    let updated = tx
        .prepare_cached(
            "UPDATE releases SET service = ?2, environment = ?3, created_at = ?4, status = ?5, version = ?6, body = ?7
             WHERE id = ?1 AND version = ?8",
        )?
        .execute(params![row.id, row.service, row.environment, row.created_at, row.status, row.version, row.body, read])?;
    if updated == 1 {
        return Ok(());
    }
    let stored: Option<i64> =
        tx.prepare_cached("SELECT version FROM releases WHERE id = ?1")?.query_row([&row.id], |r| r.get(0)).optional()?;
    Err(match stored {
        Some(stored) => StoreError::conflict(format!("release {}: written at version {read}, but another write made it {stored}", row.id)),
        None => StoreError::conflict(format!("release {} does not exist; create_release stores new releases", row.id)),
    }
    .into())
}

fn add_to_rollup(tx: &Transaction<'_>, key: &RollupKey, delta: &Rollup) -> Result<(), Failure> {
    let RollupKey { service, environment, day } = key;
    let added = tx
        .prepare_cached(
            "INSERT INTO rollups (service, environment, day, deployments, failed_deployments, rollbacks,
                 lead_time_seconds_total, lead_time_samples, restore_seconds_total, restores, redeployments,
                 lead_time_fallbacks)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (service, environment, day) DO UPDATE SET
                 deployments = deployments + excluded.deployments,
                 failed_deployments = failed_deployments + excluded.failed_deployments,
                 rollbacks = rollbacks + excluded.rollbacks,
                 lead_time_seconds_total = lead_time_seconds_total + excluded.lead_time_seconds_total,
                 lead_time_samples = lead_time_samples + excluded.lead_time_samples,
                 restore_seconds_total = restore_seconds_total + excluded.restore_seconds_total,
                 restores = restores + excluded.restores,
                 redeployments = redeployments + excluded.redeployments,
                 lead_time_fallbacks = lead_time_fallbacks + excluded.lead_time_fallbacks",
        )?
        .execute(params![
            service,
            environment,
            day.num_days_from_ce(),
            delta.deployments,
            delta.failed_deployments,
            delta.rollbacks,
            delta.lead_time_seconds_total,
            delta.lead_time_samples,
            delta.restore_seconds_total,
            delta.restores,
            delta.redeployments,
            delta.lead_time_fallbacks,
        ])
        .and_then(|_| {
            let mut add = tx.prepare_cached(
                "INSERT INTO rollup_buckets (service, environment, day, figure, bucket, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (service, environment, day, figure, bucket) DO UPDATE SET count = count + excluded.count",
            )?;
            for (figure, sketch) in sketches(delta) {
                for (bucket, count) in sketch.buckets() {
                    add.execute(params![service, environment, day.num_days_from_ce(), figure, bucket, count])?;
                }
            }
            Ok(())
        });
    match added {
        Ok(()) => Ok(()),
        // A delta above i64::MAX fails to bind; a sum above it turns REAL, which the
        // STRICT table refuses. Either way nothing was written.
        Err(rusqlite::Error::ToSqlConversionFailure(_)) => Err(counter_overflow(service, environment, *day)),
        Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(counter_overflow(service, environment, *day))
        }
        Err(err) => Err(err.into()),
    }
}

fn counter_overflow(service: &str, environment: &str, day: NaiveDate) -> Failure {
    StoreError::conflict(format!("rollup {service}/{environment}/{day}: a counter would exceed {}", i64::MAX)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both listing statements walk an index in order: no table scan, no sort.
    #[test]
    fn list_releases_is_served_by_indexes() {
        let store = SqliteStore::in_memory().unwrap();
        let conn = store.inner.conn.lock().unwrap();
        let cases: [(&str, &[&dyn rusqlite::ToSql], &str); 2] = [
            (LIST_BY_SERVICE, params!["web", 0, 10], "releases_by_service"),
            (LIST_BY_SERVICE_ENVIRONMENT, params!["web", "prod", 0, 10], "releases_by_service_environment"),
        ];
        for (sql, params, index) in cases {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = statement.query_map(params, |row| row.get(3)).unwrap().map(Result::unwrap).collect();
            let plan = plan.join("; ");
            assert!(plan.contains(&format!("USING INDEX {index} (")), "{sql}: {plan}");
            assert!(!plan.contains("SCAN") && !plan.contains("TEMP B-TREE"), "{sql}: {plan}");
        }
    }
}

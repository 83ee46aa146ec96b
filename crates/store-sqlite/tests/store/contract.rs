//! The ReleaseStore contract suite against SQLite: once on a private in-memory database, and
//! once on a database file shared by several stores, so that racing calls go through separate
//! connections and meet SQLite's own locking, as separate `baton` processes would.

use async_trait::async_trait;
use baton_domain::catalog::ServiceEntry;
use baton_domain::ports::{Beat, Claim, Created, LockOutcome, ReleaseStore, RunOwner, StoreError, WaitRegistry};
use baton_domain::release::{LockInfo, LockKey, Release, ReleaseId, Rollup, RollupKey, StageEvent};
use baton_domain::waits::{Parked, WaitKey};
use baton_store_sqlite::SqliteStore;
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tempfile::TempDir;

mod in_memory {
    use super::*;

    async fn make_store() -> SqliteStore {
        SqliteStore::in_memory().expect("an in-memory store")
    }

    baton_contract::store_contract_tests!(make_store);
}

mod shared_file {
    use super::*;

    async fn make_store() -> Connections {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("state").join("baton.db");
        let stores = (0..CONNECTIONS).map(|_| SqliteStore::open(&path).expect("a file store")).collect();
        Connections { stores, next: AtomicUsize::new(0), _dir: dir }
    }

    baton_contract::store_contract_tests!(make_store);
}

const CONNECTIONS: usize = 4;

/// Stores with one connection each on the same file; each call goes to the next one.
struct Connections {
    stores: Vec<SqliteStore>,
    next: AtomicUsize,
    /// Deleted when the store is dropped, after the connections close.
    _dir: TempDir,
}

impl Connections {
    fn pick(&self) -> &SqliteStore {
        &self.stores[self.next.fetch_add(1, Ordering::Relaxed) % self.stores.len()]
    }
}

#[async_trait]
impl WaitRegistry for Connections {
    async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
        self.pick().park(wait).await
    }
    async fn take(&self, key: &WaitKey, now: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
        self.pick().take(key, now).await
    }
}

#[async_trait]
impl ReleaseStore for Connections {
    async fn create_release(&self, release: &Release, idempotency_key: &str) -> Result<Created, StoreError> {
        self.pick().create_release(release, idempotency_key).await
    }
    async fn get_release(&self, id: &ReleaseId) -> Result<Option<Release>, StoreError> {
        self.pick().get_release(id).await
    }
    async fn keep_entry(&self, id: &ReleaseId, entry: &ServiceEntry) -> Result<(), StoreError> {
        self.pick().keep_entry(id, entry).await
    }
    async fn kept_entry(&self, id: &ReleaseId) -> Result<Option<ServiceEntry>, StoreError> {
        self.pick().kept_entry(id).await
    }
    async fn put_release(&self, release: &Release) -> Result<u64, StoreError> {
        self.pick().put_release(release).await
    }
    async fn list_releases(&self, service: &str, environment: Option<&str>, limit: usize) -> Result<Vec<Release>, StoreError> {
        self.pick().list_releases(service, environment, limit).await
    }
    async fn releases_since(&self, service: &str, environment: Option<&str>, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        self.pick().releases_since(service, environment, since).await
    }
    async fn open_or_created_since(&self, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        self.pick().open_or_created_since(since).await
    }
    async fn append_event(&self, event: &StageEvent) -> Result<(), StoreError> {
        self.pick().append_event(event).await
    }
    async fn events(&self, id: &ReleaseId) -> Result<Vec<StageEvent>, StoreError> {
        self.pick().events(id).await
    }
    async fn try_lock(&self, key: &LockKey, holder: &ReleaseId, now: DateTime<Utc>, lease: Duration) -> Result<LockOutcome, StoreError> {
        self.pick().try_lock(key, holder, now, lease).await
    }
    async fn unlock(&self, key: &LockKey, holder: &ReleaseId) -> Result<bool, StoreError> {
        self.pick().unlock(key, holder).await
    }
    async fn lock_holder(&self, key: &LockKey, now: DateTime<Utc>) -> Result<Option<LockInfo>, StoreError> {
        self.pick().lock_holder(key, now).await
    }
    async fn add_rollup(&self, key: &RollupKey, delta: &Rollup) -> Result<(), StoreError> {
        self.pick().add_rollup(key, delta).await
    }
    async fn close_release(&self, release: &Release, rollup: &RollupKey, delta: &Rollup) -> Result<u64, StoreError> {
        self.pick().close_release(release, rollup, delta).await
    }
    async fn request_cancel(&self, id: &ReleaseId, reason: &str) -> Result<bool, StoreError> {
        self.pick().request_cancel(id, reason).await
    }
    async fn rollups(
        &self,
        service: &str,
        environment: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Rollup)>, StoreError> {
        self.pick().rollups(service, environment, from, to).await
    }
    async fn claim_run(&self, run: &str, owner: &str, now: DateTime<Utc>, stale_after: Duration) -> Result<Claim, StoreError> {
        self.pick().claim_run(run, owner, now, stale_after).await
    }
    async fn beat_run(&self, run: &str, fence: u64, now: DateTime<Utc>) -> Result<Beat, StoreError> {
        self.pick().beat_run(run, fence, now).await
    }
    async fn run_owner(&self, run: &str) -> Result<Option<RunOwner>, StoreError> {
        self.pick().run_owner(run).await
    }
    async fn cancel_run(&self, run: &str, reason: &str) -> Result<bool, StoreError> {
        self.pick().cancel_run(run, reason).await
    }
    async fn end_run(&self, run: &str, fence: u64) -> Result<bool, StoreError> {
        self.pick().end_run(run, fence).await
    }
}

//! One process per release: every local run of a release's execution (a new release, `baton
//! resume`, `baton cancel`'s rollback, the next release picking it up) claims the execution's run
//! in the store first ([`ReleaseStore::claim_run`]) and beats for it while it runs. A claim that
//! finds a live owner loses, and the loser touches no target.
//!
//! [`ReleaseStore::claim_run`]: baton_domain::ports::ReleaseStore::claim_run

use crate::LocalBaton;
use baton_domain::ports::{Claim, ReleaseStore, RunOwner, StoreError};
use baton_domain::support::RUN_SILENT_AFTER;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;

/// This process's claim on one execution's run, under its fence.
#[derive(Clone)]
pub struct Owned {
    pub(crate) execution: String,
    pub(crate) fence: u64,
    pub(crate) store: Arc<dyn ReleaseStore>,
}

impl Owned {
    /// Gives the claim up: nothing of this process runs the release any more.
    pub async fn give_up(self) -> Result<(), StoreError> {
        self.store.end_run(&self.execution, self.fence).await.map(drop)
    }
}

/// Who owns a run and how long ago it was last seen, for people.
pub fn describe(owner: &RunOwner) -> String {
    let seen = (Utc::now() - owner.beat_at).to_std().unwrap_or_default();
    format!("{} (last heartbeat {:.1} s ago)", owner.owner, seen.as_secs_f64())
}

/// Who this process is, as claims name it.
pub(crate) fn this_process(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "this machine".to_owned());
    format!("{role}, pid {} on {host}", std::process::id())
}

impl LocalBaton {
    /// Claims the run of `execution` for this process. An owner seen within [`RUN_SILENT_AFTER`]
    /// is watched until it would have beaten again, so a claim right after a crash waits a moment
    /// rather than losing to a dead process; an owner that beat meanwhile (or another claim that
    /// came first) wins, and is answered.
    pub async fn claim(&self, execution: &str) -> Result<Result<Owned, RunOwner>, StoreError> {
        let store = &self.ports().store;
        let owned = |fence| -> Result<Result<Owned, RunOwner>, StoreError> {
            Ok(Ok(Owned { execution: execution.to_owned(), fence, store: store.clone() }))
        };
        let seen = match store.claim_run(execution, &self.owner, Utc::now(), RUN_SILENT_AFTER).await? {
            Claim::Claimed { fence } => return owned(fence),
            Claim::OwnedBy(owner) => owner,
        };
        let silent = (Utc::now() - seen.beat_at).to_std().unwrap_or_default();
        // A little past the deadline, so that the store's clock check agrees.
        tokio::time::sleep(RUN_SILENT_AFTER.saturating_sub(silent) + Duration::from_millis(50)).await;
        match store.claim_run(execution, &self.owner, Utc::now(), RUN_SILENT_AFTER).await? {
            Claim::Claimed { fence } => owned(fence),
            Claim::OwnedBy(owner) => Ok(Err(owner)),
        }
    }

    /// Asks the owner of the run of `execution` to stop and roll the release back; false when
    /// nobody owns it.
    pub async fn request_cancel(&self, execution: &str, why: &str) -> Result<bool, StoreError> {
        self.ports().store.cancel_run(execution, why).await
    }
}

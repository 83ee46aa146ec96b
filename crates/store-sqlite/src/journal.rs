//! The local runner's execution journal and run heartbeats. Not part of the `ReleaseStore`
//! port: on AWS, Step Functions keeps each execution's history and knows which executions run;
//! on one machine the runner writes both here as it goes, in the release database, so that a
//! killed `baton release` leaves a history to read and to resume from, and another process can
//! tell it from a live one.

use crate::SqliteStore;
use crate::failure::Failure;
use baton_domain::ports::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

impl SqliteStore {
    /// Appends history events of `execution`, each its number and its JSON text, in one
    /// transaction. A number already taken fails with [`StoreError::Conflict`]: another run of the
    /// same execution is writing.
    pub async fn journal_append(&self, execution: &str, events: Vec<(u64, String)>) -> Result<(), StoreError> {
        let execution = execution.to_owned();
        self.write("journal_append", move |tx| {
            let mut insert = tx.prepare_cached("INSERT INTO journal (execution, seq, body) VALUES (?1, ?2, ?3)")?;
            for (seq, body) in events {
                let seq = i64::try_from(seq).map_err(|_| {
                    StoreError::conflict(format!("journal of {execution}: event number {seq} is beyond what the store counts"))
                })?;
                insert.execute(params![execution, seq, body])?;
            }
            Ok(())
        })
        .await
    }

    /// Every journaled event of `execution`, in order; empty when it was never journaled.
    pub async fn journal(&self, execution: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let execution = execution.to_owned();
        self.call("journal", move |conn| {
            let mut select = conn.prepare_cached("SELECT seq, body FROM journal WHERE execution = ?1 ORDER BY seq")?;
            let mut rows = select.query(params![execution])?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                let (seq, body): (i64, String) = (row.get(0)?, row.get(1)?);
                let event = serde_json::from_str(&body).map_err(|err| {
                    Failure::from(StoreError::corrupt(format!("journal of {execution}: event {seq} is not JSON")).caused_by(err))
                })?;
                events.push(event);
            }
            Ok(events)
        })
        .await
    }
}

impl SqliteStore {
    /// Records that the run of `execution` is alive at `now`; answers a person's reason to cancel
    /// it, when one was given.
    pub async fn run_beat(&self, execution: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let execution = execution.to_owned();
        self.write("run_beat", move |tx| {
            let upsert = "INSERT INTO runs (execution, beat_at) VALUES (?1, ?2) \
                 ON CONFLICT (execution) DO UPDATE SET beat_at = excluded.beat_at RETURNING cancel";
            Ok(tx.prepare_cached(upsert)?.query_row(params![execution, now.timestamp_micros()], |row| row.get(0))?)
        })
        .await
    }

    /// The last heartbeat of a run of `execution` that did not end cleanly; none when no run
    /// is on record.
    pub async fn run_beat_at(&self, execution: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let execution = execution.to_owned();
        self.call("run_beat_at", move |conn| {
            let micros: Option<i64> = conn
                .prepare_cached("SELECT beat_at FROM runs WHERE execution = ?1")?
                .query_row(params![execution], |row| row.get(0))
                .optional()?;
            micros
                .map(|micros| {
                    DateTime::from_timestamp_micros(micros)
                        .ok_or_else(|| StoreError::corrupt(format!("run of {execution}: heartbeat {micros} is no time")).into())
                })
                .transpose()
        })
        .await
    }

    /// Asks the run of `execution` to stop, for `reason`; false when no run is on record.
    pub async fn run_cancel(&self, execution: &str, reason: &str) -> Result<bool, StoreError> {
        let (execution, reason) = (execution.to_owned(), reason.to_owned());
        self.write("run_cancel", move |tx| {
            Ok(tx.prepare_cached("UPDATE runs SET cancel = ?2 WHERE execution = ?1")?.execute(params![execution, reason])? == 1)
        })
        .await
    }

    /// Forgets the run of `execution`: it ended, and nothing of it runs on.
    pub async fn run_ended(&self, execution: &str) -> Result<(), StoreError> {
        let execution = execution.to_owned();
        self.write("run_ended", move |tx| {
            tx.prepare_cached("DELETE FROM runs WHERE execution = ?1")?.execute(params![execution])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::SqliteStore;
    use baton_domain::ports::StoreError;
    use serde_json::json;

    #[tokio::test]
    async fn events_come_back_in_order_across_runs_and_a_taken_number_conflicts() {
        let store = SqliteStore::in_memory().unwrap();
        assert!(store.journal("exec-1").await.unwrap().is_empty());
        let event = |seq: u64| (seq, json!({"id": seq}).to_string());
        store.journal_append("exec-1", vec![event(1), event(2)]).await.unwrap();
        store.journal_append("exec-2", vec![event(1)]).await.unwrap();
        store.journal_append("exec-1", vec![event(3)]).await.unwrap();
        assert_eq!(store.journal("exec-1").await.unwrap(), [json!({"id": 1}), json!({"id": 2}), json!({"id": 3})]);
        let taken = store.journal_append("exec-1", vec![(4, "{}".to_owned()), (2, "{}".to_owned())]).await.unwrap_err();
        assert!(matches!(taken, StoreError::Conflict { .. }), "{taken:?}");
        assert_eq!(store.journal("exec-1").await.unwrap().len(), 3, "the conflicting batch wrote nothing");
    }

    #[tokio::test]
    async fn a_run_beats_until_it_ends_and_hears_a_cancel() {
        let store = SqliteStore::in_memory().unwrap();
        let at = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        assert!(!store.run_cancel("exec-1", "nothing runs").await.unwrap());
        assert_eq!(store.run_beat("exec-1", at(0)).await.unwrap(), None);
        assert_eq!(store.run_beat("exec-1", at(1)).await.unwrap(), None);
        assert_eq!(store.run_beat_at("exec-1").await.unwrap(), Some(at(1)));
        assert!(store.run_cancel("exec-1", "wrong artifact").await.unwrap());
        assert_eq!(store.run_beat("exec-1", at(2)).await.unwrap().as_deref(), Some("wrong artifact"));
        store.run_ended("exec-1").await.unwrap();
        assert_eq!(store.run_beat_at("exec-1").await.unwrap(), None);
    }
}

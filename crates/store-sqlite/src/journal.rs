//! The local runner's execution journal. Not part of the `ReleaseStore` port: on AWS, Step
//! Functions keeps each execution's history; on one machine the runner writes it here as it goes,
//! in the release database, so that a killed `baton release` leaves a history to read and to
//! resume from. Which process runs an execution is the port's (`claim_run`).

use crate::SqliteStore;
use crate::failure::Failure;
use baton_domain::ports::StoreError;
use rusqlite::params;

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
}

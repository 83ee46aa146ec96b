//! Durable local executions. A local run journals its execution's history events in the release
//! database as they happen (Step Functions keeps them on AWS), so a killed `baton release` leaves
//! a history to read (`baton show --history`) and a place to resume from: the last top-level
//! state it entered, with the input it entered it with. That state runs again on resume, as
//! Step Functions runs a task again after a lost worker: every handler is idempotent.

use crate::owner::{Owned, describe};
use baton_asl::{ExecutionHandle, ExecutionOutcome, HistoryEvent, ResumeAt, StateMachine, Stopper};
use baton_domain::error::ErrorName;
use baton_domain::ports::{Beat, StoreError};
use baton_domain::support::RUN_HEARTBEAT;
use baton_store_sqlite::SqliteStore;
use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

/// A started execution, the task journaling it and the one beating for its claim.
pub struct Run {
    handle: ExecutionHandle,
    journal: Option<Journal>,
    owned: Option<Beating>,
}

/// The claim a run holds on its execution, and the task renewing it.
struct Beating {
    owned: Owned,
    /// Ends with the owner that took the run over when this process lost it (silent too long).
    heartbeat: JoinHandle<Option<String>>,
}

struct Journal {
    store: SqliteStore,
    execution: String,
    /// Events earlier runs of the execution journaled: this run's are numbered after them.
    base: u64,
    /// How many events it wrote.
    writer: JoinHandle<Result<usize, StoreError>>,
}

/// How a run ended, and whether its journal kept up.
pub struct Finished {
    pub outcome: ExecutionOutcome,
    /// Set when journaling failed: the release ran on, but a crash would not have been resumable
    /// from where it was.
    pub journal_error: Option<StoreError>,
    /// Set when another process took the run over (this one stopped beating long enough to be
    /// taken for dead): it stopped at once, and that one runs the release now.
    pub lost_to: Option<String>,
    /// The run's claim, still held: the caller runs the release on under it (a cancelled run
    /// rolling back), or gives it up.
    pub owned: Option<Owned>,
}

impl Run {
    /// Starts journaling `handle`'s events after the `base` events earlier runs of the execution wrote.
    /// With `owned`, it beats for its claim on the execution while it runs, and stops when a
    /// person cancels it or another process took it over.
    pub(crate) fn journaled(handle: ExecutionHandle, store: Option<SqliteStore>, execution: &str, base: u64, owned: Option<Owned>) -> Run {
        let journal = store.map(|store| {
            let (past, live) = handle.subscribe();
            let writer = tokio::spawn(write(store.clone(), execution.to_owned(), base, past, live));
            Journal { store, execution: execution.to_owned(), base, writer }
        });
        let owned = owned.map(|owned| {
            let heartbeat = tokio::spawn(beat(owned.clone(), handle.stopper()));
            Beating { owned, heartbeat }
        });
        Run { handle, journal, owned }
    }

    /// Stops the execution from elsewhere (a signal handler): it ends ABORTED, and stays resumable.
    pub fn stopper(&self) -> Stopper {
        self.handle.stopper()
    }

    /// How the execution ended, once its journal is written and its claim given up; a journal
    /// that could not keep up is logged, not answered (see [`Run::finished`]).
    pub async fn outcome(self) -> ExecutionOutcome {
        let Finished { outcome, journal_error, owned, .. } = self.finished().await;
        let ended = match owned {
            Some(owned) => owned.give_up().await,
            None => Ok(()),
        };
        if let Some(err) = journal_error.or(ended.err()) {
            tracing::warn!(error = %baton_domain::error::chain_text(&err), "the execution journal or claim is incomplete");
        }
        outcome
    }

    /// Waits for the execution to end and for its journal to be written. Its claim is still held
    /// ([`Finished::owned`]): nobody resumes it until the caller gives it up.
    pub async fn finished(self) -> Finished {
        let outcome = self.handle.outcome().await;
        let (lost_to, owned) = match self.owned {
            Some(Beating { owned, heartbeat }) => {
                heartbeat.abort();
                match heartbeat.await {
                    Ok(Some(lost_to)) => (Some(lost_to), None),
                    _ => (None, Some(owned)),
                }
            }
            None => (None, None),
        };
        let Some(journal) = self.journal else { return Finished { outcome, journal_error: None, lost_to, owned } };
        let written = match journal.writer.await {
            // The execution ended before the journal subscribed (a signal rejected at once): its
            // events are all in the outcome.
            Ok(Ok(0)) if !outcome.history.is_empty() => {
                let rows =
                    outcome.history.iter().map(|event| encode(&journal.execution, journal.base, event)).collect::<Result<Vec<_>, _>>();
                match rows {
                    Ok(rows) => journal.store.journal_append(&journal.execution, rows).await,
                    Err(err) => Err(err),
                }
            }
            Ok(written) => written.map(drop),
            Err(join) => Err(StoreError::unavailable("the journal writer ended early").caused_by(join)),
        };
        if written.is_ok()
            && let Err(err) = record_cost(&journal.store, &journal.execution, &outcome).await
        {
            tracing::warn!(error = %baton_domain::error::chain_text(&err), "cannot put the execution's cost on its release");
        }
        Finished { outcome, journal_error: written.err(), lost_to, owned }
    }
}

/// Puts on the record of the release `execution` carried what the execution cost, from its whole
/// history (every run of it, as journaled): the embedded executor's counts are Step Functions'.
/// A run that carried no release (a rejected signal) has nothing to put it on.
async fn record_cost(store: &SqliteStore, execution: &str, outcome: &ExecutionOutcome) -> Result<(), StoreError> {
    use baton_domain::ports::ReleaseStore;
    use baton_domain::rules::cost;
    let named = outcome.output.as_ref().and_then(|o| o.pointer("/release/id")).and_then(Value::as_str).map(str::to_owned);
    let service =
        outcome.history.first().and_then(|started| started.details.as_ref()?.input.as_ref()?.get("service")?.as_str().map(str::to_owned));
    let Some(service) = service else { return Ok(()) };
    let releases = store.list_releases(&service, None, 100).await?;
    let Some(release) =
        releases.into_iter().find(|r| r.execution.as_deref() == Some(execution) && named.as_deref().is_none_or(|id| id == r.id.as_str()))
    else {
        return Ok(());
    };
    let cost = cost::estimate(&cost::usage(&store.journal(execution).await?), cost::BATON_FUNCTIONS, &cost::PUBLIC_PRICES);
    baton_domain::support::update_release(store, &release.id, |release| release.cost = Some(cost.clone()))
        .await
        .map_err(|err| StoreError::unavailable(format!("writing the cost of release {}: {}", release.id, err.cause)))?;
    Ok(())
}

/// Tells other processes the run is alive, and stops it when a person cancels it
/// (`baton cancel`): the run ends ABORTED with `Baton.Interrupted` and their reason. Stops it at
/// once, answering who took it, when another process claimed the run (this one was silent too
/// long): two processes must never run one release.
async fn beat(owned: Owned, stopper: Stopper) -> Option<String> {
    let interrupted = || Some(ErrorName::Interrupted.as_str().to_owned());
    loop {
        match owned.store.beat_run(&owned.execution, owned.fence, chrono::Utc::now()).await {
            Ok(Beat::Owned { cancel: Some(reason) }) => stopper.stop(interrupted(), Some(reason)),
            Ok(Beat::Owned { cancel: None }) => {}
            Ok(Beat::Lost(owner)) => {
                let taker = owner.map_or_else(|| "nobody (its claim was ended)".to_owned(), |owner| describe(&owner));
                stopper.stop(interrupted(), Some(format!("another process took the release's run over: {taker}")));
                return Some(taker);
            }
            // A missed beat or two is no harm; a store gone for good fails the run's own writes.
            Err(err) => {
                tracing::warn!(execution = owned.execution, error = %baton_domain::error::chain_text(&err), "cannot renew the run's claim")
            }
        }
        tokio::time::sleep(RUN_HEARTBEAT).await;
    }
}

/// Writes events as they come, in batches: whatever arrived while the last batch was written.
async fn write(
    store: SqliteStore,
    execution: String,
    base: u64,
    past: Vec<HistoryEvent>,
    mut live: tokio::sync::broadcast::Receiver<HistoryEvent>,
) -> Result<usize, StoreError> {
    let mut batch = past;
    let mut written = 0;
    loop {
        let mut ended = false;
        loop {
            match live.try_recv() {
                Ok(event) => batch.push(event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    ended = true;
                    break;
                }
                Err(TryRecvError::Lagged(lost)) => lagged(&execution, lost),
            }
        }
        if !batch.is_empty() {
            let rows = batch.drain(..).map(|event| encode(&execution, base, &event)).collect::<Result<Vec<_>, _>>()?;
            written += rows.len();
            store.journal_append(&execution, rows).await?;
        }
        if ended {
            return Ok(written);
        }
        match live.recv().await {
            Ok(event) => batch.push(event),
            Err(RecvError::Closed) => return Ok(written),
            Err(RecvError::Lagged(lost)) => lagged(&execution, lost),
        }
    }
}

/// A gap only costs the lost checkpoints: a resume starts from an earlier state, which is safe.
fn lagged(execution: &str, lost: u64) {
    tracing::warn!(execution, lost, "the journal fell behind the execution and lost events");
}

/// One event as the journal keeps it: numbered after the earlier runs' events, scrubbed of
/// secrets (task inputs and outputs hold what commands printed).
fn encode(execution: &str, base: u64, event: &HistoryEvent) -> Result<(u64, String), StoreError> {
    let mut value = serde_json::to_value(event)
        .map_err(|err| StoreError::corrupt(format!("journal of {execution}: event {} cannot be encoded", event.id)).caused_by(err))?;
    let seq = base + event.id;
    value["id"] = seq.into();
    value["previousEventId"] = (base + event.previous_event_id).into();
    Ok((seq, baton_domain::redact::scrub(&value.to_string()).into_owned()))
}

/// Where a journaled execution that did not end resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumePoint {
    /// The execution's own input (`$$.Execution.Input`).
    pub input: Value,
    pub at: ResumeAt,
    /// How many events the journal holds: the resumed run's are numbered after them.
    pub journaled: u64,
}

/// What a journal says about its execution.
#[derive(Debug, Clone, PartialEq)]
pub enum Journaled {
    /// Nothing was journaled (a release run before journals, or on AWS).
    Nothing,
    /// The execution succeeded, failed or timed out: there is nothing to resume.
    Ended,
    Resumable(ResumePoint),
}

/// Reads a journal: an execution that was killed, or stopped (ABORTED: interrupted on purpose),
/// resumes at the last top-level state it entered. States inside the deploy and rollback Maps
/// are not checkpoints: the Map state runs again, and its waves' handlers find their runs
/// recorded.
pub fn resume_point(machine: &StateMachine, execution: &str, events: &[Value]) -> Result<Journaled, StoreError> {
    let Some(last) = events.last() else { return Ok(Journaled::Nothing) };
    if matches!(last["type"].as_str(), Some("ExecutionSucceeded" | "ExecutionFailed" | "ExecutionTimedOut")) {
        return Ok(Journaled::Ended);
    }
    let corrupt = |what: &str| StoreError::corrupt(format!("journal of {execution}: {what}"));
    let document = |event: &Value, details: &str| -> Result<Value, StoreError> {
        let text = event[details]["input"].as_str().ok_or_else(|| corrupt(&format!("event {} has no {details}.input", event["id"])))?;
        serde_json::from_str(text).map_err(|err| corrupt(&format!("event {}: {details}.input is not JSON", event["id"])).caused_by(err))
    };
    let started = events.iter().find(|e| e["type"] == "ExecutionStarted").ok_or_else(|| corrupt("no ExecutionStarted event"))?;
    let top_level = |name: &str| machine.top_level_states().any(|state| state == name);
    let entered = events.iter().rev().find(|event| {
        event["type"].as_str().is_some_and(|t| t.ends_with("StateEntered"))
            && event["stateEnteredEventDetails"]["name"].as_str().is_some_and(top_level)
    });
    let Some(entered) = entered else { return Ok(Journaled::Nothing) };
    let state = entered["stateEnteredEventDetails"]["name"].as_str().unwrap_or_default().to_owned();
    Ok(Journaled::Resumable(ResumePoint {
        input: document(started, "executionStartedEventDetails")?,
        at: ResumeAt { state, input: document(entered, "stateEnteredEventDetails")? },
        journaled: events.last().and_then(|e| e["id"].as_u64()).unwrap_or(events.len() as u64),
    }))
}

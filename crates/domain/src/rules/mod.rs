//! The rules of a release, as pure functions over records: which signals a service takes,
//! who runs when several wait, what a rollback puts back, which commit may be deployed, when a freeze window holds a wave, when a wave is deployed, when its gates judge it, what a
//! finished release adds to the DORA counters, what its CI build was, and what the timeline says of a task given up on. Handlers read the ports, call these, and write
//! the ports; nothing here does I/O, so every rule has table-driven tests beside it.

pub mod admission;
pub mod approval;
pub mod builds;
pub mod cost;
pub mod dora;
pub mod freeze;
pub mod plan;
pub mod queue;
pub mod revision;
pub mod rollback;
pub mod timeline;
pub mod topology;
pub mod watch;
pub mod waves;

#[cfg(test)]
pub(crate) mod fixtures;

use chrono::{DateTime, TimeDelta, Utc};

/// `seconds` after `began` (saturating): when something begun then must have finished.
pub fn deadline_after(began: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    let timeout = i64::try_from(seconds).ok().and_then(TimeDelta::try_seconds).unwrap_or(TimeDelta::MAX);
    began.checked_add_signed(timeout).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

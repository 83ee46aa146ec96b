//! When several signals wait for one service's lock, only the newest live one runs.

use crate::release::{Refused, Release, ReleaseId, ReleaseStatus, Stage};
use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The longest a waiting release goes between two attempts at the lock: the `Baton.LockHeld`
/// retry's `MaxDelaySeconds` in `statemachines/release.asl.json` (a test keeps the two equal).
/// Short enough that a waiter notices a dead lock holder within half a minute.
pub const LOCK_RETRY_CAP: Duration = Duration::from_secs(20);

/// A waiter whose last attempt at the lock is older than this is taken for dead: at least three
/// missed attempts (nine, since the cap came down to notice dead holders sooner), so a slow store
/// call or a busy executor does not make a live waiter look dead.
pub const WAITER_STALE_AFTER: Duration = Duration::from_secs(9 * LOCK_RETRY_CAP.as_secs());

/// When a release last showed it was alive: its latest attempt at the lock, or its creation
/// before the first one.
pub fn last_seen(release: &Release) -> DateTime<Utc> {
    release.heartbeat_at.unwrap_or(release.created_at)
}

/// Whether `other` can supersede a waiter at `now`. A waiting release (`Queued`) must have tried
/// for the lock within [`WAITER_STALE_AFTER`]: one whose process died would otherwise hold every
/// older waiter back forever and ship nothing. A release past the queue (running or ended) took
/// the lock after the waiter's signal, so the waiter's commit is stale whatever became of it;
/// but a skipped one (a schedule that fired inside a freeze) never queued and ships nothing.
fn can_supersede(other: &Release, now: DateTime<Utc>) -> bool {
    match other.status {
        ReleaseStatus::Queued => now - last_seen(other) <= TimeDelta::from_std(WAITER_STALE_AFTER).unwrap_or(TimeDelta::MAX),
        ReleaseStatus::Skipped => false,
        _ => true,
    }
}

/// The newest release created after `mine` among the service's recent releases that can still
/// supersede it at `now` (see [`can_supersede`]), if any: `mine` is superseded by it. Releases
/// created in the same instant are ordered by id, so two waiters never both defer to each other.
pub fn newer_signal<'a>(mine: &Release, recent: &'a [Release], now: DateTime<Utc>) -> Option<&'a ReleaseId> {
    recent
        .iter()
        .filter(|r| r.id != mine.id && (r.created_at, &r.id) > (mine.created_at, &mine.id) && can_supersede(r, now))
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
        .map(|r| &r.id)
}

/// Closes a release that a newer signal replaced before it ran (a closed one stays as it is).
pub fn supersede(release: &mut Release, now: DateTime<Utc>) -> Result<(), Refused> {
    close_unrun(release, ReleaseStatus::Superseded, now)
}

/// Closes a scheduled release that fired inside a freeze window, before it ran.
pub fn skip(release: &mut Release, now: DateTime<Utc>) -> Result<(), Refused> {
    close_unrun(release, ReleaseStatus::Skipped, now)
}

fn close_unrun(release: &mut Release, status: ReleaseStatus, now: DateTime<Utc>) -> Result<(), Refused> {
    release.move_to(status)?;
    release.enter(Stage::Done)?;
    release.finished_at = Some(now);
    Ok(())
}

/// The releases among `recent` (one service and environment, read once `holder` took the lock)
/// that still say `running` though `holder` holds the lock: each lost it when its lease lapsed,
/// which only a release whose execution ended without closing it lets happen (stopped with
/// StopExecution, timed out, or its executor gone), since every task renews the lease. The new
/// holder closes them, so no record stays `running` for ever.
pub fn lapsed_holders<'a>(holder: &ReleaseId, recent: &'a [Release]) -> Vec<&'a Release> {
    recent.iter().filter(|r| r.id != *holder && r.status == ReleaseStatus::Running).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{minutes, release};

    #[test]
    fn only_other_running_releases_lapsed_their_lock() {
        let of = |id: &str, status| release(id, 1, status, None, false);
        let recent = vec![
            of("rel-mine", ReleaseStatus::Running),
            of("rel-stopped", ReleaseStatus::Running),
            of("rel-waiting", ReleaseStatus::Queued),
            of("rel-interrupted", ReleaseStatus::Interrupted),
            of("rel-done", ReleaseStatus::RolledBack),
        ];
        let lapsed: Vec<&str> = lapsed_holders(&ReleaseId("rel-mine".into()), &recent).iter().map(|r| r.id.as_str()).collect();
        assert_eq!(lapsed, ["rel-stopped"]);
    }

    type Recent = &'static [(&'static str, i64)];

    #[test]
    fn only_a_later_signal_supersedes() {
        let queued = |id: &str, created: i64| release(id, created, ReleaseStatus::Queued, None, false);
        let mine = queued("rel-m", 10);
        // (recent releases by (id, created minute), the one `mine` defers to)
        let cases: &[(Recent, Option<&str>)] = &[
            (&[], None),
            (&[("rel-m", 10)], None),
            (&[("rel-a", 5)], None),
            (&[("rel-a", 5), ("rel-b", 11)], Some("rel-b")),
            (&[("rel-b", 11), ("rel-c", 12)], Some("rel-c")),
            (&[("rel-c", 12), ("rel-b", 11)], Some("rel-c")),
            // Same instant: the greater id is the newer, on both sides of `mine`.
            (&[("rel-z", 10)], Some("rel-z")),
            (&[("rel-a", 10)], None),
        ];
        for (recent, expected) in cases {
            let recent: Vec<Release> = recent.iter().map(|(id, created)| queued(id, *created)).collect();
            assert_eq!(newer_signal(&mine, &recent, minutes(13)).map(ReleaseId::as_str), *expected, "{recent:?}");
        }
    }

    #[test]
    fn of_two_waiters_exactly_one_defers() {
        let a = release("rel-a", 10, ReleaseStatus::Queued, None, false);
        let b = release("rel-b", 10, ReleaseStatus::Queued, None, false);
        let both = [a.clone(), b.clone()];
        assert_eq!(newer_signal(&a, &both, minutes(10)), Some(&b.id));
        assert_eq!(newer_signal(&b, &both, minutes(10)), None);
    }

    #[test]
    fn a_newer_waiter_supersedes_only_while_it_keeps_trying_for_the_lock() {
        let mine = release("rel-m", 10, ReleaseStatus::Queued, None, false);
        let newer = |status: ReleaseStatus, heartbeat: Option<i64>| {
            let mut newer = release("rel-n", 11, status, None, false);
            newer.heartbeat_at = heartbeat.map(minutes);
            newer
        };
        // (the newer release's status and last attempt at the lock, now, whether it supersedes `mine`)
        let cases = [
            (ReleaseStatus::Queued, None, 11, true),
            // Created, then silent: alive for three retry caps after its creation, dead after.
            (ReleaseStatus::Queued, None, 14, true),
            (ReleaseStatus::Queued, None, 15, false),
            (ReleaseStatus::Queued, Some(13), 15, true),
            (ReleaseStatus::Queued, Some(13), 16, true),
            (ReleaseStatus::Queued, Some(13), 17, false),
            (ReleaseStatus::Queued, Some(30), 90, false),
            // Past the queue: it took the lock after `mine` was signalled, however long ago.
            (ReleaseStatus::Running, None, 90, true),
            (ReleaseStatus::Succeeded, Some(12), 90, true),
            (ReleaseStatus::Superseded, None, 90, true),
            // A schedule skipped inside a freeze: nothing newer will ship.
            (ReleaseStatus::Skipped, None, 11, false),
        ];
        for (status, heartbeat, now, supersedes) in cases {
            let recent = [newer(status, heartbeat)];
            let found = newer_signal(&mine, &recent, minutes(now));
            assert_eq!(found.is_some(), supersedes, "{status} last seen at {heartbeat:?}, now {now}");
        }
    }

    #[test]
    fn a_dead_newest_waiter_leaves_the_newest_live_one_to_run() {
        let mine = release("rel-a", 10, ReleaseStatus::Queued, None, false);
        let mut live = release("rel-b", 11, ReleaseStatus::Queued, None, false);
        live.heartbeat_at = Some(minutes(20));
        let dead = release("rel-c", 12, ReleaseStatus::Queued, None, false);
        let recent = [dead, live.clone(), mine.clone()];
        assert_eq!(newer_signal(&mine, &recent, minutes(20)), Some(&live.id), "the older waiter defers to the live one");
        assert_eq!(newer_signal(&live, &recent, minutes(20)), None, "the live one runs");
    }

    #[test]
    fn staleness_is_at_least_three_lock_retries_of_the_definition() {
        assert!(WAITER_STALE_AFTER >= LOCK_RETRY_CAP * 3);
        let definition: serde_json::Value =
            serde_json::from_str(include_str!("../../../../statemachines/release.asl.json")).expect("the release definition is JSON");
        let retries = definition["States"]["Acquire"]["Retry"].as_array().expect("Acquire retries");
        let lock_held = retries.iter().find(|r| r["ErrorEquals"][0] == "Baton.LockHeld").expect("Acquire retries Baton.LockHeld");
        assert_eq!(lock_held["MaxDelaySeconds"].as_u64(), Some(LOCK_RETRY_CAP.as_secs()));
    }

    #[test]
    fn a_superseded_release_is_closed() {
        let mut queued = release("rel-a", 10, ReleaseStatus::Queued, None, false);
        supersede(&mut queued, minutes(12)).unwrap();
        assert_eq!((queued.status, queued.stage, queued.finished_at), (ReleaseStatus::Superseded, Stage::Done, Some(minutes(12))));
        let mut cancelled = release("rel-b", 10, ReleaseStatus::Cancelled, Some(11), false);
        let before = cancelled.clone();
        assert_eq!(supersede(&mut cancelled, minutes(12)).unwrap_err().from, "cancelled");
        assert_eq!(cancelled, before, "a closed release stays as it closed");
    }

    #[test]
    fn a_skipped_release_is_closed() {
        let mut queued = release("rel-a", 10, ReleaseStatus::Queued, None, false);
        skip(&mut queued, minutes(12)).unwrap();
        assert_eq!((queued.status, queued.stage, queued.finished_at), (ReleaseStatus::Skipped, Stage::Done, Some(minutes(12))));
        assert!(queued.status.is_terminal());
    }
}

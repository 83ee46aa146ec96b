//! When several signals wait for one service's lock, only the newest runs.

use crate::release::{Release, ReleaseId, ReleaseStatus, Stage};
use chrono::{DateTime, Utc};

/// The newest release created after `mine` among the service's recent releases, if any: `mine`
/// is superseded by it. Releases created in the same instant are ordered by id, so two waiters
/// never both defer to each other.
pub fn newer_signal<'a>(mine: &Release, recent: &'a [Release]) -> Option<&'a ReleaseId> {
    recent
        .iter()
        .filter(|r| r.id != mine.id && (r.created_at, &r.id) > (mine.created_at, &mine.id))
        .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
        .map(|r| &r.id)
}

/// Closes a release that a newer signal replaced before it ran.
pub fn supersede(release: &mut Release, now: DateTime<Utc>) {
    release.status = ReleaseStatus::Superseded;
    release.stage = Stage::Done;
    release.finished_at = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{minutes, release};

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
            assert_eq!(newer_signal(&mine, &recent).map(ReleaseId::as_str), *expected, "{recent:?}");
        }
    }

    #[test]
    fn of_two_waiters_exactly_one_defers() {
        let a = release("rel-a", 10, ReleaseStatus::Queued, None, false);
        let b = release("rel-b", 10, ReleaseStatus::Queued, None, false);
        let both = [a.clone(), b.clone()];
        assert_eq!(newer_signal(&a, &both), Some(&b.id));
        assert_eq!(newer_signal(&b, &both), None);
    }

    #[test]
    fn a_superseded_release_is_closed() {
        let mut queued = release("rel-a", 10, ReleaseStatus::Queued, None, false);
        supersede(&mut queued, minutes(12));
        assert_eq!((queued.status, queued.stage, queued.finished_at), (ReleaseStatus::Superseded, Stage::Done, Some(minutes(12))));
    }
}

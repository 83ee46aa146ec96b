//! How a release ends, what it adds to the DORA counters, and the four figures those counters give.
//!
//! A deployment is a release that changed production (at least one wave began); it failed when
//! it rolled back or failed after a wave began. A release a person cancelled is neither, even
//! if a wave began (it was rolled back on purpose, not because the change failed). Lead time runs,
//! for each commit a successful deployment carried (every commit between the previous deployment's
//! and its own: [`carried`]), from the commit's change time ([`change_time`]) to the release's end;
//! a release whose commits were never read counts from its signal's change time (merge time). Time
//! to restore runs from the previous failed deployment's end to the next successful one's.

use crate::flow::{Outcome, OutcomeStatus};
use crate::ports::Commit;
use crate::release::{Change, Changes, Failure, Release, ReleaseStatus, Rollup, Stage, UNKNOWN_SHA, WaveStatus};
use crate::sketch::Sketch;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

/// Closes `release` with the execution's outcome: its status, why it failed, its waves
/// marked rolled back when it rolled back (or was cancelled), and a build it still waited for
/// cancelled.
///
/// The caller closes an open release only ([`ReleaseStatus::is_terminal`]), whose status and
/// stage the lifecycle then always lets it close; a wave whose state cannot take the closing one
/// keeps its own.
pub fn close(release: &mut Release, outcome: &Outcome, now: DateTime<Utc>) {
    let closed = release.move_to(closing_status(release, outcome));
    debug_assert!(closed.is_ok(), "{closed:?}");
    release.failure = outcome.error.as_ref().map(|e| Failure { error: e.error.clone(), cause: e.message(), stage: Some(release.stage) });
    let _ = release.enter(Stage::Done);
    release.finished_at = Some(now);
    crate::rules::builds::stop_following(release, now);
    if matches!(outcome.status, OutcomeStatus::RolledBack | OutcomeStatus::Cancelled) {
        // A wave whose every target refused its deploy changed nothing: it failed, and no
        // rollback undid it.
        for wave in release.waves.iter_mut().filter(|w| w.status != WaveStatus::Pending) {
            let _ = wave.move_to(if crate::rules::waves::changed_any(wave) { WaveStatus::RolledBack } else { WaveStatus::Failed });
        }
    }
}

/// The status a release closes with. A release a person asked to stop
/// ([`Release::cancel_requested`]) that stopped on that request (`Baton.Interrupted`) and failed
/// before any wave or rolled back cleanly is `cancelled` (a definition without the cancelled
/// outcome included); one that had failed by itself first keeps its failure, and one whose
/// rollback failed stays `rollback-failed`: a person must act.
pub fn closing_status(release: &Release, outcome: &Outcome) -> ReleaseStatus {
    let interrupted = outcome.error.as_ref().is_some_and(|e| e.error == crate::error::ErrorName::Interrupted.as_str());
    let cancel_asked = interrupted && release.cancel_requested.is_some();
    match outcome.status {
        OutcomeStatus::Succeeded => ReleaseStatus::Succeeded,
        OutcomeStatus::RollbackFailed => ReleaseStatus::RollbackFailed,
        OutcomeStatus::Cancelled => ReleaseStatus::Cancelled,
        OutcomeStatus::Failed | OutcomeStatus::RolledBack if cancel_asked => ReleaseStatus::Cancelled,
        OutcomeStatus::Failed => ReleaseStatus::Failed,
        OutcomeStatus::RolledBack => ReleaseStatus::RolledBack,
    }
}

/// Whether a wave of `release` began: only then is it a deployment.
pub fn reached_production(release: &Release) -> bool {
    release.waves.iter().any(|w| w.started_at.is_some())
}

/// The deployments of `history` other than `release` that ended by `finished`.
fn deployments_before<'a>(release: &Release, finished: DateTime<Utc>, history: &'a [Release]) -> Vec<&'a Release> {
    history.iter().filter(|r| r.id != release.id && r.finished_at.is_some_and(|f| f <= finished) && is_deployment(r)).collect()
}

/// Whether `release`, ending at `finished`, puts back a version shipped before (see
/// [`redeploys_an_earlier_version`]): such a deployment carries no change.
pub fn is_redeployment(release: &Release, finished: DateTime<Utc>, history: &[Release]) -> bool {
    let earlier = deployments_before(release, finished, history);
    let previous = earlier.iter().max_by_key(|r| r.finished_at).copied();
    redeploys_an_earlier_version(release, previous, &earlier)
}

/// The commit a release shipped: its artifact's, else the one it asked for; `None` when unknown.
pub fn shipped_commit(release: &Release) -> Option<&str> {
    let built = release.artifact.as_ref().map(|a| a.sha.as_str()).filter(|sha| !sha.is_empty() && *sha != UNKNOWN_SHA);
    built.or(release.sha.as_deref()).filter(|sha| !sha.is_empty() && *sha != UNKNOWN_SHA)
}

/// The deployment whose commit a successful `release`, ending at `finished`, carries changes
/// since: the latest earlier successful deployment of a change with a known commit. A failed one
/// shipped nothing (its commits reach production with the next success, which measures them);
/// a redeployment of an older version is skipped, or the next release would count again the
/// commits between that version and the newest one shipped.
pub fn compared_with<'a>(release: &Release, finished: DateTime<Utc>, history: &'a [Release]) -> Option<&'a Release> {
    deployments_before(release, finished, history)
        .into_iter()
        .filter(|r| r.status == ReleaseStatus::Succeeded && shipped_commit(r).is_some())
        .filter(|r| r.finished_at.is_some_and(|ended| !is_redeployment(r, ended, history)))
        .max_by_key(|r| r.finished_at)
}

/// When a commit's change was made, the start of its lead time: its author date. Git keeps the
/// author date when a commit is rebased, cherry-picked or squashed locally (a squash keeps the
/// oldest), and sets the committer date to that moment, so the author date is the closer to when
/// the change was written. A hosted "squash and merge" (GitHub, GitLab) leaves the branch one new
/// commit made at merge time, the pull request's commits gone from its history (DataDog
/// documentation#23271, dora-team/fourkeys#456): no compare lists them, so such a change is
/// measured from its merge, which is what the history still shows.
pub fn change_time(commit: &Commit) -> DateTime<Utc> {
    commit.authored_at
}

/// The changes a successful deployment carried, from the commits `since..head` (oldest first)
/// of a range holding `total`. Merge commits are left out: a merge brings the commits of the
/// branch it merges, which the range lists too, each with its own time, so counting the merge
/// would add a sample of its own merge time. A range of merges alone (their branches' commits
/// shipped before) still changed something: its merges count.
pub fn carried(since: &str, commits: &[Commit], total: u64) -> Changes {
    let changes: Vec<&Commit> = commits.iter().filter(|c| c.parents <= 1).collect();
    let counted = if changes.is_empty() { commits.iter().collect() } else { changes };
    Changes {
        since: Some(since.to_owned()),
        commits: counted.into_iter().map(|c| Change { sha: c.sha.clone(), at: change_time(c) }).collect(),
        total,
        fallback: None,
    }
}

/// Only the release's own commit `head` counts, for `why`: from its change time when the
/// history had the commit, else from the signal's change time (`changed_at`); nothing is measured
/// when neither is known.
pub fn own_commit(since: Option<&str>, head: &str, commit: Option<&Commit>, changed_at: Option<DateTime<Utc>>, why: String) -> Changes {
    let at = commit.map(change_time).or(changed_at);
    Changes {
        since: since.map(str::to_owned),
        commits: at.map(|at| Change { sha: head.to_owned(), at }).into_iter().collect(),
        total: 1,
        fallback: Some(why),
    }
}

/// A deployment changed production; a person's cancel, rolled back, is none (nor a failed one).
fn is_deployment(release: &Release) -> bool {
    release.status != ReleaseStatus::Cancelled && reached_production(release)
}

/// What a finished release adds to its day's counters. `history` is the service's releases in
/// the environment, in any order (it may include `release` itself).
pub fn rollup_delta(release: &Release, history: &[Release]) -> Rollup {
    let mut delta = Rollup::default();
    let Some(finished) = release.finished_at.filter(|_| is_deployment(release)) else { return delta };
    let earlier = deployments_before(release, finished, history);
    let previous = earlier.iter().max_by_key(|r| r.finished_at);
    match release.status {
        ReleaseStatus::Succeeded => {
            delta.deployments = 1;
            delta.redeployments = u64::from(redeploys_an_earlier_version(release, previous.copied(), &earlier));
            // One sample per commit carried, so a release of ten commits weighs ten in the
            // median; a release whose commits were never read counts its signal's change time.
            let starts: Vec<DateTime<Utc>> = match &release.changes {
                Some(changes) => changes.commits.iter().map(|change| change.at).collect(),
                None => release.changed_at.into_iter().collect(),
            };
            for start in &starts {
                let lead = seconds_between(*start, finished);
                delta.lead_time_seconds_total += lead as u64;
                delta.lead_time_samples += 1;
                delta.lead_times.add(lead);
            }
            // A fallback that found no time for the commit measured nothing to approximate.
            let fell_back = release.changes.as_ref().is_some_and(|changes| changes.fallback.is_some());
            delta.lead_time_fallbacks = u64::from(fell_back && !starts.is_empty());
            if let Some(failed_at) = previous.filter(|r| is_failed_deployment(r.status)).and_then(|r| r.finished_at) {
                let restore = seconds_between(failed_at, finished);
                delta.restore_seconds_total = restore as u64;
                delta.restores = 1;
                delta.restore_times = Sketch::of(restore);
            }
        }
        ReleaseStatus::RolledBack | ReleaseStatus::RollbackFailed => {
            delta.deployments = 1;
            delta.failed_deployments = 1;
            delta.rollbacks = 1;
        }
        ReleaseStatus::Failed => {
            delta.deployments = 1;
            delta.failed_deployments = 1;
        }
        ReleaseStatus::Queued
        | ReleaseStatus::Running
        | ReleaseStatus::Interrupted
        | ReleaseStatus::Superseded
        | ReleaseStatus::Skipped
        | ReleaseStatus::Cancelled => {}
    }
    delta
}

/// Whether `release` puts back a version that an earlier deployment shipped and that differs from
/// the deployment just before it's (Datadog's rollback deployment): versions compare by commit,
/// else by artifact reference.
fn redeploys_an_earlier_version(release: &Release, previous: Option<&Release>, earlier: &[&Release]) -> bool {
    let Some(shipped) = version(release) else { return false };
    if previous.and_then(|r| version(r)) == Some(shipped) {
        return false;
    }
    earlier.iter().filter_map(|r| version_of_success(r)).any(|v| v == shipped)
}

fn version(release: &Release) -> Option<&str> {
    let artifact = release.artifact.as_ref()?;
    Some(if artifact.sha.is_empty() { artifact.reference.as_str() } else { artifact.sha.as_str() })
}

/// The version a deployment left running: only a successful one left its own.
fn version_of_success(release: &Release) -> Option<&str> {
    (release.status == ReleaseStatus::Succeeded).then(|| version(release)).flatten()
}

fn is_failed_deployment(status: ReleaseStatus) -> bool {
    matches!(status, ReleaseStatus::Failed | ReleaseStatus::RolledBack | ReleaseStatus::RollbackFailed)
}

/// Seconds from `from` to `to`, to the millisecond; a clock that went backwards counts as zero.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// The four DORA figures of one or more services over a window, from their daily rollups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub days: u64,
    pub deployments: u64,
    pub deployments_per_day: f64,
    pub deployments_per_week: f64,
    pub failed_deployments: u64,
    /// Deployments that rolled back by themselves (counted in `failed_deployments` too).
    pub rollbacks: u64,
    /// Successful deployments of a version shipped before: not changes.
    pub redeployments: u64,
    /// Failed deployments over deployments of a change (all but redeployments); `None` without any.
    pub change_failure_rate: Option<f64>,
    /// From the change to the end of the successful release that shipped it.
    pub lead_time: Durations,
    /// Deployments whose lead time fell back to their own commit: their samples are
    /// approximations (one each, whatever they carried).
    pub lead_time_fallbacks: u64,
    /// From a failed deployment's end to the end of the next successful one.
    pub time_to_restore: Durations,
    pub bands: Bands,
}

/// Durations in seconds: medians and 90th percentiles from the merged sketches (within 1 %),
/// the mean from exact sums. `None` where nothing was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Durations {
    pub samples: u64,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub mean_seconds: Option<f64>,
}

/// The DORA report's performance levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Elite,
    High,
    Medium,
    Low,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Elite => "elite",
            Band::High => "high",
            Band::Medium => "medium",
            Band::Low => "low",
        }
    }
}

/// Each figure's band, by the thresholds of the State of DevOps report (2023): deployments on
/// demand (at least daily), weekly, monthly, or less; lead time and time to restore (medians)
/// under an hour / a day / a week / a month; change failure rate at most 5 %, 10 %, 15 %.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bands {
    pub deployment_frequency: Band,
    pub lead_time: Option<Band>,
    pub change_failure_rate: Option<Band>,
    pub time_to_restore: Option<Band>,
}

const HOUR: f64 = 3600.0;
const DAY: f64 = 24.0 * HOUR;

fn band_below(value: f64, thresholds: [f64; 3]) -> Band {
    match thresholds.iter().position(|&limit| value < limit) {
        Some(0) => Band::Elite,
        Some(1) => Band::High,
        Some(2) => Band::Medium,
        _ => Band::Low,
    }
}

pub fn bands(figures: &Figures) -> Bands {
    let per_day = figures.deployments_per_day;
    Bands {
        deployment_frequency: match () {
            _ if per_day >= 1.0 => Band::Elite,
            _ if per_day >= 1.0 / 7.0 => Band::High,
            _ if per_day >= 1.0 / 30.0 => Band::Medium,
            _ => Band::Low,
        },
        lead_time: figures.lead_time.p50_seconds.map(|s| band_below(s, [DAY, 7.0 * DAY, 30.0 * DAY])),
        // At most 5 %, 10 %, 15 %: the thresholds are included.
        change_failure_rate: figures.change_failure_rate.map(|rate| band_below(rate, [0.05 + 1e-12, 0.10 + 1e-12, 0.15 + 1e-12])),
        time_to_restore: figures.time_to_restore.p50_seconds.map(|s| band_below(s, [HOUR, DAY, 7.0 * DAY])),
    }
}

/// The figures of `days` days (the window's length, days without releases included) whose
/// rollups are `rollups`, of any number of services.
pub fn figures<'a>(days: u64, rollups: impl IntoIterator<Item = &'a Rollup>) -> Figures {
    let total = rollups.into_iter().fold(Rollup::default(), |mut sum, day| {
        sum += day;
        sum
    });
    let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
    let durations = |sketch: &Sketch, total_seconds: u64, samples: u64| Durations {
        samples,
        p50_seconds: sketch.quantile(0.5),
        p90_seconds: sketch.quantile(0.9),
        mean_seconds: ratio(total_seconds, samples),
    };
    let days = days.max(1);
    let mut figures = Figures {
        days,
        deployments: total.deployments,
        deployments_per_day: total.deployments as f64 / days as f64,
        deployments_per_week: total.deployments as f64 * 7.0 / days as f64,
        failed_deployments: total.failed_deployments,
        rollbacks: total.rollbacks,
        redeployments: total.redeployments,
        change_failure_rate: ratio(total.failed_deployments, total.deployments.saturating_sub(total.redeployments)),
        lead_time: durations(&total.lead_times, total.lead_time_seconds_total, total.lead_time_samples),
        lead_time_fallbacks: total.lead_time_fallbacks,
        time_to_restore: durations(&total.restore_times, total.restore_seconds_total, total.restores),
        bands: Bands { deployment_frequency: Band::Low, lead_time: None, change_failure_rate: None, time_to_restore: None },
    };
    figures.bands = bands(&figures);
    figures
}

/// One week of the trend: the Monday it starts on and its figures (days outside the window not counted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    pub starts: NaiveDate,
    pub deployments: u64,
    pub failed_deployments: u64,
    pub change_failure_rate: Option<f64>,
    pub lead_time_p50_seconds: Option<f64>,
    pub time_to_restore_p50_seconds: Option<f64>,
}

/// The window `from..=to` week by week (weeks start on Monday), every week present, from
/// `(day, rollup)` pairs of any number of services.
pub fn weekly(from: NaiveDate, to: NaiveDate, rollups: &[(NaiveDate, Rollup)]) -> Vec<Week> {
    let monday = |day: NaiveDate| day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()));
    let mut weeks = Vec::new();
    let mut starts = monday(from);
    while starts <= to {
        let ends = starts + chrono::Days::new(6);
        let days: Vec<&Rollup> =
            rollups.iter().filter(|(day, _)| *day >= starts.max(from) && *day <= ends.min(to)).map(|(_, r)| r).collect();
        let first = starts.max(from);
        let length = (ends.min(to) - first).num_days() as u64 + 1;
        let week = figures(length, days);
        weeks.push(Week {
            starts,
            deployments: week.deployments,
            failed_deployments: week.failed_deployments,
            change_failure_rate: week.change_failure_rate,
            lead_time_p50_seconds: week.lead_time.p50_seconds,
            time_to_restore_p50_seconds: week.time_to_restore.p50_seconds,
        });
        starts = starts + chrono::Days::new(7);
    }
    weeks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::CaughtError;
    use crate::release::{BuildStatus, RunHandle};
    use crate::rules::fixtures::{minutes, release};
    use ReleaseStatus::*;

    fn rollup(deployments: u64, failed: u64, rollbacks: u64, lead: Option<u64>, restore: Option<u64>) -> Rollup {
        Rollup {
            deployments,
            failed_deployments: failed,
            rollbacks,
            lead_time_seconds_total: lead.unwrap_or(0),
            lead_time_samples: u64::from(lead.is_some()),
            restore_seconds_total: restore.unwrap_or(0),
            restores: u64::from(restore.is_some()),
            redeployments: 0,
            lead_time_fallbacks: 0,
            lead_times: lead.map(|s| Sketch::of(s as f64)).unwrap_or_default(),
            restore_times: restore.map(|s| Sketch::of(s as f64)).unwrap_or_default(),
        }
    }

    #[test]
    fn each_ending_adds_its_counts() {
        // (status, reached production, changed minutes before the end, expected delta)
        let cases: &[(ReleaseStatus, bool, Option<i64>, Rollup)] = &[
            (Succeeded, true, None, rollup(1, 0, 0, None, None)),
            (Succeeded, true, Some(30), rollup(1, 0, 0, Some(1800), None)),
            (RolledBack, true, Some(30), rollup(1, 1, 1, None, None)),
            (Failed, true, None, rollup(1, 1, 0, None, None)),
            (RollbackFailed, true, None, rollup(1, 1, 1, None, None)),
            // Nothing reached production: not a deployment, whatever the ending.
            (Failed, false, None, Rollup::default()),
            (Succeeded, false, Some(30), Rollup::default()),
            (Superseded, false, None, Rollup::default()),
            (Superseded, true, None, Rollup::default()),
            (Skipped, false, None, Rollup::default()),
            // A person's cancel, rolled back: neither a deployment nor a change failure.
            (Cancelled, true, Some(30), Rollup::default()),
            (Cancelled, false, None, Rollup::default()),
        ];
        for (status, deployed, changed_before, expected) in cases {
            let mut finished = release("rel-me", 60, *status, Some(100), *deployed);
            finished.changed_at = changed_before.map(|m| minutes(100 - m));
            assert_eq!(&rollup_delta(&finished, &[]), expected, "{status:?} deployed={deployed} changed={changed_before:?}");
        }
    }

    #[test]
    fn lead_time_from_a_change_after_the_end_is_zero() {
        let mut finished = release("rel-me", 60, Succeeded, Some(100), true);
        finished.changed_at = Some(minutes(101));
        assert_eq!(rollup_delta(&finished, &[]), rollup(1, 0, 0, Some(0), None));
    }

    fn commit(sha: &str, authored: i64, committed: i64, parents: usize) -> Commit {
        Commit { sha: sha.into(), authored_at: minutes(authored), committed_at: minutes(committed), parents }
    }

    /// A release ending at minute 100 that carried `changes`, and what it adds to its day.
    fn lead_times_of(changes: Changes) -> Rollup {
        let mut finished = release("rel-me", 60, Succeeded, Some(100), true);
        finished.changed_at = Some(minutes(95));
        finished.changes = Some(changes);
        rollup_delta(&finished, &[])
    }

    fn leads(seconds: &[u64]) -> Rollup {
        let mut sketch = Sketch::default();
        seconds.iter().for_each(|&s| sketch.add(s as f64));
        Rollup {
            deployments: 1,
            lead_time_seconds_total: seconds.iter().sum(),
            lead_time_samples: seconds.len() as u64,
            lead_times: sketch,
            ..Rollup::default()
        }
    }

    #[test]
    fn each_commit_a_release_carried_is_one_lead_time_worked_by_hand() {
        // (the commits since the previous deployment as (sha, authored, committed, parents), lead times in seconds; the release ends at minute 100)
        type Case = (&'static str, &'static [(&'static str, i64, i64, usize)], &'static [u64]);
        let cases: &[Case] = &[
            // Three commits, written at minutes 10, 40 and 70: 90, 60 and 30 minutes.
            ("several commits", &[("a", 10, 10, 1), ("b", 40, 40, 1), ("c", 70, 70, 1)], &[5400, 3600, 1800]),
            // A hosted squash merge is one commit made at merge time (minute 90): 10 minutes, from the merge.
            ("a squash merge", &[("squash", 90, 90, 1)], &[600]),
            // Rebased at minute 90, written at 20: the author date counts, 80 minutes.
            ("a rebased commit", &[("rebased", 20, 90, 1)], &[4800]),
            // A merge commit adds no sample of its own: its branch's commits are each counted.
            ("a merge of two commits", &[("a", 30, 30, 1), ("b", 50, 50, 1), ("merge", 80, 80, 2)], &[4200, 3000]),
            // A range of merges alone (their branches shipped before) still changed something.
            ("merges alone", &[("merge", 80, 80, 2)], &[1200]),
            // A commit made after the release's end (a clock behind) counts as zero.
            ("a commit after the end", &[("late", 101, 101, 1)], &[0]),
            // Nothing new: no lead time, and not the signal's change time either.
            ("no commit", &[], &[]),
        ];
        for (name, commits, expected) in cases {
            let commits: Vec<Commit> = commits.iter().map(|(sha, a, c, p)| commit(sha, *a, *c, *p)).collect();
            let changes = carried("base", &commits, commits.len() as u64);
            assert_eq!(lead_times_of(changes), leads(expected), "{name}");
        }
    }

    #[test]
    fn a_release_that_falls_back_counts_its_own_commit_and_says_why() {
        // Each fallback that measured something is counted as an approximation.
        let fell_back = |seconds: &[u64]| Rollup { lead_time_fallbacks: 1, ..leads(seconds) };
        // A force push dropped the previous commit: the release's own commit, written at minute 60, counts: 40 minutes.
        let own = commit("head", 60, 62, 1);
        let changes = own_commit(Some("base"), "head", Some(&own), Some(minutes(95)), "force push".into());
        assert_eq!(changes.fallback.as_deref(), Some("force push"));
        assert_eq!(changes.commits, vec![Change { sha: "head".into(), at: minutes(60) }]);
        assert_eq!(lead_times_of(changes), fell_back(&[2400]));
        // Its commit unknown to the history too: the signal's change time (minute 95), 5 minutes.
        let changes = own_commit(Some("base"), "head", None, Some(minutes(95)), "history down".into());
        assert_eq!(lead_times_of(changes), fell_back(&[300]));
        // Neither known: no lead time at all, so none approximated.
        assert_eq!(lead_times_of(own_commit(None, "head", None, None, "nothing known".into())), leads(&[]));
        // A release whose commits were never read keeps the signal's change time.
        let mut unread = release("rel-me", 60, Succeeded, Some(100), true);
        unread.changed_at = Some(minutes(95));
        assert_eq!(rollup_delta(&unread, &[]), leads(&[300]));
    }

    #[test]
    fn a_release_carries_the_changes_since_the_latest_change_shipped() {
        // (earlier releases as (id, status, finished minute, commit), the one compared with)
        type Case = (&'static [(&'static str, ReleaseStatus, i64, &'static str)], Option<&'static str>);
        let cases: &[Case] = &[
            (&[], None),
            (&[("rel-1", Succeeded, 10, "v1")], Some("rel-1")),
            // A failed deployment shipped nothing: its commits come with the next success.
            (&[("rel-1", Succeeded, 10, "v1"), ("rel-2", RolledBack, 20, "v2")], Some("rel-1")),
            (&[("rel-1", Succeeded, 10, "v1"), ("rel-2", Succeeded, 20, "v2")], Some("rel-2")),
            // A redeployment of v1 carried no change: the changes since v2 are what is new.
            (&[("rel-1", Succeeded, 10, "v1"), ("rel-2", Succeeded, 20, "v2"), ("rel-3", Succeeded, 30, "v1")], Some("rel-2")),
            // A deployment whose commit is unknown cannot be compared with.
            (&[("rel-1", Succeeded, 10, "v1"), ("rel-2", Succeeded, 20, UNKNOWN_SHA)], Some("rel-1")),
            // One that ended after this one is not before it.
            (&[("rel-1", Succeeded, 120, "v1")], None),
        ];
        for (earlier, expected) in cases {
            let history: Vec<Release> = earlier
                .iter()
                .map(|(id, status, at, sha)| {
                    let mut r = release(id, 0, *status, Some(*at), true);
                    r.artifact.as_mut().unwrap().sha = (*sha).into();
                    r
                })
                .collect();
            let me = release("rel-me", 60, Running, None, true);
            let found = compared_with(&me, minutes(100), &history).map(|r| r.id.0.as_str());
            assert_eq!(found, *expected, "{earlier:?}");
        }
    }

    type Earlier = &'static [(&'static str, ReleaseStatus, i64, bool)];

    #[test]
    fn a_success_after_a_failed_deployment_restores_service() {
        // (the service's earlier releases as (id, status, finished minute, reached production), restore seconds)
        let cases: &[(Earlier, Option<u64>)] = &[
            (&[], None),
            (&[("rel-a", RolledBack, 40, true)], Some(3600)),
            (&[("rel-a", Failed, 70, true)], Some(1800)),
            (&[("rel-a", RollbackFailed, 70, true)], Some(1800)),
            (&[("rel-a", Succeeded, 70, true)], None),
            // The latest deployment before this one decides.
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Succeeded, 70, true)], None),
            (&[("rel-b", Succeeded, 40, true), ("rel-a", RolledBack, 70, true)], Some(1800)),
            // Releases that never reached production are not deployments, failed or not.
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Failed, 70, false)], Some(3600)),
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Superseded, 70, false)], Some(3600)),
            // Nor is a cancelled one: the failure before it is what this one restores.
            (&[("rel-a", RolledBack, 40, true), ("rel-b", Cancelled, 70, true)], Some(3600)),
            (&[("rel-a", Cancelled, 70, true)], None),
            // A release that ended after this one is not before it.
            (&[("rel-a", RolledBack, 120, true)], None),
        ];
        for (earlier, restore) in cases {
            let finished = release("rel-me", 60, Succeeded, Some(100), true);
            let mut history: Vec<Release> =
                earlier.iter().map(|(id, status, at, deployed)| release(id, 0, *status, Some(*at), *deployed)).collect();
            history.push(finished.clone());
            assert_eq!(rollup_delta(&finished, &history), rollup(1, 0, 0, None, *restore), "{earlier:?}");
        }
    }

    #[test]
    fn a_deployment_of_a_version_shipped_before_the_previous_one_is_a_redeployment() {
        // (earlier deployments as (status, finished minute, version), this one's version and status, redeployment)
        type Case = (&'static [(ReleaseStatus, i64, &'static str)], &'static str, ReleaseStatus, u64);
        let cases: &[Case] = &[
            (&[], "v1", Succeeded, 0),
            // The version running already: a repeat, not a rollback.
            (&[(Succeeded, 40, "v1")], "v1", Succeeded, 0),
            (&[(Succeeded, 30, "v1"), (Succeeded, 40, "v2")], "v1", Succeeded, 1),
            (&[(Succeeded, 30, "v1"), (RolledBack, 40, "v2")], "v1", Succeeded, 1),
            // A version that never shipped is a change, whatever failed with it before.
            (&[(Failed, 30, "v1"), (Succeeded, 40, "v2")], "v1", Succeeded, 0),
            (&[(Succeeded, 30, "v1"), (Succeeded, 40, "v2")], "v3", Succeeded, 0),
            // One that fails put nothing back: a failed deployment, counted as a change.
            (&[(Succeeded, 30, "v1"), (Succeeded, 40, "v2")], "v1", RolledBack, 0),
        ];
        for (earlier, version, status, expected) in cases {
            let with_version = |mut r: Release, v: &str| {
                r.artifact.as_mut().unwrap().sha = v.into();
                r
            };
            let history: Vec<Release> = earlier
                .iter()
                .enumerate()
                .map(|(i, (s, at, v))| with_version(release(&format!("rel-{i}"), 0, *s, Some(*at), true), v))
                .collect();
            let me = with_version(release("rel-me", 60, *status, Some(100), true), version);
            assert_eq!(rollup_delta(&me, &history).redeployments, *expected, "{earlier:?} then {version} {status:?}");
        }
    }

    #[test]
    fn a_release_a_person_asked_to_stop_closes_cancelled_unless_its_rollback_failed() {
        // (outcome, the error that stopped it, cancel asked on the record, status it closes with)
        let cases = [
            (OutcomeStatus::Cancelled, "Baton.Interrupted", false, Cancelled),
            (OutcomeStatus::Cancelled, "Baton.Interrupted", true, Cancelled),
            // A definition without the cancelled outcome: the request on the record decides.
            (OutcomeStatus::RolledBack, "Baton.Interrupted", true, Cancelled),
            (OutcomeStatus::Failed, "Baton.Interrupted", true, Cancelled),
            (OutcomeStatus::RolledBack, "Baton.Interrupted", false, RolledBack),
            // It failed by itself before the request was acted on: a failure, not a cancel.
            (OutcomeStatus::RolledBack, "Baton.HealthCheckFailed", true, RolledBack),
            (OutcomeStatus::Failed, "Baton.BuildFailed", true, Failed),
            (OutcomeStatus::RollbackFailed, "Baton.Interrupted", true, RollbackFailed),
            // It ended before the request was acted on: it shipped.
            (OutcomeStatus::Succeeded, "", true, Succeeded),
            (OutcomeStatus::Failed, "Baton.BuildFailed", false, Failed),
        ];
        for (status, error, asked, expected) in cases {
            let mut running = release("rel-me", 0, Running, None, true);
            running.cancel_requested = asked.then(|| "ann cancelled the release: wrong commit".to_owned());
            let error = (!error.is_empty()).then(|| CaughtError { error: error.into(), cause: "why".into() });
            let outcome = Outcome { status, error, action_needed: None };
            assert_eq!(closing_status(&running, &outcome), expected, "{outcome:?} asked={asked}");
        }
    }

    #[test]
    fn closing_sets_status_failure_and_rolled_back_waves() {
        let caught = CaughtError { error: "Baton.HealthCheckFailed".into(), cause: r#"{"errorMessage":"wave rest is unhealthy"}"#.into() };
        let cases = [
            (OutcomeStatus::Succeeded, Succeeded, None),
            (OutcomeStatus::RolledBack, RolledBack, Some(caught.clone())),
            (OutcomeStatus::Failed, Failed, Some(caught.clone())),
            (OutcomeStatus::RollbackFailed, RollbackFailed, Some(caught.clone())),
            (OutcomeStatus::Cancelled, Cancelled, Some(caught)),
        ];
        for (outcome_status, status, error) in cases {
            let mut running = release("rel-me", 0, Running, None, true);
            running.stage = Stage::Deploy;
            let run = RunHandle { provider: "command".into(), id: "7".into(), url: None, state: serde_json::Value::Null };
            crate::rules::builds::record_start(&mut running, &run, minutes(1));
            let outcome = Outcome { status: outcome_status, error: error.clone(), action_needed: None };
            close(&mut running, &outcome, minutes(9));
            assert_eq!((running.status, running.stage, running.finished_at), (status, Stage::Done, Some(minutes(9))));
            let failure = running.failure.as_ref().map(|f| (f.error.as_str(), f.cause.as_str(), f.stage));
            assert_eq!(failure, error.as_ref().map(|_| ("Baton.HealthCheckFailed", "wave rest is unhealthy", Some(Stage::Deploy))));
            let rolled_back = running.waves[0].status == WaveStatus::RolledBack;
            assert_eq!(rolled_back, matches!(status, RolledBack | Cancelled), "only a rollback or a cancel marks begun waves");
            assert_eq!(running.waves[1].status, WaveStatus::Pending, "waves that never began stay pending");
            let build = running.build.as_ref().map(|b| (b.status, b.finished_at));
            assert_eq!(build, Some((BuildStatus::Unfollowed, Some(minutes(9)))), "a build still running is no longer followed");
        }
    }

    fn lead(seconds: &[f64]) -> (Sketch, u64, u64) {
        let mut sketch = Sketch::default();
        seconds.iter().for_each(|&s| sketch.add(s));
        (sketch, seconds.iter().sum::<f64>() as u64, seconds.len() as u64)
    }

    fn close_to(found: Option<f64>, expected: f64) -> bool {
        found.is_some_and(|f| (f - expected).abs() <= expected * crate::sketch::RELATIVE_ACCURACY)
    }

    #[test]
    fn figures_of_two_services_over_a_window_worked_by_hand() {
        // web: 6 deployments (1 rolled back, 1 redeployment), lead times 60 s, 120 s, 180 s on one day;
        // api: 4 deployments (1 failed), lead times 240 s and 3600 s, one restore of 30 min.
        let (web_leads, web_total, web_samples) = lead(&[60.0, 120.0, 180.0]);
        let (api_leads, api_total, api_samples) = lead(&[240.0, 3600.0]);
        let web = Rollup {
            deployments: 6,
            failed_deployments: 1,
            rollbacks: 1,
            redeployments: 1,
            lead_time_seconds_total: web_total,
            lead_time_samples: web_samples,
            lead_times: web_leads,
            ..Rollup::default()
        };
        let api = Rollup {
            deployments: 4,
            failed_deployments: 1,
            lead_time_seconds_total: api_total,
            lead_time_samples: api_samples,
            lead_times: api_leads,
            restore_seconds_total: 1800,
            restores: 1,
            restore_times: Sketch::of(1800.0),
            ..Rollup::default()
        };
        let f = figures(30, [&web, &api]);
        assert_eq!((f.deployments, f.failed_deployments, f.rollbacks, f.redeployments), (10, 2, 1, 1));
        assert!((f.deployments_per_day - 10.0 / 30.0).abs() < 1e-12);
        assert!((f.deployments_per_week - 70.0 / 30.0).abs() < 1e-12);
        // 2 failed out of the 9 deployments that were changes.
        assert_eq!(f.change_failure_rate, Some(2.0 / 9.0));
        // Lead times 60, 120, 180, 240, 3600: the median is the 3rd (180 s), the p90 the 5th (3600 s).
        assert!(close_to(f.lead_time.p50_seconds, 180.0), "{:?}", f.lead_time);
        assert!(close_to(f.lead_time.p90_seconds, 3600.0), "{:?}", f.lead_time);
        assert_eq!((f.lead_time.samples, f.lead_time.mean_seconds), (5, Some(840.0)));
        assert!(close_to(f.time_to_restore.p50_seconds, 1800.0));
        assert_eq!(f.time_to_restore.mean_seconds, Some(1800.0));
        // A third of a deployment a day is weekly (high); a 3-minute median lead time is elite;
        // 22 % of changes failing is low; a 30-minute restore is elite.
        assert_eq!(
            f.bands,
            Bands {
                deployment_frequency: Band::High,
                lead_time: Some(Band::Elite),
                change_failure_rate: Some(Band::Low),
                time_to_restore: Some(Band::Elite)
            }
        );
        let none = figures(7, []);
        assert_eq!((none.change_failure_rate, none.lead_time.p50_seconds, none.bands.lead_time), (None, None, None));
        assert_eq!(none.bands.deployment_frequency, Band::Low);
    }

    #[test]
    fn bands_follow_the_dora_thresholds() {
        // (deployments a day, median lead time, change failure rate, median time to restore, expected bands)
        type Case = (f64, f64, f64, f64, [Band; 4]);
        use Band::*;
        let cases: &[Case] = &[
            (3.0, 3600.0, 0.0, 600.0, [Elite, Elite, Elite, Elite]),
            (1.0, DAY - 1.0, 0.05, HOUR - 1.0, [Elite, Elite, Elite, Elite]),
            (0.99, DAY, 0.051, HOUR, [High, High, High, High]),
            (1.0 / 7.0, 7.0 * DAY - 1.0, 0.10, DAY - 1.0, [High, High, High, High]),
            (0.14, 7.0 * DAY, 0.11, DAY, [Medium, Medium, Medium, Medium]),
            (1.0 / 30.0, 30.0 * DAY - 1.0, 0.15, 7.0 * DAY - 1.0, [Medium, Medium, Medium, Medium]),
            (0.03, 30.0 * DAY, 0.16, 7.0 * DAY, [Low, Low, Low, Low]),
        ];
        for &(per_day, lead, rate, restore, expected) in cases {
            let durations = |s: f64| Durations { samples: 1, p50_seconds: Some(s), p90_seconds: Some(s), mean_seconds: Some(s) };
            let mut f = figures(1, []);
            f.deployments_per_day = per_day;
            f.lead_time = durations(lead);
            f.change_failure_rate = Some(rate);
            f.time_to_restore = durations(restore);
            let b = bands(&f);
            let found = [b.deployment_frequency, b.lead_time.unwrap(), b.change_failure_rate.unwrap(), b.time_to_restore.unwrap()];
            assert_eq!(found, expected, "per day {per_day}, lead {lead}, rate {rate}, restore {restore}");
        }
    }

    #[test]
    fn the_trend_has_every_week_of_the_window_and_only_its_days() {
        let date = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let one = |deployments: u64, failed: u64| Rollup { deployments, failed_deployments: failed, ..Rollup::default() };
        // Wednesday 4 November to Sunday 15 November: the weeks of Monday 2 and Monday 9.
        let days = [(date(3), one(5, 5)), (date(4), one(2, 0)), (date(8), one(2, 1)), (date(9), one(1, 0)), (date(16), one(7, 7))];
        let weeks = weekly(date(4), date(15), &days);
        let found: Vec<(NaiveDate, u64, u64, Option<f64>)> =
            weeks.iter().map(|w| (w.starts, w.deployments, w.failed_deployments, w.change_failure_rate)).collect();
        assert_eq!(found, [(date(2), 4, 1, Some(0.25)), (date(9), 1, 0, Some(0.0))]);
        assert_eq!(weekly(date(10), date(10), &[]).len(), 1, "a one-day window is one week");
    }
}

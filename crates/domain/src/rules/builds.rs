//! A release's CI build: what trigger-build and poll-build record of it, and the figures
//! `baton builds` reports over a window of releases.
//!
//! Durations run from the build's start to its end when the provider said when it started,
//! otherwise from when Baton asked for it (so they include the provider's queue); each row says
//! which. Ends are seen by polls, so a duration can be up to one poll interval long. Percentiles
//! are nearest-rank over the builds that ran to an end (succeeded or failed); the failure rate is
//! failed over those same builds. Cancelled builds (and builds no longer followed, counted with
//! them) are left out of both: they ended when the release stopped following them, not on their
//! own merits, so their length and outcome say nothing about the build. A build asked for and
//! not found yet counts as running.

use crate::ports::{BuildPoll, BuildProgress, RunHandle};
use crate::release::{BuildRecord, BuildStatus, Release, ReleaseId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// trigger-build is about to ask `provider` for a build at `now`. Each request counts an
/// attempt; the record keeps when Baton first asked, so a request whose answer never came
/// (a timeout, a reset connection, a 5xx after the provider may have acted) is looked for
/// from then on before another is sent ([`unanswered_request`]).
pub fn record_request(release: &mut Release, provider: &str, now: DateTime<Utc>) {
    if let Some(build) = release.build.as_mut().filter(|build| build.status == BuildStatus::Requested) {
        build.attempts += 1;
        return;
    }
    let attempts = release.build.as_ref().map_or(0, |build| build.attempts) + 1;
    release.build = Some(BuildRecord {
        provider: provider.to_owned(),
        run_id: String::new(),
        url: None,
        queued_at: now,
        started_at: None,
        finished_at: None,
        status: BuildStatus::Requested,
        attempts,
        reason: None,
        state: serde_json::Value::Null,
    });
}

/// When Baton first asked for a build that it has no run for yet: the build the release
/// started, if any, was created after this.
pub fn unanswered_request(release: &Release) -> Option<DateTime<Utc>> {
    release.build.as_ref().filter(|build| build.status == BuildStatus::Requested).map(|build| build.queued_at)
}

/// trigger-build started (or found) `run` at `now`. The run answers a pending request (which
/// keeps its attempts and the time Baton first asked); a start after a recorded run (the task
/// ran again after its record write failed) replaces it and counts another attempt; recording
/// the same run twice counts it once.
pub fn record_start(release: &mut Release, run: &RunHandle, now: DateTime<Utc>) {
    let earlier = release.build.as_ref();
    if earlier.is_some_and(|build| build.provider == run.provider && build.run_id == run.id) {
        return;
    }
    let (queued_at, attempts) = match earlier {
        Some(build) if build.status == BuildStatus::Requested => (build.queued_at, build.attempts),
        Some(build) => (now, build.attempts + 1),
        None => (now, 1),
    };
    release.build = Some(BuildRecord {
        provider: run.provider.clone(),
        run_id: run.id.clone(),
        url: run.url.clone(),
        queued_at,
        started_at: None,
        finished_at: None,
        status: BuildStatus::Running,
        attempts,
        reason: None,
        state: run.state.clone(),
    });
}

/// poll-build's poll of the recorded build, whose handle named no run yet (the provider
/// accepted the request without saying which run it started), found `run`: the release
/// follows it from now on. The request keeps its attempts and the time Baton asked. True when
/// this is news (the build is `started` then); false when the record already has a run.
pub fn record_located(release: &mut Release, run: &RunHandle) -> bool {
    let unlocated = |build: &&mut BuildRecord| {
        build.status == BuildStatus::Running && build.provider == run.provider && build.run_id == RunHandle::UNLOCATED
    };
    let Some(build) = release.build.as_mut().filter(unlocated) else { return false };
    build.run_id.clone_from(&run.id);
    build.url.clone_from(&run.url);
    build.state = run.state.clone();
    true
}

/// The build the release already started and still follows: a trigger-build run again (tasks are
/// at-least-once: a retry, a resumed release) follows it rather than starting another.
pub fn followed_build(release: &Release) -> Option<RunHandle> {
    release.build.as_ref().filter(|build| build.status == BuildStatus::Running).map(BuildRecord::handle)
}

/// poll-build saw `poll` of `run` at `now`. Only the recorded run's first start time and first
/// end count: a poll of a replaced run, or a repeated poll after the end, changes nothing.
pub fn record_progress(release: &mut Release, run: &RunHandle, poll: &BuildPoll, now: DateTime<Utc>) {
    let Some(build) = release.build.as_mut().filter(|build| build.run_id == run.id && build.status == BuildStatus::Running) else {
        return;
    };
    if build.started_at.is_none() {
        build.started_at = poll.started_at;
    }
    let (status, reason) = match &poll.progress {
        BuildProgress::Running => return,
        BuildProgress::Succeeded { .. } => (BuildStatus::Succeeded, None),
        BuildProgress::Failed { reason } => (BuildStatus::Failed, Some(reason.clone())),
    };
    build.status = status;
    build.reason = reason;
    build.finished_at = Some(now);
}

/// Baton cancelled the running build `run` at `now` (the release stopped following it), because
/// `why`.
pub fn record_cancelled(release: &mut Release, run: &RunHandle, now: DateTime<Utc>, why: &str) {
    if let Some(build) = release.build.as_mut().filter(|build| build.run_id == run.id && build.status == BuildStatus::Running) {
        build.status = BuildStatus::Cancelled;
        build.reason = Some(format!("cancelled by Baton: {why}"));
        build.finished_at = Some(now);
    }
}

/// The release ended at `now` with its build still running, or asked for and never found:
/// Baton stops following it. Not `Cancelled`: nobody cancelled it.
pub fn stop_following(release: &mut Release, now: DateTime<Utc>) {
    let following = |build: &&mut BuildRecord| matches!(build.status, BuildStatus::Running | BuildStatus::Requested);
    if let Some(build) = release.build.as_mut().filter(following) {
        build.status = BuildStatus::Unfollowed;
        build.finished_at = Some(now);
    }
}

/// Where a build's duration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeasuredFrom {
    /// The provider's start time.
    Started,
    /// Baton's request: the provider did not say when the build started.
    Queued,
}

/// One release's build, as `baton builds` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildRow {
    pub release_id: ReleaseId,
    pub service: String,
    pub environment: String,
    /// The commit built: the artifact's, else the one the release asked for; `None` when the
    /// release asked for the branch head and the build did not end with an artifact.
    pub sha: Option<String>,
    pub provider: String,
    pub run_id: String,
    pub url: Option<String>,
    pub status: BuildStatus,
    pub attempts: u32,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Whole seconds; `None` while the build runs.
    pub duration_seconds: Option<u64>,
    /// Whole seconds in the provider's queue, from Baton's request to the start; `None` when the
    /// provider did not say when the build started.
    pub queue_seconds: Option<u64>,
    pub measured_from: MeasuredFrom,
    pub reason: Option<String>,
}

/// A commit whose build failed and later passed: the failures say nothing about the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlakyCommit {
    pub service: String,
    pub sha: String,
    /// The releases whose build of it failed before it passed, oldest first.
    pub failed: Vec<ReleaseId>,
    /// The first release whose build of it passed after a failure.
    pub passed: ReleaseId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildSummary {
    pub builds: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub running: usize,
    /// Failed over ended (succeeded or failed) builds; `None` when none ended.
    pub failure_rate: Option<f64>,
    /// Nearest-rank percentiles of the ended builds' durations, in seconds.
    pub p50_seconds: Option<u64>,
    pub p90_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildReport {
    /// Newest first.
    pub builds: Vec<BuildRow>,
    pub summary: BuildSummary,
    /// Newest pass first.
    pub flaky: Vec<FlakyCommit>,
}

/// The builds of `releases` (any order; those without a build are skipped), their figures, and
/// the commits that built flakily.
pub fn report(releases: &[Release]) -> BuildReport {
    let mut builds: Vec<BuildRow> = releases.iter().filter_map(row).collect();
    builds.sort_by(|a, b| (b.queued_at, &b.release_id).cmp(&(a.queued_at, &a.release_id)));
    let count = |status: BuildStatus| builds.iter().filter(|row| row.status == status).count();
    let (succeeded, failed) = (count(BuildStatus::Succeeded), count(BuildStatus::Failed));
    let mut durations: Vec<u64> = builds.iter().filter(|row| ran_to_an_end(row.status)).filter_map(|row| row.duration_seconds).collect();
    durations.sort_unstable();
    let ended = succeeded + failed;
    let summary = BuildSummary {
        builds: builds.len(),
        succeeded,
        failed,
        cancelled: count(BuildStatus::Cancelled) + count(BuildStatus::Unfollowed),
        running: count(BuildStatus::Running) + count(BuildStatus::Requested),
        failure_rate: (ended > 0).then(|| failed as f64 / ended as f64),
        p50_seconds: nearest_rank(&durations, 50),
        p90_seconds: nearest_rank(&durations, 90),
    };
    let flaky = flaky_commits(&builds);
    BuildReport { builds, summary, flaky }
}

fn ran_to_an_end(status: BuildStatus) -> bool {
    matches!(status, BuildStatus::Succeeded | BuildStatus::Failed)
}

fn row(release: &Release) -> Option<BuildRow> {
    let build = release.build.as_ref()?;
    let (from, measured_from) = match build.started_at {
        Some(started) => (started, MeasuredFrom::Started),
        None => (build.queued_at, MeasuredFrom::Queued),
    };
    // A clock that went backwards between two Lambdas counts as zero, not as a negative build.
    let seconds = |from: DateTime<Utc>, to: DateTime<Utc>| u64::try_from((to - from).num_seconds()).unwrap_or(0);
    let duration_seconds = build.finished_at.map(|end| seconds(from, end));
    Some(BuildRow {
        release_id: release.id.clone(),
        service: release.service.clone(),
        environment: release.environment.clone(),
        sha: release.artifact.as_ref().map(|artifact| artifact.sha.clone()).or_else(|| release.sha.clone()),
        provider: build.provider.clone(),
        run_id: build.run_id.clone(),
        url: build.url.clone(),
        status: build.status,
        attempts: build.attempts,
        queued_at: build.queued_at,
        started_at: build.started_at,
        finished_at: build.finished_at,
        duration_seconds,
        queue_seconds: build.started_at.map(|started| seconds(build.queued_at, started)),
        measured_from,
        reason: build.reason.clone(),
    })
}

/// The smallest value with at least `percent`% of `sorted` at or below it.
pub(crate) fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// `builds` is newest first; a commit is flaky once a build of it passed after one failed, for
/// the same service (in a monorepo, one service's build of a commit failing says nothing of
/// another's).
fn flaky_commits(builds: &[BuildRow]) -> Vec<FlakyCommit> {
    let mut by_sha: BTreeMap<(&str, &str), Vec<&BuildRow>> = BTreeMap::new();
    for row in builds.iter().rev() {
        if let Some(sha) = row.sha.as_deref() {
            by_sha.entry((row.service.as_str(), sha)).or_default().push(row);
        }
    }
    let mut flaky: Vec<(DateTime<Utc>, FlakyCommit)> = by_sha
        .into_iter()
        .filter_map(|((service, sha), oldest_first)| {
            let first_failure = oldest_first.iter().position(|row| row.status == BuildStatus::Failed)?;
            let after = &oldest_first[first_failure..];
            let pass = after.iter().position(|row| row.status == BuildStatus::Succeeded)?;
            let failed = after[..pass].iter().filter(|row| row.status == BuildStatus::Failed).map(|row| row.release_id.clone()).collect();
            let passed = after[pass];
            Some((
                passed.queued_at,
                FlakyCommit { service: service.to_owned(), sha: sha.to_owned(), failed, passed: passed.release_id.clone() },
            ))
        })
        .collect();
    flaky.sort_by_key(|(passed_at, _)| std::cmp::Reverse(*passed_at));
    flaky.into_iter().map(|(_, commit)| commit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseStatus;
    use crate::rules::fixtures::{artifact, minutes, release};
    use BuildStatus::*;
    use chrono::TimeDelta;

    fn run(id: &str) -> RunHandle {
        RunHandle {
            provider: "github-actions".into(),
            id: id.into(),
            url: Some(format!("https://ci.example.com/runs/{id}")),
            state: serde_json::Value::Null,
        }
    }

    /// A poll that saw `progress` of a build that started at minute 2.
    fn poll(progress: BuildProgress) -> BuildPoll {
        BuildPoll { progress, started_at: Some(minutes(2)), run: None }
    }

    fn succeeded() -> BuildPoll {
        poll(BuildProgress::Succeeded { artifact: artifact("web") })
    }

    fn failed() -> BuildPoll {
        poll(BuildProgress::Failed { reason: "tests failed".into() })
    }

    #[test]
    fn a_run_located_after_the_request_is_followed_once_keeping_the_request() {
        let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
        record_request(&mut release, "github-actions", minutes(1));
        let unlocated = RunHandle { url: None, ..run(RunHandle::UNLOCATED) };
        assert!(!unlocated.located() && run("7").located());
        record_start(&mut release, &unlocated, minutes(1));
        let cases: [(&str, RunHandle, bool, &str); 4] = [
            ("another provider's run is not this build", RunHandle { provider: "gitlab-ci".into(), ..run("7") }, false, "pending"),
            ("the run found is news once", run("7"), true, "7"),
            ("found again, it is not", run("7"), false, "7"),
            ("a located build is not replaced", run("8"), false, "7"),
        ];
        for (case, located, news, id) in cases {
            assert_eq!(record_located(&mut release, &located), news, "{case}");
            let build = release.build.as_ref().unwrap();
            assert_eq!(build.run_id, id, "{case}");
            assert_eq!((build.queued_at, build.attempts, build.status), (minutes(1), 1, Running), "{case}: the request is kept");
        }
        assert_eq!(release.build.as_ref().unwrap().url.as_deref(), Some("https://ci.example.com/runs/7"));
        // Its polls now count against the located run.
        record_progress(&mut release, &run("7"), &succeeded(), minutes(9));
        assert_eq!(release.build.as_ref().unwrap().status, Succeeded);
    }

    #[test]
    fn a_start_records_a_running_build_and_a_second_start_counts_an_attempt() {
        let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
        assert_eq!(release.build, None, "admitted releases have no build");
        record_start(&mut release, &run("1"), minutes(1));
        let first = release.build.clone().unwrap();
        assert_eq!((first.run_id.as_str(), first.queued_at, first.status, first.attempts), ("1", minutes(1), Running, 1));
        assert_eq!(first.url.as_deref(), Some("https://ci.example.com/runs/1"));
        record_start(&mut release, &run("1"), minutes(2));
        assert_eq!(release.build, Some(first), "the same run is one attempt");
        record_start(&mut release, &run("2"), minutes(3));
        let second = release.build.unwrap();
        assert_eq!((second.run_id.as_str(), second.queued_at, second.status, second.attempts), ("2", minutes(3), Running, 2));
    }

    #[test]
    fn an_unanswered_request_is_looked_for_and_answered_by_the_run_found() {
        let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
        assert_eq!(unanswered_request(&release), None);
        record_request(&mut release, "buildkite", minutes(1));
        assert_eq!(unanswered_request(&release), Some(minutes(1)));
        assert_eq!(followed_build(&release), None, "no run to follow yet");
        // The request timed out; the retry found nothing and asked again.
        record_request(&mut release, "buildkite", minutes(2));
        assert_eq!(unanswered_request(&release), Some(minutes(1)), "looked for from the first request on");
        record_start(&mut release, &run("7"), minutes(3));
        let build = release.build.clone().unwrap();
        assert_eq!((build.run_id.as_str(), build.status, build.queued_at, build.attempts), ("7", Running, minutes(1), 2));
        assert_eq!(unanswered_request(&release), None);
        // A later request (a new build after this one ended) starts a new count from here.
        release.build.as_mut().unwrap().status = Failed;
        record_request(&mut release, "buildkite", minutes(4));
        let build = release.build.unwrap();
        assert_eq!((build.status, build.queued_at, build.attempts), (Requested, minutes(4), 3));
    }

    #[test]
    fn a_running_build_is_followed_again_and_an_ended_one_is_not() {
        let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
        assert_eq!(followed_build(&release), None);
        let started = RunHandle { state: serde_json::json!({ "run": 1 }), ..run("1") };
        record_start(&mut release, &started, minutes(1));
        assert_eq!(followed_build(&release), Some(started.clone()), "the whole handle, its state included");
        record_progress(&mut release, &started, &failed(), minutes(2));
        assert_eq!(followed_build(&release), None, "an ended build is started anew by a new release only");
    }

    #[test]
    fn progress_ends_the_recorded_run_once() {
        // (recorded run's status, polled run, progress) -> (status, finished at, reason)
        type Case = (BuildStatus, &'static str, BuildPoll, (BuildStatus, Option<i64>, Option<&'static str>));
        let cases: Vec<Case> = vec![
            (Running, "1", poll(BuildProgress::Running), (Running, None, None)),
            (Running, "1", succeeded(), (Succeeded, Some(9), None)),
            (Running, "1", failed(), (Failed, Some(9), Some("tests failed"))),
            // A replaced run's news is not this build's.
            (Running, "0", failed(), (Running, None, None)),
            // An ended build keeps its first end.
            (Succeeded, "1", failed(), (Succeeded, Some(5), None)),
            (Cancelled, "1", succeeded(), (Cancelled, Some(5), None)),
        ];
        for (before, polled, progress, (status, finished, reason)) in cases {
            let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
            record_start(&mut release, &run("1"), minutes(1));
            let build = release.build.as_mut().unwrap();
            build.status = before;
            build.finished_at = (before != Running).then(|| minutes(5));
            record_progress(&mut release, &run(polled), &progress, minutes(9));
            let build = release.build.unwrap();
            assert_eq!(
                (build.status, build.finished_at, build.reason.as_deref()),
                (status, finished.map(minutes), reason),
                "{before:?} polled {polled} saw {progress:?}"
            );
        }
    }

    #[test]
    fn the_first_start_time_a_poll_reports_is_kept() {
        let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
        record_start(&mut release, &run("1"), minutes(1));
        record_progress(&mut release, &run("1"), &BuildPoll { progress: BuildProgress::Running, started_at: None, run: None }, minutes(2));
        assert_eq!(release.build.as_ref().unwrap().started_at, None, "still queued");
        record_progress(&mut release, &run("1"), &poll(BuildProgress::Running), minutes(3));
        assert_eq!(release.build.as_ref().unwrap().started_at, Some(minutes(2)));
        let restarted = BuildPoll { progress: BuildProgress::Running, started_at: Some(minutes(4)), run: None };
        record_progress(&mut release, &run("1"), &restarted, minutes(5));
        record_progress(&mut release, &run("0"), &BuildPoll { started_at: Some(minutes(0)), ..failed() }, minutes(6));
        let build = release.build.unwrap();
        assert_eq!((build.started_at, build.status), (Some(minutes(2)), Running), "recorded once, from the recorded run only");
    }

    #[test]
    fn progress_without_a_recorded_build_records_nothing() {
        let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
        record_progress(&mut release, &run("1"), &succeeded(), minutes(9));
        assert_eq!(release.build, None, "a build started before builds were recorded stays unrecorded");
    }

    #[test]
    fn a_release_that_ends_stops_following_a_running_build_only() {
        let cases = [
            // Nobody cancelled it: the record does not say so.
            (Running, (Unfollowed, Some(7))),
            (Requested, (Unfollowed, Some(7))),
            (Failed, (Failed, Some(5))),
            (Succeeded, (Succeeded, Some(5))),
            (Cancelled, (Cancelled, Some(5))),
        ];
        for (status, expected) in cases {
            let mut release = release("rel-a", 0, ReleaseStatus::Running, None, false);
            record_start(&mut release, &run("1"), minutes(1));
            let build = release.build.as_mut().unwrap();
            build.status = status;
            build.finished_at = (status != Running).then(|| minutes(5));
            stop_following(&mut release, minutes(7));
            let build = release.build.unwrap();
            assert_eq!((build.status, build.finished_at), (expected.0, expected.1.map(minutes)), "{status:?}");
        }
    }

    /// A release of `web` at `queued` minutes whose build of `sha` ended with `status` after
    /// `seconds` (from its start when `started` says how long it queued).
    fn built(id: &str, sha: Option<&str>, queued: i64, status: BuildStatus, seconds: Option<i64>, started: Option<i64>) -> Release {
        let mut release = release(id, queued, ReleaseStatus::Running, None, false);
        release.artifact = None;
        release.sha = sha.map(str::to_owned);
        let queued_at = minutes(queued);
        let started_at = started.map(|queue| queued_at + TimeDelta::seconds(queue));
        release.build = Some(BuildRecord {
            provider: "github-actions".into(),
            run_id: format!("run-{id}"),
            url: None,
            queued_at,
            started_at,
            finished_at: seconds.map(|s| started_at.unwrap_or(queued_at) + TimeDelta::seconds(s)),
            status,
            attempts: 1,
            reason: None,
            state: serde_json::Value::Null,
        });
        release
    }

    #[test]
    fn rows_are_newest_first_with_durations_from_the_start_when_known() {
        let mut never_built = release("rel-none", 50, ReleaseStatus::Failed, Some(51), false);
        never_built.build = None;
        let mut clock_skew = built("rel-skew", Some("s"), 40, Failed, Some(0), None);
        clock_skew.build.as_mut().unwrap().finished_at = Some(minutes(39));
        let mut with_artifact = built("rel-art", None, 30, Succeeded, Some(60), None);
        with_artifact.artifact = Some(artifact("x"));
        let releases = vec![
            built("rel-a", Some("a"), 10, Succeeded, Some(300), None),
            built("rel-c", Some("c"), 20, Succeeded, Some(120), Some(30)),
            never_built,
            built("rel-run", Some("r"), 60, Running, None, None),
            clock_skew,
            with_artifact,
        ];
        let report = report(&releases);
        let got: Vec<_> = report
            .builds
            .iter()
            .map(|row| (row.release_id.as_str(), row.sha.as_deref(), row.duration_seconds, row.measured_from, row.queue_seconds))
            .collect();
        let expected = vec![
            ("rel-run", Some("r"), None, MeasuredFrom::Queued, None),
            ("rel-skew", Some("s"), Some(0), MeasuredFrom::Queued, None),
            ("rel-art", Some("sha-x"), Some(60), MeasuredFrom::Queued, None),
            ("rel-c", Some("c"), Some(120), MeasuredFrom::Started, Some(30)),
            ("rel-a", Some("a"), Some(300), MeasuredFrom::Queued, None),
        ];
        assert_eq!(got, expected, "the release without a build is skipped");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        // (sorted durations, p50, p90)
        let cases: &[(&[u64], Option<u64>, Option<u64>)] = &[
            (&[], None, None),
            (&[7], Some(7), Some(7)),
            (&[1, 2], Some(1), Some(2)),
            (&[1, 2, 3], Some(2), Some(3)),
            (&[1, 2, 3, 4], Some(2), Some(4)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], Some(5), Some(9)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], Some(6), Some(10)),
        ];
        for (sorted, p50, p90) in cases {
            assert_eq!((nearest_rank(sorted, 50), nearest_rank(sorted, 90)), (*p50, *p90), "{sorted:?}");
        }
    }

    #[test]
    fn the_summary_counts_ended_builds_and_leaves_cancelled_ones_out() {
        // (builds as (status, seconds)) -> (failure rate, p50, p90, (succeeded, failed, cancelled, running))
        type Case = (&'static [(BuildStatus, Option<i64>)], Option<f64>, Option<u64>, Option<u64>, (usize, usize, usize, usize));
        let cases: &[Case] = &[
            (&[], None, None, None, (0, 0, 0, 0)),
            (&[(Running, None)], None, None, None, (0, 0, 0, 1)),
            (&[(Cancelled, Some(900))], None, None, None, (0, 0, 1, 0)),
            (&[(Succeeded, Some(100)), (Failed, Some(20))], Some(0.5), Some(20), Some(100), (1, 1, 0, 0)),
            (
                &[(Succeeded, Some(100)), (Succeeded, Some(200)), (Succeeded, Some(300)), (Failed, Some(40)), (Cancelled, Some(5000))],
                Some(0.25),
                Some(100),
                Some(300),
                (3, 1, 1, 0),
            ),
            (&[(Failed, Some(10)), (Failed, Some(30)), (Running, None)], Some(1.0), Some(10), Some(30), (0, 2, 0, 1)),
        ];
        for (builds, rate, p50, p90, counts) in cases {
            let releases: Vec<Release> = builds
                .iter()
                .enumerate()
                .map(|(i, (status, seconds))| built(&format!("rel-{i}"), Some(&format!("sha-{i}")), i as i64, *status, *seconds, None))
                .collect();
            let summary = report(&releases).summary;
            assert_eq!(summary.builds, builds.len());
            assert_eq!((summary.failure_rate, summary.p50_seconds, summary.p90_seconds), (*rate, *p50, *p90), "{builds:?}");
            assert_eq!((summary.succeeded, summary.failed, summary.cancelled, summary.running), *counts, "{builds:?}");
        }
    }

    #[test]
    fn a_commit_that_failed_then_passed_is_flaky() {
        // (builds oldest first as (release, sha, status)) -> flaky commits, newest pass first, as (sha, failed, passed)
        type Builds = &'static [(&'static str, Option<&'static str>, BuildStatus)];
        type Flaky = &'static [(&'static str, &'static [&'static str], &'static str)];
        let cases: &[(Builds, Flaky)] = &[
            (&[], &[]),
            (&[("r1", Some("a"), Failed), ("r2", Some("a"), Succeeded)], &[("a", &["r1"], "r2")]),
            // Passed first, then failed: a regression or a flake, but not "failed, then passed".
            (&[("r1", Some("a"), Succeeded), ("r2", Some("a"), Failed)], &[]),
            // Failures of other commits do not count.
            (&[("r1", Some("a"), Failed), ("r2", Some("b"), Succeeded)], &[]),
            // Cancelled and running builds neither failed nor passed.
            (&[("r1", Some("a"), Cancelled), ("r2", Some("a"), Succeeded), ("r3", Some("b"), Failed), ("r4", Some("b"), Running)], &[]),
            // Every failure before the pass is named; the first pass ends the story.
            (
                &[
                    ("r1", Some("a"), Failed),
                    ("r2", Some("a"), Cancelled),
                    ("r3", Some("a"), Failed),
                    ("r4", Some("a"), Succeeded),
                    ("r5", Some("a"), Succeeded),
                ],
                &[("a", &["r1", "r3"], "r4")],
            ),
            (&[("r1", Some("a"), Succeeded), ("r2", Some("a"), Failed), ("r3", Some("a"), Succeeded)], &[("a", &["r2"], "r3")]),
            // Builds of the branch head name no commit: they cannot be compared.
            (&[("r1", None, Failed), ("r2", None, Succeeded)], &[]),
            (
                &[("r1", Some("b"), Failed), ("r2", Some("a"), Failed), ("r3", Some("b"), Succeeded), ("r4", Some("a"), Succeeded)],
                &[("a", &["r2"], "r4"), ("b", &["r1"], "r3")],
            ),
        ];
        for (builds, expected) in cases {
            let releases: Vec<Release> =
                builds.iter().enumerate().map(|(i, (id, sha, status))| built(id, *sha, i as i64, *status, Some(60), None)).collect();
            let flaky = report(&releases).flaky;
            let got: Vec<(&str, Vec<&str>, &str)> =
                flaky.iter().map(|f| (f.sha.as_str(), f.failed.iter().map(ReleaseId::as_str).collect(), f.passed.as_str())).collect();
            let expected: Vec<(&str, Vec<&str>, &str)> =
                expected.iter().map(|(sha, failed, passed)| (*sha, failed.to_vec(), *passed)).collect();
            assert_eq!(got, expected, "{builds:?}");
        }
    }

    #[test]
    fn one_services_failure_and_anothers_pass_of_a_commit_are_no_flake() {
        // A monorepo: web's build of `a` failed, api's passed; then web's passed.
        let mut releases = vec![built("r1", Some("a"), 0, Failed, Some(60), None), built("r2", Some("a"), 1, Succeeded, Some(60), None)];
        releases[1].service = "api".into();
        assert_eq!(report(&releases).flaky, vec![]);
        releases.push(built("r3", Some("a"), 2, Succeeded, Some(60), None));
        let flaky = report(&releases).flaky;
        assert_eq!(flaky.len(), 1);
        assert_eq!((flaky[0].service.as_str(), flaky[0].passed.as_str()), ("web", "r3"));
    }
}

//! Where a wave's deploys (or its rollback) stand, target by target.
//!
//! One task starts every target of a wave and one polls them all, so a wave costs a handful
//! of history events whatever its size; the runs live in the release record between polls.

use crate::flow::WavePlan;
use crate::ports::DeployProgress;
use crate::release::{DeployStatus, RunHandle, TargetDeploy, WaveRecord};
use chrono::{DateTime, Utc};

/// How a wave's deploys, or its rollback, stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaveDeploy {
    /// At least one target is still rolling out.
    Running,
    /// Every target succeeded.
    Succeeded,
    /// Targets that failed, with why. A deploy fails as soon as one target fails (the rollback
    /// covers the rest); a rollback fails only once every target has finished, so one bad
    /// target never stops the others being put back.
    Failed(Vec<(String, String)>),
    /// Targets that have no run although the wave was started: a lost start.
    NotStarted(Vec<String>),
}

fn deploy_of<'a>(record: &'a WaveRecord, target: &str, rollback: bool) -> Option<&'a TargetDeploy> {
    record.deploys.iter().find(|d| d.target == target && d.rollback == rollback)
}

/// Whether the provider refused `target`'s forward deploy before changing anything (a sync
/// window, bad credentials, an answer that started nothing): the target runs what it ran before,
/// so a rollback leaves it alone. A target with no record at all is not known to be unchanged
/// (its start may have been lost with its task), and is rolled back.
pub fn refused(record: &WaveRecord, target: &str) -> bool {
    deploy_of(record, target, false).is_some_and(|d| d.run.is_none() && d.status == DeployStatus::Failed)
}

/// Whether the wave may have changed any target: a rollback has something to undo.
pub fn changed_any(record: &WaveRecord) -> bool {
    record.targets.iter().any(|target| !refused(record, target))
}

/// The targets a direction covers: all of them forward; on a rollback, those not refused.
fn covered<'a>(record: &WaveRecord, wave: &'a WavePlan, rollback: bool) -> Vec<&'a String> {
    wave.targets.iter().filter(|target| !rollback || !refused(record, target)).collect()
}

/// Targets of `wave` with no deploy in this direction yet: what a (re)started task starts.
pub fn targets_to_start<'a>(record: &WaveRecord, wave: &'a WavePlan, rollback: bool) -> Vec<&'a str> {
    covered(record, wave, rollback).into_iter().filter(|t| deploy_of(record, t, rollback).is_none()).map(String::as_str).collect()
}

/// The forward run of `target`, which its rollback undoes (none when it never started).
pub fn forward_run<'a>(record: &'a WaveRecord, target: &str) -> Option<&'a RunHandle> {
    deploy_of(record, target, false)?.run.as_ref()
}

/// Runs still rolling out in this direction: what a poll asks about.
pub fn running(record: &WaveRecord, rollback: bool) -> Vec<(String, RunHandle)> {
    record
        .deploys
        .iter()
        .filter(|d| d.rollback == rollback && d.status == DeployStatus::Running)
        .filter_map(|d| Some((d.target.clone(), d.run.clone()?)))
        .collect()
}

/// Records a started run for `target`, or (`Err`) why the provider refused to start it.
pub fn started(record: &mut WaveRecord, target: &str, rollback: bool, run: Result<RunHandle, String>, now: DateTime<Utc>) {
    if deploy_of(record, target, rollback).is_some() {
        return;
    }
    if record.deploy_url.is_none() {
        record.deploy_url = run.as_ref().ok().and_then(|run| run.url.clone());
    }
    let (run, status, reason, finished_at) = match run {
        Ok(run) => (Some(run), DeployStatus::Running, None, None),
        Err(reason) => (None, DeployStatus::Failed, Some(reason), Some(now)),
    };
    record.deploys.push(TargetDeploy { target: target.to_owned(), rollback, run, status, reason, started_at: now, finished_at });
}

/// Records what a poll (or a refused start) said about `target`; a finished deploy stays as it ended.
pub fn settle(record: &mut WaveRecord, target: &str, rollback: bool, progress: &DeployProgress, now: DateTime<Utc>) {
    let Some(deploy) = record.deploys.iter_mut().find(|d| d.target == target && d.rollback == rollback) else { return };
    if deploy.status != DeployStatus::Running {
        return;
    }
    match progress {
        DeployProgress::Running => {}
        DeployProgress::Succeeded => {
            deploy.status = DeployStatus::Succeeded;
            deploy.finished_at = Some(now);
        }
        DeployProgress::Failed { reason } => {
            deploy.status = DeployStatus::Failed;
            deploy.reason = Some(reason.clone());
            deploy.finished_at = Some(now);
        }
    }
}

/// When `wave`'s deploys (or its rollback), begun at `began`, must have finished: its deploy
/// timeout later (saturating).
pub fn deploy_deadline(wave: &WavePlan, began: DateTime<Utc>) -> DateTime<Utc> {
    super::deadline_after(began, wave.deploy_timeout_seconds)
}

/// Where `wave`'s deploys (`rollback` false) or rollbacks stand. A rollback covers the targets
/// whose deploy was not [`refused`].
pub fn wave_deploy(record: &WaveRecord, wave: &WavePlan, rollback: bool) -> WaveDeploy {
    let targets = covered(record, wave, rollback);
    let deploys: Vec<Option<&TargetDeploy>> = targets.iter().map(|t| deploy_of(record, t, rollback)).collect();
    let failed: Vec<(String, String)> = deploys
        .iter()
        .flatten()
        .filter(|d| d.status == DeployStatus::Failed)
        .map(|d| (d.target.clone(), d.reason.clone().unwrap_or_default()))
        .collect();
    let any_running = deploys.iter().flatten().any(|d| d.status == DeployStatus::Running);
    if !failed.is_empty() && (!rollback || !any_running) {
        return WaveDeploy::Failed(failed);
    }
    // A target that was never started can never finish: say so rather than poll forever.
    let missing: Vec<String> = targets.iter().zip(&deploys).filter(|(_, d)| d.is_none()).map(|(t, _)| (*t).clone()).collect();
    if !missing.is_empty() {
        return WaveDeploy::NotStarted(missing);
    }
    if any_running { WaveDeploy::Running } else { WaveDeploy::Succeeded }
}

/// The targets (wave, target) a release may have left on its new artifact: every target of a
/// started wave whose deploy was not refused and whose rollback did not succeed. After a failed
/// rollback these are the mixed fleet a person must put right, and the next release of the
/// service deploys over.
pub fn left_on_new_artifact(waves: &[WaveRecord]) -> Vec<(&str, &str)> {
    let started = |record: &WaveRecord| record.started_at.is_some() || !record.deploys.is_empty();
    let put_back = |record: &WaveRecord, target: &str| deploy_of(record, target, true).is_some_and(|d| d.status == DeployStatus::Succeeded);
    waves
        .iter()
        .filter(|record| started(record))
        .flat_map(|record| {
            record
                .targets
                .iter()
                .filter(|target| !refused(record, target) && !put_back(record, target))
                .map(|target| (record.name.as_str(), target.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::WaveStatus;
    use crate::rules::fixtures::{minutes, t0};

    fn wave() -> WavePlan {
        WavePlan {
            index: 1,
            total: 2,
            name: "rest".into(),
            targets: vec!["b".into(), "c".into()],
            bake_seconds: 0,
            deploy_timeout_seconds: 600,
            approval: None,
        }
    }

    fn record() -> WaveRecord {
        WaveRecord {
            name: "rest".into(),
            targets: vec!["b".into(), "c".into()],
            status: WaveStatus::Deploying,
            started_at: Some(t0()),
            finished_at: None,
            deploy_url: None,
            deploys: vec![],
            bake_started_at: None,
            gates: Vec::new(),
        }
    }

    fn run(id: &str) -> RunHandle {
        RunHandle { provider: "test".into(), id: id.into(), url: None, state: serde_json::Value::Null }
    }

    fn failed(reason: &str) -> DeployProgress {
        DeployProgress::Failed { reason: reason.into() }
    }

    /// (target, rollback, None = started, Some = polled)
    type Step = (&'static str, bool, Option<DeployProgress>);

    /// The wave after each of `steps`.
    fn after(steps: &[Step]) -> WaveRecord {
        let mut record = record();
        for (target, rollback, progress) in steps {
            match progress {
                None => started(&mut record, target, *rollback, Ok(run(target)), t0()),
                Some(progress) => settle(&mut record, target, *rollback, progress, minutes(1)),
            }
        }
        record
    }

    #[test]
    fn a_deploy_succeeds_with_every_target_and_fails_with_the_first() {
        use DeployProgress::{Running as R, Succeeded as S};
        let both_started = [("b", false, None), ("c", false, None)];
        let cases: Vec<(Vec<Step>, WaveDeploy)> = vec![
            (vec![], WaveDeploy::NotStarted(vec!["b".into(), "c".into()])),
            (vec![("b", false, None)], WaveDeploy::NotStarted(vec!["c".into()])),
            (both_started.to_vec(), WaveDeploy::Running),
            ([&both_started[..], &[("b", false, Some(S)), ("c", false, Some(R))]].concat(), WaveDeploy::Running),
            ([&both_started[..], &[("b", false, Some(S)), ("c", false, Some(S))]].concat(), WaveDeploy::Succeeded),
            // Fails at once, while c still runs: the rollback takes care of c.
            ([&both_started[..], &[("b", false, Some(failed("oom")))]].concat(), WaveDeploy::Failed(vec![("b".into(), "oom".into())])),
            // A rollback of the wave says nothing about its deploy.
            ([&both_started[..], &[("b", true, None), ("b", true, Some(S))]].concat(), WaveDeploy::Running),
        ];
        for (steps, expected) in cases {
            assert_eq!(wave_deploy(&after(&steps), &wave(), false), expected, "{steps:?}");
        }
    }

    #[test]
    fn a_wave_s_deadline_is_its_deploy_timeout_after_it_began() {
        assert_eq!(deploy_deadline(&wave(), minutes(3)), minutes(13));
        let forever = WavePlan { deploy_timeout_seconds: u64::MAX, ..wave() };
        assert_eq!(deploy_deadline(&forever, t0()), DateTime::<Utc>::MAX_UTC, "saturates");
    }

    #[test]
    fn a_rollback_undoes_the_forward_run_of_its_target() {
        let both = after(&[("b", false, None), ("b", true, None)]);
        assert_eq!(forward_run(&both, "b"), Some(&run("b")));
        assert_eq!(forward_run(&both, "c"), None, "never started: nothing to undo");
        let mut refused = record();
        started(&mut refused, "c", false, Err("no such service".into()), t0());
        assert_eq!(forward_run(&refused, "c"), None, "refused: no run");
    }

    #[test]
    fn a_rollback_waits_for_every_target_before_it_fails() {
        use DeployProgress::Succeeded as S;
        let both_started = [("b", false, None), ("c", false, None), ("b", true, None), ("c", true, None)];
        let cases: Vec<(Vec<Step>, WaveDeploy)> = vec![
            (both_started.to_vec(), WaveDeploy::Running),
            ([&both_started[..], &[("b", true, Some(failed("denied")))]].concat(), WaveDeploy::Running),
            (
                [&both_started[..], &[("b", true, Some(failed("denied"))), ("c", true, Some(S))]].concat(),
                WaveDeploy::Failed(vec![("b".into(), "denied".into())]),
            ),
            ([&both_started[..], &[("b", true, Some(S)), ("c", true, Some(S))]].concat(), WaveDeploy::Succeeded),
        ];
        for (steps, expected) in cases {
            assert_eq!(wave_deploy(&after(&steps), &wave(), true), expected, "{steps:?}");
        }
    }

    #[test]
    fn a_rollback_leaves_a_refused_target_alone() {
        use DeployProgress::Succeeded as S;
        // b started (it may have changed); c was refused before anything changed.
        let mut partly = after(&[("b", false, None)]);
        started(&mut partly, "c", false, Err("blocked by sync window".into()), t0());
        assert!(refused(&partly, "c") && !refused(&partly, "b"));
        assert!(changed_any(&partly));
        assert_eq!(targets_to_start(&partly, &wave(), true), ["b"]);
        started(&mut partly, "b", true, Ok(run("b-back")), minutes(1));
        assert_eq!(wave_deploy(&partly, &wave(), true), WaveDeploy::Running);
        settle(&mut partly, "b", true, &S, minutes(2));
        assert_eq!(wave_deploy(&partly, &wave(), true), WaveDeploy::Succeeded, "c needs no rollback");

        // Every target refused: nothing changed, nothing to undo.
        let mut untouched = record();
        for target in ["b", "c"] {
            started(&mut untouched, target, false, Err("401".into()), t0());
        }
        assert!(!changed_any(&untouched));
        assert!(targets_to_start(&untouched, &wave(), true).is_empty());
        assert_eq!(wave_deploy(&untouched, &wave(), true), WaveDeploy::Succeeded);
        // A target whose start left no record may have changed: it is rolled back.
        let lost = record();
        assert!(changed_any(&lost));
        assert_eq!(targets_to_start(&lost, &wave(), true), ["b", "c"]);
    }

    #[test]
    fn restarts_start_only_what_is_missing_and_finished_deploys_stay_finished() {
        let mut record = after(&[("b", false, None)]);
        assert_eq!(targets_to_start(&record, &wave(), false), ["c"]);
        assert_eq!(targets_to_start(&record, &wave(), true), ["b", "c"]);
        started(&mut record, "b", false, Ok(run("again")), minutes(5));
        assert_eq!(record.deploys.len(), 1, "a repeated start keeps the first run");
        assert_eq!(running(&record, false), [("b".to_owned(), run("b"))]);
        started(&mut record, "c", false, Err("no such service".into()), minutes(5));
        assert_eq!(wave_deploy(&record, &wave(), false), WaveDeploy::Failed(vec![("c".into(), "no such service".into())]));
        assert_eq!(running(&record, false).len(), 1, "a refused start has nothing to poll");

        settle(&mut record, "b", false, &DeployProgress::Succeeded, minutes(2));
        settle(&mut record, "b", false, &failed("late"), minutes(3));
        assert_eq!((record.deploys[0].status, record.deploys[0].finished_at), (DeployStatus::Succeeded, Some(minutes(2))));
        assert!(running(&record, false).is_empty());
    }

    #[test]
    fn the_targets_left_on_the_new_artifact_are_those_not_put_back() {
        use DeployProgress::Succeeded as S;
        type Left = Vec<(&'static str, &'static str)>;
        let cases: Vec<(&str, Vec<Step>, Left)> = vec![
            ("a wave never started leaves nothing", vec![], vec![]),
            ("both deployed, none put back", vec![("b", false, None), ("c", false, None)], vec![("rest", "b"), ("rest", "c")]),
            (
                "b put back, c's rollback failed",
                vec![
                    ("b", false, None),
                    ("c", false, None),
                    ("b", true, None),
                    ("b", true, Some(S)),
                    ("c", true, None),
                    ("c", true, Some(failed("timeout"))),
                ],
                vec![("rest", "c")],
            ),
            (
                "a rollback still running puts nothing back yet",
                vec![("b", false, None), ("b", true, None)],
                vec![("rest", "b"), ("rest", "c")],
            ),
        ];
        for (name, steps, want) in cases {
            let mut record = after(&steps);
            if steps.is_empty() {
                record.started_at = None;
            }
            assert_eq!(left_on_new_artifact(std::slice::from_ref(&record)), want, "{name}");
        }
        let mut refused_c = record();
        started(&mut refused_c, "b", false, Ok(run("b")), t0());
        started(&mut refused_c, "c", false, Err("sync window".into()), t0());
        assert_eq!(left_on_new_artifact(&[refused_c]), [("rest", "b")], "a refused deploy changed nothing");
    }
}

//! What a rollback undoes and what it puts back.

use crate::flow::{RollbackPlan, WavePlan};
use crate::release::{Artifact, Release, ReleaseId, ReleaseStatus, WaveStatus};

/// What runs now, and so what a rollback of `release` puts back: the artifact of the service's
/// latest successful release in the environment, other than `release` itself.
pub fn rollback_target(release: &ReleaseId, recent: &[Release]) -> Option<Artifact> {
    recent
        .iter()
        .filter(|r| &r.id != release && r.status == ReleaseStatus::Succeeded)
        .max_by_key(|r| r.finished_at)
        .and_then(|r| r.artifact.clone())
}

/// Every wave of `waves` that began deploying and may have changed a target (not every one of
/// its targets was refused), last first, and the artifact to put back on its targets: the
/// previous one, or an empty reference (remove what this release put there) when the service
/// had none.
pub fn plan_rollback(release: &Release, waves: &[WavePlan]) -> RollbackPlan {
    let begun = waves
        .iter()
        .rev()
        .filter(|plan| {
            release.waves.iter().any(|w| w.name == plan.name && w.status != WaveStatus::Pending && crate::rules::waves::changed_any(w))
        })
        .cloned()
        .collect();
    let artifact = release.previous_artifact.clone().unwrap_or_else(|| Artifact {
        reference: String::new(),
        sha: String::new(),
        branch: release.branch.clone(),
        build_url: None,
    });
    RollbackPlan { waves: begun, artifact }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{artifact, entry, release};

    type Recent = &'static [(&'static str, ReleaseStatus, Option<i64>)];

    #[test]
    fn the_target_is_the_latest_success_by_finish_time() {
        use ReleaseStatus::*;
        // (recent releases as (id, status, finished minute), the artifact expected)
        let cases: &[(Recent, Option<&str>)] = &[
            (&[], None),
            (&[("rel-a", Failed, Some(5)), ("rel-b", RolledBack, Some(6))], None),
            (&[("rel-a", Succeeded, Some(5))], Some("rel-a")),
            (&[("rel-a", Succeeded, Some(5)), ("rel-b", Succeeded, Some(9))], Some("rel-b")),
            // Finish time decides, not the order the store lists them in.
            (&[("rel-b", Succeeded, Some(9)), ("rel-a", Succeeded, Some(5))], Some("rel-b")),
            (&[("rel-a", Succeeded, Some(5)), ("rel-b", RolledBack, Some(9))], Some("rel-a")),
            // The release being rolled back is never its own target.
            (&[("rel-me", Succeeded, Some(20)), ("rel-a", Succeeded, Some(5))], Some("rel-a")),
            (&[("rel-a", Running, None), ("rel-b", Superseded, Some(3))], None),
        ];
        for (recent, expected) in cases {
            let recent: Vec<Release> = recent.iter().map(|(id, status, finished)| release(id, 0, *status, *finished, true)).collect();
            let target = rollback_target(&ReleaseId("rel-me".into()), &recent);
            assert_eq!(target.map(|a| a.reference), expected.map(str::to_owned), "{recent:#?}");
        }
    }

    #[test]
    fn a_rollback_undoes_begun_waves_last_first() {
        let plans = WavePlan::from_specs(&entry().delivery.deploy.waves);
        let mut failing = release("rel-me", 0, ReleaseStatus::Running, None, false);
        let rollback = |release: &Release| {
            let plan = plan_rollback(release, &plans);
            (plan.waves.iter().map(|w| w.name.clone()).collect::<Vec<_>>(), plan.artifact.reference)
        };

        assert_eq!(rollback(&failing), (vec![], String::new()), "nothing began: nothing to undo, nothing was live");
        failing.waves[0].status = WaveStatus::Healthy;
        failing.previous_artifact = Some(artifact("v1"));
        assert_eq!(rollback(&failing), (vec!["canary".to_owned()], "v1".to_owned()));
        failing.waves[1].status = WaveStatus::Deploying;
        assert_eq!(rollback(&failing), (vec!["rest".to_owned(), "canary".to_owned()], "v1".to_owned()));
        failing.previous_artifact = None;
        let plan = plan_rollback(&failing, &plans);
        assert_eq!((plan.artifact.reference.as_str(), plan.artifact.branch.as_str()), ("", "main"), "a first release is removed");
        // The last wave's every target refused its deploy: it changed nothing, so it is not undone.
        let now = failing.created_at;
        let rest = &mut failing.waves[1];
        for target in rest.targets.clone() {
            crate::rules::waves::started(rest, &target, false, Err("blocked by sync window".into()), now);
        }
        assert_eq!(rollback(&failing).0, vec!["canary".to_owned()]);
    }
}

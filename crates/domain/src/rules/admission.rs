//! Which signals a service's catalog entry accepts, and the release record an accepted one opens.

use crate::catalog::ServiceEntry;
use crate::release::{Release, ReleaseId, ReleaseStatus, Signal, Stage, TriggerKind, WaveRecord, WaveStatus};
use chrono::{DateTime, Utc};

/// Why a catalog entry takes no release from a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signal is wrong for this entry (it names another environment).
    Invalid(String),
    /// A merge to a branch the service does not release from: nothing is wrong, nothing ships.
    NotReleased(String),
}

/// Opens the queued release for `signal`, or says why the entry refuses it: a signal may not
/// name another environment than the entry's, and a merge releases only the release branch or
/// the feature branch.
pub fn admit(signal: &Signal, entry: &ServiceEntry, id: ReleaseId, execution: &str, now: DateTime<Utc>) -> Result<Release, Refusal> {
    let delivery = &entry.delivery;
    if let Some(environment) = signal.environment.as_deref().filter(|env| *env != delivery.environment) {
        return Err(Refusal::Invalid(format!(
            "service '{}' releases to environment '{}' (catalog {}), not '{environment}'",
            entry.name, delivery.environment, entry.source
        )));
    }
    let branch = signal.branch.clone().unwrap_or_else(|| delivery.release_branch.clone());
    let known_branch = branch == delivery.release_branch || delivery.feature_branch.as_deref() == Some(branch.as_str());
    if signal.trigger.kind == TriggerKind::Merge && !known_branch {
        return Err(Refusal::NotReleased(format!(
            "a merge to '{branch}' does not release '{}': its release branch is '{}'",
            entry.name, delivery.release_branch
        )));
    }
    Ok(Release {
        id,
        service: entry.name.clone(),
        environment: delivery.environment.clone(),
        status: ReleaseStatus::Queued,
        stage: Stage::Queued,
        trigger: signal.trigger.clone(),
        branch,
        sha: signal.sha.clone(),
        changed_at: signal.changed_at,
        artifact: None,
        // Known only once the lock is taken: a release ahead in the queue may still change it.
        build: None,
        previous_artifact: None,
        waves: delivery
            .deploy
            .waves
            .iter()
            .map(|wave| WaveRecord {
                name: wave.name.clone(),
                targets: wave.targets.clone(),
                status: WaveStatus::Pending,
                started_at: None,
                finished_at: None,
                deploy_url: None,
                deploys: Vec::new(),
                bake_started_at: None,
                gates: Vec::new(),
            })
            .collect(),
        created_at: now,
        started_at: None,
        finished_at: None,
        failure: None,
        execution: Some(execution.to_owned()),
        notifier_state: Default::default(),
        version: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Trigger;
    use crate::rules::fixtures::{entry, t0};

    fn signal(kind: TriggerKind, environment: Option<&str>, branch: Option<&str>) -> Signal {
        Signal {
            service: "web".into(),
            environment: environment.map(Into::into),
            sha: Some("abc".into()),
            branch: branch.map(Into::into),
            trigger: Trigger { kind, id: "1".into(), actor: None },
            changed_at: None,
        }
    }

    /// (trigger, environment, branch, the branch released or a part of the refusal)
    type Case = (TriggerKind, Option<&'static str>, Option<&'static str>, Result<&'static str, &'static str>);

    #[test]
    fn signals_are_admitted_by_environment_trigger_and_branch() {
        // The entry releases `production` from `main`, with the feature branch `next`.
        let cases: &[Case] = &[
            (TriggerKind::Cli, None, None, Ok("main")),
            (TriggerKind::Cli, Some("production"), None, Ok("main")),
            (TriggerKind::Cli, Some("staging"), None, Err("releases to environment 'production'")),
            (TriggerKind::Merge, None, Some("main"), Ok("main")),
            (TriggerKind::Merge, None, Some("next"), Ok("next")),
            (TriggerKind::Merge, None, Some("topic"), Err("a merge to 'topic' does not release 'web'")),
            // People and schedules may release any branch they name.
            (TriggerKind::Cli, None, Some("topic"), Ok("topic")),
            (TriggerKind::Schedule, None, Some("next"), Ok("next")),
            (TriggerKind::Console, None, None, Ok("main")),
        ];
        for (kind, environment, branch, expected) in cases {
            let result = admit(&signal(*kind, *environment, *branch), &entry(), ReleaseId("rel-1".into()), "exec", t0());
            match (result, expected) {
                (Ok(release), Ok(branch)) => {
                    assert_eq!(release.branch, *branch, "{kind:?} {environment:?} {branch:?}");
                    assert_eq!(release.environment, "production");
                    assert_eq!(release.status, ReleaseStatus::Queued);
                    assert_eq!(release.waves.len(), 2);
                    assert!(release.waves.iter().all(|w| w.status == WaveStatus::Pending));
                    assert_eq!(release.execution.as_deref(), Some("exec"));
                }
                (Err(Refusal::Invalid(message) | Refusal::NotReleased(message)), Err(part)) => {
                    assert!(message.contains(part), "{message}");
                    let merge_elsewhere = *kind == TriggerKind::Merge;
                    assert_eq!(
                        matches!(
                            admit(&signal(*kind, *environment, *branch), &entry(), ReleaseId("r".into()), "e", t0()),
                            Err(Refusal::NotReleased(_))
                        ),
                        merge_elsewhere
                    );
                }
                (got, want) => panic!("{kind:?} {environment:?} {branch:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}

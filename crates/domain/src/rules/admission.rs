//! Which signals a service's catalog entry accepts, and the release record an accepted one opens.

use crate::catalog::ServiceEntry;
use crate::refname::check_branch_name;
use crate::release::{Release, ReleaseId, ReleaseStatus, Signal, Stage, Trigger, TriggerKind, WaveRecord, WaveStatus};
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
/// name another environment than the entry's, nor a branch git would refuse; a merge releases
/// only the release branch or the feature branch, and only from a repository the entry declares;
/// a person or schedule names another branch only with the trigger's `branch_override`.
pub fn admit(signal: &Signal, entry: &ServiceEntry, id: ReleaseId, execution: &str, now: DateTime<Utc>) -> Result<Release, Refusal> {
    let delivery = &entry.delivery;
    if let Some(environment) = signal.environment.as_deref().filter(|env| *env != delivery.environment) {
        return Err(Refusal::Invalid(format!(
            "service '{}' releases to environment '{}' (catalog {}), not '{environment}'",
            entry.name, delivery.environment, entry.source
        )));
    }
    let branch = signal.branch.clone().unwrap_or_else(|| delivery.release_branch.clone());
    if let Err(why) = check_branch_name(&branch) {
        return Err(Refusal::Invalid(format!("branch '{}' is not a git branch name: it {why}", branch.escape_debug())));
    }
    let known_branch = branch == delivery.release_branch || delivery.feature_branch.as_deref() == Some(branch.as_str());
    if signal.trigger.kind == TriggerKind::Merge {
        // The webhook's signature proves GitHub sent the merge, not that it is this service's
        // repository: the name alone would let any owner's same-named repository release it.
        let repository = signal.trigger.repository.as_deref().unwrap_or_default();
        if !entry.declares_repository(repository) {
            let declared = entry.repositories();
            let declared = if declared.is_empty() { "none (add a link of type 'repo')".to_owned() } else { declared.join(", ") };
            return Err(Refusal::NotReleased(format!(
                "a merge in repository '{}' does not release '{}': its catalog entry ({}) declares the repositories {declared}",
                repository.escape_debug(),
                entry.name,
                entry.source
            )));
        }
        if !known_branch {
            return Err(Refusal::NotReleased(format!(
                "a merge to '{branch}' does not release '{}': its release branch is '{}'",
                entry.name, delivery.release_branch
            )));
        }
    } else if !known_branch && !signal.trigger.branch_override {
        let feature = delivery.feature_branch.as_deref().map(|f| format!(" or its feature branch '{f}'")).unwrap_or_default();
        return Err(Refusal::Invalid(format!(
            "branch '{branch}' is not a branch '{}' releases: its release branch is '{}'{feature} (catalog {}); \
             to release it anyway, say so explicitly (`baton release --allow-any-branch`, or `\"branch_override\": true` in the trigger)",
            entry.name, delivery.release_branch, entry.source
        )));
    }
    Ok(Release {
        id,
        service: entry.name.clone(),
        environment: delivery.environment.clone(),
        status: ReleaseStatus::Queued,
        stage: Stage::Queued,
        // The override is recorded only where it let a branch through.
        trigger: Trigger { branch_override: signal.trigger.branch_override && !known_branch, ..signal.trigger.clone() },
        branch,
        sha: signal.sha.clone(),
        changed_at: signal.changed_at,
        artifact: None,
        // Known only once the lock is taken: a release ahead in the queue may still change it.
        build: None,
        previous_artifact: None,
        approvals: Vec::new(),
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
        heartbeat_at: None,
        started_at: None,
        finished_at: None,
        failure: None,
        execution: Some(execution.to_owned()),
        cancel_requested: None,
        changes: None,
        cost: None,
        notifier_state: Default::default(),
        version: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{entry, t0};

    /// A signal for `web`; `repository` is where a merge came from, `override` the person's `--allow-any-branch`.
    fn signal(kind: TriggerKind, environment: Option<&str>, branch: Option<&str>, repository: Option<&str>, allow: bool) -> Signal {
        Signal {
            service: "web".into(),
            environment: environment.map(Into::into),
            sha: Some("abc".into()),
            branch: branch.map(Into::into),
            trigger: Trigger { repository: repository.map(Into::into), branch_override: allow, ..Trigger::new(kind, "1".into(), None) },
            changed_at: None,
        }
    }

    /// (trigger, environment, branch, merge repository, override, the branch released and whether the
    /// override is recorded, or a part of the refusal)
    type Case =
        (TriggerKind, Option<&'static str>, Option<&'static str>, Option<&'static str>, bool, Result<(&'static str, bool), &'static str>);

    const WEB: Option<&str> = Some("acme/web");

    #[test]
    fn signals_are_admitted_by_environment_trigger_branch_and_repository() {
        // The entry releases `production` from `main`, with the feature branch `next`, and links
        // the repository https://github.com/acme/web.
        let cases: &[Case] = &[
            (TriggerKind::Cli, None, None, None, false, Ok(("main", false))),
            (TriggerKind::Cli, Some("production"), None, None, false, Ok(("main", false))),
            (TriggerKind::Cli, Some("staging"), None, None, false, Err("releases to environment 'production'")),
            (TriggerKind::Merge, None, Some("main"), WEB, false, Ok(("main", false))),
            (TriggerKind::Merge, None, Some("next"), WEB, false, Ok(("next", false))),
            (TriggerKind::Merge, None, Some("topic"), WEB, false, Err("a merge to 'topic' does not release 'web'")),
            // GitHub's owner and repository names are case-insensitive.
            (TriggerKind::Merge, None, Some("main"), Some("ACME/Web"), false, Ok(("main", false))),
            // A same-named repository of another owner, or a merge that names none, releases nothing.
            (TriggerKind::Merge, None, Some("main"), Some("mallory/web"), false, Err("repository 'mallory/web' does not release 'web'")),
            (TriggerKind::Merge, None, Some("main"), Some("acme/web-fork"), false, Err("declares the repositories acme/web")),
            (TriggerKind::Merge, None, Some("main"), None, false, Err("repository '' does not release 'web'")),
            // An override does not open other branches to merges.
            (TriggerKind::Merge, None, Some("topic"), WEB, true, Err("a merge to 'topic'")),
            // People and schedules release the catalog's branches, others only with an override, which is recorded.
            (TriggerKind::Cli, None, Some("topic"), None, false, Err("branch 'topic' is not a branch 'web' releases")),
            (TriggerKind::Cli, None, Some("topic"), None, true, Ok(("topic", true))),
            (TriggerKind::Cli, None, Some("next"), None, true, Ok(("next", false))),
            (TriggerKind::Schedule, None, Some("next"), None, false, Ok(("next", false))),
            (TriggerKind::Schedule, None, Some("nightly"), None, false, Err("its release branch is 'main' or its feature branch 'next'")),
            (TriggerKind::Console, None, None, None, false, Ok(("main", false))),
            // No override lets a name git refuses through.
            (TriggerKind::Cli, None, Some("main..next"), None, true, Err("branch 'main..next' is not a git branch name: it contains '..'")),
            (TriggerKind::Cli, None, Some("-x\n"), None, true, Err("branch '-x\\n' is not a git branch name")),
            (TriggerKind::Merge, None, Some("a b"), WEB, false, Err("is not a git branch name")),
        ];
        for (kind, environment, branch, repository, allow, expected) in cases {
            let input = signal(*kind, *environment, *branch, *repository, *allow);
            let case = format!("{kind:?} {environment:?} {branch:?} {repository:?} override={allow}");
            match (admit(&input, &entry(), ReleaseId("rel-1".into()), "exec", t0()), expected) {
                (Ok(release), Ok((branch, recorded))) => {
                    assert_eq!(release.branch, *branch, "{case}");
                    assert_eq!(release.trigger.branch_override, *recorded, "{case}");
                    assert_eq!(release.trigger.repository.as_deref(), *repository, "{case}");
                    assert_eq!(release.environment, "production");
                    assert_eq!(release.status, ReleaseStatus::Queued);
                    assert_eq!(release.waves.len(), 2);
                    assert!(release.waves.iter().all(|w| w.status == WaveStatus::Pending));
                    assert_eq!(release.execution.as_deref(), Some("exec"));
                }
                (Err(refusal), Err(part)) => {
                    let (Refusal::Invalid(message) | Refusal::NotReleased(message)) = &refusal;
                    assert!(message.contains(part), "{case}: {message}");
                    // A merge that releases nothing is no error; a bad request from a person or schedule is.
                    let quiet = *kind == TriggerKind::Merge && !message.contains("not a git branch name");
                    assert_eq!(matches!(refusal, Refusal::NotReleased(_)), quiet, "{case}: {refusal:?}");
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }
}

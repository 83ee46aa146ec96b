//! What a release would do, decided before it runs: whether its signal is admitted (the entry's
//! rules, then the freeze windows), the waves it runs, what a rollback puts back, the freezes
//! its waves meet and how long it is expected to take. load-catalog admits every release through
//! [`admit`]; `baton plan` shows the whole [`Plan`] without starting anything.

use crate::catalog::{ApprovalSpec, GateSpec, OnFreeze, ProviderBlock, ServiceEntry};
use crate::flow::WavePlan;
use crate::release::{Artifact, Release, ReleaseId, Signal, TriggerKind};
use crate::rules::freeze::{self, Occurrence};
use crate::rules::{admission, builds, deadline_after, rollback};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why no release can be opened for a signal at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signal is wrong for this entry (it names another environment, a bad branch).
    Invalid(String),
    /// A merge to a branch or from a repository the service does not release: nothing ships.
    NotReleased(String),
    /// The entry's freeze windows cannot be read.
    CatalogInvalid(String),
}

/// What the freeze windows say of an opened release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The release goes on (a wave that meets a window in force waits for its end).
    Allowed,
    /// `on-freeze: refuse` and a window is in force: the reason, as the sender reads it.
    Refused { reason: String },
    /// A schedule fired inside a window: the release is recorded as skipped.
    Skipped { window: Occurrence },
}

/// A signal's release as admission opens it, the waves it runs, and the freezes' verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub release: Release,
    pub waves: Vec<WavePlan>,
    pub verdict: Verdict,
}

/// Opens the queued release `id` for `signal` under `entry` ([`admission::admit`]) and judges it
/// against the entry's freeze windows at `now`.
pub fn admit(signal: &Signal, entry: &ServiceEntry, id: ReleaseId, execution: &str, now: DateTime<Utc>) -> Result<Admitted, Refusal> {
    let release = admission::admit(signal, entry, id, execution, now).map_err(|refusal| match refusal {
        admission::Refusal::Invalid(message) => Refusal::Invalid(message),
        admission::Refusal::NotReleased(message) => Refusal::NotReleased(message),
    })?;
    let freeze = &entry.delivery.freeze;
    let windows = freeze.rules().map_err(Refusal::CatalogInvalid)?;
    let refuse = freeze.on_freeze() == OnFreeze::Refuse;
    let scheduled = signal.trigger.kind == TriggerKind::Schedule;
    let overridden = signal.trigger.freeze_override.is_some();
    let verdict = match freeze::admission(&windows, &release.environment, refuse, scheduled, overridden, now) {
        freeze::Admission::Open => Verdict::Allowed,
        freeze::Admission::Skipped(window) => Verdict::Skipped { window },
        freeze::Admission::Refused(window) => Verdict::Refused {
            reason: format!(
                "release of {} refused: {window} (the catalog says `on-freeze: refuse`; a hotfix may pass with `baton release --override-freeze --reason TEXT`)",
                entry.name
            ),
        },
    };
    Ok(Admitted { release, waves: waves(entry), verdict })
}

/// The waves a release of `entry` runs, as the definition's Map iterates them: the catalog's, or
/// those computed from its topology when the entry was read.
pub fn waves(entry: &ServiceEntry) -> Vec<WavePlan> {
    WavePlan::from_specs(&entry.delivery.deploy.waves)
}

/// Nearest-rank percentiles of a duration, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50_seconds: u64,
    pub p90_seconds: u64,
}

impl Percentiles {
    fn of(sorted: &[u64]) -> Option<Percentiles> {
        Some(Percentiles { p50_seconds: builds::nearest_rank(sorted, 50)?, p90_seconds: builds::nearest_rank(sorted, 90)? })
    }
}

/// How long the release is expected to take: the bakes it must wait, and the build and deploy
/// times of the service's recent releases (`None`: no history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub bakes_seconds: u64,
    /// The builds that ran to an end ([`builds::report`]).
    pub build: Option<Percentiles>,
    /// One wave's deploy, from its start to its first gate sample (every target deployed).
    pub deploy: Option<Percentiles>,
    /// The bakes, one build and every wave's deploy; `None` unless both have history.
    pub total: Option<Percentiles>,
}

/// One wave as the release would run it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWave {
    #[serde(flatten)]
    pub wave: WavePlan,
    /// Who may approve it and how, when a person must (the organisation's default applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// When it is expected to start: after the build's and earlier waves' p50 times (none of
    /// them without history) and the bakes, and past any window that holds it.
    pub expected_start: DateTime<Utc>,
    /// The windows in force when it would start: it waits for their end.
    pub freezes: Vec<Occurrence>,
}

/// The freezes a release meets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freezes {
    pub on_freeze: OnFreeze,
    pub in_force: Vec<Occurrence>,
    /// Windows that begin before the release is expected to end (its p90, else its bakes).
    pub coming: Vec<Occurrence>,
}

/// What a release of a signal would do, as `baton plan` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub service: String,
    pub environment: String,
    pub branch: String,
    pub sha: Option<String>,
    pub admission: Verdict,
    pub build: ProviderBlock,
    pub build_timeout_seconds: u64,
    /// The deploy provider every wave's targets are deployed with.
    pub deploy: ProviderBlock,
    pub waves: Vec<PlannedWave>,
    pub health_interval_seconds: u64,
    pub gates: Vec<GateSpec>,
    /// What every target of every wave is rolled back to: the artifact of the service's latest
    /// successful release; `None` when it had none (a rollback removes what the release put there).
    pub rollback_to: Option<Artifact>,
    pub freezes: Freezes,
    pub expected: Expected,
}

/// What a planned release is planned from.
pub struct PlanRequest<'a> {
    pub signal: &'a Signal,
    /// The entry as registration resolves it (the organisation's defaults applied).
    pub entry: &'a ServiceEntry,
    /// The service's recent releases in the environment: the rollback target and the durations.
    pub recent: &'a [Release],
    pub now: DateTime<Utc>,
}

/// Plans the release of `request.signal`; refused as registration would refuse it.
pub fn plan(request: &PlanRequest) -> Result<Plan, Refusal> {
    let PlanRequest { signal, entry, recent, now } = *request;
    let planned = ReleaseId(format!("planned-{}", entry.name));
    let admitted = admit(signal, entry, planned.clone(), planned.as_str(), now)?;
    let delivery = &entry.delivery;
    let expected = expected(&admitted.waves, recent);
    let windows = delivery.freeze.rules().map_err(Refusal::CatalogInvalid)?;
    let environment = &admitted.release.environment;
    let overridden = signal.trigger.freeze_override.is_some();
    let deploy_seconds = expected.deploy.map_or(0, |deploy| deploy.p50_seconds);
    let mut start = deadline_after(now, expected.build.map_or(0, |build| build.p50_seconds));
    let mut waves = Vec::with_capacity(admitted.waves.len());
    for (wave, spec) in admitted.waves.into_iter().zip(&delivery.deploy.waves) {
        // A wave that meets a window waits for its end, as check-freeze holds it.
        let freezes = if overridden { Vec::new() } else { freeze::in_force(&windows, environment, start) };
        let held = freeze::held_until(&windows, environment, start).map_err(|frozen| Refusal::CatalogInvalid(frozen.to_string()))?;
        let expected_start = held.filter(|_| !overridden).unwrap_or(start);
        start = deadline_after(expected_start, deploy_seconds + wave.bake_seconds);
        waves.push(PlannedWave { approval: ApprovalSpec::required(spec.approval.as_ref()).cloned(), expected_start, freezes, wave });
    }
    let until = deadline_after(now, expected.total.map_or(expected.bakes_seconds, |total| total.p90_seconds));
    let freezes = Freezes {
        on_freeze: delivery.freeze.on_freeze(),
        in_force: freeze::in_force(&windows, environment, now),
        coming: freeze::upcoming(&windows, environment, now, until),
    };
    Ok(Plan {
        service: entry.name.clone(),
        environment: environment.clone(),
        branch: admitted.release.branch,
        sha: admitted.release.sha,
        admission: admitted.verdict,
        build: delivery.build.clone(),
        build_timeout_seconds: delivery.build_timeout.0,
        deploy: delivery.deploy.target.clone(),
        waves,
        health_interval_seconds: delivery.health.interval.0,
        gates: delivery.health.gates.clone(),
        rollback_to: rollback::rollback_target(&planned, recent),
        freezes,
        expected,
    })
}

/// The expected durations of a release of `waves`, from the `recent` releases' records.
pub fn expected(waves: &[WavePlan], recent: &[Release]) -> Expected {
    let bakes_seconds = waves.iter().map(|wave| wave.bake_seconds).sum();
    let build = builds::report(recent).summary;
    let build = build.p50_seconds.zip(build.p90_seconds).map(|(p50_seconds, p90_seconds)| Percentiles { p50_seconds, p90_seconds });
    let mut deploys: Vec<u64> = recent
        .iter()
        .flat_map(|release| &release.waves)
        .filter_map(|wave| Some((wave.bake_started_at? - wave.started_at?).num_seconds().max(0) as u64))
        .collect();
    deploys.sort_unstable();
    let deploy = Percentiles::of(&deploys);
    let count = waves.len() as u64;
    let total = build.zip(deploy).map(|(build, deploy)| Percentiles {
        p50_seconds: bakes_seconds + build.p50_seconds + count * deploy.p50_seconds,
        p90_seconds: bakes_seconds + build.p90_seconds + count * deploy.p90_seconds,
    });
    Expected { bakes_seconds, build, deploy, total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{FreezeSpec, Seconds};
    use crate::release::{BuildRecord, BuildStatus, ReleaseStatus, Trigger};
    use crate::rules::fixtures::{artifact, entry, minutes, release, t0};
    use chrono::TimeDelta;

    fn signal(kind: TriggerKind, environment: Option<&str>, freeze_override: Option<&str>) -> Signal {
        Signal {
            service: "web".into(),
            environment: environment.map(Into::into),
            sha: Some("abc1".into()),
            branch: None,
            trigger: Trigger { freeze_override: freeze_override.map(Into::into), ..Trigger::new(kind, "1".into(), None) },
            changed_at: None,
        }
    }

    /// `web` with a window `maintenance` from 09:00 to 11:00 of the fixture day, on `on_freeze`.
    fn frozen(on_freeze: &str) -> ServiceEntry {
        let mut entry = entry();
        let block = serde_json::json!({"on-freeze": on_freeze, "windows": [
            {"name": "maintenance", "reason": "db migration", "start": "2026-11-02T09:00:00Z", "end": "2026-11-02T11:00:00Z"}
        ]});
        entry.delivery.freeze = serde_json::from_value::<FreezeSpec>(block).expect("a freeze block");
        entry
    }

    #[test]
    fn admission_says_allowed_refused_or_skipped_by_the_freezes() {
        // (entry, trigger, override, at minutes after 09:00, verdict expected)
        let cases: Vec<(ServiceEntry, TriggerKind, Option<&str>, i64, &str)> = vec![
            (entry(), TriggerKind::Cli, None, 0, "allowed"),
            (frozen("wait"), TriggerKind::Cli, None, 30, "allowed"),
            (frozen("refuse"), TriggerKind::Cli, None, 30, "refused"),
            (frozen("refuse"), TriggerKind::Cli, Some("hotfix for INC-7"), 30, "allowed"),
            (frozen("refuse"), TriggerKind::Cli, None, 150, "allowed"),
            (frozen("wait"), TriggerKind::Schedule, None, 30, "skipped"),
            (frozen("wait"), TriggerKind::Schedule, None, 150, "allowed"),
        ];
        for (entry, kind, freeze_override, at, expected) in cases {
            let admitted = admit(&signal(kind, None, freeze_override), &entry, ReleaseId("rel-1".into()), "exec", minutes(at)).unwrap();
            let case = format!("{kind:?} {freeze_override:?} at +{at}m");
            match (&admitted.verdict, expected) {
                (Verdict::Allowed, "allowed") => {}
                (Verdict::Refused { reason }, "refused") => {
                    assert!(reason.contains("freeze window `maintenance` (db migration)"), "{case}: {reason}");
                    assert!(reason.contains("`on-freeze: refuse`"), "{case}: {reason}");
                }
                (Verdict::Skipped { window }, "skipped") => assert_eq!(window.window, "maintenance", "{case}"),
                (verdict, _) => panic!("{case}: got {verdict:?}, want {expected}"),
            }
            assert_eq!(admitted.waves, waves(&entry), "{case}: the waves are the entry's");
            assert_eq!(admitted.release.id.as_str(), "rel-1");
        }
    }

    #[test]
    fn a_signal_the_entry_does_not_take_is_refused_before_the_freezes() {
        let refusal = admit(&signal(TriggerKind::Cli, Some("staging"), None), &frozen("refuse"), ReleaseId("r".into()), "e", t0());
        assert!(
            matches!(&refusal, Err(Refusal::Invalid(message)) if message.contains("releases to environment 'production'")),
            "{refusal:?}"
        );
    }

    /// A finished release of `web` whose build took `build` seconds and whose first wave's
    /// targets took `deploy` seconds to deploy.
    fn measured(id: &str, created: i64, build: u64, deploy: i64) -> Release {
        let mut release = release(id, created, ReleaseStatus::Succeeded, Some(created + 30), true);
        let started = minutes(created);
        release.build = Some(BuildRecord {
            provider: "script".into(),
            run_id: format!("run-{id}"),
            url: None,
            queued_at: started,
            started_at: Some(started),
            finished_at: Some(started + TimeDelta::seconds(build as i64)),
            status: BuildStatus::Succeeded,
            attempts: 1,
            reason: None,
            state: serde_json::Value::Null,
        });
        release.waves[0].bake_started_at = Some(started + TimeDelta::seconds(deploy));
        release
    }

    #[test]
    fn expected_durations_add_the_bakes_to_the_recent_build_and_deploy_times() {
        let mut specs = waves(&entry());
        specs[0].bake_seconds = 300;
        specs[1].bake_seconds = 600;
        // (recent releases as (build s, deploy s)) -> (build p50/p90, deploy p50/p90, total p50/p90)
        type Case = (Vec<(u64, i64)>, Option<(u64, u64)>, Option<(u64, u64)>, Option<(u64, u64)>);
        let cases: Vec<Case> = vec![
            (vec![], None, None, None),
            (vec![(60, 10)], Some((60, 60)), Some((10, 10)), Some((900 + 60 + 20, 900 + 60 + 20))),
            (
                vec![(60, 10), (120, 20), (600, 40), (90, 30)],
                Some((90, 600)),
                Some((20, 40)),
                Some((900 + 90 + 2 * 20, 900 + 600 + 2 * 40)),
            ),
        ];
        for (history, build, deploy, total) in cases {
            let recent: Vec<Release> =
                history.iter().enumerate().map(|(i, (b, d))| measured(&format!("r{i}"), i as i64 * 60, *b, *d)).collect();
            let expected = expected(&specs, &recent);
            let pair = |p: Option<Percentiles>| p.map(|p| (p.p50_seconds, p.p90_seconds));
            assert_eq!(expected.bakes_seconds, 900);
            assert_eq!((pair(expected.build), pair(expected.deploy), pair(expected.total)), (build, deploy, total), "{history:?}");
        }
    }

    #[test]
    fn a_plan_shows_the_waves_their_freezes_and_what_a_rollback_puts_back() {
        let mut entry = frozen("wait");
        entry.delivery.deploy.waves[0].bake = Seconds(600);
        entry.delivery.deploy.waves[1].bake = Seconds(600);
        // The last good release ran r1's artifact; r2 failed. Builds take 20 minutes, deploys none.
        let recent = vec![measured("r1", -200, 1200, 0), {
            let mut failed = measured("r2", -100, 1200, 0);
            failed.status = ReleaseStatus::Failed;
            failed
        }];
        // Planned at 08:30: the build ends at 08:50, the canary starts then and bakes to 09:00,
        // when `maintenance` begins: the second wave waits for its end at 11:00.
        let planned = plan_now(&entry, &recent);
        assert_eq!(planned.admission, Verdict::Allowed);
        assert_eq!((planned.branch.as_str(), planned.sha.as_deref()), ("main", Some("abc1")));
        assert_eq!(planned.rollback_to, Some(artifact("r1")));
        let starts: Vec<_> = planned.waves.iter().map(|w| (w.wave.name.as_str(), w.expected_start, w.freezes.len())).collect();
        assert_eq!(starts, vec![("canary", minutes(-10), 0), ("rest", minutes(120), 1)]);
        assert!(planned.freezes.in_force.is_empty());
        assert_eq!(planned.freezes.coming.iter().map(|o| o.window.as_str()).collect::<Vec<_>>(), ["maintenance"]);
        assert_eq!((planned.build.provider.as_str(), planned.gates[0].gate.provider.as_str()), ("script", "script"));
        // A hotfix that overrides the freeze is not held.
        let hotfix = signal(TriggerKind::Cli, None, Some("INC-7"));
        let hotfixed = plan(&PlanRequest { signal: &hotfix, entry: &entry, recent: &recent, now: minutes(-30) }).unwrap();
        assert_eq!((hotfixed.waves[1].expected_start, hotfixed.waves[1].freezes.len()), (t0(), 0));
        // Without history, the waves start at once and only the bakes are known.
        let fresh = plan_now(&crate::rules::fixtures::entry(), &[]);
        assert_eq!((fresh.rollback_to, fresh.expected.total), (None, None));
        assert_eq!(fresh.waves[1].expected_start, minutes(-30), "the fixture's waves do not bake");
    }

    fn plan_now(entry: &ServiceEntry, recent: &[Release]) -> Plan {
        plan(&PlanRequest { signal: &signal(TriggerKind::Cli, None, None), entry, recent, now: minutes(-30) }).unwrap()
    }
}

//! Records the rules' tests share: one catalog entry and releases of it at chosen times.

use crate::catalog::shape::test_registry;
use crate::catalog::{CatalogLoader, ServiceEntry};
use crate::release::{Artifact, Release, ReleaseId, ReleaseStatus, Signal, Trigger, TriggerKind, WaveStatus};
use crate::rules::admission::admit;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

const ENTRY: &str = "
schema-version: v2.2
dd-service: web
team: platform
links:
  - {name: Source, type: repo, url: https://github.com/acme/web.git}
  - {name: Runbook, type: runbook, url: https://github.com/acme/runbooks}
extensions:
  baton:
    environment: production
    release-branch: main
    feature-branch: next
    build: {provider: script, command: [sh, build.sh]}
    deploy:
      provider: script
      command: [sh, deploy.sh]
      waves:
        - {name: canary, targets: [a]}
        - {name: rest, targets: [b, c]}
    health: {gates: [{provider: script, command: [sh, health.sh]}]}
";

pub fn entry() -> ServiceEntry {
    let (mut entries, diagnostics) = CatalogLoader::new(&test_registry()).parse("rules-fixture.yaml", ENTRY);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    entries.remove(0)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

pub fn minutes(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(n)
}

pub fn artifact(reference: &str) -> Artifact {
    Artifact { reference: reference.into(), sha: format!("sha-{reference}"), branch: "main".into(), build_url: None }
}

/// A release of `web` created at `created` minutes; `finished` minutes, if given, closes it
/// with `status`, its artifact named after its id, and (`deployed`) its first wave begun.
pub fn release(id: &str, created: i64, status: ReleaseStatus, finished: Option<i64>, deployed: bool) -> Release {
    let signal = Signal {
        service: "web".into(),
        environment: None,
        sha: None,
        branch: None,
        trigger: Trigger::new(TriggerKind::Cli, id.into(), None),
        changed_at: None,
    };
    let mut release = admit(&signal, &entry(), ReleaseId(id.into()), id, minutes(created)).expect("the fixture signal is admitted");
    release.status = status;
    release.finished_at = finished.map(minutes);
    release.artifact = Some(artifact(id));
    if deployed {
        release.waves[0].status = WaveStatus::Healthy;
        release.waves[0].started_at = Some(minutes(created));
    }
    release
}

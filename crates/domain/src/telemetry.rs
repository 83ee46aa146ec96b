//! What handlers tell the telemetry exporters (Datadog, CloudWatch), and the bounds that keep an
//! export from failing or slowing a release: every exporter runs at once, each within
//! [`EXPORT_BUDGET`], and what did not go out is a line on the release's timeline
//! (`export-failed`, shown by `baton show`), never a task error.

use crate::catalog::{REPOSITORY_LINK_TYPE, ServiceEntry};
use crate::error::{TaskError, chain_text};
use crate::flow::ReleaseContext;
use crate::ports::{ProviderError, TelemetryEvent, TelemetryExporter, TelemetryKind};
use crate::release::{EventKind, Release, Stage};
use crate::support::Ports;
use futures_util::future::join_all;
use std::time::Duration;

/// The longest one exporter may take over one event, its own retries included (two attempts of
/// 1.5 s and a pause): an exporter that hangs costs a release this much per event at most, and
/// one that is down (refused connections) well under a second.
pub const EXPORT_BUDGET: Duration = Duration::from_secs(4);

/// The service's team: the Baton block's, else the catalog's.
pub fn team(entry: &ServiceEntry) -> Option<String> {
    entry.delivery.team.clone().or_else(|| entry.team.clone())
}

/// The service's source repository as a URL: its first link of type `repo`.
pub fn repository_url(entry: &ServiceEntry) -> Option<String> {
    entry.links.iter().find(|link| link.kind.as_deref() == Some(REPOSITORY_LINK_TYPE)).map(|link| link.url.clone())
}

/// The timeline stage an event belongs to.
fn stage(kind: &TelemetryKind) -> Stage {
    match kind {
        TelemetryKind::ReleaseFinished { .. } => Stage::Done,
        TelemetryKind::BuildFinished => Stage::Build,
        TelemetryKind::WaveStarted { .. } | TelemetryKind::WaveHealthy { .. } => Stage::Deploy,
        TelemetryKind::WaveRolledBack { .. } => Stage::Rollback,
    }
}

/// Sends `kind` about `release` to every exporter of the release's catalog `entry`. An exporter
/// that cannot be built, fails or overruns [`EXPORT_BUDGET`] is recorded on the timeline; only
/// a failure to write that record (the store) is an error.
pub async fn export(
    ports: &Ports,
    context: &ReleaseContext,
    entry: &ServiceEntry,
    release: &Release,
    kind: TelemetryKind,
) -> Result<(), TaskError> {
    let exporters = ports.providers.exporters(entry);
    if exporters.as_ref().is_ok_and(Vec::is_empty) {
        return Ok(());
    }
    let event =
        TelemetryEvent { kind, release: release.clone(), team: team(entry), repository_url: repository_url(entry), at: ports.clock.now() };
    let failures = match exporters {
        Ok(exporters) => deliver(&exporters, &event, EXPORT_BUDGET).await,
        Err(err) => vec![("telemetry".to_owned(), err)],
    };
    for (exporter, err) in failures {
        let message = format!("{exporter}: could not export {}: {}", event.kind.describe(), chain_text(&err));
        ports.record_event(context, stage(&event.kind), event.kind.wave(), EventKind::ExportFailed, message).await?;
    }
    Ok(())
}

/// Runs every exporter on `event` at once, each cut off after `budget`; answers the failures,
/// by exporter name.
pub async fn deliver(exporters: &[Box<dyn TelemetryExporter>], event: &TelemetryEvent, budget: Duration) -> Vec<(String, ProviderError)> {
    let runs = exporters.iter().map(|exporter| async move {
        let outcome = match tokio::time::timeout(budget, exporter.export(event)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ProviderError::unavailable(format!("no end within {} ms; given up", budget.as_millis()))),
        };
        outcome.err().map(|err| (exporter.name().to_owned(), err))
    });
    join_all(runs).await.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::ReleaseStatus;
    use crate::rules::fixtures;
    use async_trait::async_trait;
    use std::time::Instant;

    /// An exporter that answers `outcome` after `delay`.
    struct Scripted {
        name: &'static str,
        delay: Duration,
        refuse: bool,
    }

    #[async_trait]
    impl TelemetryExporter for Scripted {
        fn name(&self) -> &str {
            self.name
        }

        async fn export(&self, _event: &TelemetryEvent) -> Result<(), ProviderError> {
            tokio::time::sleep(self.delay).await;
            if self.refuse { Err(ProviderError::rejected("HTTP 403")) } else { Ok(()) }
        }
    }

    #[tokio::test]
    async fn exporters_run_at_once_each_cut_at_the_budget_and_failures_come_in_their_order() {
        let release = fixtures::release("r1", 0, ReleaseStatus::Succeeded, Some(60), true);
        let event = TelemetryEvent {
            kind: TelemetryKind::WaveStarted { wave: "canary".into() },
            release,
            team: None,
            repository_url: None,
            at: chrono::Utc::now(),
        };
        let exporters: Vec<Box<dyn TelemetryExporter>> = vec![
            Box::new(Scripted { name: "hangs", delay: Duration::from_secs(30), refuse: false }),
            Box::new(Scripted { name: "refuses", delay: Duration::from_millis(100), refuse: true }),
            Box::new(Scripted { name: "delivers", delay: Duration::from_millis(100), refuse: false }),
        ];
        let started = Instant::now();
        let failures = deliver(&exporters, &event, Duration::from_millis(300)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "took {took:?}");
        let failures: Vec<(String, String)> = failures.into_iter().map(|(name, err)| (name, err.message().to_owned())).collect();
        assert_eq!(
            failures,
            [("hangs".to_owned(), "no end within 300 ms; given up".to_owned()), ("refuses".to_owned(), "HTTP 403".to_owned())]
        );
    }

    #[test]
    fn the_team_and_repository_come_from_the_catalog() {
        let entry = fixtures::entry();
        assert_eq!(team(&entry).as_deref(), Some("platform"));
        assert_eq!(repository_url(&entry).as_deref(), Some("https://github.com/acme/web.git"));
    }
}

//! The read model the views draw from (the dashboard today, other reports as they move here):
//! releases as rows a person scans, the releases running now with the locks they hold, a
//! service's page, a team's DORA page. Built from the store port and the catalog only, so the
//! same views come from the embedded store and from the AWS stack's tables.

use crate::catalog::ServiceEntry;
use crate::ports::{ReleaseStore, StoreError};
use crate::release::{GateSample, LockKey, Release, ReleaseId, ReleaseStatus, Rollup, StageEvent, WaveStatus};
use crate::rules::builds::{self, BuildReport};
use crate::rules::dora::{self, Figures, Week};
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

/// How far back the Now view lists finished releases.
pub const RECENT: TimeDelta = TimeDelta::hours(24);
/// How many of the last day's ended releases the Now view lists (it counts them all).
pub const RECENT_ROWS: usize = 100;
/// How many releases a service's timeline shows.
pub const TIMELINE_LENGTH: usize = 50;

/// One release as a row of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseRow {
    pub id: String,
    pub service: String,
    pub environment: String,
    pub status: ReleaseStatus,
    /// `true` while the release may still change (queued, running, interrupted).
    pub open: bool,
    pub stage: String,
    pub trigger: String,
    pub actor: Option<String>,
    pub sha: Option<String>,
    pub branch: String,
    pub artifact: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From creation to the end, or to `now` while open.
    pub duration_seconds: i64,
    pub build: Option<BuildCell>,
    pub waves: Vec<WaveCell>,
    /// The wave deploying or baking now.
    pub current_wave: Option<String>,
    pub failure: Option<String>,
    /// The release's Slack message (the Slack notifier keeps its permalink in its state).
    pub slack_thread: Option<String>,
    /// What its execution cost, once counted ([`crate::rules::cost`]).
    pub cost: Option<crate::rules::cost::Cost>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildCell {
    pub provider: String,
    pub status: String,
    pub url: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveCell {
    pub name: String,
    pub status: WaveStatus,
    pub targets: usize,
    pub started_at: Option<DateTime<Utc>>,
    pub bake_started_at: Option<DateTime<Utc>>,
    /// When the bake ends, from the catalog's bake time (none when the catalog no longer has the wave).
    pub bake_ends_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deploy_url: Option<String>,
    pub gates: Vec<GateCell>,
    /// Targets whose rollback ran in this wave.
    pub rolled_back_targets: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateCell {
    pub gate: String,
    pub samples: u32,
    pub last: Option<String>,
    /// The latest samples, oldest first (the record keeps [`GateSample::KEPT`]).
    pub history: Vec<GateSample>,
}

/// `release` as a row; `entry` (the service's catalog entry) gives the bake times.
pub fn row(release: &Release, entry: Option<&ServiceEntry>, now: DateTime<Utc>) -> ReleaseRow {
    let bake_of = |wave: &str| {
        entry
            .and_then(|entry| entry.delivery.deploy.waves.iter().find(|spec| spec.name == wave))
            .map(|spec| TimeDelta::seconds(i64::try_from(spec.bake.0).unwrap_or(i64::MAX)))
    };
    let waves: Vec<WaveCell> = release
        .waves
        .iter()
        .map(|wave| WaveCell {
            name: wave.name.clone(),
            status: wave.status,
            targets: wave.targets.len(),
            started_at: wave.started_at,
            bake_started_at: wave.bake_started_at,
            bake_ends_at: wave.bake_started_at.zip(bake_of(&wave.name)).map(|(start, bake)| start + bake),
            finished_at: wave.finished_at,
            deploy_url: wave.deploy_url.clone(),
            gates: wave
                .gates
                .iter()
                .map(|g| GateCell { gate: g.gate.clone(), samples: g.samples, last: g.last.clone(), history: g.history.clone() })
                .collect(),
            rolled_back_targets: wave.deploys.iter().filter(|d| d.rollback).count(),
        })
        .collect();
    let open = !release.status.is_terminal();
    let current_wave =
        release.waves.iter().find(|w| open && matches!(w.status, WaveStatus::Deploying | WaveStatus::Baking)).map(|w| w.name.clone());
    let end = release.finished_at.filter(|_| !open).unwrap_or(now);
    ReleaseRow {
        id: release.id.0.clone(),
        service: release.service.clone(),
        environment: release.environment.clone(),
        status: release.status,
        open,
        stage: serde_json::to_value(release.stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        trigger: release.trigger.kind.as_str().to_owned(),
        actor: release.trigger.actor.clone(),
        sha: release.artifact.as_ref().map(|a| a.sha.clone()).or_else(|| release.sha.clone()),
        branch: release.branch.clone(),
        artifact: release.artifact.as_ref().map(|a| a.reference.clone()),
        created_at: release.created_at,
        finished_at: release.finished_at,
        duration_seconds: (end - release.created_at).num_seconds().max(0),
        build: release.build.as_ref().map(|b| BuildCell {
            provider: b.provider.clone(),
            status: serde_json::to_value(b.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            url: b.url.clone(),
            started_at: b.started_at,
            finished_at: b.finished_at,
        }),
        waves,
        current_wave,
        failure: release.failure.as_ref().map(|f| format!("{}: {}", f.error, f.cause)),
        slack_thread: release.notifier_state.get("slack").and_then(|state| state["permalink"].as_str()).map(str::to_owned),
        cost: release.cost.clone(),
    }
}

/// A lock someone holds on a service in an environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldLock {
    pub service: String,
    pub environment: String,
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

/// What is releasing now, and how the last day went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NowReport {
    pub generated_at: DateTime<Utc>,
    /// Queued, running and interrupted releases, oldest first.
    pub open: Vec<ReleaseRow>,
    pub locks: Vec<HeldLock>,
    /// How many releases ended in the last [`RECENT`].
    pub ended: usize,
    /// The newest [`RECENT_ROWS`] of them, newest first.
    pub recent: Vec<ReleaseRow>,
    /// How many of them ended each way.
    pub outcomes: Vec<(ReleaseStatus, usize)>,
}

/// The Now view over `entries` (the catalog's services): one read of the open releases and the
/// last day's ([`ReleaseStore::open_or_created_since`]), then the lock of each service with an
/// open release (a lock is taken and held by an open release only: closing frees it).
pub async fn now(store: &dyn ReleaseStore, entries: &[ServiceEntry], now: DateTime<Utc>) -> Result<NowReport, StoreError> {
    let (mut open, mut recent, mut locks) = (Vec::new(), Vec::new(), Vec::new());
    let by_name: std::collections::HashMap<&str, &ServiceEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut releasing = std::collections::BTreeSet::new();
    for release in store.open_or_created_since(now - RECENT).await? {
        let Some(&entry) = by_name.get(release.service.as_str()) else { continue };
        if !release.status.is_terminal() {
            open.push(row(&release, Some(entry), now));
            releasing.insert(entry.name.as_str());
        } else if release.finished_at.is_some_and(|at| at >= now - RECENT) {
            recent.push(row(&release, Some(entry), now));
        }
    }
    for service in releasing {
        let environment = &by_name[service].delivery.environment;
        let Some(lock) = store.lock_holder(&LockKey::new(service, environment), now).await? else { continue };
        locks.push(HeldLock {
            service: service.to_owned(),
            environment: environment.clone(),
            holder: lock.holder.0,
            expires_at: lock.expires_at,
        });
    }
    open.sort_by_key(|r| r.created_at);
    recent.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
    let mut outcomes: Vec<(ReleaseStatus, usize)> = Vec::new();
    for r in &recent {
        match outcomes.iter_mut().find(|(status, _)| *status == r.status) {
            Some((_, n)) => *n += 1,
            None => outcomes.push((r.status, 1)),
        }
    }
    let ended = recent.len();
    recent.truncate(RECENT_ROWS);
    Ok(NowReport { generated_at: now, open, locks, ended, recent, outcomes })
}

/// The four DORA figures over a window, with their weekly trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub environment: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub figures: Figures,
    pub weeks: Vec<Week>,
}

/// The window of `days` ending today (UTC).
fn days_window(days: u64, now: DateTime<Utc>) -> (u64, NaiveDate, NaiveDate) {
    let days = days.max(1);
    let to = now.date_naive();
    (days, to.checked_sub_days(Days::new(days - 1)).unwrap_or(to), to)
}

/// The figures and trend of `rollups` (any number of services' days) over the window.
fn delivery_of(environment: &str, (days, from, to): (u64, NaiveDate, NaiveDate), rollups: &[(NaiveDate, Rollup)]) -> Delivery {
    let figures = dora::figures(days, rollups.iter().map(|(_, rollup)| rollup));
    Delivery { environment: environment.to_owned(), from, to, figures, weeks: dora::weekly(from, to, rollups) }
}

/// One service's daily rollups over the window: one query, at most one item a day.
async fn rollups_of(
    store: &dyn ReleaseStore,
    service: &str,
    environment: &str,
    (_, from, to): (u64, NaiveDate, NaiveDate),
) -> Result<Vec<(NaiveDate, Rollup)>, StoreError> {
    store.rollups(service, environment, from, to).await
}

/// A service's page: its timeline, builds and delivery figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceReport {
    pub service: String,
    pub team: Option<String>,
    pub generated_at: DateTime<Utc>,
    /// Newest first, at most [`TIMELINE_LENGTH`].
    pub releases: Vec<ReleaseRow>,
    /// The builds of the last `days`.
    pub builds: BuildReport,
    pub delivery: Delivery,
}

/// `entry`'s page, its builds and figures over the last `days`.
pub async fn service(store: &dyn ReleaseStore, entry: &ServiceEntry, days: u64, now: DateTime<Utc>) -> Result<ServiceReport, StoreError> {
    let releases = store.list_releases(&entry.name, None, TIMELINE_LENGTH).await?;
    let since = now - TimeDelta::days(i64::try_from(days).unwrap_or(i64::MAX).min(3650));
    let window = store.releases_since(&entry.name, None, since).await?;
    Ok(ServiceReport {
        service: entry.name.clone(),
        team: team_of(entry).map(str::to_owned),
        generated_at: now,
        releases: releases.iter().map(|r| row(r, Some(entry), now)).collect(),
        builds: builds::report(&window),
        delivery: {
            let window = days_window(days, now);
            delivery_of(&entry.delivery.environment, window, &rollups_of(store, &entry.name, &entry.delivery.environment, window).await?)
        },
    })
}

/// The team a service's releases belong to: the delivery block's, else the catalog's.
pub fn team_of(entry: &ServiceEntry) -> Option<&str> {
    entry.delivery.team.as_deref().or(entry.team.as_deref())
}

/// A group of services (a team, a repository, the organisation): the group's figures and each
/// service's, the services releasing least often and failing most first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    pub scope: String,
    pub name: String,
    pub generated_at: DateTime<Utc>,
    pub delivery: Delivery,
    pub services: Vec<ServiceFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceFigures {
    pub service: String,
    pub figures: Figures,
}

/// The figures of `members` in `environment` over the last `days`.
pub async fn group(
    store: &dyn ReleaseStore,
    scope: &str,
    name: &str,
    members: &[&str],
    environment: &str,
    days: u64,
    now: DateTime<Utc>,
) -> Result<GroupReport, StoreError> {
    // Each service's rollups are read once: its own figures, and the group's from all of them.
    let window = days_window(days, now);
    let (mut services, mut all) = (Vec::new(), Vec::new());
    for service in members {
        let rollups = rollups_of(store, service, environment, window).await?;
        services.push(ServiceFigures { service: (*service).to_owned(), figures: delivery_of(environment, window, &rollups).figures });
        all.extend(rollups);
    }
    // Who needs attention first: the most failing, then the least shipping.
    services.sort_by(|a, b| {
        let rate = |f: &Figures| f.change_failure_rate.unwrap_or(0.0);
        rate(&b.figures)
            .total_cmp(&rate(&a.figures))
            .then(a.figures.deployments.cmp(&b.figures.deployments))
            .then(a.service.cmp(&b.service))
    });
    Ok(GroupReport {
        scope: scope.to_owned(),
        name: name.to_owned(),
        generated_at: now,
        delivery: delivery_of(environment, window, &all),
        services,
    })
}

/// One release in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseReport {
    pub row: ReleaseRow,
    pub events: Vec<StageEvent>,
    pub release: Release,
}

/// `id` in full, or `None` when the store has no such release.
pub async fn release(
    store: &dyn ReleaseStore,
    id: &ReleaseId,
    entry: Option<&ServiceEntry>,
    now: DateTime<Utc>,
) -> Result<Option<ReleaseReport>, StoreError> {
    let Some(release) = store.get_release(id).await? else {
        return Ok(None);
    };
    let events = store.events(id).await?;
    Ok(Some(ReleaseReport { row: row(&release, entry, now), events, release }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Seconds;
    use crate::rules::fixtures::{entry, minutes, release};

    #[test]
    fn an_open_release_shows_the_wave_it_bakes_and_when_the_bake_ends() {
        let mut entry = entry();
        entry.delivery.deploy.waves[1].bake = Seconds(300);
        let mut running = release("r1", 0, ReleaseStatus::Running, None, true);
        running.waves[1].status = WaveStatus::Baking;
        running.waves[1].started_at = Some(minutes(3));
        running.waves[1].bake_started_at = Some(minutes(4));
        let row = row(&running, Some(&entry), minutes(6));
        assert!(row.open);
        assert_eq!(row.current_wave.as_deref(), Some("rest"));
        assert_eq!(row.waves[1].bake_ends_at, Some(minutes(9)), "bake start + the catalog's 5 minutes");
        assert_eq!(row.waves[0].bake_ends_at, None, "a wave that never baked has no bake end");
        assert_eq!(row.duration_seconds, 360, "an open release's duration runs to now");
    }

    #[test]
    fn a_closed_release_lasts_until_it_ended_and_bakes_nothing() {
        let mut closed = release("r2", 0, ReleaseStatus::RolledBack, Some(12), true);
        closed.waves[0].status = WaveStatus::Baking;
        let row = row(&closed, Some(&entry()), minutes(600));
        assert!(!row.open);
        assert_eq!(row.current_wave, None, "a closed release is at no wave, whatever its record says");
        assert_eq!(row.duration_seconds, 720);
        assert_eq!(row.sha.as_deref(), Some("sha-r2"), "the artifact's commit");
    }

    #[test]
    fn without_its_catalog_entry_a_row_still_shows_the_release() {
        let mut running = release("r3", 0, ReleaseStatus::Running, None, true);
        running.waves[0].bake_started_at = Some(minutes(1));
        let row = row(&running, None, minutes(2));
        assert_eq!(row.waves[0].bake_ends_at, None);
        assert_eq!(row.waves.len(), 2);
    }

    #[test]
    fn a_row_links_the_slack_message_the_notifier_kept() {
        let mut notified = release("r4", 0, ReleaseStatus::Succeeded, Some(5), true);
        assert_eq!(row(&notified, None, minutes(9)).slack_thread, None, "no Slack message, no link");
        let link = "https://acme.slack.com/archives/C1/p1700000000000100";
        notified.notifier_state.insert("slack".into(), serde_json::json!({"channel": "C1", "ts": "1700000000.000100", "permalink": link}));
        assert_eq!(row(&notified, None, minutes(9)).slack_thread.as_deref(), Some(link));
        notified.notifier_state.insert("slack".into(), serde_json::json!({"channel": "C1", "ts": "1700000000.000100"}));
        assert_eq!(row(&notified, None, minutes(9)).slack_thread, None, "a message posted before permalinks were kept");
    }
}

//! The contract suite for [`baton_domain::ports::ReleaseStore`]: every implementation runs it.
//!
//! Each behaviour is an async function that takes a fresh, empty store and panics when the
//! store breaks the contract. An implementation's test file runs them all, one test each:
//!
//! ```ignore
//! async fn make_store() -> SqliteStore { SqliteStore::in_memory().unwrap() }
//! baton_contract::store_contract_tests!(make_store);
//! ```
//!
//! What the contract pins down beyond the trait's doc comments:
//! - Timestamps are kept to the microsecond at least: a store may drop sub-microsecond digits
//!   (truncating them), nothing coarser. Orderings and lease expiry honour one-microsecond
//!   differences.
//! - A lease taken at `now` covers `[now, now + lease)`: once `now >= expires_at` the lock is free.
//! - `list_releases` and `releases_since` order by `created_at`, newest first; releases created
//!   in the same microsecond come in an unspecified order. `since` is inclusive to the microsecond.
//! - `create_release` stores the record at the `version` it carries (0 for a new release);
//!   `put_release` replaces the whole record, the environment and `created_at` that
//!   `list_releases` filters and orders by included, if the stored version is the one it names,
//!   and stores it at the next version.
//! - `events` orders by `at`, and events with equal `at` in the order they were appended.
//! - `rollups` returns days in ascending order.
//! - Only error variants are compared, never messages.

pub mod changes;
pub mod fakes;

use async_trait::async_trait;
use baton_domain::catalog::ServiceEntry;
use baton_domain::error::ErrorName;
use baton_domain::flow::{Outcome, OutcomeStatus};
use baton_domain::ports::{Beat, Claim, Created, LockOutcome, ReleaseStore, RunOwner, StoreError, WaitRegistry};
use baton_domain::release::{
    Approval, ApprovalDecision, Artifact, BuildRecord, BuildStatus, DeployStatus, EventKind, Failure, GateRecord, GateSample, LockInfo,
    LockKey, Release, ReleaseId, ReleaseStatus, Rollup, RollupKey, RunHandle, Stage, StageEvent, TargetDeploy, TaskToken, Trigger,
    TriggerKind, Verdict, Via, WaveRecord, WaveStatus,
};
use baton_domain::sketch::Sketch;
use baton_domain::support::Closed;
use baton_domain::waits::{Parked, WaitKey, WaitKind};
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};
use std::future::{Future, poll_fn};
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

/// Runs every behaviour of the suite as its own `#[test]` against stores made by `$make_store`,
/// an `async fn() -> impl ReleaseStore` returning a fresh, empty, isolated store.
///
/// Each test runs on its own multi-threaded tokio runtime, so the store's I/O and blocking work
/// proceed in parallel with the suite's concurrent callers. Invoke it once per module; wrap
/// several invocations (say, in-memory and file-backed) in separate modules.
#[macro_export]
macro_rules! store_contract_tests {
    ($make_store:expr) => {
        $crate::store_contract_tests!(@each $make_store;
            round_trip_keeps_every_field,
            timestamps_keep_microseconds,
            missing_release_is_none,
            a_release_keeps_the_first_entry_it_was_given,
            create_is_idempotent_by_key,
            concurrent_creates_with_one_key_make_one_release,
            put_release_replaces_the_record,
            put_release_of_a_missing_id_conflicts,
            put_with_a_stale_version_conflicts,
            racing_puts_of_one_version_admit_one,
            concurrent_updates_lose_nothing,
            list_releases_newest_first_by_service_and_environment,
            listing_an_environment_sees_the_latest_writes,
            releases_since_keeps_the_window_newest_first,
            events_come_back_oldest_first_per_release,
            free_lock_is_acquired,
            held_lock_is_refused_to_others_until_it_expires,
            holder_renews_its_lease,
            expired_lease_passes_to_another_holder,
            unlock_frees_only_for_the_holder,
            lock_holder_is_none_after_expiry,
            concurrent_try_lock_admits_one_holder,
            rollups_add_up_per_day,
            concurrent_rollup_adds_are_all_counted,
            rollups_range_is_inclusive_and_scoped,
            a_close_lands_with_its_rollup_or_not_at_all,
            a_close_that_failed_once_counts_once_when_retried,
            a_close_whose_answer_was_lost_counts_once_when_retried,
            lead_time_counts_every_commit_a_deployment_carried,
            restore_time_spans_a_weekend_and_counts_on_the_day_it_ended,
            a_close_frees_the_lock_its_release_holds_and_no_other,
            a_cancel_request_stays_on_an_open_release_whoever_writes_it,
            a_run_has_one_owner_until_it_goes_silent,
            a_lost_run_is_fenced_and_an_ended_one_free,
            a_cancel_request_reaches_the_owner_until_the_next_claim,
            concurrent_claims_admit_one_owner,
            the_read_model_sees_open_releases_locks_and_the_last_day,
            a_release_whose_gates_kept_every_sample_they_may_is_stored_whole,
            open_releases_however_old_and_the_days_releases_are_read_across_services,
            a_wait_is_taken_once_by_its_key_and_a_new_park_replaces_the_old,
            expired_waits_are_not_answered,
            concurrent_takes_of_one_key_share_its_waits_out,
        );
    };
    (@each $make_store:expr; $($behaviour:ident),+ $(,)?) => {
        $(
            #[test]
            fn $behaviour() {
                $crate::run(async {
                    let store = ($make_store)().await;
                    $crate::$behaviour(&store).await;
                });
            }
        )+
    };
}

fn sketch(seconds: &[f64]) -> Sketch {
    let mut sketch = Sketch::default();
    seconds.iter().for_each(|&s| sketch.add(s));
    sketch
}

/// Drives one behaviour to completion; used by [`store_contract_tests!`](crate::store_contract_tests).
#[doc(hidden)]
pub fn run(behaviour: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("the contract suite needs a tokio runtime")
        .block_on(behaviour)
}

/// How many callers race in the concurrency behaviours.
const RACERS: usize = 8;

const LEASE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- releases

/// Every field of a release, waves, failure and notifier state included, comes back as written.
pub async fn round_trip_keeps_every_field(store: &dyn ReleaseStore) {
    let release = full_release();
    let created = store.create_release(&release, "web#abc123#merge:pr-42").await.expect("create_release");
    assert_eq!(created, Created::New(release.id.clone()), "a first create_release reports New with the release's id");

    let read = store.get_release(&release.id).await.expect("get_release");
    assert_eq!(read.as_ref(), Some(&release), "get_release must return the release exactly as created");
}

/// A release of ten waves watched by five gates each, every gate with its
/// [`GateSample::KEPT`] samples (the most a record holds), is stored and read back whole: the
/// samples kept fit in one record (a DynamoDB item is 400 KB at most).
pub async fn a_release_whose_gates_kept_every_sample_they_may_is_stored_whole(store: &dyn ReleaseStore) {
    let mut release = full_release();
    let watched = release.waves[0].clone();
    release.waves = (0..10)
        .map(|w| WaveRecord {
            name: format!("wave-{w}"),
            gates: (0..5)
                .map(|g| GateRecord {
                    gate: format!("CloudWatch alarms web-{w}-{g}-*"),
                    samples: 2_000,
                    history: (0..GateSample::KEPT)
                        .map(|i| GateSample { at: t0() + TimeDelta::milliseconds(60_000 * i as i64 + 123), healthy: i % 5 != 0 })
                        .collect(),
                    ..watched.gates[0].clone()
                })
                .collect(),
            ..watched.clone()
        })
        .collect();
    store.create_release(&release, "web#full-watch").await.expect("create_release of a fully watched release");
    assert_eq!(store.get_release(&release.id).await.expect("get_release").as_ref(), Some(&release));
    release.waves[9].gates[4].history[0].healthy = true;
    let version = store.put_release(&release).await.expect("put_release of a fully watched release");
    release.version = version;
    assert_eq!(store.get_release(&release.id).await.expect("get_release").as_ref(), Some(&release));
}

/// Timestamps keep at least their microseconds, and one microsecond is enough to order releases.
pub async fn timestamps_keep_microseconds(store: &dyn ReleaseStore) {
    let nanos = TimeDelta::nanoseconds(123_456_789);
    let mut release = full_release();
    release.created_at = t0() + nanos;
    release.changed_at = Some(t0() - TimeDelta::hours(3) + nanos);
    release.waves[0].started_at = Some(t0() + TimeDelta::seconds(5) + nanos);
    store.create_release(&release, "precise").await.expect("create_release");

    let read = store.get_release(&release.id).await.expect("get_release").expect("the release exists");
    assert_keeps_micros("created_at", release.created_at, read.created_at);
    assert_keeps_micros("changed_at", release.changed_at.unwrap(), read.changed_at.expect("changed_at is kept"));
    assert_keeps_micros(
        "waves[0].started_at",
        release.waves[0].started_at.unwrap(),
        read.waves[0].started_at.expect("waves[0].started_at is kept"),
    );

    // One microsecond apart, and at whole seconds next to fractional ones: a store that sorts
    // timestamps as variable-width text or drops the fraction orders these wrongly.
    let whole_second = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
    let times = [
        whole_second - TimeDelta::microseconds(1),
        whole_second,
        whole_second + TimeDelta::microseconds(1),
        whole_second + TimeDelta::milliseconds(500),
        whole_second + TimeDelta::seconds(1),
    ];
    // Neither ids nor creation order follow time, so no tie-breaker can pass for the ordering.
    let ids_in_time_order = ["rel-tick-c", "rel-tick-e", "rel-tick-a", "rel-tick-d", "rel-tick-b"];
    for i in [2, 0, 4, 1, 3] {
        let r = release_at(ids_in_time_order[i], "tick", "prod", times[i]);
        store.create_release(&r, r.id.as_str()).await.expect("create_release");
    }
    let newest_first: Vec<&str> = ids_in_time_order.into_iter().rev().collect();
    assert_eq!(
        ids(&list(store, "tick", None, 10).await),
        id_list(&newest_first),
        "list_releases must order by created_at to the microsecond"
    );
}

pub async fn missing_release_is_none(store: &dyn ReleaseStore) {
    store.create_release(&release_at("rel-web-1", "web", "prod", t0()), "k1").await.expect("create_release");
    let read = store.get_release(&ReleaseId("rel-web-404".into())).await.expect("get_release");
    assert_eq!(read, None, "get_release of an id never created returns None");
}

/// The entry kept for a release comes back whole, a second keep (a retried registration after
/// the catalog changed) leaves the first, and a release with none kept reads `None`.
pub async fn a_release_keeps_the_first_entry_it_was_given(store: &dyn ReleaseStore) {
    let id = ReleaseId("rel-web-1".into());
    store.create_release(&release_at(id.as_str(), "web", "prod", t0()), "k1").await.expect("create_release");
    assert_eq!(store.kept_entry(&id).await.expect("kept_entry"), None, "no entry kept yet");
    let mut entry = reported_entry();
    // Large, as a catalog entry may be: well past what a Step Functions payload may carry.
    entry.delivery.deploy.waves[1].targets = (0..9000).map(|i| format!("target-{i:05}-with-a-long-name")).collect();
    store.keep_entry(&id, &entry).await.expect("keep_entry");
    let mut changed = reported_entry();
    changed.team = Some("someone-else".into());
    store.keep_entry(&id, &changed).await.expect("a second keep_entry is no error");
    assert_eq!(store.kept_entry(&id).await.expect("kept_entry"), Some(entry), "the first entry stays, whole");
    assert_eq!(store.kept_entry(&ReleaseId("rel-web-404".into())).await.expect("kept_entry"), None);
}

/// A key used before returns the first release's id and writes nothing, whatever the new body.
pub async fn create_is_idempotent_by_key(store: &dyn ReleaseStore) {
    let first = release_at("rel-web-1", "web", "prod", t0());
    assert_eq!(store.create_release(&first, "key-a").await.expect("create_release"), Created::New(first.id.clone()));

    let mut second = release_at("rel-web-2", "web", "prod", t0() + TimeDelta::seconds(1));
    second.branch = "hotfix".into();
    assert_eq!(
        store.create_release(&second, "key-a").await.expect("create_release"),
        Created::Existing(first.id.clone()),
        "a second create_release with a used key reports the first release"
    );
    let mut same_id_other_body = first.clone();
    same_id_other_body.status = ReleaseStatus::Failed;
    assert_eq!(store.create_release(&same_id_other_body, "key-a").await.expect("create_release"), Created::Existing(first.id.clone()),);

    assert_eq!(store.get_release(&second.id).await.expect("get_release"), None, "a duplicate create must not store its release");
    assert_eq!(
        store.get_release(&first.id).await.expect("get_release"),
        Some(first.clone()),
        "a duplicate create must not touch the first release"
    );
    assert_eq!(ids(&list(store, "web", None, 10).await), vec![first.id.clone()]);

    assert_eq!(
        store.create_release(&second, "key-b").await.expect("create_release"),
        Created::New(second.id.clone()),
        "another key creates another release"
    );
    assert_eq!(ids(&list(store, "web", None, 10).await), vec![second.id, first.id]);
}

/// Racing creates with one key: exactly one is New, the others report it as Existing.
pub async fn concurrent_creates_with_one_key_make_one_release(store: &dyn ReleaseStore) {
    let releases: Vec<Release> =
        (0..RACERS).map(|i| release_at(&format!("rel-web-{i}"), "web", "prod", t0() + TimeDelta::seconds(i as i64))).collect();
    let outcomes = join_all(releases.iter().map(|r| store.create_release(r, "web#abc#merge:pr-7"))).await;

    let mut winners = Vec::new();
    let mut existing = Vec::new();
    for outcome in outcomes {
        match outcome.expect("create_release") {
            Created::New(id) => winners.push(id),
            Created::Existing(id) => existing.push(id),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racing create_release may report New, got {winners:?}");
    let winner = &winners[0];
    assert!(existing.iter().all(|id| id == winner), "every loser must report the winner {winner}, got {existing:?}");

    let stored = list(store, "web", None, 100).await;
    assert_eq!(ids(&stored), vec![winner.clone()], "racing creates with one key must store one release");
    let expected = releases.iter().find(|r| &r.id == winner).expect("the winner is one of the racers");
    assert_eq!(&stored[0], expected);
}

pub async fn put_release_replaces_the_record(store: &dyn ReleaseStore) {
    let original = release_at("rel-web-1", "web", "staging", t0());
    store.create_release(&original, "k1").await.expect("create_release");
    let neighbour = release_at("rel-web-2", "web", "prod", t0() + TimeDelta::days(1));
    store.create_release(&neighbour, "k2").await.expect("create_release");

    // Every field changes, those list_releases filters and orders by included.
    let mut updated = full_release();
    updated.id = original.id.clone();
    updated.environment = "prod".into();
    updated.created_at = t0() + TimeDelta::days(2);
    updated.status = ReleaseStatus::RolledBack;
    updated.waves[1].status = WaveStatus::RolledBack;
    updated.notifier_state.insert("log".into(), serde_json::json!({"lines": 12}));
    assert_eq!(store.put_release(&updated).await.expect("put_release"), 1, "a put of version 0 stores version 1");
    updated.version = 1;

    assert_eq!(
        store.get_release(&original.id).await.expect("get_release"),
        Some(updated.clone()),
        "put_release must replace the whole record"
    );
    assert_eq!(list(store, "web", Some("prod"), 10).await, vec![updated.clone(), neighbour], "list_releases must see the replaced record");
    assert_eq!(list(store, "web", Some("staging"), 10).await, vec![], "the replaced record leaves its former environment");
    assert_eq!(
        store.create_release(&original, "k1").await.expect("create_release"),
        Created::Existing(original.id),
        "put_release keeps the idempotency key"
    );
}

pub async fn put_release_of_a_missing_id_conflicts(store: &dyn ReleaseStore) {
    store.create_release(&release_at("rel-web-1", "web", "prod", t0()), "k1").await.expect("create_release");
    let missing = release_at("rel-web-404", "web", "prod", t0());
    match store.put_release(&missing).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("put_release of an id never created must fail with Conflict, got {other:?}"),
    }
    assert_eq!(store.get_release(&missing.id).await.expect("get_release"), None, "a refused put_release must not create the release");
}

/// A put names the version it read: a stale one (or one ahead) conflicts and writes nothing.
pub async fn put_with_a_stale_version_conflicts(store: &dyn ReleaseStore) {
    let created = release_at("rel-web-1", "web", "prod", t0());
    store.create_release(&created, "k1").await.expect("create_release");
    let read = store.get_release(&created.id).await.expect("get_release").expect("the release exists");
    assert_eq!(read.version, 0, "a new release is stored at version 0");

    let mut first = read.clone();
    first.status = ReleaseStatus::Running;
    assert_eq!(store.put_release(&first).await.expect("put_release"), 1, "each write bumps the version");
    first.version = 1;

    let mut stale = read.clone();
    stale.branch = "hotfix".into();
    let mut ahead = read;
    ahead.version = 7;
    for refused in [stale, ahead] {
        match store.put_release(&refused).await {
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("put_release of version {} over version 1 must fail with Conflict, got {other:?}", refused.version),
        }
    }
    let stored = store.get_release(&created.id).await.expect("get_release");
    assert_eq!(stored.as_ref(), Some(&first), "a refused put writes nothing");

    let mut next = first;
    next.stage = Stage::Build;
    assert_eq!(store.put_release(&next).await.expect("put_release"), 2, "the version read back is the one the next put names");
}

/// Racing puts that all read one version: exactly one lands, the others conflict.
pub async fn racing_puts_of_one_version_admit_one(store: &dyn ReleaseStore) {
    let created = release_at("rel-web-1", "web", "prod", t0());
    store.create_release(&created, "k1").await.expect("create_release");
    let writes: Vec<Release> = (0..RACERS)
        .map(|i| {
            let mut write = created.clone();
            write.execution = Some(format!("writer-{i}"));
            write
        })
        .collect();
    let outcomes = join_all(writes.iter().map(|w| store.put_release(w))).await;

    let winners: Vec<&Release> = writes.iter().zip(&outcomes).filter(|(_, outcome)| outcome.is_ok()).map(|(w, _)| w).collect();
    assert_eq!(winners.len(), 1, "exactly one put of version 0 may land, got {outcomes:?}");
    for outcome in &outcomes {
        assert!(matches!(outcome, Ok(1) | Err(StoreError::Conflict { .. })), "the losers conflict, got {outcome:?}");
    }
    let mut expected = winners[0].clone();
    expected.version = 1;
    assert_eq!(store.get_release(&created.id).await.expect("get_release"), Some(expected));
}

/// Eight writers change one release at once, each its own wave and notifier, through
/// [`baton_domain::support::update_release`] (read, change, conditional put, again on conflict): no
/// change is lost, as when a wave's targets deploy in parallel.
pub async fn concurrent_updates_lose_nothing(store: &dyn ReleaseStore) {
    let mut release = release_at("rel-web-1", "web", "prod", t0());
    release.waves = (0..RACERS)
        .map(|i| WaveRecord {
            name: format!("wave-{i}"),
            targets: vec![format!("web-{i}")],
            status: WaveStatus::Pending,
            started_at: None,
            finished_at: None,
            deploy_url: None,
            deploys: Vec::new(),
            bake_started_at: None,
            gates: Vec::new(),
        })
        .collect();
    store.create_release(&release, "k1").await.expect("create_release");

    let updates = (0..RACERS).map(|i| {
        baton_domain::support::update_release(store, &release.id, move |r: &mut Release| {
            r.waves[i].status = WaveStatus::Healthy;
            r.waves[i].finished_at = Some(t0() + TimeDelta::seconds(i as i64));
            r.notifier_state.insert(format!("notifier-{i}"), serde_json::json!(i));
        })
    });
    for outcome in join_all(updates).await {
        outcome.expect("update_release");
    }

    let stored = store.get_release(&release.id).await.expect("get_release").expect("the release exists");
    for (i, wave) in stored.waves.iter().enumerate() {
        assert_eq!(
            (wave.status, wave.finished_at),
            (WaveStatus::Healthy, Some(t0() + TimeDelta::seconds(i as i64))),
            "wave {i}'s update was lost"
        );
    }
    assert_eq!(stored.notifier_state.len(), RACERS, "every writer's notifier state is kept: {:?}", stored.notifier_state);
    assert_eq!(stored.version, RACERS as u64, "each writer wrote once");
}

/// Newest first by created_at (not by insertion or id), narrowed by environment, limited, one service only.
pub async fn list_releases_newest_first_by_service_and_environment(store: &dyn ReleaseStore) {
    // Created out of order, ids sorting against time, a year before 2001 so epoch seconds change width.
    let plan = [
        ("rel-web-e", "prod", t0() + TimeDelta::days(2)),
        ("rel-web-a", "staging", t0() + TimeDelta::days(4)),
        ("rel-web-d", "prod", Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()),
        ("rel-web-c", "prod", t0() + TimeDelta::days(6)),
        ("rel-web-b", "staging", t0() + TimeDelta::days(1)),
    ];
    for (i, (id, env, at)) in plan.iter().enumerate() {
        store.create_release(&release_at(id, "web", env, *at), &format!("web-{i}")).await.expect("create_release");
    }
    // Services sharing a prefix or the environment must stay out.
    for (i, service) in ["we", "web-admin", "webb"].iter().enumerate() {
        let r = release_at(&format!("rel-{service}-1"), service, "prod", t0() + TimeDelta::days(3));
        store.create_release(&r, &format!("other-{i}")).await.expect("create_release");
    }

    let all = ["rel-web-c", "rel-web-a", "rel-web-e", "rel-web-b", "rel-web-d"];
    assert_eq!(ids(&list(store, "web", None, 10).await), id_list(&all), "all of a service's releases, newest first");
    assert_eq!(ids(&list(store, "web", None, 3).await), id_list(&all[..3]), "limit keeps the newest");
    assert_eq!(ids(&list(store, "web", None, 0).await), id_list(&[]), "limit 0 returns nothing");
    assert_eq!(
        ids(&list(store, "web", Some("prod"), 10).await),
        id_list(&["rel-web-c", "rel-web-e", "rel-web-d"]),
        "environment narrows the list"
    );
    assert_eq!(ids(&list(store, "web", Some("prod"), 2).await), id_list(&["rel-web-c", "rel-web-e"]));
    assert_eq!(ids(&list(store, "web", Some("dev"), 10).await), id_list(&[]));
    assert_eq!(ids(&list(store, "nobody", None, 10).await), id_list(&[]));
    assert_eq!(list(store, "web-admin", None, 10).await.len(), 1);
}

/// Decisions that move production read `list_releases` with an environment right after the
/// writes they depend on, so it must reflect every write that returned before it (a strongly
/// consistent read): the rollback target right after the previous release closed, the
/// supersede check right after a newer signal was recorded.
pub async fn listing_an_environment_sees_the_latest_writes(store: &dyn ReleaseStore) {
    let artifact =
        |reference: &str| Artifact { reference: reference.into(), sha: reference.into(), branch: "main".into(), build_url: None };
    let day = rollup_key("web", "prod", date(2026, 3, 14));
    for (i, reference) in ["v1", "v2"].into_iter().enumerate() {
        let mut release = release_at(&format!("rel-web-{i}"), "web", "prod", t0() + TimeDelta::minutes(i as i64));
        release.status = ReleaseStatus::Running;
        release.artifact = Some(artifact(reference));
        store.create_release(&release, release.id.as_str()).await.expect("create_release");
        release.status = ReleaseStatus::Succeeded;
        release.stage = Stage::Done;
        release.finished_at = Some(t0() + TimeDelta::minutes(i as i64 + 1));
        store.close_release(&release, &day, &Rollup { deployments: 1, ..Rollup::default() }).await.expect("close_release");
    }
    let next = release_at("rel-web-2", "web", "prod", t0() + TimeDelta::minutes(5));
    store.create_release(&next, "k-next").await.expect("create_release");
    let recent = list(store, "web", Some("prod"), 50).await;
    assert_eq!(
        baton_domain::rules::rollback::rollback_target(&next.id, &recent).map(|a| a.reference),
        Some("v2".to_owned()),
        "the rollback target is the release that closed just before"
    );

    let newer = release_at("rel-web-3", "web", "prod", t0() + TimeDelta::minutes(6));
    store.create_release(&newer, "k-newer").await.expect("create_release");
    let recent = list(store, "web", Some("prod"), 50).await;
    assert_eq!(
        baton_domain::rules::queue::newer_signal(&next, &recent, newer.created_at),
        Some(&newer.id),
        "a signal recorded just before is seen"
    );
}

/// A window of a service's releases: those created at or after `since` (to the microsecond),
/// newest first, however many there are, narrowed by environment when one is named.
pub async fn releases_since_keeps_the_window_newest_first(store: &dyn ReleaseStore) {
    let micro = TimeDelta::microseconds(1);
    let plan = [
        ("rel-web-old", "prod", t0() - micro),
        ("rel-web-edge", "prod", t0()),
        ("rel-web-stage", "staging", t0() + TimeDelta::days(1)),
        ("rel-web-new", "prod", t0() + TimeDelta::days(2)),
        ("rel-web-ancient", "prod", Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()),
    ];
    for (i, (id, env, at)) in plan.iter().enumerate() {
        store.create_release(&release_at(id, "web", env, *at), &format!("since-{i}")).await.expect("create_release");
    }
    for (i, service) in ["we", "web-admin"].iter().enumerate() {
        let r = release_at(&format!("rel-{service}-1"), service, "prod", t0() + TimeDelta::days(3));
        store.create_release(&r, &format!("since-other-{i}")).await.expect("create_release");
    }
    let since = |environment: Option<&'static str>, at: DateTime<Utc>| async move {
        ids(&store.releases_since("web", environment, at).await.expect("releases_since"))
    };
    assert_eq!(since(None, t0()).await, id_list(&["rel-web-new", "rel-web-stage", "rel-web-edge"]), "since is inclusive");
    assert_eq!(since(Some("prod"), t0()).await, id_list(&["rel-web-new", "rel-web-edge"]), "environment narrows the window");
    assert_eq!(since(Some("prod"), t0() - micro).await, id_list(&["rel-web-new", "rel-web-edge", "rel-web-old"]));
    assert_eq!(since(None, t0() + TimeDelta::days(5)).await, id_list(&[]));
    assert_eq!(since(Some("dev"), t0()).await, id_list(&[]));
    assert_eq!(since(None, Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0).unwrap()).await.len(), 5, "every release of the service, no more");
}

// ---------------------------------------------------------------- events

/// A release's events by time, equal times in append order, other releases' events excluded.
pub async fn events_come_back_oldest_first_per_release(store: &dyn ReleaseStore) {
    let id = ReleaseId("rel-web-1".into());
    let other = ReleaseId("rel-web-10".into());
    // Each event's message is its label in the expected order.
    let ev = |release: &ReleaseId, at: DateTime<Utc>, label: &str| StageEvent {
        release_id: release.clone(),
        at,
        stage: Stage::Deploy,
        wave: Some("canary".into()),
        target: Some("web-1".into()),
        kind: EventKind::Started,
        message: label.into(),
    };
    let appended = [
        ev(&id, t0() + TimeDelta::seconds(2), "late"),
        ev(&other, t0(), "other"),
        ev(&id, t0(), "tie-1"),
        ev(&id, t0(), "tie-2"),
        ev(&id, t0() + TimeDelta::microseconds(1), "next-micro"),
        ev(&id, t0(), "tie-3"),
        ev(&id, t0() - TimeDelta::seconds(1), "early"),
    ];
    for event in &appended {
        store.append_event(event).await.expect("append_event");
    }
    let mut with_defaults = ev(&id, t0() + TimeDelta::seconds(3), "info");
    with_defaults.wave = None;
    with_defaults.stage = Stage::Done;
    with_defaults.kind = EventKind::Succeeded;
    store.append_event(&with_defaults).await.expect("append_event");

    let labels: Vec<String> = store.events(&id).await.expect("events").into_iter().map(|e| e.message).collect();
    assert_eq!(labels, ["early", "tie-1", "tie-2", "tie-3", "next-micro", "late", "info"], "events oldest first, ties in append order");

    let read = store.events(&id).await.expect("events");
    assert_eq!(read.last(), Some(&with_defaults), "events come back exactly as appended");
    assert_eq!(read[0], appended[6]);
    assert_eq!(store.events(&other).await.expect("events"), vec![appended[1].clone()]);
    assert_eq!(store.events(&ReleaseId("rel-web".into())).await.expect("events"), vec![]);
}

// ---------------------------------------------------------------- locks

pub async fn free_lock_is_acquired(store: &dyn ReleaseStore) {
    let (key, a, _) = lock_fixture();
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), None, "a lock never taken has no holder");
    assert_eq!(store.try_lock(&key, &a, t0(), LEASE).await.expect("try_lock"), LockOutcome::Acquired);
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), Some(lease(&a, t0())));
    assert_eq!(store.lock_holder(&LockKey::new("web", "staging"), t0()).await.expect("lock_holder"), None, "locks are per key");
}

pub async fn held_lock_is_refused_to_others_until_it_expires(store: &dyn ReleaseStore) {
    let (key, a, b) = lock_fixture();
    store.try_lock(&key, &a, t0(), LEASE).await.expect("try_lock");

    let just_before_expiry = t0() + TimeDelta::seconds(60) - TimeDelta::microseconds(1);
    assert_eq!(
        store.try_lock(&key, &b, just_before_expiry, LEASE).await.expect("try_lock"),
        LockOutcome::HeldBy(lease(&a, t0())),
        "an unexpired lock is refused to others, naming its holder and expiry"
    );
    assert_eq!(
        store.lock_holder(&key, just_before_expiry).await.expect("lock_holder"),
        Some(lease(&a, t0())),
        "a refused try_lock changes nothing"
    );

    let other_key = LockKey::new("web", "staging");
    assert_eq!(store.try_lock(&other_key, &b, t0(), LEASE).await.expect("try_lock"), LockOutcome::Acquired, "locks are per key");

    let at_expiry = t0() + TimeDelta::seconds(60);
    assert_eq!(
        store.try_lock(&key, &b, at_expiry, LEASE).await.expect("try_lock"),
        LockOutcome::Acquired,
        "a lease ends at its expires_at"
    );
}

pub async fn holder_renews_its_lease(store: &dyn ReleaseStore) {
    let (key, a, b) = lock_fixture();
    store.try_lock(&key, &a, t0(), LEASE).await.expect("try_lock");
    let renewal = t0() + TimeDelta::seconds(30);
    assert_eq!(
        store.try_lock(&key, &a, renewal, LEASE).await.expect("try_lock"),
        LockOutcome::Acquired,
        "the holder may take its lock again"
    );
    assert_eq!(store.lock_holder(&key, renewal).await.expect("lock_holder"), Some(lease(&a, renewal)), "taking it again renews the lease");

    let after_first_lease = t0() + TimeDelta::seconds(70);
    assert_eq!(
        store.try_lock(&key, &b, after_first_lease, LEASE).await.expect("try_lock"),
        LockOutcome::HeldBy(lease(&a, renewal)),
        "a renewed lease outlives the first one"
    );

    // The holder renews an expired lease too, as long as nobody took it meanwhile.
    let much_later = t0() + TimeDelta::hours(1);
    assert_eq!(store.try_lock(&key, &a, much_later, LEASE).await.expect("try_lock"), LockOutcome::Acquired);
    assert_eq!(store.lock_holder(&key, much_later).await.expect("lock_holder"), Some(lease(&a, much_later)));
}

pub async fn expired_lease_passes_to_another_holder(store: &dyn ReleaseStore) {
    let (key, a, b) = lock_fixture();
    store.try_lock(&key, &a, t0(), LEASE).await.expect("try_lock");
    let later = t0() + TimeDelta::seconds(61);
    assert_eq!(
        store.try_lock(&key, &b, later, LEASE).await.expect("try_lock"),
        LockOutcome::Acquired,
        "an expired lease is free for another holder"
    );
    assert_eq!(store.lock_holder(&key, later).await.expect("lock_holder"), Some(lease(&b, later)));

    let a_again = later + TimeDelta::seconds(1);
    assert_eq!(
        store.try_lock(&key, &a, a_again, LEASE).await.expect("try_lock"),
        LockOutcome::HeldBy(lease(&b, later)),
        "the former holder is refused once its lease passed on"
    );
    assert!(!store.unlock(&key, &a).await.expect("unlock"), "the former holder cannot unlock the new holder's lock");
    assert_eq!(store.lock_holder(&key, a_again).await.expect("lock_holder"), Some(lease(&b, later)));
}

pub async fn unlock_frees_only_for_the_holder(store: &dyn ReleaseStore) {
    let (key, a, b) = lock_fixture();
    assert!(!store.unlock(&key, &a).await.expect("unlock"), "unlocking a lock nobody holds returns false");
    store.try_lock(&key, &a, t0(), LEASE).await.expect("try_lock");

    assert!(!store.unlock(&key, &b).await.expect("unlock"), "only the holder can unlock");
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), Some(lease(&a, t0())), "a refused unlock leaves the lock held");
    assert_eq!(store.try_lock(&key, &b, t0(), LEASE).await.expect("try_lock"), LockOutcome::HeldBy(lease(&a, t0())));

    assert!(store.unlock(&key, &a).await.expect("unlock"), "the holder's unlock returns true");
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), None, "an unlocked lock has no holder");
    assert!(!store.unlock(&key, &a).await.expect("unlock"), "a second unlock finds nothing to free");
    assert_eq!(store.try_lock(&key, &b, t0(), LEASE).await.expect("try_lock"), LockOutcome::Acquired, "an unlocked lock is free at once");
}

pub async fn lock_holder_is_none_after_expiry(store: &dyn ReleaseStore) {
    let (key, a, _) = lock_fixture();
    store.try_lock(&key, &a, t0(), LEASE).await.expect("try_lock");
    let expiry = t0() + TimeDelta::seconds(60);
    assert_eq!(
        store.lock_holder(&key, expiry - TimeDelta::microseconds(1)).await.expect("lock_holder"),
        Some(lease(&a, t0())),
        "the lease holds until its last microsecond"
    );
    assert_eq!(store.lock_holder(&key, expiry).await.expect("lock_holder"), None, "lock_holder reports no holder once the lease expired");
    assert_eq!(store.lock_holder(&key, expiry + TimeDelta::days(1)).await.expect("lock_holder"), None);
}

/// Racing try_lock by different holders: exactly one acquires, the others see it as holder.
pub async fn concurrent_try_lock_admits_one_holder(store: &dyn ReleaseStore) {
    let key = LockKey::new("web", "prod");
    let holders: Vec<ReleaseId> = (0..RACERS).map(|i| ReleaseId(format!("rel-web-{i}"))).collect();
    let outcomes = join_all(holders.iter().map(|h| store.try_lock(&key, h, t0(), LEASE))).await;

    let winners: Vec<&ReleaseId> = holders
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| matches!(outcome, Ok(LockOutcome::Acquired)))
        .map(|(holder, _)| holder)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one racing try_lock may acquire, got {outcomes:?}");
    let winner = winners[0];
    for outcome in outcomes {
        match outcome.expect("try_lock") {
            LockOutcome::Acquired => {}
            LockOutcome::HeldBy(info) => assert_eq!(info, lease(winner, t0()), "losers must see the winner as holder"),
        }
    }
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), Some(lease(winner, t0())));
}

// ---------------------------------------------------------------- rollups

pub async fn rollups_add_up_per_day(store: &dyn ReleaseStore) {
    let day = date(2026, 3, 14);
    let key = rollup_key("web", "prod", day);
    let first = Rollup {
        deployments: 1,
        failed_deployments: 2,
        rollbacks: 3,
        lead_time_seconds_total: 4,
        lead_time_samples: 5,
        restore_seconds_total: 6,
        restores: 7,
        redeployments: 8,
        lead_time_fallbacks: 9,
        lead_times: sketch(&[60.0, 3600.0]),
        restore_times: sketch(&[0.0]),
    };
    let second = Rollup {
        deployments: 10,
        failed_deployments: 20,
        rollbacks: 30,
        lead_time_seconds_total: 40_000_000_000,
        lead_time_samples: 50,
        restore_seconds_total: 60,
        restores: 70,
        redeployments: 80,
        lead_time_fallbacks: 90,
        lead_times: sketch(&[60.0, 86_400.0]),
        restore_times: Sketch::default(),
    };
    store.add_rollup(&key, &first).await.expect("add_rollup");
    assert_eq!(
        store.rollups("web", "prod", day, day).await.expect("rollups"),
        vec![(day, first.clone())],
        "the first add starts from zero"
    );
    store.add_rollup(&key, &second).await.expect("add_rollup");
    store.add_rollup(&key, &Rollup::default()).await.expect("add_rollup");

    let sum = Rollup {
        deployments: 11,
        failed_deployments: 22,
        rollbacks: 33,
        lead_time_seconds_total: 40_000_000_004,
        lead_time_samples: 55,
        restore_seconds_total: 66,
        restores: 77,
        redeployments: 88,
        lead_time_fallbacks: 99,
        lead_times: sketch(&[60.0, 60.0, 3600.0, 86_400.0]),
        restore_times: sketch(&[0.0]),
    };
    assert_eq!(
        store.rollups("web", "prod", day, day).await.expect("rollups"),
        vec![(day, sum)],
        "add_rollup adds every counter and every sketch bucket"
    );

    let next_day = day.succ_opt().unwrap();
    store.add_rollup(&rollup_key("web", "prod", next_day), &first).await.expect("add_rollup");
    let both = store.rollups("web", "prod", day, next_day).await.expect("rollups");
    assert_eq!(both.len(), 2, "each day keeps its own counters");
    assert_eq!(both[1], (next_day, first));
}

pub async fn concurrent_rollup_adds_are_all_counted(store: &dyn ReleaseStore) {
    let day = date(2026, 3, 14);
    let key = rollup_key("web", "prod", day);
    let delta =
        Rollup { deployments: 1, lead_time_seconds_total: 90, lead_time_samples: 1, lead_times: Sketch::of(90.0), ..Rollup::default() };
    let adders = 2 * RACERS;
    for outcome in join_all((0..adders).map(|_| store.add_rollup(&key, &delta))).await {
        outcome.expect("add_rollup");
    }
    let n = adders as u64;
    let mut lead_times = Sketch::default();
    lead_times.add_count(Sketch::bucket(90.0), n);
    let expected = Rollup { deployments: n, lead_time_seconds_total: 90 * n, lead_time_samples: n, lead_times, ..Rollup::default() };
    assert_eq!(store.rollups("web", "prod", day, day).await.expect("rollups"), vec![(day, expected)], "no concurrent add may be lost");
}

/// `close_release` writes the record and adds the rollup together. A close that fails (here on a
/// version another write changed) adds nothing, and a close repeated after it landed (its answer
/// lost, the caller still holding the version it read) conflicts rather than counting twice.
pub async fn a_close_lands_with_its_rollup_or_not_at_all(store: &dyn ReleaseStore) {
    let day = date(2026, 3, 14);
    let key = rollup_key("web", "prod", day);
    let delta = Rollup { deployments: 1, lead_time_seconds_total: 600, lead_time_samples: 1, ..Rollup::default() };
    let mut running = release_at("rel-web-1", "web", "prod", t0());
    running.status = ReleaseStatus::Running;
    store.create_release(&running, "k1").await.expect("create_release");
    let close = |mut release: Release| {
        release.status = ReleaseStatus::Succeeded;
        release.stage = Stage::Done;
        release.finished_at = Some(t0() + TimeDelta::minutes(10));
        release
    };

    let stale = close(running.clone());
    let mut notified = running.clone();
    notified.notifier_state.insert("log".into(), serde_json::json!({"lines": 3}));
    store.put_release(&notified).await.expect("put_release");
    match store.close_release(&stale, &key, &delta).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("a close of a version another write changed must fail with Conflict, got {other:?}"),
    }
    let after_failure = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    assert_eq!(after_failure.status, ReleaseStatus::Running, "a failed close leaves the release open");
    assert_eq!(store.rollups("web", "prod", day, day).await.expect("rollups"), vec![], "a failed close adds nothing");

    let retry = close(after_failure);
    assert_eq!(store.close_release(&retry, &key, &delta).await.expect("close_release"), 2, "the retry closes the record read again");
    let closed = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    assert_eq!((closed.status, closed.notifier_state.len(), closed.version), (ReleaseStatus::Succeeded, 1, 2));
    assert_eq!(store.rollups("web", "prod", day, day).await.expect("rollups"), vec![(day, delta.clone())], "the close adds its rollup");

    assert!(matches!(store.close_release(&retry, &key, &delta).await, Err(StoreError::Conflict { .. })), "a repeated close conflicts");
    assert_eq!(store.rollups("web", "prod", day, day).await.expect("rollups"), vec![(day, delta)], "and counts nothing twice");

    // A release that never reached production adds nothing, not even a day of zeros.
    let superseded = release_at("rel-web-2", "web", "prod", t0());
    store.create_release(&superseded, "k2").await.expect("create_release");
    store
        .close_release(&close(superseded), &rollup_key("web", "prod", day.succ_opt().unwrap()), &Rollup::default())
        .await
        .expect("close_release");
    assert_eq!(store.rollups("web", "prod", day, day.succ_opt().unwrap()).await.expect("rollups").len(), 1);
}

/// A cancel request lands on an open release at once and is never lost: a writer that read the
/// record before it conflicts (and reads it again), the first reason stays, and a closed or
/// missing release takes none.
pub async fn a_cancel_request_stays_on_an_open_release_whoever_writes_it(store: &dyn ReleaseStore) {
    let mut running = release_at("rel-web-1", "web", "prod", t0());
    running.status = ReleaseStatus::Running;
    store.create_release(&running, "k1").await.expect("create_release");
    let read_before = store.get_release(&running.id).await.expect("get_release").expect("the release exists");

    assert!(store.request_cancel(&running.id, "ann cancelled the release: wrong commit").await.expect("request_cancel"));
    assert!(
        store.request_cancel(&running.id, "bob cancelled the release: twice").await.expect("request_cancel"),
        "asked again: still asked"
    );
    let asked = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    assert_eq!(asked.cancel_requested.as_deref(), Some("ann cancelled the release: wrong commit"), "the first reason stays");

    let mut stale = read_before.clone();
    stale.stage = Stage::Deploy;
    match store.put_release(&stale).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("a put of a record read before the cancel request must fail with Conflict, got {other:?}"),
    }
    let mut closing = read_before;
    closing.status = ReleaseStatus::RolledBack;
    match store.close_release(&closing, &rollup_key("web", "prod", date(2026, 3, 14)), &Rollup::default()).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("a close of a record read before the cancel request must fail with Conflict, got {other:?}"),
    }
    let mut reread = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    reread.stage = Stage::Deploy;
    let version = store.put_release(&reread).await.expect("put_release of the record read again");
    let written = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    assert_eq!((written.stage, written.version), (Stage::Deploy, version));
    assert_eq!(written.cancel_requested.as_deref(), Some("ann cancelled the release: wrong commit"), "a write keeps the request");

    // It closes as a person's cancel does: `cancelled`, which is terminal and takes no request.
    let mut closed = written;
    closed.status = ReleaseStatus::Cancelled;
    closed.stage = Stage::Done;
    store.close_release(&closed, &rollup_key("web", "prod", date(2026, 3, 14)), &Rollup::default()).await.expect("close_release");
    let cancelled = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    assert_eq!((cancelled.status, cancelled.stage), (ReleaseStatus::Cancelled, Stage::Done), "the cancelled status reads back");
    let listed = store.list_releases("web", Some("prod"), 10).await.expect("list_releases");
    assert!(listed.iter().any(|r| r.id == running.id && r.status == ReleaseStatus::Cancelled), "and lists: {listed:?}");
    assert!(!store.request_cancel(&running.id, "again").await.expect("request_cancel"), "a cancelled release takes no request");
    let other = release_at("rel-web-2", "web", "prod", t0() + TimeDelta::minutes(1));
    store.create_release(&other, "k2").await.expect("create_release");
    store
        .close_release(
            &Release { status: ReleaseStatus::Succeeded, ..other.clone() },
            &rollup_key("web", "prod", date(2026, 3, 14)),
            &Rollup::default(),
        )
        .await
        .expect("close_release");
    assert!(!store.request_cancel(&other.id, "too late").await.expect("request_cancel"), "a closed release takes no request");
    let after = store.get_release(&other.id).await.expect("get_release").expect("the release exists");
    assert_eq!(after.cancel_requested, None, "and keeps none");
    assert!(!store.request_cancel(&ReleaseId("rel-web-404".into()), "nothing").await.expect("request_cancel"), "nor a missing one");
    assert_eq!(store.get_release(&ReleaseId("rel-web-404".into())).await.expect("get_release"), None, "which it does not create");
}

/// Closing a release and freeing the lock it holds are one write: a close frees the lock of its
/// service and environment when the release holds it, and leaves another holder's alone.
pub async fn a_close_frees_the_lock_its_release_holds_and_no_other(store: &dyn ReleaseStore) {
    let day = date(2026, 3, 14);
    let key = LockKey::new("web", "prod");
    let close = |mut release: Release| {
        release.status = ReleaseStatus::Failed;
        release.stage = Stage::Done;
        release
    };
    let holder = release_at("rel-web-1", "web", "prod", t0());
    store.create_release(&holder, "k1").await.expect("create_release");
    store.try_lock(&key, &holder.id, t0(), LEASE).await.expect("try_lock");
    store.try_lock(&LockKey::new("web", "staging"), &holder.id, t0(), LEASE).await.expect("try_lock");
    store.close_release(&close(holder.clone()), &rollup_key("web", "prod", day), &Rollup::default()).await.expect("close_release");
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), None, "the close freed the lock its release held");
    assert_eq!(
        store.lock_holder(&LockKey::new("web", "staging"), t0()).await.expect("lock_holder"),
        Some(lease(&holder.id, t0())),
        "a close frees only its own environment's lock"
    );

    let waiter = release_at("rel-web-2", "web", "prod", t0());
    let other = release_at("rel-web-3", "web", "prod", t0());
    store.create_release(&waiter, "k2").await.expect("create_release");
    store.create_release(&other, "k3").await.expect("create_release");
    store.try_lock(&key, &other.id, t0(), LEASE).await.expect("try_lock");
    let delta = Rollup { failed_deployments: 1, ..Rollup::default() };
    store.close_release(&close(waiter), &rollup_key("web", "prod", day), &delta).await.expect("close_release");
    assert_eq!(store.lock_holder(&key, t0()).await.expect("lock_holder"), Some(lease(&other.id, t0())), "another holder's lock stays");
    assert_eq!(store.rollups("web", "prod", day, day).await.expect("rollups"), vec![(day, delta)], "and the close still counted");
}

// ---------------------------------------------------------------- runs

const RUN: &str = "cli-0f3a";
const SILENT: Duration = Duration::from_secs(3);

fn seconds(s: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(s)
}

fn owner(name: &str, fence: u64, beat_at: DateTime<Utc>) -> RunOwner {
    RunOwner { owner: name.into(), fence, beat_at, cancel: None }
}

pub async fn a_run_has_one_owner_until_it_goes_silent(store: &dyn ReleaseStore) {
    assert_eq!(store.run_owner(RUN).await.expect("run_owner"), None, "a run never claimed has no owner");
    let Claim::Claimed { fence: first } = store.claim_run(RUN, "ann", t0(), SILENT).await.expect("claim_run") else {
        panic!("a free run is claimed");
    };
    assert_eq!(store.run_owner(RUN).await.expect("run_owner"), Some(owner("ann", first, t0())));
    assert_eq!(
        store.claim_run(RUN, "bob", seconds(2), SILENT).await.expect("claim_run"),
        Claim::OwnedBy(owner("ann", first, t0())),
        "a run whose owner beat recently is refused to others, naming the owner"
    );
    assert_eq!(store.claim_run(RUN, "ann", seconds(2), SILENT).await.expect("claim_run"), Claim::Claimed { fence: first }, "renewed");
    assert_eq!(store.beat_run(RUN, first, seconds(4)).await.expect("beat_run"), Beat::Owned { cancel: None });
    assert_eq!(
        store.claim_run(RUN, "bob", seconds(7) - TimeDelta::microseconds(1), SILENT).await.expect("claim_run"),
        Claim::OwnedBy(owner("ann", first, seconds(4))),
        "a beat keeps the run its owner's"
    );
    let Claim::Claimed { fence: second } = store.claim_run(RUN, "bob", seconds(7), SILENT).await.expect("claim_run") else {
        panic!("a run silent for stale_after passes to another claim");
    };
    assert!(second > first, "each claim has a greater fence than the ones before ({second} after {first})");
    assert_eq!(store.run_owner(RUN).await.expect("run_owner"), Some(owner("bob", second, seconds(7))));
    assert_eq!(store.run_owner("cli-other").await.expect("run_owner"), None, "runs are per name");
}

pub async fn a_lost_run_is_fenced_and_an_ended_one_free(store: &dyn ReleaseStore) {
    let Claim::Claimed { fence: first } = store.claim_run(RUN, "ann", t0(), SILENT).await.expect("claim_run") else { panic!("claimed") };
    let Claim::Claimed { fence: second } = store.claim_run(RUN, "bob", seconds(10), SILENT).await.expect("claim_run") else {
        panic!("claimed")
    };
    assert_eq!(
        store.beat_run(RUN, first, seconds(11)).await.expect("beat_run"),
        Beat::Lost(Some(owner("bob", second, seconds(10)))),
        "the former owner's beat finds it lost the run, and to whom"
    );
    assert!(!store.end_run(RUN, first).await.expect("end_run"), "the former owner cannot end the new owner's run");
    assert_eq!(store.run_owner(RUN).await.expect("run_owner"), Some(owner("bob", second, seconds(10))), "nor change its beat");

    assert!(store.end_run(RUN, second).await.expect("end_run"), "the owner ends its run");
    assert_eq!(store.run_owner(RUN).await.expect("run_owner"), None, "an ended run has no owner");
    assert_eq!(store.beat_run(RUN, second, seconds(12)).await.expect("beat_run"), Beat::Lost(None), "nor beats");
    assert!(!store.end_run(RUN, second).await.expect("end_run"), "a second end finds nothing");
    let Claim::Claimed { fence: third } = store.claim_run(RUN, "cy", seconds(12), SILENT).await.expect("claim_run") else {
        panic!("an ended run is free at once")
    };
    assert!(third > second, "the fence outlives an ended run ({third} after {second})");
}

pub async fn a_cancel_request_reaches_the_owner_until_the_next_claim(store: &dyn ReleaseStore) {
    assert!(!store.cancel_run(RUN, "wrong artifact").await.expect("cancel_run"), "nobody owns the run: nobody to ask");
    let Claim::Claimed { fence } = store.claim_run(RUN, "ann", t0(), SILENT).await.expect("claim_run") else { panic!("claimed") };
    assert!(store.cancel_run(RUN, "wrong artifact").await.expect("cancel_run"));
    assert_eq!(store.beat_run(RUN, fence, seconds(1)).await.expect("beat_run"), Beat::Owned { cancel: Some("wrong artifact".into()) });
    assert_eq!(store.beat_run(RUN, fence, seconds(2)).await.expect("beat_run"), Beat::Owned { cancel: Some("wrong artifact".into()) });
    assert_eq!(store.run_owner(RUN).await.expect("run_owner").and_then(|o| o.cancel).as_deref(), Some("wrong artifact"));
    assert_eq!(store.claim_run(RUN, "ann", seconds(3), SILENT).await.expect("claim_run"), Claim::Claimed { fence });
    assert_eq!(store.beat_run(RUN, fence, seconds(4)).await.expect("beat_run"), Beat::Owned { cancel: None }, "a claim clears it");
}

/// Racing claims of one free run: exactly one owns it, the others see it as owner.
pub async fn concurrent_claims_admit_one_owner(store: &dyn ReleaseStore) {
    let owners: Vec<String> = (0..RACERS).map(|i| format!("process-{i}")).collect();
    let claims = join_all(owners.iter().map(|o| store.claim_run(RUN, o, t0(), SILENT))).await;
    let winners: Vec<(&String, u64)> = owners
        .iter()
        .zip(&claims)
        .filter_map(|(o, claim)| match claim {
            Ok(Claim::Claimed { fence }) => Some((o, *fence)),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one racing claim may win, got {claims:?}");
    let (winner, fence) = winners[0];
    for claim in claims {
        if let Claim::OwnedBy(found) = claim.expect("claim_run") {
            assert_eq!(found, owner(winner, fence, t0()), "losers must see the winner as owner");
        }
    }
}

fn wait_on(key: &WaitKey, release: &str, token: &str, until: DateTime<Utc>) -> Parked {
    Parked { key: key.clone(), release: ReleaseId(release.into()), token: baton_domain::release::TaskToken(token.into()), until }
}

fn tokens_of(waits: &[Parked]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = waits.iter().map(|w| (w.release.0.clone(), w.token.expose().to_owned())).collect();
    pairs.sort();
    pairs
}

pub async fn a_wait_is_taken_once_by_its_key_and_a_new_park_replaces_the_old(store: &dyn ReleaseStore) {
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
    let until = now + TimeDelta::minutes(5);
    // Build ids with colons (CodeBuild's `project:uuid`) and one alarm shared by two releases.
    let build = WaitKey::new(WaitKind::Build, "codebuild", "web:6f1c-42");
    let other = WaitKey::new(WaitKind::Build, "codebuild", "web:6f1c-43");
    let alarm = WaitKey::new(WaitKind::Bake, "cloudwatch", "api-5xx");
    store.park(&wait_on(&build, "r1", "old", until)).await.expect("park");
    store.park(&wait_on(&build, "r1", "new", until + TimeDelta::minutes(5))).await.expect("park again");
    store.park(&wait_on(&other, "r2", "t2", until)).await.expect("park");
    store.park(&wait_on(&alarm, "r3", "t3", until)).await.expect("park");
    store.park(&wait_on(&alarm, "r4", "t4", until)).await.expect("park");

    let taken = store.take(&build, now).await.expect("take");
    assert_eq!(tokens_of(&taken), [("r1".into(), "new".into())], "one wait per release and key: the last park's");
    assert_eq!(taken[0].until, until + TimeDelta::minutes(5));
    assert_eq!(taken[0].key, build);
    assert!(store.take(&build, now).await.expect("take again").is_empty(), "taken once");
    assert_eq!(tokens_of(&store.take(&alarm, now).await.expect("take")), [("r3".into(), "t3".into()), ("r4".into(), "t4".into())]);
    assert_eq!(tokens_of(&store.take(&other, now).await.expect("take")), [("r2".into(), "t2".into())], "other keys untouched");
}

pub async fn expired_waits_are_not_answered(store: &dyn ReleaseStore) {
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
    let key = WaitKey::new(WaitKind::Bake, "cloudwatch", "api-latency");
    store.park(&wait_on(&key, "r1", "t1", now - TimeDelta::seconds(1))).await.expect("park");
    store.park(&wait_on(&key, "r2", "t2", now + TimeDelta::seconds(1))).await.expect("park");

    assert_eq!(tokens_of(&store.take(&key, now).await.expect("take")), [("r2".into(), "t2".into())]);
    assert!(store.take(&key, now - TimeDelta::minutes(1)).await.expect("take").is_empty(), "the expired one is gone too");
}

pub async fn concurrent_takes_of_one_key_share_its_waits_out(store: &dyn ReleaseStore) {
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
    let key = WaitKey::new(WaitKind::Bake, "cloudwatch", "shared");
    for n in 0..6 {
        store.park(&wait_on(&key, &format!("r{n}"), &format!("t{n}"), now + TimeDelta::minutes(5))).await.expect("park");
    }
    let takes = join_all((0..4).map(|_| store.take(&key, now))).await;
    let mut all: Vec<Parked> = takes.into_iter().flat_map(|taken| taken.expect("take")).collect();
    all.sort_by(|a, b| a.release.0.cmp(&b.release.0));
    assert_eq!(all.len(), 6, "each wait to exactly one taker: {:?}", tokens_of(&all));
    all.dedup_by(|a, b| a.release == b.release);
    assert_eq!(all.len(), 6, "no wait taken twice");
}

/// A store whose first `close_release` fails as unavailable: before the store saw it, or
/// (`lands`) after it landed, the answer lost on its way back. Everything else goes through to
/// `inner` (a `&dyn ReleaseStore` here, an `Arc<dyn ReleaseStore>` in the end-to-end tests).
pub struct ClosesFailOnce<S> {
    inner: S,
    lands: bool,
    failed: AtomicBool,
}

impl<S> ClosesFailOnce<S> {
    pub fn new(inner: S, lands: bool) -> ClosesFailOnce<S> {
        ClosesFailOnce { inner, lands, failed: AtomicBool::new(false) }
    }
}

#[async_trait]
impl<'a, S: Deref<Target = dyn ReleaseStore + 'a> + Send + Sync> WaitRegistry for ClosesFailOnce<S> {
    async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
        self.inner.park(wait).await
    }
    async fn take(&self, key: &WaitKey, now: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
        self.inner.take(key, now).await
    }
}

#[async_trait]
impl<'a, S: Deref<Target = dyn ReleaseStore + 'a> + Send + Sync> ReleaseStore for ClosesFailOnce<S> {
    async fn create_release(&self, release: &Release, idempotency_key: &str) -> Result<Created, StoreError> {
        self.inner.create_release(release, idempotency_key).await
    }
    async fn get_release(&self, id: &ReleaseId) -> Result<Option<Release>, StoreError> {
        self.inner.get_release(id).await
    }
    async fn keep_entry(&self, id: &ReleaseId, entry: &ServiceEntry) -> Result<(), StoreError> {
        self.inner.keep_entry(id, entry).await
    }
    async fn kept_entry(&self, id: &ReleaseId) -> Result<Option<ServiceEntry>, StoreError> {
        self.inner.kept_entry(id).await
    }
    async fn put_release(&self, release: &Release) -> Result<u64, StoreError> {
        self.inner.put_release(release).await
    }
    async fn list_releases(&self, service: &str, environment: Option<&str>, limit: usize) -> Result<Vec<Release>, StoreError> {
        self.inner.list_releases(service, environment, limit).await
    }
    async fn releases_since(&self, service: &str, environment: Option<&str>, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        self.inner.releases_since(service, environment, since).await
    }
    async fn open_or_created_since(&self, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        self.inner.open_or_created_since(since).await
    }
    async fn append_event(&self, event: &StageEvent) -> Result<(), StoreError> {
        self.inner.append_event(event).await
    }
    async fn events(&self, id: &ReleaseId) -> Result<Vec<StageEvent>, StoreError> {
        self.inner.events(id).await
    }
    async fn try_lock(&self, key: &LockKey, holder: &ReleaseId, now: DateTime<Utc>, lease: Duration) -> Result<LockOutcome, StoreError> {
        self.inner.try_lock(key, holder, now, lease).await
    }
    async fn unlock(&self, key: &LockKey, holder: &ReleaseId) -> Result<bool, StoreError> {
        self.inner.unlock(key, holder).await
    }
    async fn lock_holder(&self, key: &LockKey, now: DateTime<Utc>) -> Result<Option<LockInfo>, StoreError> {
        self.inner.lock_holder(key, now).await
    }
    async fn add_rollup(&self, key: &RollupKey, delta: &Rollup) -> Result<(), StoreError> {
        self.inner.add_rollup(key, delta).await
    }
    async fn close_release(&self, release: &Release, rollup: &RollupKey, delta: &Rollup) -> Result<u64, StoreError> {
        if self.failed.swap(true, Ordering::SeqCst) {
            return self.inner.close_release(release, rollup, delta).await;
        }
        if self.lands {
            self.inner.close_release(release, rollup, delta).await?;
        }
        Err(StoreError::unavailable("the store did not answer the close in time"))
    }
    async fn request_cancel(&self, id: &ReleaseId, reason: &str) -> Result<bool, StoreError> {
        self.inner.request_cancel(id, reason).await
    }
    async fn rollups(
        &self,
        service: &str,
        environment: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Rollup)>, StoreError> {
        self.inner.rollups(service, environment, from, to).await
    }
    async fn claim_run(&self, run: &str, owner: &str, now: DateTime<Utc>, stale_after: Duration) -> Result<Claim, StoreError> {
        self.inner.claim_run(run, owner, now, stale_after).await
    }
    async fn beat_run(&self, run: &str, fence: u64, now: DateTime<Utc>) -> Result<Beat, StoreError> {
        self.inner.beat_run(run, fence, now).await
    }
    async fn run_owner(&self, run: &str) -> Result<Option<RunOwner>, StoreError> {
        self.inner.run_owner(run).await
    }
    async fn cancel_run(&self, run: &str, reason: &str) -> Result<bool, StoreError> {
        self.inner.cancel_run(run, reason).await
    }
    async fn end_run(&self, run: &str, fence: u64) -> Result<bool, StoreError> {
        self.inner.end_run(run, fence).await
    }
}

/// record-metrics' close ([`baton_domain::support::close_release`]) through a store whose first close
/// fails as unavailable (after landing when `lands`), then retried as the definition retries it:
/// the release is closed once and its day counts it once.
async fn a_close_failing_once_counts_once(store: &dyn ReleaseStore, lands: bool) {
    let store = ClosesFailOnce::new(store, lands);
    let mut running = release_at("rel-web-1", "web", "prod", t0());
    running.status = ReleaseStatus::Running;
    running.started_at = Some(t0());
    // Deployed, so that its close counts a deployment.
    running.waves.push(WaveRecord {
        name: "canary".into(),
        targets: vec!["a".into()],
        status: WaveStatus::Healthy,
        started_at: Some(t0() + TimeDelta::minutes(1)),
        finished_at: Some(t0() + TimeDelta::minutes(2)),
        deploy_url: None,
        deploys: Vec::new(),
        bake_started_at: None,
        gates: Vec::new(),
    });
    store.create_release(&running, "k1").await.expect("create_release");
    let now = t0() + TimeDelta::minutes(10);
    let day = now.date_naive();
    let succeeded = Outcome { status: OutcomeStatus::Succeeded, error: None, action_needed: None };
    let counted = vec![(day, Rollup { deployments: 1, ..Rollup::default() })];

    let failed = baton_domain::support::close_release(&store, &running.id, &succeeded, now).await.expect_err("the first close fails");
    assert_eq!(failed.error, ErrorName::StoreUnavailable, "a store that did not answer is retried by the definition: {failed:?}");
    let after_failure = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    let rollups = store.rollups("web", "prod", day, day).await.expect("rollups");
    if lands {
        assert_eq!((after_failure.status, &rollups), (ReleaseStatus::Succeeded, &counted), "the lost answer's close landed whole");
    } else {
        assert_eq!((after_failure.status, rollups), (ReleaseStatus::Running, vec![]), "the failed close left nothing behind");
    }

    let retried = baton_domain::support::close_release(&store, &running.id, &succeeded, now).await.expect("the retry succeeds");
    assert_eq!(retried, Closed { status: ReleaseStatus::Succeeded, now: !lands }, "only a close that had not landed closes again");
    let again = baton_domain::support::close_release(&store, &running.id, &succeeded, now).await.expect("a later retry succeeds");
    assert_eq!(again, Closed { status: ReleaseStatus::Succeeded, now: false }, "a closed release is closed once");
    let closed = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
    assert_eq!((closed.status, closed.finished_at), (ReleaseStatus::Succeeded, Some(now)));
    assert_eq!(store.rollups("web", "prod", day, day).await.expect("rollups"), counted, "neither lost nor counted twice");
}

/// A close that failed before the store wrote anything, retried, closes and counts once.
pub async fn a_close_that_failed_once_counts_once_when_retried(store: &dyn ReleaseStore) {
    a_close_failing_once_counts_once(store, false).await;
}

/// A close that landed but whose answer was lost, retried, finds the release closed and counts
/// nothing twice.
pub async fn a_close_whose_answer_was_lost_counts_once_when_retried(store: &dyn ReleaseStore) {
    a_close_failing_once_counts_once(store, true).await;
}

/// Lead time per commit on hand-built histories, through the close every release ends with:
/// three deployments of `web` on one day, whose commits record-metrics put on their records.
/// - one carried three commits written 90, 60 and 30 minutes before it ended;
/// - one shipped a squash merge made 10 minutes before its end (measured from the merge);
/// - one whose previous commit a force push dropped: its own commit, written 30 minutes before
///   its end, counts, flagged;
/// - one that fell back too, but whose own commit the history did not have: nothing measured.
///
/// Lead times 600, 1800, 1800, 3600, 5400 s: the median is the third (1800 s), the p90 the
/// fifth (5400 s), the mean 2640 s, five samples over four deployments, one of them (the
/// force push's) an approximation: the deployment that measured nothing approximates nothing.
pub async fn lead_time_counts_every_commit_a_deployment_carried(store: &dyn ReleaseStore) {
    use baton_domain::release::{Change, Changes};
    let at = |m: i64| t0() + TimeDelta::minutes(m);
    let change = |sha: &str, m: i64| Change { sha: sha.into(), at: at(m) };
    let deployments = [
        (
            "rel-web-1",
            60,
            Changes {
                since: Some("c0".into()),
                commits: vec![change("c1", -30), change("c2", 0), change("c3", 30)],
                total: 3,
                fallback: None,
            },
        ),
        ("rel-web-2", 110, Changes { since: Some("c3".into()), commits: vec![change("squash", 100)], total: 1, fallback: None }),
        (
            "rel-web-3",
            180,
            Changes {
                since: Some("squash".into()),
                commits: vec![change("rewritten", 150)],
                total: 1,
                fallback: Some("squash is not in the history of rewritten: a force push?".into()),
            },
        ),
        (
            "rel-web-4",
            240,
            Changes { since: Some("rewritten".into()), commits: Vec::new(), total: 1, fallback: Some("no commit gone".into()) },
        ),
    ];
    let succeeded = Outcome { status: OutcomeStatus::Succeeded, error: None, action_needed: None };
    for (i, (id, ends, changes)) in deployments.iter().enumerate() {
        let mut running = release_at(id, "web", "prod", at(*ends - 20));
        running.status = ReleaseStatus::Running;
        running.changed_at = Some(at(*ends - 1));
        running.changes = Some(changes.clone());
        running.waves.push(WaveRecord {
            name: "all".into(),
            targets: vec!["a".into()],
            status: WaveStatus::Healthy,
            started_at: Some(at(*ends - 10)),
            finished_at: Some(at(*ends - 5)),
            deploy_url: None,
            deploys: Vec::new(),
            bake_started_at: None,
            gates: Vec::new(),
        });
        store.create_release(&running, &format!("k{i}")).await.expect("create_release");
        baton_domain::support::close_release(store, &running.id, &succeeded, at(*ends)).await.expect("close_release");
        let closed = store.get_release(&running.id).await.expect("get_release").expect("the release exists");
        assert_eq!(closed.changes.as_ref(), Some(changes), "the record keeps what it carried, its flag included");
    }
    let day = t0().date_naive();
    let rollups = store.rollups("web", "prod", day, day).await.expect("rollups");
    let figures = baton_domain::rules::dora::figures(1, rollups.iter().map(|(_, rollup)| rollup));
    assert_eq!((figures.deployments, figures.lead_time.samples, figures.lead_time.mean_seconds), (4, 5, Some(2640.0)));
    assert_eq!(figures.lead_time_fallbacks, 1, "the force push's lead time is flagged as an approximation");
    let close_to = |found: Option<f64>, expected: f64| {
        found.is_some_and(|f| (f - expected).abs() <= expected * baton_domain::sketch::RELATIVE_ACCURACY)
    };
    assert!(close_to(figures.lead_time.p50_seconds, 1800.0), "{:?}", figures.lead_time);
    assert!(close_to(figures.lead_time.p90_seconds, 5400.0), "{:?}", figures.lead_time);
}

/// A deployment that failed on Friday 2026-03-13 at 17:00 UTC, restored by the next successful
/// one on Monday 2026-03-16 at 09:00: 64 hours, 230,400 s, counted on Monday (the day the
/// restore ended), the failure on Friday. Over Friday to Monday: 2 deployments, 1 failed (50 %),
/// one restore of 64 h, under a week: medium.
pub async fn restore_time_spans_a_weekend_and_counts_on_the_day_it_ended(store: &dyn ReleaseStore) {
    use baton_domain::rules::dora::{self, Band};
    let friday = Utc.with_ymd_and_hms(2026, 3, 13, 17, 0, 0).unwrap();
    let monday = Utc.with_ymd_and_hms(2026, 3, 16, 9, 0, 0).unwrap();
    let deployments = [
        ("rel-web-fri", friday, OutcomeStatus::Failed, WaveStatus::Unhealthy),
        ("rel-web-mon", monday, OutcomeStatus::Succeeded, WaveStatus::Healthy),
    ];
    for (i, (id, ended, status, wave)) in deployments.into_iter().enumerate() {
        let mut running = release_at(id, "web", "prod", ended - TimeDelta::minutes(30));
        running.status = ReleaseStatus::Running;
        running.waves.push(WaveRecord {
            name: "all".into(),
            targets: vec!["a".into()],
            status: wave,
            started_at: Some(ended - TimeDelta::minutes(20)),
            finished_at: Some(ended - TimeDelta::minutes(10)),
            deploy_url: None,
            deploys: Vec::new(),
            bake_started_at: None,
            gates: Vec::new(),
        });
        store.create_release(&running, &format!("weekend-{i}")).await.expect("create_release");
        let outcome = Outcome { status, error: None, action_needed: None };
        baton_domain::support::close_release(store, &running.id, &outcome, ended).await.expect("close_release");
    }
    let rollups = store.rollups("web", "prod", friday.date_naive(), monday.date_naive()).await.expect("rollups");
    let days: Vec<(NaiveDate, u64, u64, u64, u64)> =
        rollups.iter().map(|(day, r)| (*day, r.deployments, r.failed_deployments, r.restores, r.restore_seconds_total)).collect();
    assert_eq!(days, [(date(2026, 3, 13), 1, 1, 0, 0), (date(2026, 3, 16), 1, 0, 1, 230_400)]);
    let figures = dora::figures(4, rollups.iter().map(|(_, rollup)| rollup));
    assert_eq!((figures.deployments, figures.change_failure_rate), (2, Some(0.5)));
    assert_eq!((figures.time_to_restore.samples, figures.time_to_restore.mean_seconds), (1, Some(230_400.0)));
    let p50 = figures.time_to_restore.p50_seconds.expect("a median");
    assert!((p50 - 230_400.0).abs() <= 230_400.0 * baton_domain::sketch::RELATIVE_ACCURACY, "{p50}");
    assert_eq!(figures.bands.time_to_restore, Some(Band::Medium));
}

pub async fn rollups_range_is_inclusive_and_scoped(store: &dyn ReleaseStore) {
    let d = |day| date(2026, 2, day);
    let one = Rollup { deployments: 1, ..Rollup::default() };
    for day in [1, 2, 3, 5, 6, 9] {
        let delta = Rollup { deployments: u64::from(day), ..Rollup::default() };
        store.add_rollup(&rollup_key("web", "prod", d(day)), &delta).await.expect("add_rollup");
    }
    // Across a month end, to catch day keys that do not sort as dates.
    store.add_rollup(&rollup_key("web", "prod", date(2026, 1, 31)), &one).await.expect("add_rollup");
    store.add_rollup(&rollup_key("web", "prod", date(2026, 3, 1)), &one).await.expect("add_rollup");
    for (service, env) in [("web", "staging"), ("web-admin", "prod"), ("we", "prod"), ("webb", "prod")] {
        for day in 1..=9 {
            store.add_rollup(&rollup_key(service, env, d(day)), &one).await.expect("add_rollup");
        }
    }

    let deployments =
        |rows: Vec<(NaiveDate, Rollup)>| -> Vec<(NaiveDate, u64)> { rows.into_iter().map(|(day, r)| (day, r.deployments)).collect() };
    assert_eq!(
        deployments(store.rollups("web", "prod", d(2), d(6)).await.expect("rollups")),
        vec![(d(2), 2), (d(3), 3), (d(5), 5), (d(6), 6)],
        "from and to are included, days without data omitted, other services and environments excluded"
    );
    assert_eq!(deployments(store.rollups("web", "prod", d(4), d(4)).await.expect("rollups")), vec![], "a day without data is omitted");
    assert_eq!(deployments(store.rollups("web", "prod", d(9), d(9)).await.expect("rollups")), vec![(d(9), 9)]);
    assert_eq!(
        deployments(store.rollups("web", "prod", date(2026, 1, 1), date(2026, 3, 31)).await.expect("rollups")),
        vec![(date(2026, 1, 31), 1), (d(1), 1), (d(2), 2), (d(3), 3), (d(5), 5), (d(6), 6), (d(9), 9), (date(2026, 3, 1), 1)],
        "days in ascending order across months"
    );
    assert_eq!(deployments(store.rollups("web", "dev", d(1), d(9)).await.expect("rollups")), vec![]);
}

// ---------------------------------------------------------------- fixtures

/// The suite's reference instant: microsecond-precise, mid-second.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 15, 9, 26).unwrap() + TimeDelta::microseconds(535_897)
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid date")
}

/// A release with only the required fields set: a fixture for store-specific tests too.
pub fn release_at(id: &str, service: &str, environment: &str, created_at: DateTime<Utc>) -> Release {
    Release {
        id: ReleaseId(id.into()),
        service: service.into(),
        environment: environment.into(),
        status: ReleaseStatus::Queued,
        stage: Stage::Queued,
        trigger: Trigger::new(TriggerKind::Cli, format!("cli-{id}"), None),
        branch: "main".into(),
        sha: None,
        changed_at: None,
        artifact: None,
        build: None,
        previous_artifact: None,
        waves: Vec::new(),
        created_at,
        heartbeat_at: None,
        started_at: None,
        finished_at: None,
        failure: None,
        execution: None,
        cancel_requested: None,
        approvals: Vec::new(),
        changes: None,
        cost: None,
        notifier_state: serde_json::Map::new(),
        version: 0,
    }
}

/// A release with every optional field set and distinct values everywhere.
fn full_release() -> Release {
    let artifact = |reference: &str, sha: &str| Artifact {
        reference: reference.into(),
        sha: sha.into(),
        branch: "main".into(),
        build_url: Some(format!("https://ci.example.com/builds/{sha}")),
    };
    let notifier_state = serde_json::json!({
        "slack": {"channel": "C0123", "ts": "1773500966.000100", "thread": [1, 2.5, null, true, "ü ☃"]},
        "log": {},
    });
    Release {
        id: ReleaseId("rel-web-20260314150926-0a1b2c3d".into()),
        service: "web".into(),
        environment: "prod".into(),
        status: ReleaseStatus::Running,
        stage: Stage::Deploy,
        trigger: Trigger::new(TriggerKind::Merge, "pr-42".into(), Some("octocat".into())),
        branch: "main".into(),
        sha: Some("abc123".into()),
        changed_at: Some(t0() - TimeDelta::minutes(42)),
        artifact: Some(artifact("registry.example.com/web@sha256:feed", "abc123")),
        build: Some(BuildRecord {
            provider: "github-actions".into(),
            run_id: "9137".into(),
            url: Some("https://ci.example.com/runs/9137".into()),
            queued_at: t0() + TimeDelta::seconds(1),
            started_at: Some(t0() + TimeDelta::seconds(2) + TimeDelta::microseconds(3)),
            finished_at: Some(t0() + TimeDelta::seconds(4)),
            status: BuildStatus::Succeeded,
            attempts: 2,
            reason: Some("retried after a runner was lost".into()),
            state: serde_json::json!({ "run": 9137, "repository": "acme/web" }),
        }),
        previous_artifact: Some(artifact("registry.example.com/web@sha256:beef", "0ff1ce")),
        waves: vec![
            WaveRecord {
                name: "canary".into(),
                targets: vec!["web-canary".into()],
                status: WaveStatus::Healthy,
                started_at: Some(t0() + TimeDelta::seconds(5)),
                finished_at: Some(t0() + TimeDelta::seconds(65) + TimeDelta::microseconds(7)),
                deploy_url: Some("https://deploy.example.com/canary".into()),
                deploys: vec![TargetDeploy {
                    target: "web-1".into(),
                    rollback: false,
                    run: Some(RunHandle {
                        provider: "command".into(),
                        id: "4242".into(),
                        url: Some("https://deploy.example.com/runs/4242".into()),
                        state: serde_json::json!({"attempt": 1}),
                    }),
                    status: DeployStatus::Failed,
                    reason: Some("exit 3".into()),
                    started_at: t0(),
                    finished_at: Some(t0() + TimeDelta::seconds(30)),
                }],
                bake_started_at: Some(t0() + TimeDelta::seconds(31)),
                gates: vec![GateRecord {
                    gate: "CloudWatch alarms web-*".into(),
                    samples: 3,
                    healthy_in_a_row: 2,
                    unhealthy_in_a_row: 0,
                    last: Some("web-5xx OK, web-latency INSUFFICIENT_DATA".into()),
                    last_at: Some(t0() + TimeDelta::seconds(64)),
                    history: vec![
                        GateSample { at: t0() + TimeDelta::seconds(31), healthy: false },
                        GateSample { at: t0() + TimeDelta::seconds(47) + TimeDelta::microseconds(9), healthy: true },
                        GateSample { at: t0() + TimeDelta::seconds(64), healthy: true },
                    ],
                }],
            },
            WaveRecord {
                name: "fleet".into(),
                targets: vec!["web-eu".into(), "web-us".into()],
                status: WaveStatus::Deploying,
                started_at: Some(t0() + TimeDelta::seconds(70)),
                finished_at: None,
                deploy_url: None,
                deploys: Vec::new(),
                bake_started_at: None,
                gates: Vec::new(),
            },
        ],
        created_at: t0(),
        heartbeat_at: Some(t0() + TimeDelta::milliseconds(500)),
        started_at: Some(t0() + TimeDelta::seconds(1)),
        finished_at: Some(t0() + TimeDelta::minutes(9)),
        failure: Some(Failure {
            error: "Baton.HealthCheckFailed".into(),
            cause: "p99 latency 2.3 s > 1 s".into(),
            stage: Some(Stage::Deploy),
        }),
        execution: Some("arn:aws:states:eu-west-1:123456789012:execution:baton:rel-web-1".into()),
        cancel_requested: Some("ann cancelled the release: wrong commit".into()),
        // A decided approval and one waiting on its task token: both stores keep the token, which
        // answers the waiting task, byte for byte.
        approvals: vec![
            Approval {
                wave: "canary".into(),
                requested_at: t0() + TimeDelta::seconds(5),
                deadline: t0() + TimeDelta::hours(4),
                approvers: vec!["U0ANN".into(), "S0RELEASERS".into()],
                four_eyes: true,
                token: None,
                decision: Some(ApprovalDecision {
                    verdict: Verdict::Granted,
                    by: Some("U0ANN".into()),
                    via: Via::Slack,
                    at: t0() + TimeDelta::seconds(7),
                    reason: Some("looks good ü".into()),
                    delivered: true,
                }),
            },
            Approval {
                wave: "everywhere".into(),
                requested_at: t0() + TimeDelta::seconds(9),
                deadline: t0() + TimeDelta::hours(5),
                approvers: vec!["arn:aws:iam::123456789012:role/Releaser".into()],
                four_eyes: false,
                token: Some(TaskToken("AAAAKgAAAAIAAAAAAAAAAf+/token==".into())),
                decision: None,
            },
        ],
        changes: Some(baton_domain::release::Changes {
            since: Some("0ff1ce".into()),
            commits: vec![baton_domain::release::Change {
                sha: "abc123".into(),
                at: t0() - TimeDelta::minutes(50) + TimeDelta::microseconds(7),
            }],
            total: 2,
            fallback: Some("0ff1ce is not in the history of abc123".into()),
        }),
        // Binary fractions: every JSON reader gives them back exactly.
        cost: Some(baton_domain::rules::cost::Cost { transitions: 187, invocations: 52, lambda_gb_seconds: 3.25, dollars: 0.0078125 }),
        notifier_state: notifier_state.as_object().cloned().unwrap(),
        version: 0,
    }
}

fn lock_fixture() -> (LockKey, ReleaseId, ReleaseId) {
    (LockKey::new("web", "prod"), ReleaseId("rel-web-a".into()), ReleaseId("rel-web-b".into()))
}

/// The lock record of `holder` having taken a [`LEASE`] at `at`.
fn lease(holder: &ReleaseId, at: DateTime<Utc>) -> LockInfo {
    LockInfo { holder: holder.clone(), expires_at: at + TimeDelta::from_std(LEASE).unwrap() }
}

fn rollup_key(service: &str, environment: &str, day: NaiveDate) -> RollupKey {
    RollupKey { service: service.into(), environment: environment.into(), day }
}

async fn list(store: &dyn ReleaseStore, service: &str, environment: Option<&str>, limit: usize) -> Vec<Release> {
    store.list_releases(service, environment, limit).await.expect("list_releases")
}

fn ids(releases: &[Release]) -> Vec<ReleaseId> {
    releases.iter().map(|r| r.id.clone()).collect()
}

fn id_list(ids: &[&str]) -> Vec<ReleaseId> {
    ids.iter().map(|id| ReleaseId((*id).into())).collect()
}

/// The read-back value must equal the written one, or the written one with its
/// sub-microsecond digits dropped.
fn assert_keeps_micros(field: &str, written: DateTime<Utc>, read: DateTime<Utc>) {
    let truncated = written.with_nanosecond(written.nanosecond() / 1_000 * 1_000).unwrap();
    assert!(read == written || read == truncated, "{field}: wrote {written:?}, read {read:?}; the store must keep microseconds");
}

/// Polls every future on the calling task until all are done, so their store calls are in
/// flight together (the store's own I/O or blocking work runs in parallel).
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut done = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future completed")).collect()
}

/// The catalog entry of `web` the read-model behaviour reports on: two waves, the second baking 5 minutes.
fn reported_entry() -> baton_domain::catalog::ServiceEntry {
    serde_json::from_value(serde_json::json!({
        "name": "web", "schema": "v2.2", "team": "platform", "source": "web.yaml",
        "delivery": {
            "environment": "production", "release-branch": "main",
            "build": {"provider": "command", "command": ["true"]},
            "deploy": {"provider": "command", "command": ["true"], "waves": [
                {"name": "canary", "targets": ["a"]},
                {"name": "rest", "targets": ["b", "c"], "bake": 300},
            ]},
            "health": {"gates": [{"provider": "command", "command": ["true"]}]},
        },
    }))
    .expect("the entry fixture decodes")
}

/// The read model ([`baton_domain::reports`]) over the store: the Now view finds the running
/// release with its bake's end, the releases that ended in the last day, and an interrupted one
/// from days before through the lock it still holds; a service's page lists its releases newest
/// first and counts its deployments from the rollups.
/// What the Now view reads: every open release whatever its age, service or environment, and
/// every release created since the cut, open or not; a release that closes is no longer open.
pub async fn open_releases_however_old_and_the_days_releases_are_read_across_services(store: &dyn ReleaseStore) {
    let now = Utc::now();
    let since = now - TimeDelta::hours(24);
    let with = |id: &str, service: &str, environment: &str, age: TimeDelta, status: ReleaseStatus| {
        let mut release = release_at(id, service, environment, now - age);
        release.status = status;
        release
    };
    let releases = [
        with("rel-web-interrupted", "web", "production", TimeDelta::days(5), ReleaseStatus::Interrupted),
        with("rel-api-queued", "api", "staging", TimeDelta::days(2), ReleaseStatus::Queued),
        with("rel-web-old", "web", "production", TimeDelta::days(3), ReleaseStatus::Succeeded),
        with("rel-api-today", "api", "production", TimeDelta::hours(2), ReleaseStatus::RolledBack),
        with("rel-web-running", "web", "production", TimeDelta::hours(1), ReleaseStatus::Running),
        with("rel-db-closing", "db", "production", TimeDelta::days(2), ReleaseStatus::Running),
        with("rel-db-at-the-cut", "db", "production", TimeDelta::hours(24), ReleaseStatus::Failed),
        // A schedule skipped inside a freeze is closed from the start: read only while recent.
        with("rel-web-skipped-old", "web", "production", TimeDelta::days(2), ReleaseStatus::Skipped),
        with("rel-web-skipped", "web", "production", TimeDelta::hours(3), ReleaseStatus::Skipped),
    ];
    for (n, release) in releases.iter().enumerate() {
        store.create_release(release, &format!("k{n}")).await.expect("create_release");
    }
    let ids = |mut releases: Vec<Release>| {
        let mut ids: Vec<String> = releases.drain(..).map(|r| r.id.0).collect();
        ids.sort();
        ids
    };
    let read = store.open_or_created_since(since).await.expect("open_or_created_since");
    let expected = [
        "rel-api-queued",
        "rel-api-today",
        "rel-db-at-the-cut",
        "rel-db-closing",
        "rel-web-interrupted",
        "rel-web-running",
        "rel-web-skipped",
    ];
    let skipped = read.iter().find(|r| r.id.0 == "rel-web-skipped").map(|r| r.status);
    assert_eq!(skipped, Some(ReleaseStatus::Skipped), "the skipped status reads back");
    assert_eq!(ids(read), expected, "open ones however old, and every one created since the cut");
    let skipped_id = releases[8].id.clone();
    assert!(!store.request_cancel(&skipped_id, "too late").await.expect("request_cancel"), "a skipped release is closed: no cancel");

    // Closed two days after it was created: no longer open, and too old for the day.
    let mut closed = releases[5].clone();
    closed.status = ReleaseStatus::Succeeded;
    store.put_release(&closed).await.expect("put_release");
    let mut running = releases[4].clone();
    running.status = ReleaseStatus::Succeeded;
    store.put_release(&running).await.expect("put_release");
    let read = store.open_or_created_since(since).await.expect("open_or_created_since");
    let expected = ["rel-api-queued", "rel-api-today", "rel-db-at-the-cut", "rel-web-interrupted", "rel-web-running", "rel-web-skipped"];
    assert_eq!(ids(read.clone()), expected);
    let ended = read.iter().find(|r| r.id.0 == "rel-web-running").unwrap();
    assert_eq!(ended.status, ReleaseStatus::Succeeded, "the record as last written");
}

pub async fn the_read_model_sees_open_releases_locks_and_the_last_day(store: &dyn ReleaseStore) {
    use baton_domain::reports;
    let entry = reported_entry();
    let now = Utc::now();
    let mut old = release_at("rel-web-old", "web", "production", now - TimeDelta::days(3));
    old.status = ReleaseStatus::Interrupted;
    store.create_release(&old, "k-old").await.unwrap();
    let lock = LockKey::new("web", "production");
    assert_eq!(store.try_lock(&lock, &old.id, now, Duration::from_secs(3600)).await.unwrap(), LockOutcome::Acquired);

    let mut ended = release_at("rel-web-ended", "web", "production", now - TimeDelta::hours(5));
    ended.status = ReleaseStatus::Succeeded;
    ended.stage = Stage::Done;
    ended.finished_at = Some(now - TimeDelta::hours(4));
    ended.waves = vec![WaveRecord {
        name: "canary".into(),
        targets: vec!["a".into()],
        status: WaveStatus::Healthy,
        started_at: Some(now - TimeDelta::hours(5)),
        finished_at: Some(now - TimeDelta::hours(4)),
        deploy_url: None,
        deploys: Vec::new(),
        bake_started_at: None,
        gates: Vec::new(),
    }];
    store.create_release(&ended, "k-ended").await.unwrap();
    let day = (now - TimeDelta::hours(4)).date_naive();
    let key = RollupKey { service: "web".into(), environment: "production".into(), day };
    store.add_rollup(&key, &Rollup { deployments: 1, ..Rollup::default() }).await.unwrap();

    let mut baking = release_at("rel-web-baking", "web", "production", now - TimeDelta::minutes(10));
    baking.status = ReleaseStatus::Running;
    baking.stage = Stage::Deploy;
    let bake_start = now - TimeDelta::minutes(2);
    baking.waves = vec![WaveRecord {
        name: "rest".into(),
        targets: vec!["b".into(), "c".into()],
        status: WaveStatus::Baking,
        started_at: Some(now - TimeDelta::minutes(5)),
        finished_at: None,
        deploy_url: None,
        deploys: Vec::new(),
        bake_started_at: Some(bake_start),
        gates: Vec::new(),
    }];
    store.create_release(&baking, "k-baking").await.unwrap();

    let view = reports::now(store, std::slice::from_ref(&entry), now).await.unwrap();
    let open: Vec<&str> = view.open.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(open, ["rel-web-old", "rel-web-baking"], "open releases, oldest first, the old one however old");
    let running = &view.open[1];
    assert_eq!(running.current_wave.as_deref(), Some("rest"));
    assert_eq!(running.waves[0].bake_ends_at, Some(bake_start + TimeDelta::minutes(5)));
    assert_eq!((view.ended, view.recent[0].id.as_str()), (1, "rel-web-ended"));
    assert_eq!(view.locks.len(), 1);
    assert_eq!(view.locks[0].holder, "rel-web-old");

    let page = reports::service(store, &entry, 30, now).await.unwrap();
    let listed: Vec<&str> = page.releases.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(listed, ["rel-web-baking", "rel-web-ended", "rel-web-old"]);
    assert_eq!(page.delivery.figures.deployments, 1);
    assert_eq!(page.team.as_deref(), Some("platform"));
}

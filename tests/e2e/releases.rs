//! Whole releases through `statemachines/release.asl.json` on the embedded executor, with the
//! real handlers, the SQLite store, the file catalog and command providers.

use baton_asl::{Clock, ExecutionStatus};
use baton_domain::release::{ReleaseStatus, Rollup, TriggerKind, WaveStatus};
use baton_domain::rules::queue::WAITER_STALE_AFTER;
use baton_domain::support::Ports;
use baton_e2e::*;
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn a_release_builds_and_deploys_every_wave() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    let outcome = baton.run("exec-ok", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);

    let release = release_of(&baton, "exec-ok").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    let artifact = release.artifact.clone().expect("artifact");
    assert_eq!(artifact.reference, format!("{SERVICE}-{}.tar.gz", release.id));
    assert_eq!(artifact.sha, "4f2a9c1e", "the commit is kept to the end");
    assert_eq!(artifact.branch, "main");
    for (_, targets) in WAVES {
        for target in targets {
            assert_eq!(fixture.deployed(SERVICE, target).as_deref(), Some(artifact.reference.as_str()), "{target}");
        }
    }
    assert_consistent(&baton, &release).await;

    let today = release.finished_at.unwrap().date_naive();
    let rollups = baton.ports().store.rollups(SERVICE, ENVIRONMENT, today, today).await.unwrap();
    assert_eq!(rollups, vec![(today, Rollup { deployments: 1, ..Rollup::default() })]);
}

#[tokio::test]
async fn a_failed_build_ends_the_release_before_any_wave() {
    let fixture = Fixture::new();
    fixture.set("fail-build");
    let baton = fixture.baton();
    let outcome = baton.run("exec-build", cli_input("cli-1")).await;
    assert_outcome(&outcome, "failed", "Baton.BuildFailed");

    let release = release_of(&baton, "exec-build").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let failure = release.failure.clone().unwrap();
    assert_eq!(failure.error, "Baton.BuildFailed");
    assert!(failure.cause.contains("compile error in main.go"), "the build's output reaches the record: {}", failure.cause);
    assert!(release.waves.iter().all(|w| w.status == WaveStatus::Pending));
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "nothing was deployed");
    assert_consistent(&baton, &release).await;
    let day = release.finished_at.unwrap().date_naive();
    assert!(baton.ports().store.rollups(SERVICE, ENVIRONMENT, day, day).await.unwrap().is_empty(), "a build failure is no deployment");
}

#[tokio::test]
async fn an_unhealthy_wave_rolls_back_the_waves_that_began() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    assert_status(&baton.run("exec-first", cli_input("cli-1")).await, ExecutionStatus::Succeeded);
    let previous = release_of(&baton, "exec-first").await.artifact.unwrap().reference;

    fixture.set("unhealthy-one-region");
    let outcome = baton.run("exec-bad", cli_input("cli-2")).await;
    assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");

    let release = release_of(&baton, "exec-bad").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(release.previous_artifact.as_ref().map(|a| a.reference.as_str()), Some(previous.as_str()));
    let statuses: Vec<_> = release.waves.iter().map(|w| (w.name.as_str(), w.status)).collect();
    assert_eq!(
        statuses,
        vec![("canary", WaveStatus::RolledBack), ("one-region", WaveStatus::RolledBack), ("everywhere", WaveStatus::Pending)]
    );
    for target in ["box-1", "use1-a", "use1-b", "usw2-a", "euw1-a", "aps1-a"] {
        assert_eq!(fixture.deployed(SERVICE, target).as_deref(), Some(previous.as_str()), "{target} runs the previous artifact again");
    }
    let failure = release.failure.clone().unwrap();
    assert_eq!(failure.error, "Baton.HealthCheckFailed");
    assert!(failure.cause.contains("one-region") && failure.cause.contains("error rate 12%"), "{}", failure.cause);

    // The rollback undid the failing wave before the canary.
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let rolled: Vec<_> = events
        .iter()
        .filter(|e| e.kind == baton_domain::release::EventKind::Succeeded && e.stage == baton_domain::release::Stage::Rollback)
        .filter_map(|e| e.wave.clone())
        .collect();
    assert_eq!(rolled.first().map(String::as_str), Some("one-region"));
    assert_eq!(rolled.last().map(String::as_str), Some("canary"));
    assert_consistent(&baton, &release).await;

    let day = release.finished_at.unwrap().date_naive();
    let rollup = &baton.ports().store.rollups(SERVICE, ENVIRONMENT, day, day).await.unwrap()[0].1;
    assert_eq!((rollup.deployments, rollup.failed_deployments, rollup.rollbacks), (2, 1, 1));
}

#[tokio::test]
async fn a_wave_is_watched_through_its_bake_and_fails_at_its_first_unhealthy_sample() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    // The fixture bakes each wave 10 minutes and samples every 30 s (on the virtual clock).
    fixture.set_to("unhealthy-one-region-after", "3");
    let outcome = baton.run("exec-watched", cli_input("cli-1")).await;
    assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");

    let release = release_of(&baton, "exec-watched").await;
    let canary = &release.waves[0];
    // Samples at 0, 30, ..., 600 s: the whole bake, then healthy.
    assert_eq!((canary.gates.len(), canary.gates[0].samples, canary.gates[0].healthy_in_a_row), (1, 21, 21), "{canary:?}");
    let region = &release.waves[1];
    assert_eq!((region.gates[0].samples, region.gates[0].unhealthy_in_a_row), (4, 1), "{region:?}");
    let watched = region.gates[0].last_at.unwrap() - region.bake_started_at.unwrap();
    assert_eq!(watched.num_seconds(), 90, "the fourth sample fails the wave, 90 s into a 10 min bake");
    assert!(region.gates[0].last.as_deref().unwrap().contains("error rate 12% on use1-a,use1-b at sample 4"), "{region:?}");
    // Each sample is kept for the release page's chart: when, and whether healthy.
    let kept = |wave: &baton_domain::release::WaveRecord| -> Vec<(i64, bool)> {
        let start = wave.bake_started_at.unwrap();
        wave.gates[0].history.iter().map(|s| ((s.at - start).num_seconds(), s.healthy)).collect()
    };
    assert_eq!(kept(region), [(0, true), (30, true), (60, true), (90, false)]);
    assert_eq!(kept(canary), (0..=20).map(|i| (i * 30, true)).collect::<Vec<_>>());
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    let cause = release.failure.unwrap().cause;
    assert!(cause.contains("wave one-region (2/3) is unhealthy: command `sh ") && cause.contains("at sample 4"), "{cause}");

    let events = baton.ports().store.events(&release.id).await.unwrap();
    let verdicts: Vec<String> = events
        .iter()
        .filter(|e| e.message.starts_with("healthy:") || e.message.starts_with("unhealthy:"))
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(verdicts.len(), 2, "one verdict per wave watched: {verdicts:?}");
    assert!(verdicts[1].starts_with("unhealthy: command `sh "), "{verdicts:?}");
}

#[tokio::test]
async fn a_rollback_goes_on_past_a_target_that_cannot_be_rolled_back() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    assert_status(&baton.run("exec-first", cli_input("cli-1")).await, ExecutionStatus::Succeeded);
    let previous = release_of(&baton, "exec-first").await.artifact.unwrap().reference;

    fixture.set("unhealthy-one-region");
    fixture.set("fail-rollback-use1-a");
    let outcome = baton.run("exec-bad", cli_input("cli-2")).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    let release = release_of(&baton, "exec-bad").await;
    assert_eq!(release.status, ReleaseStatus::RollbackFailed);
    let bad = release.artifact.clone().unwrap().reference;
    assert_eq!(fixture.deployed(SERVICE, "use1-a").as_deref(), Some(bad.as_str()), "the target that refused keeps the new artifact");
    for target in ["box-1", "use1-b"] {
        assert_eq!(fixture.deployed(SERVICE, target).as_deref(), Some(previous.as_str()), "{target} is rolled back all the same");
    }
    let statuses: Vec<_> = release.waves.iter().map(|w| (w.name.as_str(), w.status)).collect();
    assert_eq!(statuses[0], ("canary", WaveStatus::RolledBack), "the canary rolls back after the wave that failed to: {statuses:?}");
    let one_region = &release.waves[1];
    let refused = one_region.deploys.iter().find(|d| d.rollback && d.target == "use1-a").expect("use1-a's rollback is recorded");
    assert!(refused.reason.as_deref().unwrap_or_default().contains("access denied on use1-a"), "{refused:?}");
    assert_consistent(&baton, &release).await;
    let day = release.finished_at.unwrap().date_naive();
    let rollup = &baton.ports().store.rollups(SERVICE, ENVIRONMENT, day, day).await.unwrap()[0].1;
    assert_eq!((rollup.deployments, rollup.failed_deployments, rollup.rollbacks), (2, 1, 1));
}

#[tokio::test]
async fn the_first_release_rolls_back_to_nothing() {
    let fixture = Fixture::new();
    fixture.set("unhealthy-canary");
    let baton = fixture.baton();
    let outcome = baton.run("exec-first", cli_input("cli-1")).await;
    assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");

    let release = release_of(&baton, "exec-first").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "nothing was live before, so nothing is left");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_repeated_signal_starts_nothing_new() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    assert_status(&baton.run("exec-1", cli_input("pr-42")).await, ExecutionStatus::Succeeded);
    let first = release_of(&baton, "exec-1").await;

    let again = baton.run("exec-2", cli_input("pr-42")).await;
    assert_status(&again, ExecutionStatus::Succeeded);
    let output = again.output.unwrap();
    assert_eq!(output["duplicate"], json!(true));
    assert_eq!(output["release"]["id"], json!(first.id.as_str()), "the answer names the existing release");
    assert_eq!(releases(&baton).await.len(), 1, "no second record");
    assert_consistent(&baton, &first).await;
}

#[tokio::test]
async fn concurrent_duplicate_signals_make_one_release() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    let (a, b) = tokio::join!(baton.run("exec-a", cli_input("pr-7")), baton.run("exec-b", cli_input("pr-7")));
    assert_status(&a, ExecutionStatus::Succeeded);
    assert_status(&b, ExecutionStatus::Succeeded);
    let duplicates = [&a, &b].iter().filter(|o| o.output.as_ref().is_some_and(|v| v["duplicate"] == json!(true))).count();
    assert_eq!(duplicates, 1, "exactly one of the two ran");
    let all = releases(&baton).await;
    assert_eq!(all.len(), 1);
    assert_consistent(&baton, &all[0]).await;
}

/// Retry and Wait intervals at a thousandth of their length: the waiting release really
/// waits for the running one, in milliseconds.
fn fast_clock() -> Clock {
    Clock::Scaled(1000)
}

#[tokio::test]
async fn two_signals_for_one_service_run_one_after_the_other() {
    let fixture = Fixture::new();
    fixture.set("hold-build");
    let baton = fixture.baton_with(fast_clock());
    let first = baton.start("exec-first", cli_input("cli-1"));
    wait_for_status(&baton, "exec-first", ReleaseStatus::Running).await;
    let second = baton.start("exec-second", cli_input("cli-2"));
    wait_for_status(&baton, "exec-second", ReleaseStatus::Queued).await;
    fixture.clear("hold-build");

    let (first, second) = (first.outcome().await, second.outcome().await);
    assert_status(&first, ExecutionStatus::Succeeded);
    assert_status(&second, ExecutionStatus::Succeeded);
    let (a, b) = (release_of(&baton, "exec-first").await, release_of(&baton, "exec-second").await);
    assert!(
        b.started_at.unwrap() >= a.finished_at.unwrap(),
        "the second ran only after the first finished: {:?} < {:?}",
        b.started_at,
        a.finished_at
    );
    assert_eq!(b.previous_artifact, a.artifact, "the second release knows what the first put live");
    assert_consistent(&baton, &a).await;
    assert_consistent(&baton, &b).await;
}

#[tokio::test]
async fn of_three_waiting_signals_the_newest_runs() {
    let fixture = Fixture::new();
    fixture.set("hold-build");
    let baton = fixture.baton_with(fast_clock());
    let running = baton.start("exec-running", cli_input("cli-1"));
    wait_for_status(&baton, "exec-running", ReleaseStatus::Running).await;
    let older = baton.start("exec-older", cli_input("cli-2"));
    wait_for_status(&baton, "exec-older", ReleaseStatus::Queued).await;
    let newest = baton.start("exec-newest", cli_input("cli-3"));
    wait_for_status(&baton, "exec-newest", ReleaseStatus::Queued).await;
    fixture.clear("hold-build");

    let outcomes = (running.outcome().await, older.outcome().await, newest.outcome().await);
    assert_status(&outcomes.0, ExecutionStatus::Succeeded);
    assert_status(&outcomes.1, ExecutionStatus::Succeeded);
    assert_status(&outcomes.2, ExecutionStatus::Succeeded);
    let older = release_of(&baton, "exec-older").await;
    assert_eq!(older.status, ReleaseStatus::Superseded);
    assert!(older.artifact.is_none() && older.started_at.is_none(), "a superseded release never built or deployed");
    let newest = release_of(&baton, "exec-newest").await;
    assert_eq!(newest.status, ReleaseStatus::Succeeded);
    assert_eq!(release_of(&baton, "exec-running").await.status, ReleaseStatus::Succeeded);
    for release in releases(&baton).await {
        assert_consistent(&baton, &release).await;
    }
}

#[tokio::test]
async fn a_dead_newer_waiter_does_not_hold_back_a_live_older_one() {
    let fixture = Fixture::new();
    fixture.set("hold-build");
    let baton = fixture.baton_scaled(1000);
    let running = baton.start("exec-running", cli_input("cli-1"));
    wait_for_status(&baton, "exec-running", ReleaseStatus::Running).await;
    let older = baton.start("exec-older", cli_input("cli-2"));
    let queued = wait_for_status(&baton, "exec-older", ReleaseStatus::Queued).await;

    // A signal registered a second after the older one, whose process died before its first
    // attempt at the lock: newer, and silent since. It is written once the holder has kept
    // building past its staleness (the older waiter trying for the lock all along), as if it had
    // been there from then on.
    let registered_at = queued.created_at + chrono::TimeDelta::seconds(1);
    let stale_at = registered_at + chrono::TimeDelta::from_std(WAITER_STALE_AFTER).unwrap();
    while baton.ports().clock.now() <= stale_at {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let at_registration = Ports { clock: Arc::new(FixedClock(registered_at)), ..baton.ports().clone() };
    baton_load_catalog::register(&at_registration, &cli_input("cli-3"), "exec-dead").await.expect("the dead waiter registers");
    fixture.clear("hold-build");

    assert_status(&running.outcome().await, ExecutionStatus::Succeeded);
    assert_status(&older.outcome().await, ExecutionStatus::Succeeded);
    let older = release_of(&baton, "exec-older").await;
    assert_eq!(older.status, ReleaseStatus::Succeeded, "the live waiter ships: {older:#?}");
    assert!(older.heartbeat_at.is_some_and(|at| at > registered_at), "the older waiter kept trying for the lock: {older:#?}");
    let dead = release_of(&baton, "exec-dead").await;
    assert_eq!((dead.status, dead.heartbeat_at), (ReleaseStatus::Queued, None), "the dead waiter never ran");
    assert!(dead.created_at > older.created_at, "the dead waiter is the newer signal");
    assert_consistent(&baton, &release_of(&baton, "exec-running").await).await;
    assert_consistent(&baton, &older).await;
}

#[tokio::test]
async fn a_console_start_needs_only_the_service_name() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    let outcome = baton.run("4b1d5e0c-console", json!({"service": SERVICE})).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "4b1d5e0c-console").await;
    assert_eq!(release.trigger.kind, TriggerKind::Console);
    assert_eq!(release.trigger.id, "4b1d5e0c-console", "the execution name identifies a console start");
    assert_eq!(release.branch, "main", "the catalog's release branch");
    assert_eq!(release.artifact.as_ref().map(|a| a.branch.as_str()), Some("main"));
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_merge_event_releases_the_repository_service() {
    let fixture = Fixture::new();
    let baton = fixture.baton();
    let event = json!({
        "version": "0", "id": "e-1", "source": "baton.github", "detail-type": "Pull Request Merged",
        "account": "123456789012", "time": "2026-11-26T09:30:00Z", "region": "us-east-1", "resources": [],
        "detail": {"repository": SERVICE, "full_name": format!("acme/{SERVICE}"), "branch": "main", "sha": "0badc0de", "pull_request": 812,
                   "author": "ada", "merged_at": "2026-11-26T09:29:00Z"}
    });
    assert_status(&baton.run("exec-merge", event.clone()).await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-merge").await;
    assert_eq!(release.trigger.kind, TriggerKind::Merge);
    assert_eq!(release.sha.as_deref(), Some("0badc0de"));
    let day = release.finished_at.unwrap().date_naive();
    let rollup = &baton.ports().store.rollups(SERVICE, ENVIRONMENT, day, day).await.unwrap()[0].1;
    assert_eq!(rollup.lead_time_samples, 1, "merge time starts the lead time");

    // Merges that release nothing end quietly (a succeeded execution raises no alarm).
    let mut other_branch = event.clone();
    other_branch["detail"]["branch"] = json!("experiment");
    other_branch["detail"]["pull_request"] = json!(813);
    let outcome = baton.run("exec-other", other_branch).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let ignored = |outcome: &baton_asl::ExecutionOutcome| {
        outcome.history.iter().any(|e| e.details.as_ref().and_then(|d| d.name.as_deref()) == Some("Ignored"))
    };
    assert!(ignored(&outcome), "ended at Ignored");
    let mut elsewhere = event;
    let mut foreign_owner = elsewhere.clone();
    elsewhere["detail"]["repository"] = json!("not-in-the-catalog");
    elsewhere["detail"]["full_name"] = json!("acme/not-in-the-catalog");
    let outcome = baton.run("exec-elsewhere", elsewhere).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    assert!(ignored(&outcome), "ended at Ignored");
    // A repository of the service's name under another owner is not the service's.
    foreign_owner["detail"]["full_name"] = json!(format!("mallory/{SERVICE}"));
    foreign_owner["detail"]["pull_request"] = json!(814);
    let outcome = baton.run("exec-foreign", foreign_owner).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    assert!(ignored(&outcome), "ended at Ignored");
    let why = outcome.output.as_ref().and_then(|o| o.pointer("/ignored/Cause")).and_then(|c| c.as_str()).unwrap_or_default();
    assert!(why.contains(&format!("repository 'mallory/{SERVICE}' does not release '{SERVICE}'")), "says why: {:?}", outcome.output);
    assert_eq!(releases(&baton).await.len(), 1, "a merge elsewhere records nothing");
    // A person asking for an unknown service still gets an error.
    let outcome = baton.run("exec-typo", json!({"service": "not-in-the-catalog"})).await;
    assert_eq!(outcome.error.as_deref(), Some("Baton.CatalogInvalid"));
}

#[tokio::test]
async fn a_bad_catalog_entry_is_refused_before_anything_is_recorded() {
    let fixture = Fixture::new();
    fixture.write_catalog("broken", "    bake-time: 5m\n");
    let baton = fixture.baton();
    let outcome = baton.run("exec-broken", json!({"service": "broken"})).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    assert_eq!(outcome.error.as_deref(), Some("Baton.CatalogInvalid"));
    let cause = outcome.cause.unwrap();
    assert!(cause.contains("broken.yaml") && cause.contains("extensions.baton.bake-time"), "names the file and the field: {cause}");
    assert!(baton.ports().store.list_releases("broken", None, 10).await.unwrap().is_empty(), "nothing recorded as started");

    let outcome = baton.run("exec-missing", json!({"service": "no-such-service"})).await;
    assert_eq!(outcome.error.as_deref(), Some("Baton.CatalogInvalid"));
    assert!(outcome.cause.unwrap().contains("no-such-service"));
    let outcome = baton.run("exec-typo", json!({"servce": SERVICE})).await;
    assert_eq!(outcome.error.as_deref(), Some("Baton.InputInvalid"));
    assert!(outcome.cause.unwrap().contains("servce"));
}

#[tokio::test]
async fn an_unreachable_notifier_never_stops_a_release() {
    let fixture = Fixture::new();
    // A webhook on a port nothing listens on: every notification fails after its retries.
    fixture
        .write_catalog(SERVICE, "    notify:\n      slack:\n        channel: \"#releases\"\n        webhook: env:BATON_E2E_DEAD_WEBHOOK\n");
    // SAFETY: set before any thread of this test reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("BATON_E2E_DEAD_WEBHOOK", "http://127.0.0.1:9/hooks/dead")
    };
    let baton = fixture.baton();
    let outcome = baton.run("exec-quiet", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-quiet").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    assert_consistent(&baton, &release).await;
}

/// A release whose Slack webhook is `webhook`: its wall time, and how many posts Slack saw.
async fn release_with_webhook(variable: &str, answer: wiremock::ResponseTemplate) -> (std::time::Duration, usize) {
    let slack = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST")).respond_with(answer).mount(&slack).await;
    let fixture = Fixture::new();
    fixture
        .write_catalog(SERVICE, &format!("    notify:\n      slack:\n        channel: \"#releases\"\n        webhook: env:{variable}\n"));
    // SAFETY: each test sets its own variable before any thread of it reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(variable, format!("{}/hooks/team", slack.uri()))
    };
    let baton = fixture.baton();
    let started = std::time::Instant::now();
    let outcome = baton.run("exec-slack", cli_input("cli-1")).await;
    let elapsed = started.elapsed();
    assert_status(&outcome, ExecutionStatus::Succeeded);
    assert_consistent(&baton, &release_of(&baton, "exec-slack").await).await;
    (elapsed, slack.received_requests().await.unwrap_or_default().len())
}

/// Six notifications (started, built, three healthy waves, finished), each within its budget.
const NOTIFICATIONS: usize = 6;

#[tokio::test]
async fn a_hanging_notifier_costs_a_release_a_few_seconds_per_stage() {
    let hang = wiremock::ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(120));
    let (elapsed, _) = release_with_webhook("BATON_E2E_HANGING_WEBHOOK", hang).await;
    // The bakes are virtual here: what is left is the notifications' budget (3 s each) and the work.
    assert!(elapsed < std::time::Duration::from_secs(3 * NOTIFICATIONS as u64 + 6), "a release took {elapsed:?}");
}

#[tokio::test]
async fn a_failing_notifier_is_retried_within_its_budget_and_a_refusing_one_once() {
    let (elapsed, posts) = release_with_webhook("BATON_E2E_FAILING_WEBHOOK", wiremock::ResponseTemplate::new(500)).await;
    assert!(elapsed < std::time::Duration::from_secs(3 * NOTIFICATIONS as u64 + 6), "a release took {elapsed:?}");
    assert!((NOTIFICATIONS * 2..=NOTIFICATIONS * 5).contains(&posts), "a 500 is retried, within the budget: {posts} posts");

    let refusal = wiremock::ResponseTemplate::new(404).set_body_string("no_service");
    let (_, posts) = release_with_webhook("BATON_E2E_REFUSING_WEBHOOK", refusal).await;
    assert_eq!(posts, NOTIFICATIONS, "a refusal is not retried, by the notifier or by the definition");
}

//! Freeze windows through the real definition on the virtual clock: a wave waits for a window's
//! end in one Wait state, a hotfix overrides, a schedule inside a window is skipped, a catalog
//! that says `refuse` refuses, and a release queued behind one that waits out a window waits for
//! its end too.

use baton_asl::{Clock, ExecutionOutcome, ExecutionStatus, HistoryEvent};
use baton_domain::error::ErrorName;
use baton_domain::flow::ReleaseContext;
use baton_domain::release::{EventKind, ReleaseStatus};
use baton_domain::support::Ports;
use baton_e2e::*;
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::json;
use std::sync::Arc;

fn freeze_block(on_freeze: &str, window: &str) -> String {
    format!("    freeze:\n      on-freeze: {on_freeze}\n      windows:\n        - {window}\n")
}

fn entered<'h>(outcome: &'h ExecutionOutcome, state: &str) -> Vec<&'h HistoryEvent> {
    outcome
        .history
        .iter()
        .filter(|e| {
            format!("{:?}", e.event_type).ends_with("StateEntered") && e.details.as_ref().and_then(|d| d.name.as_deref()) == Some(state)
        })
        .collect()
}

fn entered_at(outcome: &ExecutionOutcome, state: &str, index: usize) -> DateTime<Utc> {
    entered(outcome, state)[index].timestamp
}

async fn frozen_events(baton: &baton_local_runner::LocalBaton, outcome_release: &baton_domain::release::Release) -> Vec<String> {
    let events = baton.ports().store.events(&outcome_release.id).await.unwrap();
    events.into_iter().filter(|e| e.kind == EventKind::Frozen).map(|e| e.message).collect()
}

/// A daily window that began at the top of the previous hour and lasts three hours: in force now.
fn recurring_now() -> (String, DateTime<Utc>) {
    let now = Utc::now();
    let began = now.with_minute(0).unwrap().with_second(0).unwrap().with_nanosecond(0).unwrap() - Duration::hours(1);
    let window = format!(
        "{{name: nightly-batch, reason: the batch owns the database, every: \"0 {} * * *\", time-zone: UTC, duration: 3h}}",
        began.hour()
    );
    (window, began + Duration::hours(3))
}

#[tokio::test]
async fn a_recurring_freeze_holds_the_first_wave_until_it_ends_without_polling() {
    let fixture = Fixture::new();
    let (window, ends) = recurring_now();
    fixture.write_catalog(SERVICE, &freeze_block("wait", &window));
    let baton = fixture.baton();
    let outcome = baton.run("exec-frozen", cli_input("cli-frozen")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-frozen").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);

    // The build ran during the freeze; the first wave started when the window ended.
    assert!(entered_at(&outcome, "TriggerBuild", 0) < ends);
    let started = entered_at(&outcome, "StartWave", 0);
    assert!(started >= ends && started < ends + Duration::minutes(1), "the first wave starts as the window ends: {started}");
    // The wait is one Wait state: two checks for the first wave (held, then open), one per other wave.
    assert_eq!(entered(&outcome, "CheckFreeze").len(), WAVES.len() + 1);
    assert_eq!(entered(&outcome, "WaitOutFreeze").len(), 1);
    let held = frozen_events(&baton, &release).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].contains("wave canary held by freeze window `nightly-batch` (the batch owns the database)"), "{}", held[0]);
    assert!(held[0].contains(&ends.to_rfc3339()), "{}", held[0]);
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_freeze_that_begins_between_two_waves_holds_the_next_wave() {
    let fixture = Fixture::new();
    // The canary bakes for 10 minutes (virtual): the window begins during its bake.
    let start = Utc::now() + Duration::minutes(5);
    let end = start + Duration::hours(2);
    let window = format!("{{name: launch, reason: the launch, start: \"{}\", end: \"{}\"}}", start.to_rfc3339(), end.to_rfc3339());
    fixture.write_catalog(SERVICE, &freeze_block("refuse", &window));
    let baton = fixture.baton();
    let outcome = baton.run("exec-between", cli_input("cli-between")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-between").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded, "between waves a release waits, even with `refuse`");
    assert!(entered_at(&outcome, "StartWave", 0) < start, "the canary started before the window");
    let next = entered_at(&outcome, "StartWave", 1);
    assert!(
        next >= end - Duration::milliseconds(1) && next < end + Duration::minutes(1),
        "the next wave starts as the window ends: {next}"
    );
    assert_eq!(entered(&outcome, "WaitOutFreeze").len(), 1);
    let held = frozen_events(&baton, &release).await;
    assert!(held.len() == 1 && held[0].starts_with("wave one-region held by freeze window `launch`"), "{held:?}");
}

#[tokio::test]
async fn a_hotfix_overrides_the_freeze_and_says_who_and_why() {
    let fixture = Fixture::new();
    let (window, ends) = recurring_now();
    fixture.write_catalog(SERVICE, &freeze_block("refuse", &window));
    let baton = fixture.baton();
    let mut input = cli_input("cli-hotfix");
    input["trigger"]["freeze_override"] = json!("INC-42: checkout drops payments");
    let outcome = baton.run("exec-hotfix", input).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-hotfix").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    assert_eq!(release.trigger.freeze_override.as_deref(), Some("INC-42: checkout drops payments"));
    assert!(entered_at(&outcome, "StartWave", 0) < ends);
    assert!(entered(&outcome, "WaitOutFreeze").is_empty());
    let overridden = frozen_events(&baton, &release).await;
    assert!(!overridden.is_empty());
    assert!(
        overridden
            .iter()
            .all(|m| m.contains("`nightly-batch`") && m.contains("freeze overridden by test: INC-42: checkout drops payments")),
        "{overridden:?}"
    );
}

#[tokio::test]
async fn a_schedule_that_fires_inside_a_freeze_is_recorded_as_skipped() {
    let fixture = Fixture::new();
    let (window, ends) = recurring_now();
    fixture.write_catalog(SERVICE, &freeze_block("wait", &window));
    let baton = fixture.baton();
    let input = json!({"service": SERVICE, "trigger": {"kind": "schedule", "id": "2026-12-06T03:00:00Z", "actor": "nightly"}});
    let outcome = baton.run("exec-scheduled", input).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    assert_eq!(entered(&outcome, "Ignored").len(), 1, "ends quietly");
    assert!(entered(&outcome, "TriggerBuild").is_empty(), "nothing was built");
    let release = release_of(&baton, "exec-scheduled").await;
    assert_eq!(release.status, ReleaseStatus::Skipped);
    assert!(release.status.is_terminal() && release.started_at.is_none(), "closed before it ran: {release:#?}");
    let skipped = frozen_events(&baton, &release).await;
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].starts_with("scheduled release skipped: it fired inside freeze window `nightly-batch`"), "{}", skipped[0]);
    assert!(skipped[0].contains(&ends.to_rfc3339()), "{}", skipped[0]);
}

#[tokio::test]
async fn refuse_mode_refuses_a_release_that_would_start_inside_a_window() {
    let fixture = Fixture::new();
    let (window, ends) = recurring_now();
    fixture.write_catalog(SERVICE, &freeze_block("refuse", &window));
    let baton = fixture.baton();
    let outcome = baton.run("exec-refused", cli_input("cli-refused")).await;
    assert_status(&outcome, ExecutionStatus::Failed);
    let cause = format!("{:?} {:?}", outcome.error, outcome.cause);
    assert!(cause.contains("Baton.InputInvalid"), "{cause}");
    assert!(cause.contains("freeze window `nightly-batch` (the batch owns the database) until"), "{cause}");
    assert!(cause.contains(&ends.to_rfc3339()), "{cause}");
    assert!(releases(&baton).await.is_empty(), "nothing recorded");
}

/// Release A as CheckFreeze leaves one that waits out a window ending at `ends`: registered a
/// minute before `at` (older than the releases the tests queue behind it, which it would
/// otherwise supersede or not by the order of random ids), running, its lock's lease stretched
/// past the window's end.
async fn holder_waiting_out_the_freeze(ports: &Ports, at: DateTime<Utc>, ends: DateTime<Utc>) -> ReleaseContext {
    let before = at - Duration::minutes(1);
    let ports = Ports { clock: Arc::new(FixedClock(before)), ..ports.clone() };
    let registered = baton_load_catalog::register(&ports, &cli_input("cli-holder"), "exec-holder").await.expect("the holder registers");
    let taken = baton_load_catalog::acquire(&ports, &registered.release, Some(before)).await.expect("the holder takes the free lock");
    assert!(!taken.frozen, "a free lock is taken whatever the windows say");
    ports.renew_lock_for(&registered.release, (ends - before + Duration::minutes(15)).to_std().unwrap()).await.unwrap();
    registered.release
}

/// A one-off window from `start` to `end`.
fn launch_window(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    format!("{{name: launch, reason: the launch, start: \"{}\", end: \"{}\"}}", start.to_rfc3339(), end.to_rfc3339())
}

/// The service under a one-off window that began an hour ago and ends in three days.
fn frozen_for_three_days() -> (Fixture, DateTime<Utc>, DateTime<Utc>) {
    let fixture = Fixture::new();
    let at = Utc::now().with_nanosecond(0).unwrap();
    let ends = at + Duration::days(3);
    fixture.write_catalog(SERVICE, &freeze_block("wait", &launch_window(at - Duration::hours(1), ends)));
    (fixture, at, ends)
}

#[tokio::test]
async fn a_release_queued_behind_a_freeze_waits_for_its_end_instead_of_spending_its_lock_retries() {
    let (fixture, at, ends) = frozen_for_three_days();
    let baton = fixture.baton();
    let ports_at = |instant: DateTime<Utc>| Ports { clock: Arc::new(FixedClock(instant)), ..baton.ports().clone() };
    let holder = holder_waiting_out_the_freeze(&ports_at(at), at, ends).await;
    let queued = baton_load_catalog::register(&ports_at(at), &cli_input("cli-queued"), "exec-queued").await.unwrap().release;

    // Inside the window: wait for its end, once on the timeline, alive till then.
    for attempt in [at, at + Duration::hours(1)] {
        let verdict = baton_load_catalog::acquire(&ports_at(attempt), &queued, Some(at)).await.expect("no error to retry");
        assert_eq!((verdict.frozen, verdict.until), (true, Some(ends)), "at {attempt}");
    }
    let record = baton.ports().store.get_release(&queued.id).await.unwrap().unwrap();
    assert_eq!((record.status, record.heartbeat_at), (ReleaseStatus::Queued, Some(ends)), "a live waiter till the window's end");
    let events = frozen_events(&baton, &record).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let end = ends.to_rfc3339();
    let expected = format!(
        "queued behind release {} during freeze window `launch` (the launch) until {end}: tries for the lock again at {end}",
        holder.id
    );
    assert_eq!(events[0], expected);

    // Past the window, a lock still held is retried as ever.
    let after = ends + Duration::minutes(1);
    let refused = baton_load_catalog::acquire(&ports_at(after), &queued, Some(after)).await.expect_err("held");
    assert_eq!(refused.error, ErrorName::LockHeld, "{refused:?}");
}

#[tokio::test]
async fn a_hotfix_queued_behind_a_freeze_keeps_trying_for_the_lock() {
    let (fixture, at, ends) = frozen_for_three_days();
    let baton = fixture.baton();
    let ports = Ports { clock: Arc::new(FixedClock(at)), ..baton.ports().clone() };
    holder_waiting_out_the_freeze(&ports, at, ends).await;
    let mut input = cli_input("cli-hotfix");
    input["trigger"]["freeze_override"] = json!("INC-7: payments down");
    let hotfix = baton_load_catalog::register(&ports, &input, "exec-hotfix").await.unwrap().release;
    let refused = baton_load_catalog::acquire(&ports, &hotfix, Some(at)).await.expect_err("held");
    assert_eq!(refused.error, ErrorName::LockHeld, "{refused:?}");
}

/// Handler time that stands still until [`SteppedClock::run_from`], then runs `factor` times
/// faster than the wall clock, as the executor's `Clock::Scaled` does: the waiting release's
/// first attempt at the lock is inside the window however long the machine takes to get there.
struct SteppedClock {
    from: std::sync::Mutex<Option<(DateTime<Utc>, std::time::Instant)>>,
    still: DateTime<Utc>,
    factor: u32,
}

impl SteppedClock {
    fn run_from(&self, at: DateTime<Utc>) {
        *self.from.lock().unwrap() = Some((at, std::time::Instant::now()));
    }
}

impl baton_domain::ports::Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        match *self.from.lock().unwrap() {
            None => self.still,
            Some((at, since)) => at + Duration::from_std(since.elapsed() * self.factor).unwrap(),
        }
    }
}

/// Through the real definition, its waits and retries 20,000 times faster than the wall clock:
/// a 12-hour freeze, longer than a waiter's lock retries (about 6.7 hours), holds release A with
/// the lock; release B waits for the window's end in one Wait state, then runs once A is done.
#[tokio::test]
async fn a_release_queued_behind_a_long_freeze_runs_after_it() {
    const FACTOR: u32 = 20_000;
    let fixture = Fixture::with_waves(&[("canary".into(), vec!["box-1".into()])]);
    let at = Utc::now().with_nanosecond(0).unwrap();
    let ends = at + Duration::hours(12);
    fixture.write_catalog(SERVICE, &freeze_block("wait", &launch_window(at - Duration::hours(1), ends)));
    let clock = Arc::new(SteppedClock { from: std::sync::Mutex::new(None), still: at, factor: FACTOR });
    let ports = Ports { clock: clock.clone(), ..fixture.baton_with(Clock::Scaled(FACTOR)).ports().clone() };
    let baton = baton_local_runner::LocalBaton::new(ports.clone(), Clock::Scaled(FACTOR)).expect("local baton");
    let holder = holder_waiting_out_the_freeze(&ports, at, ends).await;

    let queued = baton.start("exec-queued", cli_input("cli-queued"));
    let record = wait_for_status(&baton, "exec-queued", ReleaseStatus::Queued).await;
    let mut tries = 0;
    while frozen_events(&baton, &record).await.is_empty() {
        tries += 1;
        assert!(tries < 2_000, "the waiting release never said it waits out the window: {:#?}", releases(&baton).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // A is done while B waits: it closes, freeing the lock, and time moves on past the window.
    ports.update_release(&holder, |r| r.status = ReleaseStatus::Succeeded).await.unwrap();
    baton_load_catalog::unlock(&ports, &holder).await.unwrap();
    clock.run_from(ends + Duration::minutes(1));

    let outcome = queued.outcome().await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-queued").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded, "{release:#?}");
    assert_eq!(entered(&outcome, "WaitForLockAfterFreeze").len(), 1, "one Wait, no polling through the window");
    assert_eq!(entered(&outcome, "Acquire").len(), 2, "once before the window's end, once after");
    assert!(entered_at(&outcome, "StartWave", 0) >= ends, "the wave starts after the window");
    assert!(entered(&outcome, "WaitOutFreeze").is_empty(), "the window was over when it had the lock");
    assert_consistent(&baton, &release).await;
}

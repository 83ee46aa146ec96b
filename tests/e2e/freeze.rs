//! Freeze windows through the real definition on the virtual clock: a wave waits for a window's
//! end in one Wait state, a hotfix overrides, a schedule inside a window is skipped, and a
//! catalog that says `refuse` refuses.

use baton_asl::{ExecutionOutcome, ExecutionStatus, HistoryEvent};
use baton_domain::release::{EventKind, ReleaseStatus};
use baton_e2e::*;
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::json;

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

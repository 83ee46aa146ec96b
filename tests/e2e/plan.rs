//! `baton plan`'s counts against the releases that follow: each example service is planned, then
//! released through the real definition and handlers, and the transitions and task invocations
//! its execution history shows are those the plan expected. The plan is made first, from the
//! catalog and the records alone; nothing of the release is known to it.

use baton_asl::{Clock, ExecutionStatus};
use baton_domain::rules::cost;
use baton_domain::rules::plan::Verdict;
use baton_e2e::*;
use baton_local_runner::{LocalBaton, LocalConfig, plan_release};
use std::path::PathBuf;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog")
}

fn input(service: &str, trigger: &str) -> serde_json::Value {
    serde_json::json!({"service": service, "sha": "4f2a9c1e", "trigger": {"kind": "cli", "id": trigger, "actor": "test"}})
}

/// Plans `service`, releases it under `execution`, and compares the plan's counts with the
/// release's history.
async fn plan_then_release(baton: &LocalBaton, service: &str, execution: &str) {
    let ports = baton.ports();
    let input = input(service, execution);
    let planned = plan_release(ports.catalog.as_ref(), Some(ports.store.as_ref()), &input, chrono::Utc::now()).await.unwrap();
    assert_eq!(planned.plan.admission, Verdict::Allowed);
    let expected = planned.cost.expect("an admitted release has a planned cost");

    let outcome = baton.run(execution, input).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let used = cost::usage(&baton.journal(execution).await.unwrap());
    assert_eq!((expected.transitions, expected.invocations), (used.transitions, used.invocations), "{service}: planned against used");
}

#[tokio::test]
async fn the_planned_transitions_and_invocations_of_hello_web_are_those_of_its_release() {
    let state = tempfile::tempdir().unwrap();
    let config = LocalConfig {
        catalog: examples(),
        state_dir: state.path().to_owned(),
        console: None,
        clock: Clock::Virtual,
        slack_api_base: None,
        skip_bakes: false,
        events_url: None,
    };
    let baton = LocalBaton::open(config).unwrap();
    // First without history, then planned from the first release's records.
    plan_then_release(&baton, "hello-web", "exec-plan-1").await;
    plan_then_release(&baton, "hello-web", "exec-plan-2").await;
}

#[tokio::test]
async fn a_planned_approval_and_long_bakes_count_as_the_release_uses_them() {
    // Three waves of ten-minute bakes sampled every 30 s, the second behind an approval given
    // as soon as it is asked for.
    let mut fixture = Fixture::new();
    fixture.require_approval("one-region", "{required: true, approvers: [ann], timeout: 1h}");
    let baton = fixture.baton();
    let ports = baton.ports();
    let input = cli_input("cli-plan");
    let planned = plan_release(ports.catalog.as_ref(), Some(ports.store.as_ref()), &input, chrono::Utc::now()).await.unwrap();
    let expected = planned.cost.expect("an admitted release has a planned cost");
    assert!(planned.plan.waves[1].approval.is_some(), "the plan shows the gate");

    let run = baton.start("exec-plan-approved", input);
    let waiting = crate::approval::pending(&baton, "exec-plan-approved").await;
    let ann = baton_domain::rules::approval::Person::new("ann");
    let granted = baton_domain::release::Verdict::Granted;
    let via = baton_domain::release::Via::Cli;
    baton_domain::approvals::answer(ports.store.as_ref(), None, &waiting.id, &ann, granted, via, None, chrono::Utc::now()).await.unwrap();
    assert_status(&run.outcome().await, ExecutionStatus::Succeeded);
    let used = cost::usage(&baton.journal("exec-plan-approved").await.unwrap());
    assert_eq!((expected.transitions, expected.invocations), (used.transitions, used.invocations), "planned against used");
}

#[tokio::test]
async fn a_wave_held_by_a_freeze_is_planned_as_it_waits() {
    // A window from 5 to 30 minutes from now: the canary starts at once and bakes 10 minutes, so
    // the second wave meets the window and waits for its end.
    let fixture = Fixture::new();
    let now = chrono::Utc::now();
    let at = |minutes: i64| (now + chrono::TimeDelta::minutes(minutes)).to_rfc3339();
    let window = format!("{{name: migration, reason: the database moves, start: \"{}\", end: \"{}\"}}", at(5), at(30));
    fixture.write_catalog(SERVICE, &format!("    freeze:\n      on-freeze: wait\n      windows:\n        - {window}\n"));
    let baton = fixture.baton();
    let ports = baton.ports();
    let input = cli_input("cli-plan-frozen");
    let planned = plan_release(ports.catalog.as_ref(), Some(ports.store.as_ref()), &input, now).await.unwrap();
    let held: Vec<usize> = planned.plan.waves.iter().map(|wave| wave.freezes.len()).collect();
    assert_eq!(held, [0, 1, 0], "the plan shows the second wave waiting");
    let expected = planned.cost.expect("an admitted release has a planned cost");

    assert_status(&baton.run("exec-plan-frozen", input).await, ExecutionStatus::Succeeded);
    let history = baton.journal("exec-plan-frozen").await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e["type"] == "WaitStateEntered" && e["stateEnteredEventDetails"]["name"] == "WaitOutFreeze").count(),
        1
    );
    let used = cost::usage(&history);
    assert_eq!((expected.transitions, expected.invocations), (used.transitions, used.invocations), "planned against used");
}

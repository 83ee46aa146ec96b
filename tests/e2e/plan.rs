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
    let expected = planned.cost.expect("an admitted release has a planned cost").polling.cost;

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
        poll_only: false,
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
    let expected = planned.cost.expect("an admitted release has a planned cost").polling.cost;
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
    let expected = planned.cost.expect("an admitted release has a planned cost").polling.cost;

    assert_status(&baton.run("exec-plan-frozen", input).await, ExecutionStatus::Succeeded);
    let history = baton.journal("exec-plan-frozen").await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e["type"] == "WaitStateEntered" && e["stateEnteredEventDetails"]["name"] == "WaitOutFreeze").count(),
        1
    );
    let used = cost::usage(&history);
    assert_eq!((expected.transitions, expected.invocations), (used.transitions, used.invocations), "planned against used");
}

#[tokio::test]
async fn a_release_on_events_whose_providers_no_event_names_is_polled_and_planned_exactly() {
    // The fixture's command build and deploys report to no one, so with events on they are still
    // polled (a park would wait for the safety net); its command gate can only be sampled, every
    // 30 s through the 10-minute bakes.
    let fixture = Fixture::new();
    fixture.write_catalog(SERVICE, "    events: {wait: true, safety-net: 2m}\n");
    let baton = fixture.baton();
    let ports = baton.ports();
    let input = cli_input("cli-plan-events");
    let planned = plan_release(ports.catalog.as_ref(), Some(ports.store.as_ref()), &input, chrono::Utc::now()).await.unwrap();
    let forecast = planned.cost.expect("an admitted release has a planned cost");
    assert_eq!((forecast.waits_for_events, forecast.bakes_park, forecast.safety_net_seconds), (true, false, 120));

    assert_status(&baton.run("exec-plan-events", input).await, ExecutionStatus::Succeeded);
    let history = baton.journal("exec-plan-events").await.unwrap();
    let entered =
        |state: &str| history.iter().filter(|e| e["type"] == "TaskStateEntered" && e["stateEnteredEventDetails"]["name"] == state).count();
    assert_eq!((entered("ParkBuild"), entered("ParkWave"), entered("ParkBake")), (0, 0, 0), "nothing an event would name parked");
    let used = cost::usage(&history);
    let expected = forecast.events.cost;
    assert_eq!((expected.transitions, expected.invocations), (used.transitions, used.invocations), "planned against used");
}

/// Issue 29's standard release (a 20-minute build, 3 waves of 5-minute rollouts, 10-minute bakes
/// sampled every 30 s, a CloudWatch gate, a 5-minute safety net) on events, through stand-in
/// providers that take their time and emit their events (`events::standins`), with its polled
/// twin: both are released once, so the plan knows their build and deploy times, then planned;
/// the evented one is released again by the real definition and handlers, and the plan's figures
/// on events, its own and its twin's, are that release's. Tolerance: within 15 % or 3, whichever
/// is more: an event that falls on a park's timeout races it, moving a count by a park (2
/// transitions, 1 invocation, 1 call), and the stand-ins' clock runs 600 times faster than the
/// wall clock, so each task's real milliseconds are seconds of the release's time. (That drift is
/// why polled releases, dozens of tasks each, are checked on the virtual clock above instead.)
#[tokio::test]
async fn the_planned_cost_on_events_is_what_a_release_parked_on_its_providers_events_uses() {
    use crate::events::standins::{self, Script};
    use baton_domain::rules::cost::{Estimate, ProviderCalls};

    let standard =
        |service: &str, events: bool| Script { rollout_minutes: 5, bake: "10m", events, safety_net: "5m", ..Script::new(service, 20) };
    let scripts = [standard("evented", true), standard("polled", false)];
    let dir = tempfile::tempdir().unwrap();
    let (baton, world) = standins::baton(dir.path(), 600, &scripts);
    let runs: Vec<_> = scripts.iter().map(|s| baton.start(&format!("exec-{}-first", s.service), input(&s.service, "first"))).collect();
    for (run, script) in runs.into_iter().zip(&scripts) {
        standins::assert_released(&run.outcome().await, &script.service);
    }
    let ports = baton.ports();
    let mut forecasts = Vec::new();
    for script in &scripts {
        let second = input(&script.service, "second");
        let planned = plan_release(ports.catalog.as_ref(), Some(ports.store.as_ref()), &second, chrono::Utc::now()).await.unwrap();
        let forecast = planned.cost.expect("an admitted release has a planned cost");
        assert_eq!((forecast.waits_for_events, forecast.bakes_park), (script.events, true), "{}", script.service);
        forecasts.push(forecast);
    }
    let calls_before = world.seen.lock().unwrap().calls.len();
    let outcome = baton.run("exec-evented-second", input("evented", "second")).await;
    standins::assert_released(&outcome, "evented");

    let seen = world.seen.lock().unwrap();
    let count = |what: &str| seen.calls[calls_before..].iter().filter(|c| c.starts_with(&format!("evented {what}"))).count() as u64;
    let used = Estimate {
        cost: cost::estimate(&cost::usage(&standins::history(&outcome)), cost::BATON_FUNCTIONS, &cost::PUBLIC_PRICES),
        provider_calls: ProviderCalls {
            build: count("start build") + count("poll build"),
            rollout_polls: count("poll rollout"),
            gate_samples: count("sample"),
        },
    };
    for (case, planned) in [("its own", &forecasts[0].events), ("its polled twin's", &forecasts[1].events)] {
        let (p, u) = (&planned.provider_calls, &used.provider_calls);
        let counts = [
            ("state transitions", planned.cost.transitions, used.cost.transitions),
            ("Lambda invocations", planned.cost.invocations, used.cost.invocations),
            ("build calls", p.build, u.build),
            ("rollout polls", p.rollout_polls, u.rollout_polls),
            ("gate samples", p.gate_samples, u.gate_samples),
        ];
        for (what, planned, used) in counts {
            assert!(planned.abs_diff(used) <= (used * 15 / 100).max(3), "{case} plan: {what}: planned {planned}, used {used}");
        }
    }
    // What turning events on saves, as the twin's plan shows it (issue 29's targets).
    let (polled, evented) = (&forecasts[1].polling, &forecasts[1].events);
    assert!(evented.cost.transitions * 3 < polled.cost.transitions, "{evented:?} against {polled:?}");
    assert!(evented.provider_calls.build <= 10, "{evented:?}");
}

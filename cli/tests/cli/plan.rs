//! `baton plan` on the bundled examples, as a user runs it: it starts nothing, and shows the
//! waves, freezes, rollback target, expected duration and cost of the release it would run.

use crate::support::{baton_command, examples};
use std::path::Path;
use std::process::Output;

fn plan(state: &Path, catalog: &Path, args: &[&str]) -> Output {
    baton_command(state, catalog, &[&["plan"], args].concat()).output().expect("run baton")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_example_service_plans_its_waves_duration_and_cost() {
    let state = tempfile::tempdir().unwrap();
    for service in ["hello-web", "hello-api", "flaky-api"] {
        let output = plan(state.path(), &examples(), &[service]);
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(0), "{service}: {shown}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(shown.starts_with(&format!("Plan: {service} → production, main @ the branch head")), "{shown}");
        for line in [
            "admission   allowed",
            "1/3 canary",
            "2/3 one-region",
            "3/3 rest",
            "bake 5s",
            "duration    no history: the bakes alone take 15s",
        ] {
            assert!(shown.contains(line), "{service}: no '{line}' in\n{shown}");
        }
        assert!(shown.contains("rollback    nothing ran before"), "{shown}");
        // The entry polls; the line after says what parking on events would cost.
        let cost = shown.split("  cost        ").nth(1).expect("a cost");
        assert!(cost.starts_with("polled (as the entry runs): ") && cost.contains("Lambda invocations, $0.00"), "{shown}");
        assert!(cost.contains("on events (events: {wait: true}, safety net 5.0 min; "), "{shown}");
        assert!(cost.contains("provider API calls: ") && cost.contains("ending at its first poll (no history)"), "{shown}");

        let output = plan(state.path(), &examples(), &[service, "--json", "--sha", "4f2a9c1e"]);
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--json prints one JSON object");
        let plan = &json["plan"];
        assert_eq!(
            (&json["entry"]["name"], &plan["sha"], &plan["admission"]["verdict"]),
            (&service.into(), &"4f2a9c1e".into(), &"allowed".into())
        );
        let waves: Vec<&str> = plan["waves"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
        assert_eq!(waves, ["canary", "one-region", "rest"]);
        assert_eq!(plan["expected"]["bakes_seconds"], 15);
        let cost = &json["cost"];
        assert_eq!((&cost["waits_for_events"], &cost["safety_net_seconds"]), (&false.into(), &300.into()), "{json}");
        for flow in ["polling", "events"] {
            assert!(cost[flow]["transitions"].as_u64().unwrap() > cost[flow]["invocations"].as_u64().unwrap(), "{json}");
            assert!(cost[flow]["provider_calls"]["build"].as_u64().unwrap() >= 2, "a start and a poll at least: {json}");
        }
    }
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0, "planning wrote nothing in the state directory");
}

#[test]
fn after_a_release_the_plan_rolls_back_to_it_and_knows_its_durations() {
    let state = tempfile::tempdir().unwrap();
    let released =
        baton_command(state.path(), &examples(), &["release", "hello-web", "--no-wait", "--sha", "4f2a9c1e", "--json"]).output().unwrap();
    assert_eq!(released.status.code(), Some(0), "{}", String::from_utf8_lossy(&released.stderr));
    let output = plan(state.path(), &examples(), &["hello-web"]);
    let shown = text(&output);
    assert!(shown.contains("rollback    every target back to hello-web@4f2a9c1e (main @ 4f2a9c1e)"), "{shown}");
    assert!(shown.contains("duration    p50 ") && shown.contains("build p50 "), "{shown}");
}

#[test]
fn a_release_refused_by_a_freeze_is_planned_as_refused_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let services = format!("working-dir: {}/", examples().join("../services").canonicalize().unwrap().display());
    let entry = std::fs::read_to_string(examples().join("hello-web.yaml")).unwrap().replace("working-dir: ../services/", &services);
    std::fs::write(catalog.join("hello-web.yaml"), entry).unwrap();
    let now = chrono::Utc::now();
    let window = format!(
        "on-freeze: refuse\nwindows:\n  - name: migration\n    reason: the database moves\n    start: {}\n    end: {}\n",
        (now - chrono::TimeDelta::hours(1)).to_rfc3339(),
        (now + chrono::TimeDelta::hours(1)).to_rfc3339()
    );
    std::fs::write(catalog.join("freezes.yaml"), window).unwrap();
    let mut command = baton_command(&dir.path().join("state"), &catalog, &["plan", "hello-web"]);
    let output = command.env("BATON_CATALOG_ROOT", examples().join("..")).output().unwrap();
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(shown.contains("admission   refused: release of hello-web refused: freeze window `migration` (the database moves)"), "{shown}");
    assert!(shown.contains("freezes     in force: freeze window `migration`"), "{shown}");
    assert!(shown.contains("cost        none: the release would not run"), "{shown}");

    let mut command = baton_command(&dir.path().join("state"), &catalog, &["plan", "hello-web", "--override-freeze", "--reason", "INC-7"]);
    let hotfix = command.env("BATON_CATALOG_ROOT", examples().join("..")).output().unwrap();
    assert_eq!(hotfix.status.code(), Some(0), "{}", text(&hotfix));
    assert!(text(&hotfix).contains("admission   allowed"), "{}", text(&hotfix));
}

#[test]
fn a_plan_for_another_environment_or_a_bad_commit_exits_2() {
    let state = tempfile::tempdir().unwrap();
    for (args, said) in [
        (&["hello-web", "--environment", "staging"][..], "releases to environment 'production'"),
        (&["hello-web", "--sha", "not-a-sha"][..], "`sha` is 'not-a-sha'"),
        (&["nope"][..], "service 'nope' is not in the catalog"),
    ] {
        let output = plan(state.path(), &examples(), args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(said), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

//! A release's cost on its record: what its execution used, counted from the embedded
//! executor's history as Step Functions bills it, and priced.

use baton_asl::ExecutionStatus;
use baton_domain::rules::cost::{BATON_FUNCTIONS, PUBLIC_PRICES, Usage, estimate};
use baton_e2e::*;

#[tokio::test]
async fn a_local_release_records_what_its_execution_cost() {
    let fixture = Fixture::new();
    fixture.write_catalog(SERVICE, "");
    let baton = fixture.baton();
    assert_status(&baton.run("exec-cost", cli_input("cli-1")).await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-cost").await;
    let cost = release.cost.clone().expect("a finished release records its cost");

    // Counted here from the journal by event type: each state entered is a transition, each
    // task scheduled an invocation, and each schedule past a task state's first a retry.
    let history = baton.journal("exec-cost").await.unwrap();
    let count = |pred: &dyn Fn(&str) -> bool| history.iter().filter(|e| pred(e["type"].as_str().unwrap_or_default())).count() as u64;
    let entered = count(&|t| t.ends_with("StateEntered"));
    let task_entered = count(&|t| t == "TaskStateEntered");
    let scheduled = count(&|t| t == "TaskScheduled" || t == "LambdaFunctionScheduled");
    assert!(scheduled >= task_entered && task_entered > 0, "{scheduled} invocations for {task_entered} task states");
    assert_eq!((cost.transitions, cost.invocations), (entered + scheduled - task_entered, scheduled));
    // A release of three waves runs at least Register, Acquire, the build, three waves' start,
    // wait and health, the close and the unlock.
    assert!(cost.invocations >= 12, "{cost:?}");
    let priced = estimate(
        &Usage { transitions: cost.transitions, invocations: cost.invocations, task_milliseconds: 0 },
        BATON_FUNCTIONS,
        &PUBLIC_PRICES,
    );
    assert!(cost.dollars >= priced.dollars && cost.lambda_gb_seconds >= 0.0, "{cost:?} against {priced:?}");
    assert!(cost.dollars < 0.01, "a release costs cents at most: {cost:?}");
}

//! A merge event on the bus starts a release execution through the rule the stack declares.

use crate::common;

use aws_sdk_eventbridge::types::{InputTransformer, Target};
use baton_aws::events::{MERGE_INPUT_PATHS, MERGE_INPUT_TEMPLATE, MergeEvent, merge_rule_pattern, put_merge_event};
use serde_json::json;
use std::time::Duration;

fn merge(branch: &str, pr: u64) -> MergeEvent {
    MergeEvent {
        repository: "payments-api".into(),
        full_name: "acme/payments-api".into(),
        branch: branch.into(),
        sha: format!("{pr:0>40}"),
        pull_request: pr,
        author: "octocat".into(),
        merged_at: "2026-03-01T10:00:00Z".parse().unwrap(),
    }
}

#[tokio::test]
async fn a_merge_into_the_release_branch_starts_one_execution_with_the_signal() {
    let config = common::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sfn = aws_sdk_sfn::Client::new(&config);

    let machine = common::state_machine(
        &config,
        &common::unique("merge"),
        json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}),
    )
    .await;
    let bus = common::unique("baton-bus");
    events.create_event_bus().name(&bus).send().await.expect("create bus");
    let rule = common::unique("merge-rule");
    events.put_rule().name(&rule).event_bus_name(&bus).event_pattern(merge_rule_pattern().to_string()).send().await.expect("put rule");
    let transformer = MERGE_INPUT_PATHS
        .iter()
        .fold(InputTransformer::builder(), |b, (name, path)| b.input_paths_map(*name, *path))
        .input_template(MERGE_INPUT_TEMPLATE)
        .build()
        .unwrap();
    let target = Target::builder()
        .id("release")
        .arn(&machine)
        .role_arn(common::service_role(&config, "events").await)
        .input_transformer(transformer)
        .build()
        .unwrap();
    let put = events.put_targets().rule(&rule).event_bus_name(&bus).targets(target).send().await.expect("put targets");
    assert_eq!(put.failed_entry_count(), 0);

    // Every branch is routed: load-catalog decides per service whether its catalog entry releases it.
    put_merge_event(&events, &bus, &merge("feature/checkout", 41)).await.expect("put other-branch event");
    put_merge_event(&events, &bus, &merge("main", 42)).await.expect("put merge event");

    let mut started = Vec::new();
    for _ in 0..100 {
        started = common::executions(&config, &machine).await;
        if started.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(started.len(), 2, "one execution per merge, whatever its branch ({started:?})");
    let mut inputs = Vec::new();
    for arn in &started {
        let execution = sfn.describe_execution().execution_arn(arn).send().await.expect("describe");
        inputs.push(serde_json::from_str::<serde_json::Value>(execution.input().expect("input")).expect("input is JSON"));
    }
    let input = inputs.into_iter().find(|i| i["branch"] == "main").expect("the merge into main started an execution");
    assert_eq!(
        input,
        json!({
            "service": "payments-api",
            "sha": format!("{:0>40}", 42),
            "branch": "main",
            "trigger": {"kind": "merge", "id": "pr-42", "actor": "octocat", "repository": "acme/payments-api"},
            "changed_at": "2026-03-01T10:00:00Z"
        })
    );
    let signal: baton_domain::release::Signal = serde_json::from_value(input).expect("the input is a Signal");
    assert_eq!(signal.idempotency_key(), format!("payments-api#{:0>40}#merge:pr-42", 42));
}

//! What `infra/template.yaml` must say, read as CloudFormation reads it (no AWS needed).

use baton_local_stack::template::{StackNames, Template};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

fn template() -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
    let names = StackNames { stack_name: "prod".into(), region: "eu-west-1".into(), account: "123456789012".into() };
    Template::load(&path, names, &BTreeMap::new()).unwrap()
}

#[test]
fn every_function_logs_to_a_group_with_a_retention_and_has_an_error_alarm() {
    let template = template();
    for function in template.functions().unwrap() {
        let properties = template.properties(&function.logical_id).unwrap();
        let group = properties
            .pointer("/LoggingConfig/LogGroup")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{} has no log group", function.logical_id));
        let declared = template
            .of_type("AWS::Logs::LogGroup")
            .find(|id| template.physical_name(id).unwrap() == group)
            .unwrap_or_else(|| panic!("{}: no LogGroup resource named {group}", function.logical_id));
        assert!(template.properties(declared).unwrap().get("RetentionInDays").is_some(), "{declared} keeps logs forever");
        let filter = template
            .of_type("AWS::Logs::MetricFilter")
            .map(|id| template.properties(id).unwrap())
            .find(|p| p["LogGroupName"] == group)
            .unwrap_or_else(|| panic!("{}: no error metric on {group}", function.logical_id));
        let metric = filter.pointer("/MetricTransformations/0/MetricName").unwrap();
        assert!(
            template.of_type("AWS::CloudWatch::Alarm").any(|id| &template.properties(id).unwrap()["MetricName"] == metric),
            "{}: no alarm on {metric}",
            function.logical_id
        );
    }
}

#[test]
fn failed_timed_out_and_aborted_executions_raise_alarms() {
    let template = template();
    let machine = template.reference("ReleaseStateMachine").unwrap();
    let alarms: Vec<Value> = template.of_type("AWS::CloudWatch::Alarm").map(|id| template.properties(id).unwrap()).collect();
    for metric in ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"] {
        assert!(
            alarms
                .iter()
                .any(|a| a["Namespace"] == "AWS/States" && a["MetricName"] == metric && a["Dimensions"][0]["Value"] == machine.as_str()),
            "no alarm on {metric}"
        );
    }
    let topic = template.reference("AlarmTopic").unwrap();
    assert!(alarms.iter().all(|a| a["AlarmActions"] == json!([topic])), "every alarm notifies the alarm topic");
}

#[test]
fn the_merge_rule_routes_every_merge_with_retries_and_a_dead_letter_queue() {
    let template = template();
    let rule = template.properties("MergeRule").unwrap();
    assert_eq!(rule["EventPattern"], baton_aws::events::merge_rule_pattern(), "the rule must not filter on one stack-wide branch");
    let target = &rule["Targets"][0];
    assert!(target["RetryPolicy"]["MaximumRetryAttempts"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(target["DeadLetterConfig"]["Arn"], template.arn("ReleaseStartDeadLetterQueue").unwrap());
    // Scheduler sends a schedule's dead letters with the role it assumes.
    let role = baton_local_stack::iam::grants(&template, "StartReleaseRole").unwrap();
    assert!(role.iter().any(|g| g.action == "sqs:SendMessage" && g.resource == template.arn("ReleaseStartDeadLetterQueue").unwrap()));
    assert!(template.text().contains("baton catalog push --schedule-group"), "the schedules' comment names the command that creates them");
    assert!(!template.text().contains("baton schedules"), "there is no `baton schedules` command");
}

#[test]
fn the_state_machine_invokes_published_aliases() {
    let template = template();
    let definition: Value = serde_json::from_str(&template.state_machine_definition("ReleaseStateMachine").unwrap()).unwrap();
    let mut resources = Vec::new();
    collect_lambda_targets(&definition, &mut resources);
    assert!(!resources.is_empty());
    for function in template.functions().unwrap().into_iter().filter(|f| f.logical_id != "GitHubWebhookFunction") {
        assert_eq!(function.alias.as_deref(), Some("live"), "{} publishes no alias", function.logical_id);
        assert!(
            resources.contains(&format!("{}:live", function.arn)),
            "the definition does not invoke {}:live ({resources:?})",
            function.arn
        );
    }
    assert!(resources.iter().all(|r| r.ends_with(":live")), "an unqualified function in the definition: {resources:?}");
}

fn collect_lambda_targets(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if (key == "Resource" || key == "FunctionName") && s.contains(":function:") => out.push(s.clone()),
                    _ => collect_lambda_targets(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_lambda_targets(v, out)),
        _ => {}
    }
}

#[test]
fn the_public_webhook_has_reserved_concurrency() {
    let webhook = template().function("GitHubWebhookFunction").unwrap();
    assert!(webhook.reserved_concurrency.is_some_and(|n| n > 0));
}

#[test]
fn ttl_is_enabled_only_where_the_code_writes_the_attribute() {
    let template = template();
    let ttl = |table: &str| template.properties(table).unwrap().pointer("/TimeToLiveSpecification/AttributeName").cloned();
    assert_eq!(ttl("ReleaseTable"), Some(json!(baton_aws::dynamo::TTL_ATTRIBUTE)), "locks carry `ttl`");
    assert_eq!(ttl("CatalogTable"), None, "catalog items carry no `ttl`: a TTL setting there does nothing");
}

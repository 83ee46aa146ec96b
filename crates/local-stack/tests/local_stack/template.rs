//! What `infra/template.yaml` must say, read as CloudFormation reads it (no AWS needed).

use baton_local_stack::iam;
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
    // The functions people's tools and providers call (over HTTPS, through EventBridge), not the definition.
    let called_over_https = ["GitHubWebhookFunction", "InteractionsFunction", "ProviderEventsFunction"];
    for function in template.functions().unwrap().into_iter().filter(|f| !called_over_https.contains(&f.logical_id.as_str())) {
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
fn the_public_webhook_reserves_concurrency_when_the_account_can() {
    // A new account's quota (10) leaves nothing to reserve: the stack must create without it.
    assert_eq!(template().function("GitHubWebhookFunction").unwrap().reserved_concurrency, None);
    let raised = template_with(&[("WebhookConcurrency", "5")]).function("GitHubWebhookFunction").unwrap();
    assert_eq!(raised.reserved_concurrency, Some(5));
}

#[test]
fn ttl_is_enabled_only_where_the_code_writes_the_attribute() {
    let template = template();
    let ttl = |table: &str| template.properties(table).unwrap().pointer("/TimeToLiveSpecification/AttributeName").cloned();
    assert_eq!(ttl("ReleaseTable"), Some(json!(baton_aws::dynamo::TTL_ATTRIBUTE)), "locks carry `ttl`");
    assert_eq!(ttl("CatalogTable"), None, "catalog items carry no `ttl`: a TTL setting there does nothing");
}

fn template_with(overrides: &[(&str, &str)]) -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
    let names = StackNames { stack_name: "prod".into(), region: "eu-west-1".into(), account: "123456789012".into() };
    let overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Template::load(&path, names, &overrides).unwrap()
}

/// The calls `principal`'s policy refuses, in the order a report lists them; a call's resource may
/// carry the request's condition keys as the record writes them (`<arn> ecs:CreateAction=...`).
fn refused(template: &Template, principal: &str, calls: &[(&str, &str)]) -> Vec<(String, String)> {
    let operation = |(action, resource): &(&str, &str)| {
        let names = template.names();
        let mut read = iam::read_operations(&format!("{action} {resource}"), &names.region, &names.account);
        iam::with_leading_keys(read.pop_first().expect("one operation"), &template.partition_keys().unwrap())
    };
    let report = iam::check(template, principal, &calls.iter().map(operation).collect()).unwrap();
    owned(&calls.iter().filter(|call| report.denied.contains(&operation(call))).copied().collect::<Vec<_>>())
}

/// `calls` in the order a report lists them.
fn owned(calls: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut owned: Vec<(String, String)> = calls.iter().map(|(a, r)| (a.to_string(), r.to_string())).collect();
    owned.sort();
    owned
}

#[test]
fn deploy_wave_may_do_what_cloud_targets_need_and_nothing_to_baton_itself() {
    let template = template_with(&[("ArtifactBucket", "acme-builds")]);
    // What the ECS and Lambda deployers call (crates/aws/src/ecs.rs, lambda.rs), on a customer's resources.
    let needed = [
        ("ecs:DescribeServices", "arn:aws:ecs:us-east-1:123456789012:service/web/web"),
        ("ecs:RegisterTaskDefinition", "*"),
        // A copied task definition's tags: RegisterTaskDefinition tags the revision it creates.
        ("ecs:TagResource", "arn:aws:ecs:us-east-1:123456789012:task-definition/web:8 ecs:CreateAction=RegisterTaskDefinition"),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/web-task iam:PassedToService=ecs-tasks.amazonaws.com"),
        ("lambda:UpdateFunctionCode", "arn:aws:lambda:us-east-1:123456789012:function:checkout"),
        // Lambda reads a zip from S3 with the caller's credentials.
        ("s3:GetObject", "arn:aws:s3:::acme-builds/checkout/4f2a9c1e.zip"),
        ("lambda:UpdateAlias", "arn:aws:lambda:us-east-1:123456789012:function:checkout:live"),
    ];
    assert_eq!(refused(&template, "DeployWaveFunction", &needed), vec![], "what cloud targets need");
    let tag_grant = template.properties("DeployWaveFunction").unwrap()["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == json!(["ecs:TagResource"]))
        .cloned()
        .expect("an ecs:TagResource statement");
    assert_eq!(tag_grant["Condition"], json!({"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}), "tags only new revisions");

    // A catalog that names Baton's own functions or roles, another bucket, or a role to assume
    // that no one allowed, cannot use deploy-wave's role for it.
    let deploy_wave = template.arn("DeployWaveFunction").unwrap();
    let load_catalog = template.arn("LoadCatalogFunction").unwrap();
    let own_role = template.arn("DeployWaveFunctionRole").unwrap();
    let takeover = [
        ("lambda:UpdateFunctionCode", deploy_wave.as_str()),
        ("lambda:UpdateAlias", &format!("{load_catalog}:live")),
        ("iam:PassRole", &format!("{own_role} iam:PassedToService=ecs-tasks.amazonaws.com")),
        ("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/x.zip"),
        // Tagging outside a registration, and a role passed to another service.
        ("ecs:TagResource", "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7"),
        ("ecs:TagResource", "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7 ecs:CreateAction=CreateService"),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/web-task iam:PassedToService=lambda.amazonaws.com"),
        ("sts:AssumeRole", "arn:aws:iam::210987654321:role/admin"),
    ];
    assert_eq!(refused(&template, "DeployWaveFunction", &takeover), owned(&takeover));
    // Without an artifact bucket, no S3 grant at all.
    let plain = template_with(&[]);
    assert_eq!(refused(&plain, "DeployWaveFunction", &needed[5..6]), owned(&needed[5..6]));
}

#[test]
fn item_grants_under_a_leading_key_condition_reach_only_their_items() {
    let template = template_with(&[]);
    let table = template.arn("ReleaseTable").unwrap();
    let call = |key: &str| format!("{table} dynamodb:Key/PK={key} dynamodb:Key/SK=x");
    let (lock, release, delivery) = (call("LOCK#web#prod"), call("REL#01J"), call("DELIVERY#42"));
    // record-metrics frees the lock it closes, and deletes nothing else.
    assert_eq!(refused(&template, "RecordMetricsFunction", &[("dynamodb:DeleteItem", &lock)]), vec![]);
    let other = [("dynamodb:DeleteItem", release.as_str())];
    assert_eq!(refused(&template, "RecordMetricsFunction", &other), owned(&other));
    // The public webhook writes delivery claims, and takes (or parks again) the waits of a
    // finished workflow run, telling their tasks; it reads no release and touches no lock.
    let wait = call("WAIT#build:github-actions:4242");
    let machine = template.reference("ReleaseStateMachine").unwrap();
    let webhook = [
        ("dynamodb:PutItem", delivery.as_str()),
        ("dynamodb:Query", wait.as_str()),
        ("dynamodb:DeleteItem", wait.as_str()),
        ("dynamodb:PutItem", wait.as_str()),
        ("states:SendTaskSuccess", machine.as_str()),
        ("states:SendTaskFailure", machine.as_str()),
    ];
    assert_eq!(refused(&template, "GitHubWebhookFunction", &webhook), vec![]);
    let other_machine = machine.replace("ReleaseStateMachine", "SomeoneElsesMachine");
    let takeover = [
        ("dynamodb:PutItem", release.as_str()),
        ("dynamodb:DeleteItem", lock.as_str()),
        ("dynamodb:Query", release.as_str()),
        ("dynamodb:GetItem", wait.as_str()),
        ("states:SendTaskSuccess", other_machine.as_str()),
        ("states:StopExecution", machine.as_str()),
    ];
    assert_eq!(refused(&template, "GitHubWebhookFunction", &takeover), owned(&takeover));
}

#[test]
fn conditions_are_evaluated_as_iam_evaluates_them() {
    use baton_local_stack::iam::Condition;
    let condition = |operator: &str, values: &[&str]| Condition {
        operator: operator.into(),
        key: "k".into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let context = |values: &[&str]| BTreeMap::from([("K".to_string(), values.iter().map(|v| v.to_string()).collect())]);
    let none = BTreeMap::new();
    // (condition, request values or none, holds)
    let cases = [
        (condition("StringEquals", &["a"]), Some(context(&["a"])), true),
        (condition("StringEquals", &["a"]), Some(context(&["A"])), false),
        (condition("StringEquals", &["a"]), None, false),
        (condition("StringEqualsIfExists", &["a"]), None, true),
        (condition("StringNotEquals", &["a"]), None, true),
        (condition("StringNotEquals", &["a"]), Some(context(&["a"])), false),
        (condition("StringLike", &["LOCK#*"]), Some(context(&["LOCK#web"])), true),
        (condition("ForAllValues:StringLike", &["LOCK#*"]), Some(context(&["LOCK#web", "REL#1"])), false),
        (condition("ForAllValues:StringLike", &["LOCK#*"]), None, true),
        (condition("ForAnyValue:StringLike", &["LOCK#*"]), Some(context(&["LOCK#web", "REL#1"])), true),
        (condition("ForAnyValue:StringLike", &["LOCK#*"]), None, false),
        (condition("ArnEquals", &["arn:aws:events:*:1:rule/r"]), Some(context(&["arn:aws:events:us-east-1:1:rule/r"])), true),
        (condition("Bool", &["true"]), Some(context(&["True"])), true),
    ];
    for (condition, request, holds) in cases {
        assert_eq!(condition.holds(request.as_ref().unwrap_or(&none)), holds, "{condition:?} on {request:?}");
    }
}

#[test]
fn roles_in_other_accounts_and_customer_keys_are_granted_only_through_parameters() {
    let deployer = "arn:aws:iam::210987654321:role/baton-deployer";
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let plain = template_with(&[]);
    let granted = template_with(&[("AssumableRoleArns", deployer), ("SecretsKmsKeyArns", key)]);
    for principal in ["TriggerBuildFunction", "PollBuildFunction", "DeployWaveFunction", "CheckHealthFunction"] {
        let assume = [("sts:AssumeRole", deployer)];
        assert_eq!(refused(&plain, principal, &assume), owned(&assume), "{principal}: no role to assume by default");
        assert_eq!(refused(&granted, principal, &assume), vec![], "{principal}: the listed role");
        let other = [("sts:AssumeRole", "arn:aws:iam::210987654321:role/admin")];
        assert_eq!(refused(&granted, principal, &other), owned(&other), "{principal}: only the listed role");
        // Target accounts' trust policies name these roles.
        let role = format!("{}Role", principal);
        let output = principal.strip_suffix("Function").unwrap().to_string() + "RoleArn";
        assert_eq!(granted.output(&output).unwrap(), granted.arn(&role).unwrap(), "{principal}'s role is a stack output");
    }
    for principal in ["TriggerBuildFunction", "PollBuildFunction", "DeployWaveFunction", "CheckHealthFunction", "NotifyFunction"] {
        let through_secrets_manager = format!("{key} kms:ViaService=secretsmanager.eu-west-1.amazonaws.com");
        let decrypt = [("kms:Decrypt", through_secrets_manager.as_str())];
        assert_eq!(refused(&plain, principal, &decrypt), owned(&decrypt), "{principal}: no key by default");
        assert_eq!(refused(&granted, principal, &decrypt), vec![], "{principal} reads secrets under the customer's key");
        let direct = [("kms:Decrypt", key)];
        assert_eq!(refused(&granted, principal, &direct), owned(&direct), "{principal}: the key only through Secrets Manager");
    }
}

#[test]
fn poll_tasks_retry_the_lambda_runtime_s_own_failures() {
    let definition: Value = serde_json::from_str(&template().state_machine_definition("ReleaseStateMachine").unwrap()).unwrap();
    let mut found = Vec::new();
    find_states(&definition, &mut found);
    for poll in ["WaitForBuild", "WaitForWave", "WaitForWaveRollback", "WatchHealth"] {
        let state = found.iter().find(|(name, _)| name == poll).map(|(_, s)| s).unwrap_or_else(|| panic!("no state {poll}"));
        let retried: Vec<&str> = state["Retry"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
            .filter_map(Value::as_str)
            .collect();
        for error in ["Lambda.ClientExecutionTimeoutException", "Lambda.Unknown", "Sandbox.Timedout"] {
            assert!(retried.contains(&error), "{poll} does not retry {error}: {retried:?}");
        }
    }
}

fn find_states(value: &Value, out: &mut Vec<(String, Value)>) {
    if let Some(states) = value.get("States").and_then(Value::as_object) {
        for (name, state) in states {
            out.push((name.clone(), state.clone()));
            for key in ["Iterator", "ItemProcessor"] {
                if let Some(inner) = state.get(key) {
                    find_states(inner, out);
                }
            }
            for branch in state.get("Branches").and_then(Value::as_array).into_iter().flatten() {
                find_states(branch, out);
            }
        }
    }
}

#[test]
fn the_dead_letter_queue_has_an_alarm_and_the_alarm_topic_takes_cloudwatch_s_messages() {
    let template = template();
    let queue = template.physical_name("ReleaseStartDeadLetterQueue").unwrap();
    let alarms: Vec<Value> = template.of_type("AWS::CloudWatch::Alarm").map(|id| template.properties(id).unwrap()).collect();
    assert!(
        alarms.iter().any(|a| a["Namespace"] == "AWS/SQS" && a["Dimensions"][0]["Value"] == queue.as_str()),
        "no alarm on the dead-letter queue {queue}"
    );
    // CloudWatch cannot use the AWS-managed SNS key: alarms to a topic under it never arrive.
    let topic = template.properties("AlarmTopic").unwrap();
    assert_ne!(topic.get("KmsMasterKeyId").and_then(Value::as_str), Some("alias/aws/sns"));
}

#[test]
fn the_state_machine_logs_under_vended_logs_and_samconfig_names_only_template_parameters() {
    let template = template();
    let group = template.physical_name("ReleaseStateMachineLogs").unwrap();
    assert!(group.starts_with("/aws/vendedlogs/"), "{group}");
    let samconfig = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/samconfig.toml")).unwrap();
    let parameters = template.parameters();
    for line in samconfig.lines().filter(|l| l.trim_start().starts_with("parameter_overrides")) {
        let value = line.split_once('=').unwrap().1.trim().trim_matches('"');
        for name in value.split_whitespace().filter_map(|pair| pair.split_once('=')).map(|(name, _)| name) {
            assert!(parameters.contains_key(name), "samconfig.toml overrides {name}, which the template does not declare");
        }
    }
}

#[test]
fn catalog_validation_holds_secrets_to_the_prefixes_the_template_grants() {
    use baton_domain::catalog::validate::{NOTIFY_SECRETS, PROVIDER_SECRETS};
    let template = template();
    let readers = [
        ("NotifyFunction", NOTIFY_SECRETS),
        ("TriggerBuildFunction", PROVIDER_SECRETS),
        ("PollBuildFunction", PROVIDER_SECRETS),
        ("DeployWaveFunction", PROVIDER_SECRETS),
        ("CheckHealthFunction", PROVIDER_SECRETS),
    ];
    for (principal, prefix) in readers {
        let reads = [
            ("secretsmanager:GetSecretValue", format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{prefix}token-AbCdEf")),
            ("ssm:GetParameter", format!("arn:aws:ssm:eu-west-1:123456789012:parameter/{prefix}token")),
        ];
        let reads: Vec<(&str, &str)> = reads.iter().map(|(a, r)| (*a, r.as_str())).collect();
        assert_eq!(refused(&template, principal, &reads), vec![], "{principal} reads what `catalog validate --cloud` lets it name");
    }
}

#[test]
fn a_grant_other_grants_cover_is_not_needed() {
    // The stack's credentials secret lies under `baton/providers/`, which another grant allows too:
    // taking either grant out would deny nothing.
    let template = template_with(&[]);
    let secret = template.arn("ProviderCredentialsSecret").unwrap();
    let reads = iam::read_operations(&format!("secretsmanager:GetSecretValue {secret}"), "eu-west-1", "123456789012");
    let needed = iam::needed(&template, "TriggerBuildFunction", &reads).unwrap();
    let resources: Vec<&str> = needed.iter().map(|(grant, _)| grant.resource.as_str()).collect();
    assert_eq!(resources, ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:baton/providers/*", secret.as_str()], "{needed:?}");
    assert!(needed.iter().all(|(_, only_this)| only_this.is_empty()), "{needed:?}");
    // The bucket grant alone allows reading a zip: without it, the read is denied.
    let template = template_with(&[("ArtifactBucket", "acme-builds")]);
    let zip = iam::read_operations("s3:GetObject arn:aws:s3:::acme-builds/checkout/1.zip", "eu-west-1", "123456789012");
    let needed = iam::needed(&template, "DeployWaveFunction", &zip).unwrap();
    assert_eq!(needed.len(), 1, "{needed:?}");
    assert_eq!(needed[0].1, zip.into_iter().collect::<Vec<_>>());
}

/// EventBridge's matching for the kinds of pattern the template's rules use (lists of values,
/// nested objects): every field the pattern names holds one of its values.
fn matches_pattern(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().is_some_and(|fields| {
        fields.iter().all(|(name, wanted)| match wanted {
            Value::Array(values) => event.get(name).is_some_and(|found| values.contains(found)),
            nested => event.get(name).is_some_and(|found| matches_pattern(nested, found)),
        })
    })
}

#[test]
fn the_provider_events_rules_let_through_every_provider_event_sample_and_no_progress() {
    let template = template();
    let function = template.resource("ProviderEventsFunction").unwrap();
    let rules = function.pointer("/Properties/Events").and_then(Value::as_object).expect("the function's events");
    let patterns: Vec<&Value> =
        rules.values().filter(|event| event["Type"] == "EventBridgeRule").map(|rule| &rule["Properties"]["Pattern"]).collect();
    let read = |path: &Path| -> Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("provider-events-") {
            assert!(
                patterns.iter().any(|pattern| matches_pattern(pattern, &read(&path))),
                "{name}: no rule of ProviderEventsFunction matches it"
            );
            samples.push(name);
        }
    }
    assert!(samples.iter().any(|name| name.contains("ecs")), "{samples:?}");
    // A deployment under way is nothing to deliver: the rule leaves it on the bus.
    let mut in_progress = read(&dir.join("provider-events-ecs-deployment.json"));
    in_progress["detail"]["eventName"] = "SERVICE_DEPLOYMENT_IN_PROGRESS".into();
    assert!(!patterns.iter().any(|pattern| matches_pattern(pattern, &in_progress)));
}

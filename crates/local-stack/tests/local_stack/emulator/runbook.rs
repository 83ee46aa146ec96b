//! docs/aws.md's runbook, "From nothing to the first release", run as written: every block fenced
//! `sh local`, in order, each by bash with `-euo pipefail`, against LocalStack and moto, with the
//! `baton` this build made first on PATH. A command that fails fails the test, naming its step.
//! What CloudFormation would have done before (steps 3-4: the stack's tables, secrets and alarm
//! topic, and the outputs exported) is done here first, on a fresh stack.

use super::cloud::EXAMPLE_SECRETS;
use super::stack::{function_binaries, repo, stack_with};
use std::collections::BTreeMap;
use std::process::Command;

const SECTION: &str = "## From nothing to the first release";

/// The section's blocks fenced `sh local`, in order, without the list item's indentation.
fn runnable_blocks(markdown: &str) -> Vec<String> {
    let start = markdown.find(SECTION).unwrap_or_else(|| panic!("docs/aws.md has no section {SECTION:?}"));
    let section = &markdown[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim_start() != "```sh local" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim_start() != "```").collect();
        blocks.push(body.iter().map(|l| l.get(indent..).unwrap_or(l.trim_start())).collect::<Vec<_>>().join("\n"));
    }
    blocks
}

/// Runs `script` with bash in the repository, with `env`; its stdout, or a panic naming what failed.
fn bash(script: &str, env: &BTreeMap<String, String>, what: &str) -> String {
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(repo(""))
        .envs(env)
        .output()
        .unwrap_or_else(|e| panic!("run bash for {what}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed ({}):\n{script}\n--- stdout\n{stdout}--- stderr\n{stderr}", output.status);
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_the_runbook_that_can_run_here_runs_in_order() {
    let markdown = std::fs::read_to_string(repo("docs/aws.md")).unwrap();
    let blocks = runnable_blocks(&markdown);
    assert!(blocks.len() >= 5, "the runbook's `sh local` blocks: {blocks:?}");
    // The runbook creates the examples' secrets; the cloud release test sets them too.
    let _examples = EXAMPLE_SECRETS.lock().await;

    let state = tempfile::tempdir().unwrap();
    let parameters = BTreeMap::from([("ArtifactBucket".to_string(), "baton-local-artifacts".to_string())]);
    let stack = stack_with(state.path(), repo("examples/cloud"), parameters, Vec::new()).await;
    let template = stack.template();
    let stack_name = template.names().stack_name.clone();
    let path = format!("{}:{}", function_binaries().display(), std::env::var("PATH").unwrap_or_default());
    let moto = std::env::var("AWS_ENDPOINT_URL_ECS").expect("AWS_ENDPOINT_URL_ECS (moto): run scripts/emulators.sh env");
    let mut env = BTreeMap::from([
        ("PATH".to_string(), path),
        ("STACK".to_string(), stack_name),
        ("CATALOG_DIR".to_string(), "examples/cloud".to_string()),
        ("DATADOG_API_KEY".to_string(), "dd-api".to_string()),
        ("DATADOG_APP_KEY".to_string(), "dd-app".to_string()),
        // The AWS CLI v1 reads the region from here; SNS is moto's (LocalStack runs none).
        ("AWS_DEFAULT_REGION".to_string(), template.names().region.clone()),
        ("AWS_ENDPOINT_URL_SNS".to_string(), moto),
        ("BATON_STATE_MACHINE_ARN".to_string(), template.output("StateMachineArn").unwrap()),
        ("BATON_RELEASE_TABLE".to_string(), template.output("ReleaseTableName").unwrap()),
        ("BATON_CATALOG_TABLE".to_string(), template.output("CatalogTableName").unwrap()),
        ("BATON_SCHEDULE_GROUP".to_string(), template.output("ScheduleGroupName").unwrap()),
        ("BATON_SCHEDULE_ROLE_ARN".to_string(), template.output("ScheduleRoleArn").unwrap()),
        ("BATON_SCHEDULE_DLQ_ARN".to_string(), template.output("ReleaseStartDeadLetterQueueArn").unwrap()),
    ]);
    // Steps 3-4 on a fresh account: the secrets, schedule group and topic the stack creates, no
    // example secrets yet.
    let created = bash(
        r#"aws scheduler create-schedule-group --name "$BATON_SCHEDULE_GROUP" >/dev/null
aws secretsmanager create-secret --name "baton/providers/$STACK-credentials" >/dev/null
aws secretsmanager create-secret --name "baton/slack/$STACK-token" >/dev/null
for name in baton/providers/datadog-api-key baton/providers/datadog-app-key; do
  aws secretsmanager delete-secret --secret-id "$name" --force-delete-without-recovery >/dev/null 2>&1 || true
done
echo "WEBHOOK_SECRET_ARN=$(aws secretsmanager create-secret --name "$STACK-webhook" --secret-string local-webhook-secret --query ARN --output text)"
echo "ALARM_TOPIC_ARN=$(aws sns create-topic --name "$STACK-alarms" --query TopicArn --output text)""#,
        &env,
        "the stack's set-up (steps 3-4)",
    );
    env.extend(created.lines().filter_map(|line| line.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())));

    for (number, block) in blocks.iter().enumerate() {
        let out = bash(block, &env, &format!("the runbook's `sh local` block {} of {}", number + 1, blocks.len()));
        eprintln!("block {}:\n{block}\n--> {out}", number + 1);
    }

    // What the blocks left: the example's secrets, its catalog in the stack's table, the webhook's secret read.
    let check = bash(
        r#"aws secretsmanager get-secret-value --secret-id baton/providers/datadog-api-key --query SecretString --output text
aws dynamodb get-item --table-name "$BATON_CATALOG_TABLE" --key '{"service": {"S": "inventory-api"}}' --query 'Item.service.S' --output text"#,
        &env,
        "reading back what the runbook did",
    );
    assert_eq!(check.lines().collect::<Vec<_>>(), ["dd-api", "inventory-api"], "{check}");
    stack.shutdown();
}

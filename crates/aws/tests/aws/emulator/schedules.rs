//! Catalog schedules synced to EventBridge Scheduler on LocalStack (which stores them; it never fires them).

use crate::common;

use baton_aws::scheduler::{ScheduleTarget, SyncReport, SyncScope, list_schedules, schedule_name, sync_schedules};
use baton_domain::catalog::ServiceEntry;
use baton_domain::release::{Signal, TriggerKind};
use serde_json::json;

fn entry(name: &str, schedule: Option<&str>, feature_branch: Option<&str>) -> ServiceEntry {
    serde_json::from_value(json!({
        "name": name,
        "schema": "v2.2",
        "team": "payments",
        "source": "catalog/services.yaml",
        "delivery": {
            "environment": "production",
            "release-branch": "main",
            "feature-branch": feature_branch,
            "schedule": schedule,
            "build": {"provider": "command", "command": ["make", "build"]},
            "deploy": {"provider": "command", "command": ["./deploy.sh"], "waves": [{"name": "all", "targets": ["eu-1"]}]},
            "health": {"gates": [{"provider": "command", "command": ["./healthy.sh"]}]}
        }
    }))
    .expect("a valid service entry")
}

#[tokio::test]
async fn schedules_follow_the_catalog() {
    let config = common::sdk_config().await;
    let client = aws_sdk_scheduler::Client::new(&config);
    let group = common::unique("baton");
    client.create_schedule_group().name(&group).send().await.expect("create schedule group");
    let target = ScheduleTarget {
        state_machine_arn: "arn:aws:states:us-east-1:000000000000:stateMachine:baton-release".into(),
        role_arn: common::service_role(&config, "scheduler").await,
        dead_letter_arn: Some("arn:aws:sqs:us-east-1:000000000000:baton-release-start-dlq".into()),
    };

    let catalog = [
        entry("nightly", Some("cron(0 2 * * ? *)"), Some("develop")),
        entry("hourly", Some("rate(1 hour)"), None),
        entry("merge-only", None, None),
    ];
    let report = sync_schedules(&client, &group, &catalog, &target, SyncScope::Services).await.expect("first sync");
    assert_eq!(report, SyncReport { created: vec![schedule_name("hourly"), schedule_name("nightly")], ..SyncReport::default() });

    let nightly = client.get_schedule().group_name(&group).name("baton-nightly").send().await.expect("get schedule");
    assert_eq!(nightly.schedule_expression(), Some("cron(0 2 * * ? *)"));
    let scheduled_target = nightly.target().expect("target");
    assert_eq!(scheduled_target.arn(), target.state_machine_arn);
    let signal: Signal = serde_json::from_str(scheduled_target.input().expect("input")).expect("the input is a Signal");
    assert_eq!(signal.service, "nightly");
    assert_eq!(signal.branch.as_deref(), Some("develop"), "a schedule releases the feature branch");
    assert_eq!(signal.trigger.kind, TriggerKind::Schedule);
    assert_eq!(signal.trigger.id, "<aws.scheduler.scheduled-time>");

    let unchanged = sync_schedules(&client, &group, &catalog, &target, SyncScope::Services).await.expect("second sync");
    assert_eq!(unchanged.unchanged, vec![schedule_name("hourly"), schedule_name("nightly")]);
    assert!(unchanged.created.is_empty() && unchanged.updated.is_empty() && unchanged.deleted.is_empty());

    let changed = [entry("nightly", Some("cron(0 3 * * ? *)"), Some("develop")), entry("hourly", None, None)];
    let report = sync_schedules(&client, &group, &changed, &target, SyncScope::Services).await.expect("third sync");
    assert_eq!(report.updated, vec![schedule_name("nightly")]);
    assert_eq!(report.deleted, vec![schedule_name("hourly")]);
    assert_eq!(list_schedules(&client, &group).await.unwrap().into_iter().collect::<Vec<_>>(), vec![schedule_name("nightly")]);
    let nightly = client.get_schedule().group_name(&group).name("baton-nightly").send().await.expect("get schedule");
    assert_eq!(nightly.schedule_expression(), Some("cron(0 3 * * ? *)"));

    // Another service repository pushes its own catalog: nightly's schedule stays...
    let other = [entry("weekly", Some("rate(7 days)"), None)];
    let report = sync_schedules(&client, &group, &other, &target, SyncScope::Services).await.expect("another service's sync");
    assert_eq!(report, SyncReport { created: vec![schedule_name("weekly")], ..SyncReport::default() });
    // ...unless the push asks for a full sync.
    let report = sync_schedules(&client, &group, &other, &target, SyncScope::All).await.expect("full sync");
    assert_eq!(report.deleted, vec![schedule_name("nightly")]);
}

//! EventBridge Scheduler schedules from the catalog: one per service with a `schedule`,
//! named `baton-<service>`, starting the release state machine with a schedule signal.

use crate::error::AwsError;
use crate::names::bounded_name;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target};
use baton_domain::catalog::ServiceEntry;
use baton_domain::release::{Signal, Trigger, TriggerKind};
use std::collections::{BTreeMap, BTreeSet};

/// Every schedule Baton manages in its group starts with this; others are left alone.
pub const SCHEDULE_PREFIX: &str = "baton-";
const MAX_SCHEDULE_NAME_LEN: usize = 64;
/// Scheduler replaces this in the target input with the firing time: each firing is a distinct signal.
const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";
/// A firing StartExecution refused (throttled, the state machine being updated) is retried
/// for up to an hour, then goes to the dead-letter queue rather than vanish.
const RETRY_ATTEMPTS: i32 = 10;
const RETRY_MAX_AGE_SECONDS: i32 = 3600;

/// What the schedules start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTarget {
    pub state_machine_arn: String,
    /// Role Scheduler assumes to call `states:StartExecution` (and send to the dead-letter queue).
    pub role_arn: String,
    /// SQS queue that receives firings that could not start an execution after the retries.
    pub dead_letter_arn: Option<String>,
}

/// Which `baton-*` schedules a sync may delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncScope {
    /// Only those of the services being synced: a service repository pushing its own catalog
    /// leaves the other services' schedules alone.
    Services,
    /// Every `baton-*` schedule of a service not in the synced set (`--prune-schedules`).
    All,
}

/// Schedule names by what [`sync_schedules`] did to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub deleted: Vec<String>,
}

/// `baton-<service>`, within Scheduler's 64 characters of `[0-9A-Za-z-_.]`.
pub fn schedule_name(service: &str) -> String {
    bounded_name(&format!("{SCHEDULE_PREFIX}{service}"), MAX_SCHEDULE_NAME_LEN, false, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    })
}

/// The schedule for one catalog entry: (name, expression, target input), if it has a schedule.
/// A scheduled release ships the feature branch when there is one, the release branch otherwise.
fn desired(entry: &ServiceEntry) -> Option<(String, String, String)> {
    let expression = entry.delivery.schedule.clone()?;
    let name = schedule_name(&entry.name);
    let signal = Signal {
        service: entry.name.clone(),
        environment: Some(entry.delivery.environment.clone()),
        sha: None,
        branch: Some(entry.delivery.feature_branch.clone().unwrap_or_else(|| entry.delivery.release_branch.clone())),
        trigger: Trigger::new(TriggerKind::Schedule, SCHEDULED_TIME.into(), Some(name.clone())),
        changed_at: None,
    };
    let input = serde_json::to_string(&signal).expect("a Signal always serialises");
    Some((name, expression, input))
}

/// The schedule's target: the state machine started with `input`, with retries and a dead-letter queue.
fn schedule_target(target: &ScheduleTarget, input: &str) -> Result<Target, AwsError> {
    let retries = RetryPolicy::builder().maximum_retry_attempts(RETRY_ATTEMPTS).maximum_event_age_in_seconds(RETRY_MAX_AGE_SECONDS).build();
    Target::builder()
        .arn(&target.state_machine_arn)
        .role_arn(&target.role_arn)
        .input(input)
        .retry_policy(retries)
        .set_dead_letter_config(target.dead_letter_arn.as_ref().map(|arn| DeadLetterConfig::builder().arn(arn).build()))
        .build()
        .map_err(|e| AwsError::unexpected("CreateSchedule", e.to_string()))
}

/// Makes the group's `baton-*` schedules of `entries` match them: creates missing ones, updates
/// those whose expression or target differ, deletes those whose service no longer has a
/// schedule; with [`SyncScope::All`], also deletes those of services not in `entries`.
pub async fn sync_schedules(
    client: &Client,
    group: &str,
    entries: &[ServiceEntry],
    target: &ScheduleTarget,
    scope: SyncScope,
) -> Result<SyncReport, AwsError> {
    let wanted: BTreeMap<String, (String, String)> =
        entries.iter().filter_map(desired).map(|(name, expr, input)| (name, (expr, input))).collect();
    let synced: BTreeSet<String> = entries.iter().map(|entry| schedule_name(&entry.name)).collect();
    let existing = list_schedules(client, group).await?;
    let mut report = SyncReport::default();

    for (name, (expression, input)) in &wanted {
        let new_target = schedule_target(target, input)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| AwsError::unexpected("CreateSchedule", e.to_string()))?;
        // CreateSchedule and UpdateSchedule take the same fields through distinct builder types.
        macro_rules! schedule_request {
            ($builder:expr, $operation:literal) => {
                $builder
                    .group_name(group)
                    .name(name)
                    .schedule_expression(expression)
                    .flexible_time_window(window)
                    .target(new_target)
                    .state(ScheduleState::Enabled)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk($operation, e))
            };
        }
        if !existing.contains(name) {
            schedule_request!(client.create_schedule(), "CreateSchedule")?;
            report.created.push(name.clone());
            continue;
        }
        let current = client.get_schedule().group_name(group).name(name).send().await.map_err(|e| AwsError::from_sdk("GetSchedule", e))?;
        // Compared field by field: AWS may fill in defaults we never set.
        let same = current.schedule_expression() == Some(expression.as_str())
            && current.state() == Some(&ScheduleState::Enabled)
            && current.target().is_some_and(|t| {
                t.arn() == new_target.arn()
                    && t.role_arn() == new_target.role_arn()
                    && t.input() == new_target.input()
                    && t.retry_policy() == new_target.retry_policy()
                    && t.dead_letter_config().and_then(|d| d.arn()) == new_target.dead_letter_config().and_then(|d| d.arn())
            });
        if same {
            report.unchanged.push(name.clone());
            continue;
        }
        schedule_request!(client.update_schedule(), "UpdateSchedule")?;
        report.updated.push(name.clone());
    }

    let deletable = |name: &&String| !wanted.contains_key(*name) && (scope == SyncScope::All || synced.contains(*name));
    for name in existing.iter().filter(deletable) {
        client.delete_schedule().group_name(group).name(name).send().await.map_err(|e| AwsError::from_sdk("DeleteSchedule", e))?;
        report.deleted.push(name.clone());
    }
    Ok(report)
}

/// Names of the `baton-*` schedules in `group`.
pub async fn list_schedules(client: &Client, group: &str) -> Result<BTreeSet<String>, AwsError> {
    let mut pages = client.list_schedules().group_name(group).name_prefix(SCHEDULE_PREFIX).into_paginator().send();
    let mut names = BTreeSet::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("ListSchedules", e))?;
        names.extend(page.schedules().iter().filter_map(|s| s.name()).map(str::to_string));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_names_are_prefixed_and_bounded() {
        assert_eq!(schedule_name("payments-api"), "baton-payments-api");
        let long = schedule_name(&"s".repeat(100));
        assert!(long.len() <= MAX_SCHEDULE_NAME_LEN && long.starts_with(SCHEDULE_PREFIX));
        assert_ne!(schedule_name("a/b"), schedule_name("a:b"));
    }

    #[test]
    fn targets_retry_then_dead_letter() {
        let target = ScheduleTarget {
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:m".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
            dead_letter_arn: Some("arn:aws:sqs:us-east-1:1:dlq".into()),
        };
        let built = schedule_target(&target, "{}").unwrap();
        let retries = built.retry_policy().unwrap();
        assert_eq!((retries.maximum_retry_attempts(), retries.maximum_event_age_in_seconds()), (Some(10), Some(3600)));
        assert_eq!(built.dead_letter_config().and_then(|d| d.arn()), Some("arn:aws:sqs:us-east-1:1:dlq"));
    }
}

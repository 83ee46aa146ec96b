//! One release for every signal: the shapes an execution's input can take, made into a [`Signal`].

use baton_domain::error::{ErrorName, TaskError};
use baton_domain::release::{MERGE_DETAIL_TYPE, MERGE_SOURCE, MergeEvent, Signal, Trigger, TriggerKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// What a person, the CLI, a schedule or an input transformer sends: `{"service": "payments-api"}` at least.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    service: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    trigger: Option<Trigger>,
    #[serde(default)]
    changed_at: Option<DateTime<Utc>>,
}

const REQUEST_SHAPE: &str = "expected {\"service\": \"<name>\"} with optional environment, sha, branch, trigger {kind, id, actor, repository, branch_override, freeze_override}, changed_at; or an EventBridge merge event";

pub fn normalise(input: &Value, execution: &str) -> Result<Signal, TaskError> {
    let invalid = |message: String| TaskError::new(ErrorName::InputInvalid, message);
    let object = input.as_object().ok_or_else(|| invalid(format!("execution input is not a JSON object: {REQUEST_SHAPE}")))?;

    if object.contains_key("detail-type") {
        let source = object.get("source").and_then(Value::as_str).unwrap_or_default();
        let detail_type = object.get("detail-type").and_then(Value::as_str).unwrap_or_default();
        if source != MERGE_SOURCE || detail_type != MERGE_DETAIL_TYPE {
            return Err(invalid(format!(
                "EventBridge event from source '{source}' with detail-type '{detail_type}' does not start releases (expected source '{MERGE_SOURCE}', detail-type '{MERGE_DETAIL_TYPE}')"
            )));
        }
        let detail: MergeEvent = serde_json::from_value(object.get("detail").cloned().unwrap_or(Value::Null)).map_err(|err| {
            invalid(format!("merge event detail: {err} (expected repository, full_name, branch, sha, pull_request, author, merged_at)"))
        })?;
        // The repository's name is the service's (one repository per service); an owner prefix is dropped.
        // Admission checks the owner: the entry must declare `full_name`.
        let service = detail.repository.rsplit('/').next().unwrap_or(&detail.repository).to_owned();
        return finish(Signal {
            service,
            environment: None,
            sha: Some(detail.sha),
            branch: Some(detail.branch),
            trigger: Trigger {
                repository: Some(detail.full_name.clone()),
                ..Trigger::new(TriggerKind::Merge, format!("{}#{}", detail.full_name, detail.pull_request), Some(detail.author))
            },
            changed_at: Some(detail.merged_at),
        });
    }

    let request: Request =
        serde_json::from_value(input.clone()).map_err(|err| invalid(format!("execution input: {err}; {REQUEST_SHAPE}")))?;
    let trigger = request.trigger.unwrap_or_else(|| Trigger::new(TriggerKind::Console, execution.to_owned(), None));
    finish(Signal {
        service: request.service,
        environment: request.environment,
        sha: request.sha,
        branch: request.branch,
        trigger,
        changed_at: request.changed_at,
    })
}

fn finish(signal: Signal) -> Result<Signal, TaskError> {
    let invalid = |message: String| Err(TaskError::new(ErrorName::InputInvalid, message));
    if signal.service.trim().is_empty() {
        return invalid("execution input: `service` is empty; expected a service name from the catalog".into());
    }
    if signal.trigger.id.trim().is_empty() {
        return invalid(
            "execution input: `trigger.id` is empty; expected what identifies this signal (PR, schedule time, invocation id)".into(),
        );
    }
    if let Some(sha) = &signal.sha
        && (sha.is_empty() || sha.len() > 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return invalid(format!("execution input: `sha` is '{sha}'; expected a hexadecimal commit id"));
    }
    if signal.trigger.freeze_override.as_deref().is_some_and(|reason| reason.trim().is_empty()) {
        return invalid(
            "execution input: `trigger.freeze_override` is empty; expected why the release may pass the freeze (a hotfix's reason)".into(),
        );
    }
    Ok(signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn console_input_names_only_the_service() {
        let signal = normalise(&json!({"service": "payments-api"}), "exec-1").unwrap();
        assert_eq!(signal.service, "payments-api");
        assert_eq!(signal.trigger, Trigger::new(TriggerKind::Console, "exec-1".into(), None));
        assert_eq!(signal.branch, None);
    }

    #[test]
    fn merge_event_becomes_a_merge_signal() {
        let event = json!({
            "version": "0", "id": "e1", "source": "baton.github", "detail-type": "Pull Request Merged",
            "time": "2026-11-26T10:00:00Z", "region": "us-east-1", "account": "123456789012", "resources": [],
            "detail": {"repository": "payments-api", "full_name": "acme/payments-api", "branch": "main", "sha": "0123abcd", "pull_request": 42,
                       "author": "ada", "merged_at": "2026-11-26T09:59:00Z"}
        });
        let signal = normalise(&event, "exec").unwrap();
        assert_eq!(signal.service, "payments-api");
        assert_eq!(signal.sha.as_deref(), Some("0123abcd"));
        assert_eq!(signal.trigger.kind, TriggerKind::Merge);
        assert_eq!(signal.trigger.id, "acme/payments-api#42");
        assert_eq!(signal.trigger.repository.as_deref(), Some("acme/payments-api"), "the owner travels to admission");
        assert_eq!(signal.changed_at.unwrap().to_rfc3339(), "2026-11-26T09:59:00+00:00");
    }

    #[test]
    fn other_events_are_refused_by_name() {
        let err = normalise(&json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}), "x")
            .unwrap_err();
        assert_eq!(err.error, ErrorName::InputInvalid);
        assert!(err.cause.contains("aws.ec2"), "{}", err.cause);
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err = normalise(&json!({"servce": "x"}), "x").unwrap_err();
        assert!(err.cause.contains("servce"), "{}", err.cause);
        let err = normalise(&json!({"service": "x", "sha": "not-a-sha"}), "x").unwrap_err();
        assert!(err.cause.contains("sha"), "{}", err.cause);
        let err = normalise(&json!([1]), "x").unwrap_err();
        assert!(err.cause.contains("not a JSON object"), "{}", err.cause);
        let err = normalise(&json!({"service": " "}), "x").unwrap_err();
        assert!(err.cause.contains("service"), "{}", err.cause);
    }
}

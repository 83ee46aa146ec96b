//! The merge event contract on the Baton EventBridge bus (documented in `docs/aws.md`), and
//! the rule pieces that turn it into a release signal. `infra/template.yaml` declares the same
//! pattern and transformer; a test below keeps the two in step.

use crate::error::AwsError;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

pub use baton_domain::release::{MERGE_DETAIL_TYPE, MERGE_SOURCE, MergeEvent};

/// Puts one merge event on `bus`; returns its event id.
pub async fn put_merge_event(client: &Client, bus: &str, event: &MergeEvent) -> Result<String, AwsError> {
    let detail = serde_json::to_string(event).map_err(|e| AwsError::unexpected("PutEvents", e.to_string()))?;
    let output = client
        .put_events()
        .entries(
            PutEventsRequestEntry::builder().event_bus_name(bus).source(MERGE_SOURCE).detail_type(MERGE_DETAIL_TYPE).detail(detail).build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("PutEvents", e))?;
    // PutEvents answers 200 even when an entry failed: the entry says why.
    let entry = output.entries().first().ok_or_else(|| AwsError::unexpected("PutEvents", "no result entry"))?;
    if let Some(code) = entry.error_code() {
        let message = entry.error_message().unwrap_or_default().to_string();
        return Err(if code == "ThrottlingException" || code == "InternalFailure" {
            AwsError::Unavailable { operation: "PutEvents", message: format!("{code}: {message}") }
        } else {
            AwsError::Rejected { operation: "PutEvents", code: code.to_string(), message }
        });
    }
    entry.event_id().map(str::to_string).ok_or_else(|| AwsError::unexpected("PutEvents", "entry has neither an event id nor an error"))
}

/// The merge rule's event pattern: every merge event, whatever its branch. Each service names
/// its own `release-branch` in the catalog, which the rule cannot see; load-catalog rejects a
/// merge into any other branch (`Rejected`, no release record), so the rule must not filter.
pub fn merge_rule_pattern() -> serde_json::Value {
    serde_json::json!({
        "source": [MERGE_SOURCE],
        "detail-type": [MERGE_DETAIL_TYPE]
    })
}

/// The input transformer's paths: template variable -> JSON path in the event.
pub const MERGE_INPUT_PATHS: [(&str, &str); 7] = [
    ("service", "$.detail.repository"),
    ("repository", "$.detail.full_name"),
    ("sha", "$.detail.sha"),
    ("branch", "$.detail.branch"),
    ("number", "$.detail.pull_request"),
    ("author", "$.detail.author"),
    ("merged_at", "$.detail.merged_at"),
];

/// The input transformer's template: a [`baton_domain::release::Signal`] with a merge trigger,
/// whose `repository` (owner/name) admission matches against the catalog entry's.
/// EventBridge quotes string variables placed outside quotes; `pr-<number>` sits inside one.
pub const MERGE_INPUT_TEMPLATE: &str = r#"{"service": <service>, "sha": <sha>, "branch": <branch>, "trigger": {"kind": "merge", "id": "pr-<number>", "actor": <author>, "repository": <repository>}, "changed_at": <merged_at>}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_events_serialise_to_the_documented_detail() {
        let event = MergeEvent {
            repository: "payments-api".into(),
            full_name: "acme/payments-api".into(),
            branch: "main".into(),
            sha: "abc123".into(),
            pull_request: 42,
            author: "octocat".into(),
            merged_at: "2026-03-01T10:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "repository": "payments-api", "full_name": "acme/payments-api", "branch": "main", "sha": "abc123",
                "pull_request": 42, "author": "octocat", "merged_at": "2026-03-01T10:00:00Z"
            })
        );
    }

    #[test]
    fn the_template_declares_the_same_rule() {
        let template = include_str!("../../../infra/template.yaml");
        assert!(template.contains(MERGE_INPUT_TEMPLATE), "infra/template.yaml must use MERGE_INPUT_TEMPLATE verbatim");
        for (name, path) in MERGE_INPUT_PATHS {
            assert!(template.contains(&format!("{name}: {path}")), "template lacks input path {name}: {path}");
        }
        assert!(template.contains(&format!("- {MERGE_SOURCE}")) && template.contains(&format!("- {MERGE_DETAIL_TYPE}")));
    }
}

//! GitHub's `workflow_run` webhook events. The github-webhook function checks their
//! `X-Hub-Signature-256` before it calls [`workflow_run_events`] with the signed body (and claims
//! the delivery of each completed run once): this is only the reading. The key is the run's `workflow_run.id`, the id
//! the `github-actions` provider keeps once it has located the run; a completed run's conclusion
//! reads as the provider's polls read it.

use super::json;
use crate::ci::github_actions::{PROVIDER, what_it_means};
use baton_domain::ports::InboundRefused;
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Deserialize)]
struct WorkflowRunEvent {
    action: String,
    workflow_run: WorkflowRun,
}

#[derive(Deserialize)]
struct WorkflowRun {
    id: u64,
    #[serde(default)]
    conclusion: Option<String>,
    html_url: String,
    updated_at: DateTime<Utc>,
}

/// The events of a verified `workflow_run` delivery (`X-GitHub-Event: workflow_run`) whose body
/// is `body`; `delivery` names it (its `X-GitHub-Delivery`, as the github-webhook function logs it). `requested` and
/// `in_progress` are progress; `completed` is the run's outcome, `success` alone succeeding.
pub fn workflow_run_events(body: &[u8], delivery: &str) -> Result<Vec<ProviderEvent>, InboundRefused> {
    let event: WorkflowRunEvent =
        json(body, "a workflow_run event (action, workflow_run.id, workflow_run.conclusion, html_url, updated_at)")?;
    let run = event.workflow_run;
    let happened = match (event.action.as_str(), run.conclusion.as_deref()) {
        ("completed", Some("success")) => Happened::Succeeded,
        ("completed", Some(conclusion)) => Happened::Failed(format!(
            "GitHub Actions run {} ended with conclusion '{conclusion}': {}; see {}",
            run.id,
            what_it_means(conclusion),
            run.html_url
        )),
        // requested, in_progress, and a completed run whose conclusion is not shown yet.
        _ => Happened::Progress,
    };
    let key = WaitKey::new(WaitKind::Build, PROVIDER, run.id.to_string());
    Ok(vec![ProviderEvent { key, happened, delivery: delivery.to_owned(), at: run.updated_at }])
}

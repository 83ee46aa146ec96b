//! CircleCI's `workflow-completed` webhooks (a project webhook): `circleci-signature: v1=<hex
//! HMAC-SHA256 of the body>` under the webhook's secret. The signature covers no header time, so
//! the signed body's `happened_at` is the one checked for staleness (5 minutes); its `id` names the
//! delivery. The key is the pipeline's `id`, the id the `circleci` provider keeps.
//!
//! A pipeline may run several workflows, and each sends its own event: a failed one fails the
//! build (as the polls read it, the build fails once all have ended), a successful one answers
//! `Succeeded` for the pipeline, which the release's next poll confirms (it waits while another
//! workflow still runs).

use super::{Keys, json, required, unauthenticated, within_window};
use crate::ci::Verdict;
use crate::ci::circleci::{PROVIDER, verdict};
use crate::secrets::Secret;
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;

const SIGNATURE: &str = "circleci-signature";
const EVENT_TYPE: &str = "circleci-event-type";
const WORKFLOW_COMPLETED: &str = "workflow-completed";

/// Receives the `circleci` provider's workflow events.
#[derive(Debug)]
pub struct CircleCiWorkflowEvents {
    keys: Keys,
}

impl CircleCiWorkflowEvents {
    /// `secrets`: the webhooks' secrets (each `circleci` block's `events-secret`).
    pub fn new(secrets: Vec<Secret>) -> Result<CircleCiWorkflowEvents, String> {
        Ok(CircleCiWorkflowEvents { keys: Keys::new(PROVIDER, secrets)? })
    }
}

#[derive(Deserialize)]
struct WorkflowEvent {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    happened_at: DateTime<Utc>,
    workflow: Workflow,
    pipeline: Pipeline,
}

#[derive(Deserialize)]
struct Workflow {
    name: String,
    status: String,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct Pipeline {
    id: String,
}

impl EventReceiver for CircleCiWorkflowEvents {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
        let signature = required(request, SIGNATURE)?;
        // `v1=<hex>`, perhaps beside signatures of later versions.
        let v1 = signature.split(',').find_map(|part| part.trim().strip_prefix("v1="));
        let Some(v1) = v1 else { return Err(unauthenticated("circleci-signature has no v1 signature")) };
        if !self.keys.sign(&[&request.body], v1) {
            return Err(unauthenticated("circleci-signature does not match the request"));
        }
        if request.header(EVENT_TYPE).is_some_and(|kind| kind.trim() != WORKFLOW_COMPLETED) {
            // job-completed and others: nothing a release waits for.
            return Ok(Vec::new());
        }
        let event: WorkflowEvent = json(&request.body, "a CircleCI workflow-completed event (id, happened_at, workflow, pipeline.id)")?;
        within_window(event.happened_at.timestamp(), "happened_at", now)?;
        if event.kind != WORKFLOW_COMPLETED {
            return Ok(Vec::new());
        }
        let workflow = &event.workflow;
        let happened = match verdict(&workflow.status) {
            Verdict::Passed => Happened::Succeeded,
            Verdict::Failed(what) => Happened::Failed(format!(
                "CircleCI workflow '{}' is '{}': {what}; see {}",
                workflow.name,
                workflow.status,
                workflow.url.as_deref().unwrap_or("the pipeline's page on CircleCI")
            )),
            Verdict::Running => Happened::Progress,
        };
        let key = WaitKey::new(WaitKind::Build, PROVIDER, event.pipeline.id);
        Ok(vec![ProviderEvent { key, happened, delivery: event.id, at: event.happened_at }])
    }
}

//! GitLab's pipeline events (a project webhook with "Pipeline events" ticked): GitLab sends the
//! webhook's secret token as `X-Gitlab-Token`, compared in constant time (GitLab signs nothing,
//! so the token is the whole proof and no timestamp is signed); `X-Gitlab-Event: Pipeline Hook`;
//! `X-Gitlab-Event-UUID` names the delivery. The key is the pipeline's `object_attributes.id`, the
//! id the `gitlab-ci` provider keeps; its status reads as the provider's polls read it.

use super::{Keys, json, malformed, required, token};
use crate::ci::Verdict;
use crate::ci::gitlab_ci::{PROVIDER, verdict};
use crate::secrets::Secret;
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

const TOKEN: &str = "X-Gitlab-Token";
const EVENT: &str = "X-Gitlab-Event";
const DELIVERY: &str = "X-Gitlab-Event-UUID";
const PIPELINE_HOOK: &str = "Pipeline Hook";

/// Receives the `gitlab-ci` provider's pipeline events.
#[derive(Debug)]
pub struct GitLabPipelineEvents {
    keys: Keys,
}

impl GitLabPipelineEvents {
    /// `secrets`: the webhooks' secret tokens (each `gitlab-ci` block's `events-secret`).
    pub fn new(secrets: Vec<Secret>) -> Result<GitLabPipelineEvents, String> {
        Ok(GitLabPipelineEvents { keys: Keys::new(PROVIDER, secrets)? })
    }
}

#[derive(Deserialize)]
struct PipelineEvent {
    object_kind: String,
    object_attributes: Pipeline,
}

#[derive(Deserialize)]
struct Pipeline {
    id: u64,
    status: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
}

/// GitLab's webhook times: `2016-08-12 15:26:29 UTC`, or RFC 3339 on newer servers.
fn gitlab_time(text: &str) -> Option<DateTime<Utc>> {
    text.parse::<DateTime<Utc>>()
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S").ok().map(|naive| naive.and_utc()))
}

impl EventReceiver for GitLabPipelineEvents {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
        token(request, TOKEN, &self.keys)?;
        if request.header(EVENT).map(str::trim) != Some(PIPELINE_HOOK) {
            // Another event the webhook also sends (pushes, jobs): nothing a release waits for.
            return Ok(Vec::new());
        }
        let event: PipelineEvent = json(&request.body, "a GitLab pipeline event (object_attributes.id and status)")?;
        if event.object_kind != "pipeline" {
            return Err(malformed(format!("X-Gitlab-Event says Pipeline Hook, but object_kind is '{}'", event.object_kind.escape_debug())));
        }
        let pipeline = event.object_attributes;
        let happened = match verdict(&pipeline.status) {
            Verdict::Passed => Happened::Succeeded,
            Verdict::Failed(what) => Happened::Failed(format!(
                "GitLab pipeline {} is '{}': {what}; see {}",
                pipeline.id,
                pipeline.status,
                pipeline.url.as_deref().unwrap_or("its page on GitLab")
            )),
            Verdict::Running => Happened::Progress,
        };
        let delivery = match required(request, DELIVERY) {
            Ok(uuid) => uuid.to_owned(),
            Err(_) => super::digest(&request.body),
        };
        let at = pipeline.finished_at.as_deref().and_then(gitlab_time).unwrap_or(now);
        Ok(vec![ProviderEvent { key: WaitKey::new(WaitKind::Build, PROVIDER, pipeline.id.to_string()), happened, delivery, at }])
    }
}

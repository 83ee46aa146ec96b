//! interactions: Slack's interactivity requests, through a function URL. A press on a release
//! message's Approve or Reject button arrives here; the request is verified (signature, age,
//! replay) by the inbound-interactions port, the person's answer is recorded on the release and
//! sent to the waiting task (`SendTaskSuccess` / `SendTaskFailure`), and the person hears back
//! through Slack's `response_url`, all within Slack's 3 s.
//!
//! Answers: 200 once verified (whatever the rules said: the person reads why in Slack); 400 a
//! signed request that is not a Baton button; 401 a missing, wrong, stale or replayed signature,
//! which changes nothing; 413 a body over the limit.

use async_trait::async_trait;
use baton_domain::approvals::{AnswerError, answer, identify};
use baton_domain::ports::{
    ChatDirectory, InboundInteractions, InboundRefused, InboundRequest, Interaction, ProviderError, ReleaseStore, TaskTokens,
};
use baton_domain::release::Via;
use baton_domain::rules::approval;
pub use baton_lambda_glue::function_url::{FunctionUrlRequest, FunctionUrlResponse};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const NAME: &str = "interactions";

/// Slack's payloads are a few kilobytes; the bound is checked before the signature is.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Slack waits 3 s for the answer: recording the answer and telling the person share this.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2_700);

/// Tells the person who pressed a button what came of it (Slack's `response_url`).
#[async_trait]
pub trait Respond: Send + Sync {
    async fn respond(&self, url: &str, message: &Value) -> Result<(), ProviderError>;
}

/// POSTs the message to the `response_url` Slack gave, over Baton's HTTPS client.
pub struct HttpRespond(reqwest::Client);

impl HttpRespond {
    /// Over the process's one HTTPS client (`baton_http_client::shared`).
    pub fn over_shared_https() -> Result<HttpRespond, baton_http_client::HttpsError> {
        Ok(HttpRespond(baton_http_client::shared()?.client().clone()))
    }
}

#[async_trait]
impl Respond for HttpRespond {
    async fn respond(&self, url: &str, message: &Value) -> Result<(), ProviderError> {
        // The URL is a credential of its own: errors never quote it.
        let sent = self
            .0
            .post(url)
            .json(message)
            .send()
            .await
            .map_err(|e| ProviderError::unavailable("Slack's response_url").caused_by(e.without_url()))?;
        if !sent.status().is_success() {
            return Err(ProviderError::rejected(format!("Slack's response_url answered {}", sent.status())));
        }
        Ok(())
    }
}

/// The directory of a function given no Slack bot token: a press that only a user group could
/// allow, or that four-eyes must judge, is refused, saying why.
pub struct NoChatDirectory;

const NO_TOKEN: &str = "the interactions function has no Slack bot token to ask Slack with (BATON_SLACK_TOKEN_SECRET_ARN)";

#[async_trait]
impl ChatDirectory for NoChatDirectory {
    async fn members(&self, _group: &str) -> Result<Vec<String>, ProviderError> {
        Err(ProviderError::rejected(NO_TOKEN))
    }

    async fn email(&self, _person: &str) -> Result<Option<String>, ProviderError> {
        Err(ProviderError::rejected(NO_TOKEN))
    }
}

pub struct Interactions {
    pub inbound: Arc<dyn InboundInteractions>,
    pub store: Arc<dyn ReleaseStore>,
    pub tokens: Arc<dyn TaskTokens>,
    pub respond: Arc<dyn Respond>,
    /// Who is in the user groups approvals name, and people's emails for four-eyes (Slack's
    /// `usergroups.users.list` and `users.info`).
    pub directory: Arc<dyn ChatDirectory>,
}

impl Interactions {
    pub async fn handle(&self, request: &FunctionUrlRequest) -> FunctionUrlResponse {
        self.handle_at(request, Utc::now()).await
    }

    /// [`Interactions::handle`] at `now`, the time signatures' ages and answers are taken at.
    pub async fn handle_at(&self, request: &FunctionUrlRequest, now: DateTime<Utc>) -> FunctionUrlResponse {
        let deadline = Instant::now() + ANSWER_WITHIN;
        let body = match request.body_bytes(MAX_BODY_BYTES) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let inbound = InboundRequest {
            path: String::new(),
            headers: request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
            body,
        };
        let interaction = match self.inbound.verify(&inbound, now) {
            Ok(interaction) => interaction,
            Err(refused @ InboundRefused::Unauthenticated(_)) => {
                tracing::warn!(reason = %refused, "refused an interactivity request");
                return FunctionUrlResponse::message(401, refused.to_string());
            }
            Err(refused @ InboundRefused::Malformed(_)) => return FunctionUrlResponse::message(400, refused.to_string()),
        };
        let message = self.answer(&interaction, now, deadline).await;
        if let Some(url) = &interaction.respond_to {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.respond.respond(url, &message)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %baton_domain::error::chain_text(&err), "cannot answer the person in Slack"),
                Err(_) => tracing::warn!("no time left to answer the person in Slack"),
            }
        }
        FunctionUrlResponse::json(200, json!({}))
    }

    /// Records and sends the person's answer; what they should read about it.
    async fn answer(&self, interaction: &Interaction, now: DateTime<Utc>, deadline: Instant) -> Value {
        let Interaction { release, verdict, person, reason, .. } = interaction;
        let answered = async {
            let person = identify(self.store.as_ref(), self.directory.as_ref(), release, person).await?;
            answer(self.store.as_ref(), Some(self.tokens.as_ref()), release, &person, *verdict, Via::Slack, reason.clone(), now).await
        };
        let text = match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(answered)) => {
                tracing::info!(release = %release, wave = answered.wave, verdict = answered.decision.verdict.as_str(), "approval answered from Slack");
                format!("Done: {}.", approval::describe(&answered.wave, &answered.decision))
            }
            Ok(Err(AnswerError::Refused(refusal))) => format!("Not recorded: {refusal}."),
            Ok(Err(err)) => {
                tracing::warn!(release = %release, error = %err, "cannot answer the approval");
                format!("Baton could not record your answer ({err}); try again, or `baton approve {release} --remote`.")
            }
            Err(_) => format!("Baton took too long to record your answer; check the release, or `baton approve {release} --remote`."),
        };
        json!({ "response_type": "ephemeral", "replace_original": false, "text": text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::release::Verdict;
    use baton_providers::SlackInteractions;

    /// The secret and the time `events/interactions-*.json` were signed with and at.
    const EVENTS_SECRET: &str = "events-signing-secret";
    const EVENTS_SIGNED_AT: i64 = 1_765_000_000;

    fn inbound(event: &str) -> InboundRequest {
        let request: FunctionUrlRequest = serde_json::from_str(event).expect("a function URL request");
        let body = request.body_bytes(MAX_BODY_BYTES).unwrap();
        InboundRequest { path: String::new(), headers: request.headers.into_iter().collect(), body }
    }

    #[test]
    fn the_test_events_are_presses_slack_signed() {
        let at = DateTime::from_timestamp(EVENTS_SIGNED_AT, 0).unwrap();
        let cases = [
            (include_str!("../../../events/interactions-approve.json"), Verdict::Granted),
            (include_str!("../../../events/interactions-reject.json"), Verdict::Rejected),
        ];
        for (event, verdict) in cases {
            let slack = SlackInteractions::new(EVENTS_SECRET).unwrap();
            let interaction = slack.verify(&inbound(event), at).unwrap();
            assert_eq!((interaction.verdict, interaction.person.id.as_str()), (verdict, "U0ANN"));
            assert_eq!(interaction.release.as_str(), "rel-hello-web-20261206101500-0a1b2c3d");
            let later = at + chrono::TimeDelta::minutes(6);
            assert!(matches!(slack.verify(&inbound(event), later), Err(InboundRefused::Unauthenticated(_))), "stale by now");
        }
    }
}

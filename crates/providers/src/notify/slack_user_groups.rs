//! The members of Slack user groups named as approvers (`S…`), for presses on a release
//! message's buttons: Slack's `usergroups.users.list` (scope `usergroups:read`), which answers
//! `{"ok": true, "users": ["U…", …]}` or `{"ok": false, "error": "…"}`.
//!
//! A group's members are kept for [`MEMBERS_TTL`], so a burst of presses asks Slack once and a
//! person removed from a group stops approving within a minute. A Slack that does not answer,
//! or refuses, is an error: the press is refused, saying so, never judged on an empty group.

use crate::http::{RateLimits, exchange};
use crate::secrets::Secret;
use async_trait::async_trait;
use baton_domain::ports::{ProviderError, UserGroups};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a group's members are trusted without asking Slack again.
pub const MEMBERS_TTL: Duration = Duration::from_secs(60);
/// A press is answered within Slack's 3 s: one slow call must leave time to say so.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1_500);

pub struct SlackUserGroups {
    token: Secret,
    http: reqwest::Client,
    api_base: String,
    limits: Arc<RateLimits>,
    members: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

#[derive(Deserialize)]
struct MembersReply {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    users: Option<Vec<String>>,
}

impl SlackUserGroups {
    /// `api_base` is [`super::slack::DEFAULT_SLACK_API_BASE`] but for tests and proxies.
    pub fn new(token: String, http: reqwest::Client, api_base: &str) -> SlackUserGroups {
        SlackUserGroups {
            token: Secret::new(token),
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            limits: RateLimits::shared(),
            members: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, group: &str) -> Option<Vec<String>> {
        let members = self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        members.get(group).filter(|(at, _)| at.elapsed() < MEMBERS_TTL).map(|(_, users)| users.clone())
    }

    async fn ask(&self, group: &str) -> Result<Vec<String>, ProviderError> {
        let context = format!("Slack usergroups.users.list for {group}");
        let url = reqwest::Url::parse_with_params(&format!("{}/usergroups.users.list", self.api_base), [("usergroup", group)])
            .map_err(|e| ProviderError::rejected(format!("{context}: the Slack API base is no URL")).caused_by(e))?;
        let build = || self.http.get(url.clone()).bearer_auth(self.token.expose());
        let answer = exchange(&self.limits, "Slack", build, REQUEST_TIMEOUT, &context, crate::http::retry_after).await?;
        if answer.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(answer.limited("Slack", format!("{context} is rate-limited")));
        }
        if !answer.status.is_success() {
            return Err(ProviderError::unavailable(format!("{context} answered {}", answer.status)));
        }
        let reply: MembersReply = serde_json::from_slice(&answer.body).map_err(|e| {
            ProviderError::unavailable(format!("{context} answered something other than Slack's JSON envelope")).caused_by(e)
        })?;
        match (reply.ok, reply.users) {
            (true, Some(users)) => Ok(users),
            (true, None) => Err(ProviderError::unavailable(format!("{context} answered ok without the group's users"))),
            (false, _) => {
                let code = reply.error.unwrap_or_else(|| "no error code".into());
                Err(match code.as_str() {
                    "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                        ProviderError::unavailable(format!("{context} failed: {code}"))
                    }
                    "missing_scope" => ProviderError::rejected(format!("{context} failed: {code} (the bot token needs usergroups:read)")),
                    _ => ProviderError::rejected(format!("{context} failed: {code}")),
                })
            }
        }
    }
}

#[async_trait]
impl UserGroups for SlackUserGroups {
    async fn members(&self, group: &str) -> Result<Vec<String>, ProviderError> {
        if let Some(users) = self.cached(group) {
            return Ok(users);
        }
        let users = self.ask(group).await?;
        let mut members = self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        members.insert(group.to_owned(), (Instant::now(), users.clone()));
        Ok(users)
    }
}

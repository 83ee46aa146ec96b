//! What Slack knows of the people pressing a release message's buttons, through the bot token:
//! the members of user groups named as approvers (`usergroups.users.list`, scope
//! `usergroups:read`, answering `{"ok": true, "users": ["U…", …]}`) and a person's email for
//! four-eyes (`users.info`, scope `users:read.email`, answering `{"ok": true, "user": {"id",
//! "profile": {"email"}}}`); a refusal is `{"ok": false, "error": "…"}`.
//!
//! Answers are kept for [`DIRECTORY_TTL`], so a burst of presses asks Slack once and a person
//! removed from a group stops approving within a minute. A Slack that does not answer, or
//! refuses, is an error: the press is refused, saying so, never judged on an empty group.

use crate::http::{RateLimits, exchange};
use crate::secrets::Secret;
use async_trait::async_trait;
use baton_domain::ports::{ChatDirectory, ProviderError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long an answer is trusted without asking Slack again.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(60);
/// A press is answered within Slack's 3 s: one slow call must leave time to say so.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1_500);

pub struct SlackDirectory {
    token: Secret,
    http: reqwest::Client,
    api_base: String,
    limits: Arc<RateLimits>,
    members: Mutex<HashMap<String, (Instant, Vec<String>)>>,
    emails: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

/// Slack's envelope around `T`, the method's own fields.
#[derive(Deserialize)]
struct Reply<T> {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(flatten)]
    answer: Option<T>,
}

#[derive(Deserialize)]
struct Members {
    users: Vec<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    user: User,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    profile: Profile,
}

#[derive(Default, Deserialize)]
struct Profile {
    #[serde(default)]
    email: Option<String>,
}

impl SlackDirectory {
    /// `api_base` is [`super::slack::DEFAULT_SLACK_API_BASE`] but for tests and proxies.
    pub fn new(token: String, http: reqwest::Client, api_base: &str) -> SlackDirectory {
        SlackDirectory {
            token: Secret::new(token),
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            limits: RateLimits::shared(),
            members: Mutex::new(HashMap::new()),
            emails: Mutex::new(HashMap::new()),
        }
    }

    /// Calls the read method `method` with one argument, and reads its answer `T`.
    async fn get<T: DeserializeOwned>(&self, method: &str, argument: (&str, &str), scope: &str) -> Result<T, ProviderError> {
        let context = format!("Slack {method} for {}", argument.1);
        let url = reqwest::Url::parse_with_params(&format!("{}/{method}", self.api_base), [argument])
            .map_err(|e| ProviderError::rejected(format!("{context}: the Slack API base is no URL")).caused_by(e))?;
        let build = || self.http.get(url.clone()).bearer_auth(self.token.expose());
        let answer = exchange(&self.limits, "Slack", build, REQUEST_TIMEOUT, &context, crate::http::retry_after).await?;
        if answer.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(answer.limited("Slack", format!("{context} is rate-limited")));
        }
        if !answer.status.is_success() {
            return Err(ProviderError::unavailable(format!("{context} answered {}", answer.status)));
        }
        let reply: Reply<T> = serde_json::from_slice(&answer.body).map_err(|e| {
            ProviderError::unavailable(format!("{context} answered something other than Slack's JSON envelope")).caused_by(e)
        })?;
        match (reply.ok, reply.answer) {
            (true, Some(answer)) => Ok(answer),
            (true, None) => Err(ProviderError::unavailable(format!("{context} answered ok without what it is asked for"))),
            (false, _) => {
                let code = reply.error.unwrap_or_else(|| "no error code".into());
                Err(match code.as_str() {
                    "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                        ProviderError::unavailable(format!("{context} failed: {code}"))
                    }
                    "missing_scope" => ProviderError::rejected(format!("{context} failed: {code} (the bot token needs {scope})")),
                    _ => ProviderError::rejected(format!("{context} failed: {code}")),
                })
            }
        }
    }
}

/// `key`'s entry in `cache` if younger than [`DIRECTORY_TTL`].
fn cached<T: Clone>(cache: &Mutex<HashMap<String, (Instant, T)>>, key: &str) -> Option<T> {
    let cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    cache.get(key).filter(|(at, _)| at.elapsed() < DIRECTORY_TTL).map(|(_, value)| value.clone())
}

fn keep<T>(cache: &Mutex<HashMap<String, (Instant, T)>>, key: &str, value: T) {
    cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key.to_owned(), (Instant::now(), value));
}

#[async_trait]
impl ChatDirectory for SlackDirectory {
    async fn members(&self, group: &str) -> Result<Vec<String>, ProviderError> {
        if let Some(users) = cached(&self.members, group) {
            return Ok(users);
        }
        let Members { users } = self.get("usergroups.users.list", ("usergroup", group), "usergroups:read").await?;
        keep(&self.members, group, users.clone());
        Ok(users)
    }

    async fn email(&self, person: &str) -> Result<Option<String>, ProviderError> {
        if let Some(email) = cached(&self.emails, person) {
            return Ok(email);
        }
        let UserInfo { user } = self.get("users.info", ("user", person), "users:read.email").await?;
        let email = user.profile.email.filter(|email| !email.trim().is_empty());
        keep(&self.emails, person, email.clone());
        Ok(email)
    }
}

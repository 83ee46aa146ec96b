//! Slack notifiers: an incoming webhook (posts only) and the Web API with a bot token (one
//! message per release, updated in place, with thread replies when someone must act).
//!
//! The webhook URL and the token are resolved at each notification and live only as a
//! [`Secret`]; error messages name the secret reference and the channel, never the value.

use super::slack_message;
use crate::http::{Answer, RateLimits, exchange};
use crate::secrets::{Secret, resolve_secret};
use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};
use baton_domain::ports::{Notification, Notifier, ProviderError, SecretResolver};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_SLACK_API_BASE: &str = "https://slack.com/api";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack warns about JSON bodies sent without a charset.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The `slack` notifier's block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SlackSpec {
    pub channel: String,
    /// Incoming webhook URL (a secret): posts only, cannot update a message in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<SecretRef>,
    /// Bot token (a secret): one message per release, updated in place, with thread replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
}

const SLACK_FIELDS: &[Field] = &[
    required("channel", Kind::Text, "Channel the release message goes to."),
    field("webhook", Kind::Secret, "Incoming webhook URL (secret reference): posts only."),
    field("token", Kind::Secret, "Bot token (secret reference): one message per release, updated in place."),
];

pub const SLACK: ProviderShape = ProviderShape {
    slot: Slot::Notify,
    name: "slack",
    doc: "Slack: one live message per release with a bot token, else a new message per stage through a webhook.",
    fields: SLACK_FIELDS,
    at_least_one: Some((&["webhook", "token"], "a bot token keeps one message per release; a webhook only posts")),
    local_only: false,
    run_word: None,
    through_model: through_model::<SlackSpec>,
};

/// Posts a new Block Kit message per notification through an incoming webhook. Webhooks
/// answer `ok`, not a message `ts`, so they cannot update a message in place: every stage
/// change is a new message. Use a bot token for one live message per release.
pub struct SlackWebhookNotifier {
    channel: String,
    webhook: SecretRef,
    secrets: Arc<dyn SecretResolver>,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

impl SlackWebhookNotifier {
    /// `channel` only names the destination in errors: a webhook is bound to its channel.
    pub fn new(channel: &str, webhook: SecretRef, secrets: Arc<dyn SecretResolver>, http: reqwest::Client) -> SlackWebhookNotifier {
        SlackWebhookNotifier { channel: channel.to_owned(), webhook, secrets, limits: RateLimits::shared(), http }
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> SlackWebhookNotifier {
        self.limits = limits;
        self
    }
}

#[async_trait]
impl Notifier for SlackWebhookNotifier {
    fn name(&self) -> &str {
        "slack-webhook"
    }

    async fn notify(
        &self,
        notification: &Notification,
        _state: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        let url = resolve_secret(&*self.secrets, &self.webhook).await?;
        let context = format!("Slack webhook {} for {}", self.webhook, self.channel);
        post_json(&self.http, &self.limits, url.expose(), None, &slack_message(notification), &context).await?;
        Ok(None)
    }
}

/// One message per release through the Web API: `chat.postMessage` first, `chat.update` of
/// that message afterwards (its state is `{"channel", "ts", "permalink"}`, the channel being the
/// id Slack answered with, which `chat.update` requires, and the permalink `chat.getPermalink`
/// gave once at the first post, for the dashboard's links), and a thread reply (`reply_broadcast`
/// false) for each notification with `action_needed`, mentioning the on-call rotation (see
/// [`super::mention`]). Should someone delete the message, the
/// next notification posts a new one.
pub struct SlackWebApiNotifier {
    channel: String,
    on_call: Option<String>,
    token: SecretRef,
    secrets: Arc<dyn SecretResolver>,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
    api_base: String,
}

/// Where the release's message is: the notifier state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MessageRef {
    channel: String,
    ts: String,
    /// The message's web address. Asked of Slack rather than built from the channel and `ts`:
    /// the `https://<workspace>.slack.com/archives/...` form needs the workspace's domain, which
    /// the catalog does not know. Absent on records from before, or when Slack did not answer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    permalink: Option<String>,
}

/// The envelope of every Web API answer.
#[derive(Debug, Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    permalink: Option<String>,
}

impl SlackWebApiNotifier {
    /// `api_base` is [`DEFAULT_SLACK_API_BASE`] but for tests and proxies.
    pub fn new(
        channel: &str,
        token: SecretRef,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
        api_base: &str,
    ) -> SlackWebApiNotifier {
        SlackWebApiNotifier {
            channel: channel.to_owned(),
            on_call: None,
            token,
            secrets,
            limits: RateLimits::shared(),
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
        }
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> SlackWebApiNotifier {
        self.limits = limits;
        self
    }

    /// The catalog's `on-call` rotation, mentioned in the thread reply when someone must act.
    pub fn with_on_call(mut self, on_call: Option<&str>) -> SlackWebApiNotifier {
        self.on_call = on_call.map(str::to_owned);
        self
    }

    /// Calls `method` and reads Slack's envelope; HTTP-level failures are errors, `ok: false` is not.
    async fn send(&self, token: &Secret, method: &str, body: serde_json::Value) -> Result<(Reply, String), ProviderError> {
        let context = format!("Slack {method} to {}", self.channel);
        let url = format!("{}/{method}", self.api_base);
        let answer = post_json(&self.http, &self.limits, &url, Some(token), &body, &context).await?;
        let retry = retry_text(&answer.headers);
        let reply = serde_json::from_slice::<Reply>(&answer.body).map_err(|e| {
            ProviderError::unavailable(format!("{context} answered something other than Slack's JSON envelope")).caused_by(e)
        })?;
        Ok((reply, retry))
    }

    /// [`Self::send`], with `ok: false` turned into an error.
    async fn call(&self, token: &Secret, method: &str, body: serde_json::Value) -> Result<Reply, ProviderError> {
        let (reply, retry) = self.send(token, method, body).await?;
        self.checked(method, reply, &retry)
    }

    fn checked(&self, method: &str, reply: Reply, retry: &str) -> Result<Reply, ProviderError> {
        if reply.ok {
            return Ok(reply);
        }
        let code = reply.error.unwrap_or_else(|| "no error code".into());
        let message = format!("Slack {method} to {} failed: {code}", self.channel);
        Err(match code.as_str() {
            "ratelimited" => ProviderError::unavailable(format!("{message}{retry}")),
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => ProviderError::unavailable(message),
            "not_in_channel" => ProviderError::rejected(format!("{message} (invite the Baton app to {})", self.channel)),
            "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
                ProviderError::rejected(format!("{message} (check the bot token {})", self.token))
            }
            "missing_scope" => ProviderError::rejected(format!("{message} (the bot token {} needs chat:write)", self.token)),
            _ => ProviderError::rejected(message),
        })
    }

    async fn post(&self, token: &Secret, message: serde_json::Value) -> Result<MessageRef, ProviderError> {
        let mut body = message;
        body["channel"] = self.channel.clone().into();
        let reply = self.call(token, "chat.postMessage", body).await?;
        match (reply.channel, reply.ts) {
            (Some(channel), Some(ts)) => {
                let permalink = self.permalink(token, &channel, &ts).await;
                Ok(MessageRef { channel, ts, permalink })
            }
            _ => Err(ProviderError::unavailable(format!(
                "Slack chat.postMessage to {} answered ok without the message's channel and ts",
                self.channel
            ))),
        }
    }

    /// The posted message's permalink, or none: the message is out, and a missing link must not
    /// fail the notification (nor send it again), so a refusal is only logged.
    async fn permalink(&self, token: &Secret, channel: &str, ts: &str) -> Option<String> {
        let body = serde_json::json!({ "channel": channel, "message_ts": ts });
        let answer = self.call(token, "chat.getPermalink", body).await;
        match answer.map(|reply| reply.permalink.filter(|link| link.starts_with("https://"))) {
            Ok(Some(permalink)) => Some(permalink),
            Ok(None) => {
                tracing::warn!(target: "baton::notify", channel = %self.channel, ts, "Slack chat.getPermalink answered no https permalink; the release's message has no link");
                None
            }
            Err(err) => {
                tracing::warn!(target: "baton::notify", channel = %self.channel, ts, error = %err, "the release's Slack message has no link");
                None
            }
        }
    }

    async fn update(&self, token: &Secret, posted: MessageRef, message: serde_json::Value) -> Result<MessageRef, ProviderError> {
        let mut body = message.clone();
        body["channel"] = posted.channel.clone().into();
        body["ts"] = posted.ts.clone().into();
        let (reply, retry) = self.send(token, "chat.update", body).await?;
        if reply.error.as_deref() == Some("message_not_found") {
            tracing::warn!(target: "baton::notify", channel = %self.channel, ts = %posted.ts, "the release's Slack message is gone; posting a new one");
            return self.post(token, message).await;
        }
        self.checked("chat.update", reply, &retry)?;
        Ok(posted)
    }
}

#[async_trait]
impl Notifier for SlackWebApiNotifier {
    fn name(&self) -> &str {
        "slack"
    }

    async fn notify(
        &self,
        notification: &Notification,
        state: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        let token = resolve_secret(&*self.secrets, &self.token).await?;
        let message = slack_message(notification);
        let posted = match state {
            None => self.post(&token, message).await?,
            Some(state) => {
                let posted = serde_json::from_value::<MessageRef>(state.clone()).map_err(|e| {
                    ProviderError::rejected(format!("the Slack notifier state {state} is not a message reference")).caused_by(e)
                })?;
                self.update(&token, posted, message).await?
            }
        };
        if let Some(action) = &notification.action_needed {
            let reply = serde_json::json!({
                "channel": posted.channel,
                "thread_ts": posted.ts,
                "text": super::truncate(thread_reply(self.on_call.as_deref(), &notification.release, action)),
                "reply_broadcast": false,
            });
            self.call(&token, "chat.postMessage", reply).await?;
        }
        Ok(Some(serde_json::to_value(posted).expect("a message reference serialises")))
    }
}

/// A thread reply saying what to do, naming who must: the on-call rotation, and the approvers of
/// the approval the release waits for.
fn thread_reply(on_call: Option<&str>, release: &baton_domain::release::Release, action: &str) -> String {
    let approvers = release.pending_approval().map(|pending| pending.approvers.as_slice()).unwrap_or_default();
    let names: Vec<String> = on_call.into_iter().chain(approvers.iter().map(String::as_str)).map(super::mention).collect();
    names.into_iter().chain([super::escape(action)]).collect::<Vec<_>>().join(" ")
}

/// POSTs `body` as JSON and returns the answer if it is a 2xx. 429 and 5xx are worth
/// retrying; any other answer is a refusal, which Slack explains in a short plain-text body.
/// A 429 holds the token (or the webhook, whose URL is its credential) back in `limits` until
/// the time it names: nothing is sent to Slack with it before.
async fn post_json(
    http: &reqwest::Client,
    limits: &RateLimits,
    url: &str,
    token: Option<&Secret>,
    body: &serde_json::Value,
    context: &str,
) -> Result<Answer, ProviderError> {
    let body = body.to_string();
    let build = || {
        let request = http.post(url).header(CONTENT_TYPE, JSON_UTF8).body(body.clone());
        match token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    };
    let answer = exchange(limits, "Slack", build, REQUEST_TIMEOUT, context, crate::http::retry_after).await?;
    let status = answer.status;
    if status.is_success() {
        return Ok(answer);
    }
    let retry = retry_text(&answer.headers);
    let body = String::from_utf8_lossy(&answer.body);
    let detail: String = body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    let detail = if detail.is_empty() { detail } else { format!(": {detail}") };
    Err(match status {
        StatusCode::TOO_MANY_REQUESTS => answer.limited("Slack", format!("{context} is rate-limited{retry}")),
        status if status.is_server_error() => ProviderError::unavailable(format!("{context} answered {status}{detail}")),
        status => ProviderError::rejected(format!("{context} was refused ({status}){detail}")),
    })
}

/// " (retry after 30 s)" when the answer says how long to wait.
fn retry_text(headers: &HeaderMap) -> String {
    crate::http::retry_after(headers).map(|wait| format!(" (retry after {} s)", wait.as_secs())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client;
    use crate::notify::tests::notification;
    use crate::test_support::{FixedSecrets, LogCapture};
    use baton_domain::error::chain_text;
    use serde_json::json;
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const TOKEN: &str = "xoxb-1111-2222-TOPSECRETTOKEN";
    const WEBHOOK_SECRET_PART: &str = "T000/B000/TOPSECRETHOOK";
    const PERMALINK: &str = "https://acme.slack.com/archives/C123/p1700000000000100";

    fn web_api(server: &MockServer) -> SlackWebApiNotifier {
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("SLACK_BOT_TOKEN".into()), TOKEN));
        SlackWebApiNotifier::new("#deploys", SecretRef::Env("SLACK_BOT_TOKEN".into()), secrets, http_client().unwrap(), &server.uri())
            .with_rate_limits(fresh_limits())
    }

    fn webhook(server: &MockServer) -> SlackWebhookNotifier {
        let url = format!("{}/services/{WEBHOOK_SECRET_PART}", server.uri());
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("SLACK_WEBHOOK".into()), &url));
        SlackWebhookNotifier::new("#deploys", SecretRef::Env("SLACK_WEBHOOK".into()), secrets, http_client().unwrap())
            .with_rate_limits(fresh_limits())
    }

    fn fresh_limits() -> Arc<RateLimits> {
        RateLimits::new(Arc::new(baton_domain::ports::SystemClock))
    }

    fn posted(ts: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "ok": true, "channel": "C123", "ts": ts,
            "message": { "type": "message", "text": "Deploying", "bot_id": "B1", "ts": ts }
        }))
    }

    fn slack_error(code: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({ "ok": false, "error": code }))
    }

    fn body(request: &Request) -> serde_json::Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    async fn requests(server: &MockServer) -> Vec<Request> {
        server.received_requests().await.unwrap()
    }

    fn assert_secret_free(text: &str) {
        assert!(!text.contains("TOPSECRET"), "a secret leaked: {text}");
    }

    #[tokio::test]
    async fn the_first_notification_posts_and_later_ones_update_in_place() {
        let logs = LogCapture::start();
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/chat.postMessage"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(posted("1700000000.000100"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/chat.update"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "channel": "C123", "ts": "1700000000.000100", "text": "x" })),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/chat.getPermalink"))
            .and(body_partial_json(json!({ "channel": "C123", "message_ts": "1700000000.000100" })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "channel": "C123", "permalink": PERMALINK })))
            .mount(&server)
            .await;
        let slack = web_api(&server);
        let mut quiet = notification();
        quiet.action_needed = None;

        let state = slack.notify(&quiet, None).await.unwrap();
        assert_eq!(state, Some(json!({ "channel": "C123", "ts": "1700000000.000100", "permalink": PERMALINK })));
        let again = slack.notify(&quiet, state.as_ref()).await.unwrap();
        assert_eq!(again, state, "the permalink is asked for once, and kept");

        let requests = requests(&server).await;
        let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
        assert_eq!(paths, ["/chat.postMessage", "/chat.getPermalink", "/chat.update"]);
        assert_eq!(requests[0].headers.get("content-type").unwrap(), JSON_UTF8);
        let expected = slack_message(&quiet);
        let first = body(&requests[0]);
        assert_eq!(first["channel"], "#deploys");
        assert_eq!((&first["text"], &first["blocks"]), (&expected["text"], &expected["blocks"]));
        let update = body(&requests[2]);
        assert_eq!((&update["channel"], &update["ts"]), (&json!("C123"), &json!("1700000000.000100")));
        assert_eq!(update["blocks"], expected["blocks"]);
        assert_secret_free(&logs.text());
    }

    #[tokio::test]
    async fn action_needed_is_also_a_thread_reply() {
        let server = MockServer::start().await;
        Mock::given(path("/chat.update")).respond_with(posted("1700000000.000100")).mount(&server).await;
        Mock::given(path("/chat.postMessage"))
            .and(body_partial_json(json!({ "thread_ts": "1700000000.000100" })))
            .respond_with(posted("1700000000.000200"))
            .mount(&server)
            .await;
        let state = json!({ "channel": "C123", "ts": "1700000000.000100" });

        let after = web_api(&server).notify(&notification(), Some(&state)).await.unwrap();

        assert_eq!(after, Some(state), "the thread reply must not replace the release's message");
        let requests = requests(&server).await;
        assert_eq!(requests.len(), 2);
        assert_eq!(
            body(&requests[1]),
            json!({
                "channel": "C123",
                "thread_ts": "1700000000.000100",
                "text": "Check &lt;eu&gt; dashboards\nbefore retrying",
                "reply_broadcast": false,
            })
        );
    }

    #[tokio::test]
    async fn the_thread_reply_mentions_the_on_call_rotation() {
        let server = MockServer::start().await;
        Mock::given(path("/chat.update")).respond_with(posted("1700000000.000100")).mount(&server).await;
        Mock::given(path("/chat.postMessage")).respond_with(posted("1700000000.000200")).mount(&server).await;
        let state = json!({ "channel": "C123", "ts": "1700000000.000100" });
        // (the catalog's on-call, how the reply begins)
        let cases = [
            ("S0614TZR7", "<!subteam^S0614TZR7> Check"),
            ("U024BE7LH", "<@U024BE7LH> Check"),
            ("web-platform-primary", "@web-platform-primary Check"),
            ("@payments<oncall>", "@payments&lt;oncall&gt; Check"),
            ("S-not-an-id", "@S-not-an-id Check"),
        ];
        for (on_call, begins) in cases {
            web_api(&server).with_on_call(Some(on_call)).notify(&notification(), Some(&state)).await.unwrap();
            let reply = body(requests(&server).await.last().unwrap());
            let text = reply["text"].as_str().unwrap();
            assert!(text.starts_with(begins) && text.ends_with("dashboards\nbefore retrying"), "{on_call}: {text}");
        }
    }

    #[tokio::test]
    async fn a_deleted_message_is_posted_again() {
        let server = MockServer::start().await;
        Mock::given(path("/chat.update")).respond_with(slack_error("message_not_found")).mount(&server).await;
        Mock::given(path("/chat.postMessage")).respond_with(posted("1700000000.000900")).mount(&server).await;
        let mut quiet = notification();
        quiet.action_needed = None;

        let state = web_api(&server).notify(&quiet, Some(&json!({ "channel": "C123", "ts": "1.0" }))).await.unwrap();

        assert_eq!(state, Some(json!({ "channel": "C123", "ts": "1700000000.000900" })));
        assert_eq!(body(&requests(&server).await[1])["channel"], "#deploys");
    }

    #[tokio::test]
    async fn a_message_without_a_permalink_is_still_posted_and_kept() {
        let logs = LogCapture::start();
        let cases = [
            slack_error("channel_not_found"),
            ResponseTemplate::new(503),
            ResponseTemplate::new(200).set_body_json(json!({ "ok": true, "permalink": "javascript:alert(1)" })),
        ];
        for answer in cases {
            let server = MockServer::start().await;
            Mock::given(path("/chat.postMessage")).respond_with(posted("1700000000.000100")).mount(&server).await;
            Mock::given(path("/chat.getPermalink")).respond_with(answer).mount(&server).await;
            let mut quiet = notification();
            quiet.action_needed = None;

            let state = web_api(&server).notify(&quiet, None).await.unwrap();

            assert_eq!(state, Some(json!({ "channel": "C123", "ts": "1700000000.000100" })));
            assert_eq!(requests(&server).await.len(), 2, "posted once, not again for the link");
        }
        assert!(logs.text().contains("has no link"), "{}", logs.text());
        assert_secret_free(&logs.text());
    }

    #[tokio::test]
    async fn slack_errors_map_to_retryable_or_not() {
        let logs = LogCapture::start();
        let cases = [
            (slack_error("channel_not_found"), false, "chat.postMessage to #deploys failed: channel_not_found"),
            (slack_error("not_in_channel"), false, "invite the Baton app to #deploys"),
            (slack_error("invalid_auth"), false, "check the bot token env:SLACK_BOT_TOKEN"),
            (slack_error("ratelimited").insert_header("Retry-After", "30"), true, "failed: ratelimited (retry after 30 s)"),
            (slack_error("internal_error"), true, "failed: internal_error"),
            (ResponseTemplate::new(429).insert_header("Retry-After", "7"), true, "is rate-limited (retry after 7 s)"),
            (ResponseTemplate::new(503), true, "answered 503 Service Unavailable"),
            (ResponseTemplate::new(404).set_body_string("no such method"), false, "was refused (404 Not Found): no such method"),
            (ResponseTemplate::new(200).set_body_string("<html>proxy</html>"), true, "something other than Slack's JSON envelope"),
        ];
        for (answer, transient, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST")).respond_with(answer).mount(&server).await;
            let error = web_api(&server).notify(&notification(), None).await.unwrap_err();
            let message = error.message();
            assert_eq!(matches!(error, ProviderError::Unavailable { .. }), transient, "{error:?}");
            assert!(message.contains(expected), "expected '{expected}' in '{message}'");
            assert_secret_free(message);
        }
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("T".into()), TOKEN));
        let offline = SlackWebApiNotifier::new(
            "#deploys",
            SecretRef::Env("T".into()),
            secrets,
            http_client().unwrap(),
            &format!("http://{refused}/api/"),
        );
        let error = offline.notify(&notification(), None).await.unwrap_err();
        assert!(
            matches!(&error, ProviderError::Unavailable { .. })
                && chain_text(&error).contains("Slack chat.postMessage to #deploys: error sending request"),
            "{error:?}"
        );
        assert_secret_free(&logs.text());
    }

    #[tokio::test]
    async fn a_rate_limit_holds_the_token_or_the_webhook_until_its_end() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30")).mount(&server).await;
        let limits = fresh_limits();
        let slack = web_api(&server).with_rate_limits(limits.clone());
        let limited = slack.notify(&notification(), None).await.unwrap_err();
        let limit = limited.rate_limit().expect("a rate limit with its end").clone();
        assert!(limit.answered && limit.service == "Slack", "{limited}");
        assert!(limit.until - chrono::Utc::now() > chrono::Duration::seconds(25), "{limit:?}");
        // The next notification with the token, whichever notifier sends it, waits: nothing is sent.
        let held = web_api(&server).with_rate_limits(limits.clone()).notify(&notification(), None).await.unwrap_err();
        assert!(held.rate_limit().is_some_and(|limit| !limit.answered), "{held}");
        assert_eq!(requests(&server).await.len(), 1);

        // A webhook's URL is its credential: one limited webhook holds back only itself.
        let hook = |part: &str| {
            let url = format!("{}/services/{part}", server.uri());
            let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("SLACK_WEBHOOK".into()), &url));
            SlackWebhookNotifier::new("#deploys", SecretRef::Env("SLACK_WEBHOOK".into()), secrets, http_client().unwrap())
                .with_rate_limits(limits.clone())
        };
        assert!(hook("T1/B1/ONE").notify(&notification(), None).await.unwrap_err().rate_limit().is_some_and(|limit| limit.answered));
        assert!(hook("T1/B1/ONE").notify(&notification(), None).await.unwrap_err().rate_limit().is_some_and(|limit| !limit.answered));
        assert!(hook("T1/B2/TWO").notify(&notification(), None).await.unwrap_err().rate_limit().is_some_and(|limit| limit.answered));
        assert_eq!(requests(&server).await.len(), 3);
    }

    #[tokio::test]
    async fn unreadable_state_is_rejected() {
        let server = MockServer::start().await;
        let error = web_api(&server).notify(&notification(), Some(&json!({ "ts": 5 }))).await.unwrap_err();
        assert!(matches!(&error, ProviderError::Rejected { message: m, .. } if m.contains("not a message reference")), "{error:?}");
        assert!(requests(&server).await.is_empty());
    }

    #[tokio::test]
    async fn the_webhook_posts_a_new_block_kit_message_each_time() {
        let logs = LogCapture::start();
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/services/{WEBHOOK_SECRET_PART}")))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&server)
            .await;
        let slack = webhook(&server);
        assert_eq!(slack.name(), "slack-webhook");

        assert_eq!(slack.notify(&notification(), None).await.unwrap(), None);
        assert_eq!(slack.notify(&notification(), None).await.unwrap(), None);

        let requests = requests(&server).await;
        assert_eq!(requests.len(), 2);
        assert_eq!(body(&requests[0]), slack_message(&notification()));
        assert!(requests[0].headers.get("authorization").is_none());
        assert_secret_free(&logs.text());
    }

    #[tokio::test]
    async fn webhook_errors_never_show_the_url() {
        let logs = LogCapture::start();
        let cases = [
            (ResponseTemplate::new(404).set_body_string("channel_not_found"), false, "was refused (404 Not Found): channel_not_found"),
            (ResponseTemplate::new(400).set_body_string("invalid_blocks"), false, "invalid_blocks"),
            (ResponseTemplate::new(429).insert_header("Retry-After", "2"), true, "rate-limited (retry after 2 s)"),
            (ResponseTemplate::new(500).set_body_string("rollup_error"), true, "answered 500 Internal Server Error: rollup_error"),
        ];
        for (answer, transient, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST")).respond_with(answer).mount(&server).await;
            let error = webhook(&server).notify(&notification(), None).await.unwrap_err();
            let message = error.message();
            assert_eq!(matches!(error, ProviderError::Unavailable { .. }), transient, "{error:?}");
            assert!(message.starts_with("Slack webhook env:SLACK_WEBHOOK for #deploys") && message.contains(expected), "{message}");
            assert_secret_free(message);
        }
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let url = format!("http://{refused}/services/{WEBHOOK_SECRET_PART}");
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("SLACK_WEBHOOK".into()), &url));
        let offline = SlackWebhookNotifier::new("#deploys", SecretRef::Env("SLACK_WEBHOOK".into()), secrets, http_client().unwrap());
        let error = offline.notify(&notification(), None).await.unwrap_err();
        let ProviderError::Unavailable { message, .. } = &error else { panic!("{error:?}") };
        assert_secret_free(message);
        assert!(!message.contains(&refused.to_string()), "{message}");
        assert_secret_free(&logs.text());
    }
}

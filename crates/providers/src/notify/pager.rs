//! Paging the on-call when a release needs a person: PagerDuty's Events API v2 and Opsgenie's
//! Alert API. Both page only for notifications with `action_needed` and say nothing otherwise
//! (the team's channel has the rest). The release id deduplicates the page (PagerDuty's
//! `dedup_key`, Opsgenie's `alias`), so a notification sent again, by the notify handler's
//! retries or a retried task, pages no one twice; neither keeps notifier state.

use crate::http::{DEFAULT_REQUEST_TIMEOUT, RateLimits, Refused, decode, exchange, retry_after};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};
use baton_domain::ports::{Notification, Notifier, ProviderError, SecretResolver};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
pub const OPSGENIE_US_API: &str = "https://api.opsgenie.com";
pub const OPSGENIE_EU_API: &str = "https://api.eu.opsgenie.com";
/// PagerDuty cuts a `summary` longer than this; Opsgenie refuses a `message` longer than 130
/// characters and a `description` longer than 15,000.
const PAGERDUTY_SUMMARY_CHARS: usize = 1024;
const OPSGENIE_MESSAGE_CHARS: usize = 130;
const OPSGENIE_DESCRIPTION_CHARS: usize = 15_000;

/// The `pagerduty` notifier's block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PagerDutySpec {
    /// The integration key of the service's Events API v2 integration (a secret).
    pub routing_key: SecretRef,
}

/// The `opsgenie` notifier's block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OpsgenieSpec {
    /// The key of an Opsgenie API integration (a secret).
    pub api_key: SecretRef,
    /// Where the Opsgenie account lives, as Datadog's `integrations.opsgenie.region` says it.
    #[serde(default)]
    pub region: OpsgenieRegion,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpsgenieRegion {
    #[default]
    #[serde(rename = "US")]
    Us,
    #[serde(rename = "EU")]
    Eu,
}

const PAGERDUTY_FIELDS: &[Field] =
    &[required("routing-key", Kind::Secret, "The integration key of the service's Events API v2 integration (secret reference).")];

pub const PAGERDUTY: ProviderShape = ProviderShape {
    slot: Slot::Notify,
    name: "pagerduty",
    doc: "Pages the on-call through PagerDuty when a release needs a person.",
    fields: PAGERDUTY_FIELDS,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<PagerDutySpec>,
};

const OPSGENIE_FIELDS: &[Field] = &[
    required("api-key", Kind::Secret, "The key of an Opsgenie API integration (secret reference)."),
    field("region", Kind::Enum(&["US", "EU"]), "The account's region; `US` by default."),
];

pub const OPSGENIE: ProviderShape = ProviderShape {
    slot: Slot::Notify,
    name: "opsgenie",
    doc: "Pages the on-call through Opsgenie when a release needs a person.",
    fields: OPSGENIE_FIELDS,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<OpsgenieSpec>,
};

/// Triggers a PagerDuty alert (`event_action: trigger`, `dedup_key` the release id) on the
/// service's Events API v2 integration, whose escalation policy reaches the on-call.
pub struct PagerDutyNotifier {
    routing_key: LazySecret,
    on_call: Option<String>,
    url: String,
    timeout: Duration,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

/// PagerDuty's answer to an accepted event: 202 `{"status": "success", "message": "Event
/// processed", "dedup_key": ...}`.
#[derive(Deserialize)]
struct EventAccepted {
    status: String,
}

impl PagerDutyNotifier {
    pub fn new(spec: &PagerDutySpec, on_call: Option<&str>, secrets: Arc<dyn SecretResolver>, http: reqwest::Client) -> PagerDutyNotifier {
        PagerDutyNotifier {
            routing_key: LazySecret::new(spec.routing_key.clone(), secrets),
            on_call: on_call.map(str::to_owned),
            url: DEFAULT_PAGERDUTY_EVENTS_URL.to_owned(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            limits: RateLimits::shared(),
            http,
        }
    }

    /// Sends events to `url` instead of PagerDuty's (tests, a proxy), waiting `timeout` for each answer.
    pub fn with_endpoint(mut self, url: &str, timeout: Duration) -> PagerDutyNotifier {
        self.url = url.to_owned();
        self.timeout = timeout;
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> PagerDutyNotifier {
        self.limits = limits;
        self
    }

    fn event(&self, notification: &Notification, action: &str, routing_key: &Secret) -> Value {
        let release = &notification.release;
        let summary = format!("{} in {}: {action}", release.service, release.environment);
        json!({
            "routing_key": routing_key.expose(),
            "event_action": "trigger",
            "dedup_key": release.id.as_str(),
            "client": "Baton",
            "payload": {
                "summary": cut(&summary, PAGERDUTY_SUMMARY_CHARS),
                "source": format!("baton/{}", release.service),
                "severity": "critical",
                "component": release.service,
                "group": release.environment,
                "class": "release",
                "custom_details": details(notification, self.on_call.as_deref()),
            },
            "links": notification.links.iter().map(|(text, href)| json!({"href": href, "text": text})).collect::<Vec<_>>(),
        })
    }
}

#[async_trait]
impl Notifier for PagerDutyNotifier {
    fn name(&self) -> &str {
        "pagerduty"
    }

    async fn notify(&self, notification: &Notification, _state: Option<&Value>) -> Result<Option<Value>, ProviderError> {
        let Some(action) = &notification.action_needed else { return Ok(None) };
        let routing_key = self.routing_key.get().await?;
        let context =
            format!("paging the on-call of {} through PagerDuty about release {}", notification.release.service, notification.release.id);
        let credentials = format!(
            "check that the routing key {} is the integration key of an Events API v2 integration on the service",
            self.routing_key.reference()
        );
        let page = Page { url: &self.url, authorization: None, body: self.event(notification, action, routing_key), timeout: self.timeout };
        let refused = Refused {
            service: "PagerDuty",
            context: &context,
            credentials: &credentials,
            missing: "nothing takes events at the events URL",
            secrets: &[routing_key],
        };
        let body = page.send(&self.http, &self.limits, &refused).await?;
        let accepted: EventAccepted = decode(&body, &context)?;
        if accepted.status != "success" {
            return Err(ProviderError::unavailable(format!("{context}: PagerDuty answered status '{}', not 'success'", accepted.status)));
        }
        Ok(None)
    }
}

/// Creates an Opsgenie alert (`alias` the release id) through an API integration, whose team
/// and routing rules reach the on-call.
pub struct OpsgenieNotifier {
    api_key: LazySecret,
    on_call: Option<String>,
    api: String,
    timeout: Duration,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

/// Opsgenie's answer to an alert request: 202 `{"result": "Request will be processed", "took":
/// 0.302, "requestId": ...}`; the alert is created asynchronously.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertRequested {
    /// What Opsgenie's `GET /v2/alerts/requests/{id}` tells about the alert, for whoever traces it.
    request_id: String,
}

impl OpsgenieNotifier {
    pub fn new(spec: &OpsgenieSpec, on_call: Option<&str>, secrets: Arc<dyn SecretResolver>, http: reqwest::Client) -> OpsgenieNotifier {
        let api = match spec.region {
            OpsgenieRegion::Us => OPSGENIE_US_API,
            OpsgenieRegion::Eu => OPSGENIE_EU_API,
        };
        OpsgenieNotifier {
            api_key: LazySecret::new(spec.api_key.clone(), secrets),
            on_call: on_call.map(str::to_owned),
            api: api.to_owned(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            limits: RateLimits::shared(),
            http,
        }
    }

    /// Sends alerts to the API at `api` instead of the region's (tests, a proxy), waiting `timeout` for each answer.
    pub fn with_endpoint(mut self, api: &str, timeout: Duration) -> OpsgenieNotifier {
        self.api = api.trim_end_matches('/').to_owned();
        self.timeout = timeout;
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> OpsgenieNotifier {
        self.limits = limits;
        self
    }

    fn alert(&self, notification: &Notification, action: &str) -> Value {
        let release = &notification.release;
        let links: String = notification.links.iter().map(|(label, url)| format!("\n{label}: {url}")).collect();
        json!({
            "message": cut(&format!("{} in {}: {}", release.service, release.environment, notification.headline), OPSGENIE_MESSAGE_CHARS),
            "alias": release.id.as_str(),
            "description": cut(&format!("{action}{links}"), OPSGENIE_DESCRIPTION_CHARS),
            "source": "Baton",
            "entity": release.service,
            "priority": "P1",
            "tags": ["baton", release.service, release.environment],
            "details": details(notification, self.on_call.as_deref()),
        })
    }
}

#[async_trait]
impl Notifier for OpsgenieNotifier {
    fn name(&self) -> &str {
        "opsgenie"
    }

    async fn notify(&self, notification: &Notification, _state: Option<&Value>) -> Result<Option<Value>, ProviderError> {
        let Some(action) = &notification.action_needed else { return Ok(None) };
        let api_key = self.api_key.get().await?;
        let context =
            format!("paging the on-call of {} through Opsgenie about release {}", notification.release.service, notification.release.id);
        let credentials = format!(
            "check that the API key {} belongs to an API integration allowed to create alerts, in this region",
            self.api_key.reference()
        );
        let url = format!("{}/v2/alerts", self.api);
        let page = Page {
            url: &url,
            authorization: Some(format!("GenieKey {}", api_key.expose())),
            body: self.alert(notification, action),
            timeout: self.timeout,
        };
        let refused = Refused {
            service: "Opsgenie",
            context: &context,
            credentials: &credentials,
            missing: "no alert API at this address: check the region",
            secrets: &[api_key],
        };
        let body = page.send(&self.http, &self.limits, &refused).await?;
        let requested: AlertRequested = decode(&body, &context)?;
        tracing::info!(target: "baton::notify", request_id = %requested.request_id, "{context}: Opsgenie accepted the alert");
        Ok(None)
    }
}

/// One page: a JSON POST, with its credentials in the header or the body.
struct Page<'a> {
    url: &'a str,
    authorization: Option<String>,
    body: Value,
    timeout: Duration,
}

impl Page<'_> {
    /// The 2xx answer's body, or what the answer means: 429, 408 and 5xx are worth retrying
    /// (the notify handler does, within its budget), any other refusal is not.
    async fn send(&self, http: &reqwest::Client, limits: &RateLimits, refused: &Refused<'_>) -> Result<Vec<u8>, ProviderError> {
        let body = self.body.to_string();
        let build = || {
            let request = http.post(self.url).header(CONTENT_TYPE, "application/json").body(body.clone());
            match &self.authorization {
                Some(authorization) => request.header(AUTHORIZATION, authorization),
                None => request,
            }
        };
        let answer = exchange(limits, refused.service, build, self.timeout, refused.context, retry_after).await?;
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        Err(answer.refusal(refused, retry_after(&answer.headers)))
    }
}

/// What the on-call sees of the release besides the headline.
fn details(notification: &Notification, on_call: Option<&str>) -> Value {
    let release = &notification.release;
    json!({
        "release": release.id.as_str(),
        "service": release.service,
        "environment": release.environment,
        "status": release.status.as_str(),
        "headline": notification.headline,
        "action_needed": notification.action_needed,
        "on_call": on_call,
    })
}

/// `text` cut to `limit` characters, the last one an ellipsis when it was longer.
fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit - 1) {
        Some((end, _)) if text.chars().count() > limit => format!("{}…", &text[..end]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client;
    use crate::notify::tests::notification;
    use crate::test_support::{FixedSecrets, LogCapture};
    use baton_domain::catalog::{ProviderBlock, SecretRef};
    use baton_domain::error::chain_text;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const ROUTING_KEY: &str = "R0UT1NGKEY-TOPSECRET";
    const API_KEY: &str = "eb243592-TOPSECRET";

    fn pagerduty(server: &MockServer) -> PagerDutyNotifier {
        let reference = SecretRef::Env("PD_ROUTING_KEY".into());
        let secrets = Arc::new(FixedSecrets::one(reference.clone(), ROUTING_KEY));
        PagerDutyNotifier::new(&PagerDutySpec { routing_key: reference }, Some("web-platform-primary"), secrets, http_client().unwrap())
            .with_endpoint(&format!("{}/v2/enqueue", server.uri()), Duration::from_millis(500))
            .with_rate_limits(RateLimits::new(Arc::new(baton_domain::ports::SystemClock)))
    }

    fn opsgenie(server: &MockServer) -> OpsgenieNotifier {
        let reference = SecretRef::Env("OPSGENIE_API_KEY".into());
        let secrets = Arc::new(FixedSecrets::one(reference.clone(), API_KEY));
        let spec = OpsgenieSpec { api_key: reference, region: OpsgenieRegion::Eu };
        OpsgenieNotifier::new(&spec, Some("web-platform-primary"), secrets, http_client().unwrap())
            .with_endpoint(&server.uri(), Duration::from_millis(500))
            .with_rate_limits(RateLimits::new(Arc::new(baton_domain::ports::SystemClock)))
    }

    fn event_processed() -> ResponseTemplate {
        ResponseTemplate::new(202).set_body_json(json!({
            "status": "success", "message": "Event processed", "dedup_key": "rel-web-20260101120000-0123abcd"
        }))
    }

    fn alert_requested() -> ResponseTemplate {
        ResponseTemplate::new(202).set_body_json(
            json!({"result": "Request will be processed", "took": 0.302, "requestId": "43a29c5c-3dbf-4fa4-9c26-f4f71023e120"}),
        )
    }

    fn body(request: &Request) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    fn assert_secret_free(text: &str) {
        assert!(!text.contains("TOPSECRET"), "a secret leaked: {text}");
    }

    #[tokio::test]
    async fn a_rate_limit_holds_the_pager_back_until_its_end() {
        let server = MockServer::start().await;
        let throttled = ResponseTemplate::new(429)
            .set_body_json(json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly"}))
            .insert_header("retry-after", "30");
        Mock::given(method("POST")).respond_with(throttled).mount(&server).await;
        let limits = RateLimits::new(Arc::new(baton_domain::ports::SystemClock));
        let error = pagerduty(&server).with_rate_limits(limits.clone()).notify(&notification(), None).await.unwrap_err();
        assert!(error.rate_limit().is_some_and(|limit| limit.answered && limit.service == "PagerDuty"), "{error}");
        // The notify handler's retry inside the window sends nothing.
        let held = pagerduty(&server).with_rate_limits(limits.clone()).notify(&notification(), None).await.unwrap_err();
        assert!(held.rate_limit().is_some_and(|limit| !limit.answered), "{held}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        // Opsgenie is another API: its own quota.
        let error = opsgenie(&server).with_rate_limits(limits).notify(&notification(), None).await.unwrap_err();
        assert!(error.rate_limit().is_some_and(|limit| limit.answered && limit.service == "Opsgenie"), "{error}");
    }

    #[tokio::test]
    async fn pagerduty_is_paged_with_a_trigger_deduplicated_by_the_release() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/v2/enqueue")).respond_with(event_processed()).mount(&server).await;

        let state = pagerduty(&server).notify(&notification(), None).await.unwrap();

        assert_eq!(state, None, "paging keeps no state");
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].headers.get("content-type").unwrap(), "application/json");
        assert_eq!(
            body(&requests[0]),
            json!({
                "routing_key": ROUTING_KEY,
                "event_action": "trigger",
                "dedup_key": "rel-web-20260101120000-0123abcd",
                "client": "Baton",
                "payload": {
                    "summary": "web in production: Check <eu> dashboards\nbefore retrying",
                    "source": "baton/web",
                    "severity": "critical",
                    "component": "web",
                    "group": "production",
                    "class": "release",
                    "custom_details": {
                        "release": "rel-web-20260101120000-0123abcd",
                        "service": "web",
                        "environment": "production",
                        "status": "running",
                        "headline": "Wave eu unhealthy (2/3) & rolling back",
                        "action_needed": "Check <eu> dashboards\nbefore retrying",
                        "on_call": "web-platform-primary",
                    },
                },
                "links": [
                    {"href": "http://ci.local/build/7?a=1&b=2", "text": "build"},
                    {"href": "http://cd.local/web", "text": "deploy"},
                ],
            })
        );
    }

    #[tokio::test]
    async fn opsgenie_is_paged_with_an_alert_aliased_by_the_release() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/alerts"))
            .and(header("authorization", format!("GenieKey {API_KEY}").as_str()))
            .respond_with(alert_requested())
            .mount(&server)
            .await;

        assert_eq!(opsgenie(&server).notify(&notification(), None).await.unwrap(), None);

        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let alert = body(&requests[0]);
        assert_eq!(alert["message"], "web in production: Wave eu unhealthy (2/3) & rolling back");
        assert_eq!(alert["alias"], "rel-web-20260101120000-0123abcd");
        assert_eq!(
            alert["description"],
            "Check <eu> dashboards\nbefore retrying\nbuild: http://ci.local/build/7?a=1&b=2\ndeploy: http://cd.local/web"
        );
        assert_eq!((alert["priority"].as_str(), alert["entity"].as_str()), (Some("P1"), Some("web")));
        assert_eq!(alert["tags"], json!(["baton", "web", "production"]));
        assert_eq!(alert["details"]["on_call"], "web-platform-primary");
        assert_secret_free(&alert.to_string());
    }

    #[tokio::test]
    async fn nothing_is_paged_when_no_one_must_act() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(event_processed()).mount(&server).await;
        let mut quiet = notification();
        quiet.action_needed = None;
        assert_eq!(pagerduty(&server).notify(&quiet, None).await.unwrap(), None);
        assert_eq!(opsgenie(&server).notify(&quiet, None).await.unwrap(), None);
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[test]
    fn the_opsgenie_region_picks_the_api_host() {
        let secrets: Arc<dyn SecretResolver> = Arc::new(FixedSecrets::one(SecretRef::Env("K".into()), "k"));
        let api = |region| {
            let spec = OpsgenieSpec { api_key: SecretRef::Env("K".into()), region };
            OpsgenieNotifier::new(&spec, None, secrets.clone(), http_client().unwrap()).api
        };
        assert_eq!(api(OpsgenieRegion::Us), "https://api.opsgenie.com");
        assert_eq!(api(OpsgenieRegion::Eu), "https://api.eu.opsgenie.com");
    }

    /// Each answer, as the service documents it, and whether it is retried (`Unavailable`)
    /// and what the error says.
    #[tokio::test]
    async fn refusals_and_failures_say_what_to_do_and_never_quote_a_key() {
        let logs = LogCapture::start();
        let echo = |status: u16, json: Value| ResponseTemplate::new(status).set_body_json(json);
        let pagerduty_cases = [
            (
                echo(
                    400,
                    json!({"status": "invalid event", "message": "Event object is invalid", "errors": [format!("'routing_key' {ROUTING_KEY} is invalid")]}),
                ),
                false,
                "PagerDuty answered HTTP 400: Event object is invalid",
            ),
            (
                echo(429, json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly"}))
                    .insert_header("retry-after", "30"),
                true,
                "rate limiting (HTTP 429), retry after 30 s",
            ),
            (echo(500, json!({"message": "internal error"})), true, "PagerDuty answered HTTP 500"),
            (echo(202, json!({"status": "success"})).set_delay(Duration::from_secs(2)), true, "no answer within 500 ms"),
            (echo(202, json!({"message": "Event processed"})), true, "unreadable answer"),
        ];
        for (answer, retried, says) in pagerduty_cases {
            let server = MockServer::start().await;
            Mock::given(method("POST")).respond_with(answer).mount(&server).await;
            let err = pagerduty(&server).notify(&notification(), None).await.unwrap_err();
            let text = chain_text(&err);
            assert_eq!(matches!(err, ProviderError::Unavailable { .. }), retried, "{text}");
            assert!(text.contains(says) && text.contains("through PagerDuty about release rel-web-"), "{text}");
            assert_secret_free(&text);
        }
        let opsgenie_cases = [
            (
                echo(401, json!({"message": "Could not authenticate", "took": 0.0, "requestId": "r-1"})),
                false,
                "refused the credentials (HTTP 401): check that the API key env:OPSGENIE_API_KEY",
            ),
            (
                echo(403, json!({"message": format!("Key {API_KEY} cannot create alerts"), "took": 0.0, "requestId": "r-2"})),
                false,
                "Opsgenie denied it (HTTP 403)",
            ),
            (
                echo(422, json!({"message": "Request body is not processable", "took": 0.0, "requestId": "r-3"})),
                false,
                "HTTP 422: Request body is not processable",
            ),
            (
                echo(429, json!({"message": "Rate limit exceeded", "took": 0.0, "requestId": "r-4"})).insert_header("retry-after", "60"),
                true,
                "retry after 60 s",
            ),
            (echo(503, json!({"message": "Service unavailable"})), true, "Opsgenie answered HTTP 503"),
        ];
        for (answer, retried, says) in opsgenie_cases {
            let server = MockServer::start().await;
            Mock::given(method("POST")).respond_with(answer).mount(&server).await;
            let err = opsgenie(&server).notify(&notification(), None).await.unwrap_err();
            let text = chain_text(&err);
            assert_eq!(matches!(err, ProviderError::Unavailable { .. }), retried, "{text}");
            assert!(text.contains(says) && text.contains("through Opsgenie about release rel-web-"), "{text}");
            assert_secret_free(&text);
        }
        assert_secret_free(&logs.text());
    }

    #[tokio::test]
    async fn a_server_error_then_an_acceptance_pages_once() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(502)).up_to_n_times(1).mount(&server).await;
        Mock::given(method("POST")).respond_with(event_processed()).mount(&server).await;
        let notifier = pagerduty(&server);
        assert!(matches!(notifier.notify(&notification(), None).await, Err(ProviderError::Unavailable { .. })));
        assert_eq!(notifier.notify(&notification(), None).await.unwrap(), None, "the retry is accepted");
        let dedup: Vec<Value> = server.received_requests().await.unwrap().iter().map(|r| body(r)["dedup_key"].clone()).collect();
        assert_eq!(dedup, vec![json!("rel-web-20260101120000-0123abcd"); 2], "the retry is the same alert to PagerDuty");
    }

    #[test]
    fn the_local_providers_page_through_whatever_the_entry_names() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("K".into()), "k"));
        let providers = crate::LocalProviders::new(dir.path().into(), None, secrets, None).unwrap();
        let mut entry = crate::test_support::entry_in(dir.path());
        let names = |entry: &baton_domain::catalog::ServiceEntry| {
            let notifiers = baton_domain::ports::Providers::notifiers(&providers, entry).unwrap();
            notifiers.iter().map(|n| n.name().to_owned()).collect::<Vec<_>>()
        };
        assert!(names(&entry).is_empty());
        entry.delivery.notify.push(ProviderBlock::of("pagerduty", &PagerDutySpec { routing_key: SecretRef::Env("K".into()) }));
        assert_eq!(names(&entry), ["pagerduty"]);
        entry
            .delivery
            .notify
            .push(ProviderBlock::of("opsgenie", &OpsgenieSpec { api_key: SecretRef::Env("K".into()), region: OpsgenieRegion::Us }));
        assert_eq!(names(&entry), ["pagerduty", "opsgenie"]);
    }

    #[test]
    fn long_texts_are_cut_to_the_apis_limits() {
        assert_eq!(cut("short", 130), "short");
        let long = cut(&"é".repeat(200), OPSGENIE_MESSAGE_CHARS);
        assert_eq!(long.chars().count(), OPSGENIE_MESSAGE_CHARS);
        assert!(long.ends_with("é…"));
        assert_eq!(cut(&"a".repeat(130), 130), "a".repeat(130), "exactly the limit is kept whole");
    }
}

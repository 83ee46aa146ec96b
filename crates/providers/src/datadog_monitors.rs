//! The `datadog` health gate: the overall state of the service's Datadog monitors.
//!
//! Monitors named by id (`monitors`) are read one by one (`GET /api/v1/monitor/{id}`, "Get a
//! monitor's details"), and a bake can park on their webhooks ([`monitor_key`]) instead of
//! sampling: the gate knows each monitor's key without a call. Otherwise each sample lists the
//! monitors tagged `service:<service>`, `env:<environment>` and the
//! gate's `tags` (`GET /api/v1/monitor?monitor_tags=...`, the Monitors API's list, which filters
//! by monitor tags and reports each monitor's `overall_state`), a page of [`PAGE_SIZE`] at a
//! time. The tags are checked again on each monitor, so a filter that matched any of them
//! instead of all could not widen the gate.
//!
//! - Unhealthy when any monitor's overall state is one of the gate's `unhealthy` states
//!   (`Alert` unless set; `Warn`, `No Data` and the others may be added), compared ignoring case.
//! - No monitor carrying the tags is a configuration problem, not health: `Rejected`.
//! - Rate limits: `Retry-After`, else Datadog's `X-RateLimit-Reset` (seconds until the reset), held
//!   per API key and host for the whole process ([`RateLimits`]): nothing is sent before their end.

use crate::http::{Answer, DEFAULT_REQUEST_TIMEOUT, RateLimits, Refused, decode, exchange, http_url, quote, shown, x_rate_limit_wait};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError, SecretResolver};
use baton_domain::text::counted;
use baton_domain::waits::{WaitKey, WaitKind};
use reqwest::Url;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The `provider` of a bake's wait on one monitor: the monitor's webhook ends it early.
pub const DATADOG_MONITOR: &str = "datadog-monitor";

/// The key a bake waits on for monitor `id` (as the Monitors API and the webhook's `$ALERT_ID` give it).
pub fn monitor_key(id: i64) -> WaitKey {
    WaitKey::new(WaitKind::Bake, DATADOG_MONITOR, id.to_string())
}

/// Monitors asked for per page.
pub const PAGE_SIZE: usize = 1000;
/// A gate matching more monitors than this many pages hold is too wide to mean anything.
const MAX_PAGES: usize = 10;

/// Samples the overall state of the monitors named by id or tagged for the service; see the module docs.
pub struct DatadogMonitorsGate {
    api: Url,
    /// The monitors named by id; when empty, those carrying `tags`.
    ids: Vec<i64>,
    /// `service:web`, `env:production`, then the gate's own.
    tags: Vec<String>,
    /// Whether a bake parks on the monitors' webhooks ([`DatadogGate::parks_bake`]).
    parks: bool,
    unhealthy: Vec<String>,
    api_key: LazySecret,
    app_key: LazySecret,
    timeout: Duration,
    page_size: usize,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

/// The parts of a monitor Baton reads.
#[derive(Debug, Deserialize)]
struct Monitor {
    id: i64,
    name: String,
    overall_state: String,
    #[serde(default)]
    tags: Vec<String>,
}

impl DatadogMonitorsGate {
    /// The monitors of `service` in `environment`; `source` is the catalog file, for errors.
    pub fn new(
        spec: &DatadogGate,
        service: &str,
        environment: &str,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<DatadogMonitorsGate, ProviderError> {
        let rejected = |why: String| ProviderError::rejected(format!("{source}: extensions.baton.health.gates: datadog {why}"));
        let base = spec.api_url.clone().unwrap_or_else(|| format!("https://api.{}", spec.site));
        let api = http_url(&base).map_err(|why| rejected(format!("API URL {why} (from site or api-url)")))?;
        if spec.unhealthy.is_empty() {
            return Err(rejected("unhealthy lists no state: nothing could fail the gate (Alert is the default)".into()));
        }
        if !spec.monitors.is_empty() && !spec.tags.is_empty() {
            return Err(rejected("names monitors by id and selects them by tags: expected one of monitors or tags".into()));
        }
        let mut tags = vec![format!("service:{service}"), format!("env:{environment}")];
        tags.extend(spec.tags.iter().filter(|tag| !tags.contains(tag)).cloned().collect::<Vec<_>>());
        Ok(DatadogMonitorsGate {
            api,
            ids: spec.monitors.clone(),
            tags,
            parks: spec.parks_bake(),
            unhealthy: spec.unhealthy.clone(),
            api_key: LazySecret::new(spec.api_key.clone(), Arc::clone(&secrets)),
            app_key: LazySecret::new(spec.app_key.clone(), secrets),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            page_size: PAGE_SIZE,
            limits: RateLimits::shared(),
            http,
        })
    }

    /// How long one request may take ([`DEFAULT_REQUEST_TIMEOUT`] unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> DatadogMonitorsGate {
        self.timeout = timeout;
        self
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> DatadogMonitorsGate {
        self.limits = limits;
        self
    }

    /// Monitors per page ([`PAGE_SIZE`] unless set).
    pub fn with_page_size(mut self, page_size: usize) -> DatadogMonitorsGate {
        self.page_size = page_size.max(1);
        self
    }

    fn page_url(&self, page: usize) -> Url {
        let mut url = self.api.clone();
        url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend(["api", "v1", "monitor"]);
        url.query_pairs_mut()
            .append_pair("monitor_tags", &self.tags.join(","))
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &self.page_size.to_string());
        url
    }

    fn refusal(&self, answer: &Answer, context: &str, keys: [&Secret; 2]) -> ProviderError {
        let credentials = format!(
            "check the API key {} and the application key {} (the application key needs the monitors_read permission) \
             and that they belong to the site {}",
            self.api_key.reference(),
            self.app_key.reference(),
            self.api.host_str().unwrap_or_default()
        );
        let missing = format!("{} has no Monitors API: check the gate's site or api-url", shown(&self.api));
        let refused = Refused { service: "Datadog", context, credentials: &credentials, missing: &missing, secrets: &keys };
        answer.refusal(&refused, x_rate_limit_wait(&answer.headers))
    }

    fn monitor_url(&self, id: i64) -> Url {
        let mut url = self.api.clone();
        url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend(["api", "v1", "monitor", &id.to_string()]);
        url
    }

    /// GET `url` with the keys: the answer of a success, else the refusal (`not_found`'s for a 404, when given).
    async fn get(&self, url: &Url, context: &str, keys: [&Secret; 2], not_found: Option<&str>) -> Result<Answer, ProviderError> {
        let [api_key, app_key] = keys;
        let build = || {
            self.http
                .get(url.clone())
                .header("dd-api-key", api_key.expose())
                .header("dd-application-key", app_key.expose())
                .header(reqwest::header::ACCEPT, "application/json")
        };
        let answer = exchange(&self.limits, "Datadog", build, self.timeout, context, x_rate_limit_wait).await?;
        match not_found {
            Some(not_found) if answer.status == reqwest::StatusCode::NOT_FOUND => {
                Err(ProviderError::rejected(format!("{context}: {not_found}")))
            }
            _ if !answer.status.is_success() => Err(self.refusal(&answer, context, keys)),
            _ => Ok(answer),
        }
    }

    /// The gate's monitors: those named by id, else every one carrying all the tags.
    async fn monitors(&self) -> Result<Vec<Monitor>, ProviderError> {
        let (api_key, app_key) = (self.api_key.get().await?, self.app_key.get().await?);
        if !self.ids.is_empty() {
            let mut monitors = Vec::with_capacity(self.ids.len());
            for id in &self.ids {
                let context = format!("reading the Datadog monitor #{id}");
                let not_found = format!("{} has no such monitor (HTTP 404): check the gate's monitors and site", shown(&self.api));
                let answer = self.get(&self.monitor_url(*id), &context, [api_key, app_key], Some(&not_found)).await?;
                monitors.push(decode(&answer.body, &context)?);
            }
            return Ok(monitors);
        }
        let mut monitors = Vec::new();
        for page in 0..MAX_PAGES {
            let context = format!("listing the Datadog monitors tagged {} (page {page})", self.tags.join(", "));
            let answer = self.get(&self.page_url(page), &context, [api_key, app_key], None).await?;
            let listed: Vec<Monitor> = decode(&answer.body, &context)?;
            let last = listed.len() < self.page_size;
            monitors.extend(listed.into_iter().filter(|monitor| self.tags.iter().all(|tag| monitor.tags.contains(tag))));
            if last {
                return Ok(monitors);
            }
        }
        Err(ProviderError::rejected(format!(
            "more than {} Datadog monitors carry the tags {}: add tags to the gate that pick the service's own",
            MAX_PAGES * self.page_size,
            self.tags.join(", ")
        )))
    }

    fn is_unhealthy(&self, monitor: &Monitor) -> bool {
        self.unhealthy.iter().any(|state| state.eq_ignore_ascii_case(&monitor.overall_state))
    }
}

#[async_trait]
impl HealthGate for DatadogMonitorsGate {
    fn describe(&self) -> String {
        if self.ids.is_empty() {
            return format!("Datadog monitors tagged {}", self.tags.join(", "));
        }
        let ids: Vec<String> = self.ids.iter().map(|id| format!("#{id}")).collect();
        format!("Datadog {} {}", if ids.len() == 1 { "monitor" } else { "monitors" }, ids.join(", "))
    }

    /// The named monitors' keys, when Baton receives their webhooks. A tag selection samples:
    /// knowing its monitors takes a call, and a monitor tagged during the bake would be missed.
    async fn bake_keys(&self) -> Result<Option<Vec<WaitKey>>, ProviderError> {
        Ok(self.parks.then(|| self.ids.iter().copied().map(monitor_key).collect()))
    }

    async fn sample(&self, _request: &HealthRequest) -> Result<GateReading, ProviderError> {
        let monitors = self.monitors().await?;
        if monitors.is_empty() {
            // Only a tag selection can find none: named monitors are each found or refused.
            return Err(ProviderError::rejected(format!(
                "no Datadog monitor carries the tags {}: tag the service's monitors so, or change the gate's tags",
                self.tags.join(", ")
            )));
        }
        let (bad, good): (Vec<&Monitor>, Vec<&Monitor>) = monitors.iter().partition(|monitor| self.is_unhealthy(monitor));
        let listed = bad.iter().chain(&good).map(|m| format!("#{} {} ({})", m.id, m.name, m.overall_state)).collect::<Vec<_>>().join("; ");
        let summary = if bad.is_empty() {
            format!("{}, none {}: {listed}", counted(monitors.len(), "monitor"), self.unhealthy.join(" or "))
        } else {
            format!("{} of {} {}: {listed}", bad.len(), counted(monitors.len(), "monitor"), self.unhealthy.join(" or "))
        };
        let saw = quote(&summary, &[]);
        tracing::debug!(target: "baton::health", gate = %self.describe(), saw = %saw, "sampled");
        Ok(if bad.is_empty() { GateReading::Healthy { saw } } else { GateReading::Unhealthy { saw } })
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DatadogGate {
    /// Monitors named by id, read instead of those tagged for the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<i64>,
    /// Tags every monitor must carry besides `service:<name>` and `env:<environment>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The Datadog site: `datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, ...
    #[serde(default = "DatadogGate::default_site")]
    pub site: String,
    /// The API's base URL, instead of the site's (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    pub api_key: SecretRef,
    pub app_key: SecretRef,
    /// Monitor states that are unhealthy.
    #[serde(default = "DatadogGate::default_unhealthy")]
    pub unhealthy: Vec<String>,
    /// Authenticates the provider's callbacks to Baton: the monitor webhook's X-Baton-Token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_secret: Option<SecretRef>,
}

impl DatadogGate {
    /// Whether a bake watched by this gate can park on its monitors' webhooks: it names its
    /// monitors by id (a tag selection's monitors take a call to know and may change during the
    /// bake) and Baton receives their webhooks (an `events-secret`). Read from the block alone.
    pub fn parks_bake(&self) -> bool {
        self.events_secret.is_some() && !self.monitors.is_empty()
    }

    fn default_site() -> String {
        "datadoghq.com".into()
    }
    fn default_unhealthy() -> Vec<String> {
        vec!["Alert".into()]
    }
}

pub const DATADOG_SITES: &[&str] =
    &["datadoghq.com", "datadoghq.eu", "us3.datadoghq.com", "us5.datadoghq.com", "ap1.datadoghq.com", "ddog-gov.com"];

const GATE_DATADOG: &[Field] = &[
    field(
        "monitors",
        Kind::Ids,
        "Monitor ids the gate reads instead of the service's tagged monitors; with `events-secret`, a bake waits on their webhooks instead of sampling.",
    ),
    field("tags", Kind::TextList, "Tags the monitors carry besides `service:<name>` and `env:<environment>` (not with `monitors`)."),
    field("site", Kind::Enum(DATADOG_SITES), "The Datadog site; `datadoghq.com` by default."),
    field("api-url", Kind::Url, "The API's base URL instead of the site's (a proxy)."),
    required("api-key", Kind::Secret, "A Datadog API key (secret reference)."),
    required("app-key", Kind::Secret, "A Datadog application key with monitors_read (secret reference)."),
    field("unhealthy", Kind::TextList, "Monitor states that fail the gate (`Alert`, `Warn`, `No Data`); `[Alert]` by default."),
    field(
        "events-secret",
        Kind::Secret,
        "The token the Datadog monitor webhook sends Baton as `X-Baton-Token` (secret reference); without it, bakes sample.",
    ),
];

pub const DATADOG: ProviderShape = ProviderShape {
    slot: Slot::Gate,
    name: "datadog",
    doc: "Datadog monitors named by id or found by tags.",
    fields: GATE_DATADOG,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<DatadogGate>,
};

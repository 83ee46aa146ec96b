//! The `datadog` exporter: DORA metrics and deploy markers.
//!
//! - A release that reached its targets (a deployment, as Baton's DORA rules count them) is a
//!   deployment event, `POST /api/v2/dora/deployment` (service, env, version, team, its start and
//!   end, the repository URL and commit, the release id as the event's stable id); one that
//!   failed or rolled back is also a failure event, `POST /api/v2/dora/failure`.
//! - Each wave's start, health and rollback is an event, `POST /api/v1/events`, tagged
//!   `service:`, `env:`, `version:` and `team:`, so a graph of the service shows when each wave
//!   landed (an overlay of `tags:service:<name>`).
//! - Each build Baton followed is a CI Visibility pipeline, `POST /api/v2/ci/pipeline`, tagged
//!   with the catalog's service, team and environment, so a shared repository's builds can be
//!   told apart by service.
//!
//! The API key goes in `DD-API-KEY`; the site picks the host (`https://api.<site>`). Datadog
//! answers 200 or 202; 400 quotes its `errors`; 429 carries `X-RateLimit-Reset` (seconds).

use super::{EXPORT_REQUEST_TIMEOUT, send_bounded};
use crate::http::x_rate_limit_wait as rate_limit_wait;
use crate::http::{Answer, RateLimits, Refused, endpoint, http_url, shown};
use crate::secrets::LazySecret;
use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};
use baton_domain::ports::{ProviderError, SecretResolver, TelemetryEvent, TelemetryExporter, TelemetryKind};
use baton_domain::release::{BuildStatus, Release};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Sends a service's DORA events and deploy markers to Datadog; see the module docs.
pub struct DatadogExporter {
    api: Url,
    api_key: LazySecret,
    send: DatadogSend,
    timeout: Duration,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

impl DatadogExporter {
    /// `source` is the catalog file, for errors.
    pub fn new(
        spec: &DatadogExport,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<DatadogExporter, ProviderError> {
        let base = spec.api_url.clone().unwrap_or_else(|| format!("https://api.{}", spec.site));
        let api = http_url(&base).map_err(|why| {
            ProviderError::rejected(format!("{source}: extensions.baton.telemetry: datadog API URL {why} (from site or api-url)"))
        })?;
        Ok(DatadogExporter {
            api,
            api_key: LazySecret::new(spec.api_key.clone(), secrets),
            send: spec.send,
            timeout: EXPORT_REQUEST_TIMEOUT,
            limits: RateLimits::shared(),
            http,
        })
    }

    /// How long one request may take ([`EXPORT_REQUEST_TIMEOUT`] unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> DatadogExporter {
        self.timeout = timeout;
        self
    }

    /// Rate-limit holds of its own (tests); the process's shared ones otherwise.
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> DatadogExporter {
        self.limits = limits;
        self
    }

    async fn post(&self, path: &[&str], body: &Value, what: &str) -> Result<(), ProviderError> {
        let api_key = self.api_key.get().await?;
        let url = endpoint(&self.api, path.iter().copied());
        let context = format!("sending {what} to Datadog at {}", shown(&url));
        let build = || {
            self.http
                .post(url.clone())
                .header("dd-api-key", api_key.expose())
                .header(reqwest::header::ACCEPT, "application/json")
                .json(body)
        };
        let credentials = format!(
            "check the API key {} and that it belongs to the site {}",
            self.api_key.reference(),
            self.api.host_str().unwrap_or_default()
        );
        let missing = format!("{} has no such API: check the exporter's site or api-url", shown(&self.api));
        let refusal = |answer: &Answer| {
            let refused =
                Refused { service: "Datadog", context: &context, credentials: &credentials, missing: &missing, secrets: &[api_key] };
            answer.refusal(&refused, rate_limit_wait(&answer.headers))
        };
        send_bounded(&self.limits, "Datadog", build, self.timeout, &context, rate_limit_wait, refusal).await.map(|_| ())
    }
}

fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The release's version as Datadog shows it: the artifact built, else the commit.
fn version(release: &Release) -> Option<String> {
    release.artifact.as_ref().map(|artifact| artifact.reference.clone()).or_else(|| release.sha.clone())
}

/// What DORA events say of the release's code: the repository and the commit, both or neither.
fn git(event: &TelemetryEvent) -> Option<Value> {
    let sha = event.release.artifact.as_ref().map(|artifact| artifact.sha.as_str()).or(event.release.sha.as_deref())?;
    let url = event.repository_url.as_deref()?;
    (sha != baton_domain::release::UNKNOWN_SHA).then(|| json!({ "repository_url": url, "commit_sha": sha }))
}

/// Adds the optional attributes that are known.
fn with_optional(mut attributes: Value, optional: &[(&str, Option<Value>)]) -> Value {
    for (key, value) in optional {
        if let Some(value) = value {
            attributes[*key] = value.clone();
        }
    }
    attributes
}

/// The body of `POST /api/v2/dora/deployment`.
pub fn dora_deployment(event: &TelemetryEvent) -> Value {
    let release = &event.release;
    let finished = release.finished_at.unwrap_or(event.at);
    let attributes = json!({
        "service": release.service,
        "env": release.environment,
        "started_at": nanos(release.started_at.unwrap_or(release.created_at)),
        "finished_at": nanos(finished),
        "id": release.id.0,
    });
    let attributes = with_optional(
        attributes,
        &[
            ("version", version(release).map(Value::from)),
            ("team", event.team.clone().map(Value::from)),
            ("git", git(event)),
            ("custom_tags", Some(json!([format!("baton_status:{}", release.status)]))),
        ],
    );
    json!({ "data": { "attributes": attributes } })
}

/// The body of `POST /api/v2/dora/failure`: the failed deployment itself, from its start to its end.
pub fn dora_failure(event: &TelemetryEvent) -> Value {
    let release = &event.release;
    let why = release.failure.as_ref().map(|failure| format!(": {}", failure.cause)).unwrap_or_default();
    let name: String = format!("{} {} {}{why}", release.service, release.id, release.status).chars().take(500).collect();
    let attributes = json!({
        "services": [release.service],
        "env": release.environment,
        "started_at": nanos(release.started_at.unwrap_or(release.created_at)),
        "finished_at": nanos(release.finished_at.unwrap_or(event.at)),
        "name": name,
        "id": release.id.0,
    });
    let attributes = with_optional(
        attributes,
        &[("version", version(release).map(Value::from)), ("team", event.team.clone().map(Value::from)), ("git", git(event))],
    );
    json!({ "data": { "attributes": attributes } })
}

/// The body of `POST /api/v2/ci/pipeline` for the build the release followed, once it ended;
/// `None` before it did (or when no build was recorded).
pub fn ci_pipeline(event: &TelemetryEvent) -> Option<Value> {
    let release = &event.release;
    let build = release.build.as_ref()?;
    let end = build.finished_at?;
    let status = match build.status {
        BuildStatus::Succeeded => "success",
        BuildStatus::Failed => "error",
        BuildStatus::Cancelled | BuildStatus::Unfollowed => "canceled",
        BuildStatus::Requested | BuildStatus::Running => return None,
    };
    let rfc3339 = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut tags = vec![format!("service:{}", release.service), format!("env:{}", release.environment), "source:baton".to_owned()];
    tags.extend(event.team.as_ref().map(|team| format!("team:{team}")));
    tags.extend(event.repository_url.as_ref().map(|url| format!("git.repository_url:{url}")));
    let sha = release.artifact.as_ref().map(|artifact| artifact.sha.clone()).or_else(|| release.sha.clone());
    tags.extend(sha.map(|sha| format!("git.commit.sha:{sha}")));
    tags.push(format!("git.branch:{}", release.branch));
    tags.push(format!("baton.release_id:{}", release.id));
    let start = build.started_at.unwrap_or(build.queued_at);
    let mut resource = json!({
        "level": "pipeline",
        // Unique across attempts: a build started again for the release is another pipeline.
        "unique_id": format!("{}-build-{}", release.id, build.attempts),
        "name": format!("{} build ({})", release.service, build.provider),
        "url": build.url.clone().unwrap_or_default(),
        "start": rfc3339(start),
        "end": rfc3339(end.max(start)),
        "status": status,
        "partial_retry": false,
        "pipeline_id": build.run_id,
        "tags": tags,
    });
    if build.started_at.is_some() {
        resource["queue_time"] = json!((start - build.queued_at).num_milliseconds().max(0));
    }
    if let Some(reason) = &build.reason {
        resource["error"] = json!({ "message": reason.chars().take(5000).collect::<String>() });
    }
    Some(json!({ "data": { "type": "cipipeline_resource_request", "attributes": {
        "provider_name": "custom",
        "env": release.environment,
        "resource": resource,
    } } }))
}

/// The body of `POST /api/v1/events` for a wave's marker, or `None` for an event with none.
pub fn marker(event: &TelemetryEvent) -> Option<Value> {
    let release = &event.release;
    let (wave, what, alert_type) = match &event.kind {
        TelemetryKind::WaveStarted { wave } => (wave, "started", "info"),
        TelemetryKind::WaveHealthy { wave } => (wave, "healthy", "success"),
        TelemetryKind::WaveRolledBack { wave } => (wave, "rolled back", "warning"),
        TelemetryKind::ReleaseFinished { .. } | TelemetryKind::BuildFinished => return None,
    };
    let version = version(release);
    let mut tags = vec![format!("service:{}", release.service), format!("env:{}", release.environment), format!("wave:{wave}")];
    tags.extend(version.as_ref().map(|version| format!("version:{version}")));
    tags.extend(event.team.as_ref().map(|team| format!("team:{team}")));
    tags.push("source:baton".into());
    let index = release.waves.iter().position(|w| &w.name == wave).map(|i| format!(" ({}/{})", i + 1, release.waves.len()));
    let title = format!("{} {}: wave {wave}{} {what}", release.service, release.environment, index.unwrap_or_default());
    let commit = release.sha.as_deref().map(|sha| format!(" at {sha}")).unwrap_or_default();
    let text = format!(
        "Release {} of {} to {}{commit}: wave {wave} {what}.",
        release.id,
        version.as_deref().unwrap_or("an unknown version"),
        release.environment
    );
    Some(json!({
        "title": title,
        "text": text.chars().take(4000).collect::<String>(),
        "date_happened": event.at.timestamp(),
        "tags": tags,
        "aggregation_key": release.id.0.chars().take(100).collect::<String>(),
        "alert_type": alert_type,
        "priority": "normal",
    }))
}

#[async_trait]
impl TelemetryExporter for DatadogExporter {
    fn name(&self) -> &str {
        "datadog"
    }

    async fn export(&self, event: &TelemetryEvent) -> Result<(), ProviderError> {
        match &event.kind {
            TelemetryKind::ReleaseFinished { figures } if self.send.dora() && figures.deployments > 0 => {
                self.post(&["api", "v2", "dora", "deployment"], &dora_deployment(event), "the DORA deployment").await?;
                // A failed, rolled-back or rollback-failed deployment, as the DORA rules count it.
                if figures.failed_deployments > 0 {
                    self.post(&["api", "v2", "dora", "failure"], &dora_failure(event), "the DORA failure").await?;
                }
                Ok(())
            }
            TelemetryKind::BuildFinished if self.send.ci() => match ci_pipeline(event) {
                Some(body) => self.post(&["api", "v2", "ci", "pipeline"], &body, "the build's CI pipeline event").await,
                None => Ok(()),
            },
            _ if self.send.markers() => match marker(event) {
                Some(body) => self.post(&["api", "v1", "events"], &body, &format!("the {} marker", event.kind.describe())).await,
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

// ------------------------------------------------------------------ catalog block

/// What the exporter sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatadogSend {
    /// DORA events, deploy markers and CI pipelines.
    #[default]
    All,
    /// DORA deployment and failure events only.
    Dora,
    /// One event per wave only.
    Markers,
    /// CI Visibility pipeline events only.
    Ci,
}

impl DatadogSend {
    fn dora(self) -> bool {
        matches!(self, DatadogSend::All | DatadogSend::Dora)
    }

    fn markers(self) -> bool {
        matches!(self, DatadogSend::All | DatadogSend::Markers)
    }

    fn ci(self) -> bool {
        matches!(self, DatadogSend::All | DatadogSend::Ci)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DatadogExport {
    /// The Datadog site: `datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, ...
    #[serde(default = "DatadogExport::default_site")]
    pub site: String,
    /// The API's base URL, instead of the site's (a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    pub api_key: SecretRef,
    #[serde(default)]
    pub send: DatadogSend,
}

impl DatadogExport {
    fn default_site() -> String {
        "datadoghq.com".into()
    }
}

/// The sites with Datadog's DORA API (US1-FED has none).
pub const DORA_SITES: &[&str] = &[
    "datadoghq.com",
    "datadoghq.eu",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
];

const EXPORT_DATADOG: &[Field] = &[
    field("site", Kind::Enum(DORA_SITES), "The Datadog site; `datadoghq.com` by default."),
    field("api-url", Kind::Url, "The API's base URL instead of the site's (a proxy)."),
    required("api-key", Kind::Secret, "A Datadog API key (secret reference)."),
    field(
        "send",
        Kind::Enum(&["all", "dora", "markers", "ci"]),
        "What is sent: DORA events, wave markers, CI pipelines, or all of them (`all`, the default).",
    ),
];

pub const DATADOG_EXPORT: ProviderShape = ProviderShape {
    slot: Slot::Export,
    name: "datadog",
    doc: "Datadog DORA deployment and failure events, one event per wave, CI Visibility pipelines.",
    fields: EXPORT_DATADOG,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<DatadogExport>,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::FixedSecrets;

    fn exporter(site: &str, api_url: Option<&str>) -> Result<DatadogExporter, ProviderError> {
        let spec = DatadogExport {
            site: site.into(),
            api_url: api_url.map(str::to_owned),
            api_key: SecretRef::Env("DD".into()),
            send: DatadogSend::All,
        };
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("DD".into()), "key"));
        DatadogExporter::new(&spec, "catalog/web.yaml", secrets, crate::http_client()?)
    }

    #[test]
    fn the_site_picks_the_host_unless_an_api_url_is_given() {
        for (site, api) in [
            ("datadoghq.com", "https://api.datadoghq.com/"),
            ("datadoghq.eu", "https://api.datadoghq.eu/"),
            ("ap2.datadoghq.com", "https://api.ap2.datadoghq.com/"),
        ] {
            assert_eq!(exporter(site, None).unwrap().api.as_str(), api);
        }
        assert_eq!(exporter("datadoghq.eu", Some("http://proxy.local:8126")).unwrap().api.as_str(), "http://proxy.local:8126/");
        let Err(error) = exporter("datadoghq.com", Some("ftp://proxy")) else { panic!("an ftp URL was taken") };
        assert!(error.message().contains("catalog/web.yaml: extensions.baton.telemetry: datadog API URL"), "{error}");
    }
}

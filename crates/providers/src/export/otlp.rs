//! The `otlp` exporter: each finished release as one OpenTelemetry trace, sent over OTLP/HTTP
//! with the JSON encoding (`POST <endpoint>/v1/traces`) to any collector.
//!
//! The trace is built from the release record once it is closed: a root span for the release,
//! and under it the build, each wave that began (under it each target's deploy, and the bake with
//! one span per health gate, its samples counted), and the rollback (each target put back). Every
//! span carries the catalog's facts (`service.name`, `deployment.environment`, the team, the
//! repository, the commit) as the semantic conventions name them, and a release that did not
//! succeed marks the root (and each failed part) with an error status.
//!
//! Ids are derived from the release id ([`baton_domain::trace`]), so any task can name a span
//! before the trace is sent: each build and deploy that can take it gets its span as
//! `TRACEPARENT`, so what they trace joins the release's trace.

use super::{EXPORT_REQUEST_TIMEOUT, send_bounded};
use crate::http::{Answer, RateLimits, Refused, endpoint, http_url, retry_after, shown};
use async_trait::async_trait;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, required, through_model};
use baton_domain::ports::{ProviderError, TelemetryEvent, TelemetryExporter, TelemetryKind};
use baton_domain::release::{DeployStatus, Release, ReleaseStatus, WaveRecord, WaveStatus};
use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use baton_domain::trace::{deploy_span, span_id, trace_id};

/// OTLP's span kinds and status codes (JSON carries the enums as integers).
const SPAN_KIND_INTERNAL: u8 = 1;
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

fn nanos(at: DateTime<Utc>) -> String {
    // OTLP/JSON writes 64-bit integers as strings.
    at.timestamp_nanos_opt().unwrap_or(i64::MAX).to_string()
}

fn string(key: &str, value: impl Into<String>) -> Value {
    json!({ "key": key, "value": { "stringValue": value.into() } })
}

fn int(key: &str, value: u64) -> Value {
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}

/// Builds the spans of one release.
struct Trace<'a> {
    release: &'a Release,
    end: DateTime<Utc>,
    spans: Vec<Value>,
}

impl Trace<'_> {
    fn span(
        &mut self,
        path: &str,
        parent: Option<&str>,
        name: String,
        times: (DateTime<Utc>, DateTime<Utc>),
        failed: bool,
        attributes: Vec<Value>,
    ) {
        let id = &self.release.id;
        let (start, end) = (times.0, times.1.max(times.0));
        let mut span = json!({
            "traceId": trace_id(id),
            "spanId": span_id(id, path),
            "name": name,
            "kind": SPAN_KIND_INTERNAL,
            "startTimeUnixNano": nanos(start),
            "endTimeUnixNano": nanos(end),
            "attributes": attributes,
            "status": { "code": if failed { STATUS_ERROR } else { STATUS_OK } },
        });
        if let Some(parent) = parent {
            span["parentSpanId"] = json!(span_id(id, parent));
        }
        self.spans.push(span);
    }

    fn wave(&mut self, index: usize, wave: &WaveRecord) {
        let Some(started) = wave.started_at else { return };
        let path = format!("wave/{}", wave.name);
        let end = wave.finished_at.unwrap_or(self.end);
        let failed = matches!(wave.status, WaveStatus::Unhealthy | WaveStatus::Failed | WaveStatus::RolledBack);
        let attributes = vec![
            string("baton.wave", &wave.name),
            int("baton.wave.index", index as u64 + 1),
            string("baton.wave.status", WaveStatus::as_str(wave.status)),
            string("baton.wave.targets", wave.targets.join(",")),
        ];
        self.span(&path, Some("release"), format!("wave {}", wave.name), (started, end), failed, attributes);
        for deploy in wave.deploys.iter().filter(|deploy| !deploy.rollback) {
            let deploy_path = deploy_span(&wave.name, &deploy.target, false);
            let mut attributes = vec![string("baton.target", &deploy.target)];
            attributes.extend(deploy.run.as_ref().map(|run| string("baton.run", format!("{} {}", run.provider, run.id))));
            attributes.extend(deploy.reason.as_ref().map(|reason| string("baton.reason", reason)));
            let times = (deploy.started_at, deploy.finished_at.unwrap_or(end));
            let failed = deploy.status == DeployStatus::Failed;
            self.span(&deploy_path, Some(&path), format!("deploy {}", deploy.target), times, failed, attributes);
        }
        if let Some(bake_started) = wave.bake_started_at {
            let bake_path = format!("{path}/bake");
            let bake_end = wave.finished_at.unwrap_or(self.end);
            // A closed release marks a rolled-back wave so, whatever its bake saw: the gates say.
            let unhealthy = wave.status == WaveStatus::Unhealthy || wave.gates.iter().any(|gate| gate.unhealthy_in_a_row > 0);
            self.span(&bake_path, Some(&path), format!("bake {}", wave.name), (bake_started, bake_end), unhealthy, Vec::new());
            for (i, gate) in wave.gates.iter().enumerate() {
                let mut attributes = vec![string("baton.gate", &gate.gate), int("baton.gate.samples", u64::from(gate.samples))];
                attributes.extend(gate.last.as_ref().map(|saw| string("baton.gate.last", saw)));
                let failed = gate.unhealthy_in_a_row > 0;
                let times = (bake_started, gate.last_at.unwrap_or(bake_end));
                self.span(&format!("{bake_path}/gate/{i}"), Some(&bake_path), format!("gate {}", gate.gate), times, failed, attributes);
            }
        }
    }

    fn rollback(&mut self) {
        let deploys: Vec<(&WaveRecord, &baton_domain::release::TargetDeploy)> = self
            .release
            .waves
            .iter()
            .flat_map(|wave| wave.deploys.iter().filter(|deploy| deploy.rollback).map(move |deploy| (wave, deploy)))
            .collect();
        let Some(start) = deploys.iter().map(|(_, deploy)| deploy.started_at).min() else { return };
        let end = deploys.iter().map(|(_, deploy)| deploy.finished_at.unwrap_or(self.end)).max().unwrap_or(self.end);
        let failed = deploys.iter().any(|(_, deploy)| deploy.status != DeployStatus::Succeeded);
        self.span("rollback", Some("release"), "rollback".into(), (start, end), failed, Vec::new());
        for (wave, deploy) in deploys {
            let attributes = vec![string("baton.wave", &wave.name), string("baton.target", &deploy.target)];
            let times = (deploy.started_at, deploy.finished_at.unwrap_or(end));
            let failed = deploy.status != DeployStatus::Succeeded;
            let path = deploy_span(&wave.name, &deploy.target, true);
            self.span(&path, Some("rollback"), format!("rollback {}", deploy.target), times, failed, attributes);
        }
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` of a finished release.
pub fn release_trace(event: &TelemetryEvent) -> Value {
    let release = &event.release;
    let end = release.finished_at.unwrap_or(event.at);
    let mut trace = Trace { release, end, spans: Vec::new() };
    let mut attributes = vec![
        string("baton.release_id", &release.id.0),
        string("baton.status", release.status.to_string()),
        string("baton.branch", &release.branch),
        string("baton.trigger", release.trigger.kind.as_str()),
    ];
    attributes.extend(release.sha.as_ref().map(|sha| string("vcs.ref.head.revision", sha)));
    attributes.extend(release.artifact.as_ref().map(|artifact| string("baton.artifact", &artifact.reference)));
    attributes.extend(release.failure.as_ref().map(|failure| string("baton.failure", format!("{}: {}", failure.error, failure.cause))));
    // A person's cancel is a stop, not an error (nor is a superseded release a success).
    let failed = !matches!(release.status, ReleaseStatus::Succeeded | ReleaseStatus::Cancelled);
    let root_name = format!("release {} to {}", release.service, release.environment);
    trace.span("release", None, root_name, (release.created_at, end), failed, attributes);
    if let Some(build) = &release.build {
        let mut attributes = vec![string("baton.build.provider", &build.provider), string("baton.build.run", &build.run_id)];
        attributes.extend(build.url.as_ref().map(|url| string("url.full", url)));
        attributes.push(int("baton.build.attempts", u64::from(build.attempts)));
        let failed = build.reason.is_some();
        trace.span(
            "build",
            Some("release"),
            format!("build {}", build.run_id),
            (build.queued_at, build.finished_at.unwrap_or(end)),
            failed,
            attributes,
        );
    }
    for (index, wave) in release.waves.iter().enumerate() {
        trace.wave(index, wave);
    }
    trace.rollback();

    let mut resource = vec![string("service.name", &release.service), string("deployment.environment.name", &release.environment)];
    resource.extend(event.team.as_ref().map(|team| string("team.name", team)));
    resource.extend(event.repository_url.as_ref().map(|url| string("vcs.repository.url.full", url)));
    json!({ "resourceSpans": [{
        "resource": { "attributes": resource },
        "scopeSpans": [{ "scope": { "name": "baton", "version": env!("CARGO_PKG_VERSION") }, "spans": trace.spans }],
    }] })
}

/// Sends each finished release's trace to an OTLP/HTTP collector; see the module docs.
pub struct OtlpExporter {
    traces: Url,
    timeout: Duration,
    limits: Arc<RateLimits>,
    http: reqwest::Client,
}

impl OtlpExporter {
    /// `source` is the catalog file, for errors.
    pub fn new(spec: &OtlpExport, source: &str, http: reqwest::Client) -> Result<OtlpExporter, ProviderError> {
        let base = http_url(&spec.endpoint)
            .map_err(|why| ProviderError::rejected(format!("{source}: extensions.baton.telemetry: otlp endpoint {why}")))?;
        Ok(OtlpExporter { traces: endpoint(&base, ["v1", "traces"]), timeout: EXPORT_REQUEST_TIMEOUT, limits: RateLimits::shared(), http })
    }

    /// How long one request may take ([`EXPORT_REQUEST_TIMEOUT`] unless set).
    pub fn with_request_timeout(mut self, timeout: Duration) -> OtlpExporter {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl TelemetryExporter for OtlpExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    async fn export(&self, event: &TelemetryEvent) -> Result<(), ProviderError> {
        let TelemetryKind::ReleaseFinished { .. } = &event.kind else { return Ok(()) };
        let body = release_trace(event);
        let context = format!("sending the release's trace to {}", shown(&self.traces));
        let build = || self.http.post(self.traces.clone()).json(&body);
        let missing =
            format!("{} takes no traces: check the exporter's endpoint (the collector's OTLP/HTTP port, 4318)", shown(&self.traces));
        let refusal = |answer: &Answer| {
            let refused = Refused { service: "the collector", context: &context, credentials: "", missing: &missing, secrets: &[] };
            answer.refusal(&refused, retry_after(&answer.headers))
        };
        send_bounded(&self.limits, "the OTLP collector", build, self.timeout, &context, retry_after, refusal).await.map(|_| ())
    }
}

// ------------------------------------------------------------------ catalog block

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OtlpExport {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); traces go to `/v1/traces` under it.
    pub endpoint: String,
}

const EXPORT_OTLP: &[Field] =
    &[required("endpoint", Kind::Url, "The collector's OTLP/HTTP base URL (`http://collector:4318`); traces go to `/v1/traces`.")];

pub const OTLP: ProviderShape = ProviderShape {
    slot: Slot::Export,
    name: "otlp",
    doc: "One OpenTelemetry trace per release, over OTLP/HTTP (JSON).",
    fields: EXPORT_OTLP,
    at_least_one: None,
    local_only: None,
    through_model: through_model::<OtlpExport>,
};

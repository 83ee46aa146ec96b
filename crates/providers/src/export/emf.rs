//! The `cloudwatch-emf` exporter: each finished release as one CloudWatch Embedded Metric Format
//! line (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//! On Lambda the line goes to stdout, which CloudWatch Logs reads and turns into metrics: no API
//! call, nothing to fail but the write. Locally it goes to a file under the state directory.
//!
//! The metrics are the inputs of the four DORA figures and the release's own counts, in the
//! namespace the block names, with the dimensions `service`, `team` (when known) and
//! `environment`: `Deployments`, `FailedDeployments`, `Rollbacks`, `Redeployments`,
//! `LeadTimeSeconds` with `LeadTimeFallbacks` (1 when that lead time fell back to the release's own
//! commit) and `RestoreSeconds` (when the release has them), `DurationSeconds`,
//! `Waves`, and one of `Succeeded`, `Failed`, `RolledBack`, `RollbackFailed`, `Cancelled` at 1
//! (a person's cancel counts in no DORA figure).

use async_trait::async_trait;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, through_model};
use baton_domain::ports::{ProviderError, TelemetryEvent, TelemetryExporter, TelemetryKind};
use baton_domain::release::{ReleaseStatus, Rollup};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where EMF lines go: one whole line per call.
#[derive(Clone)]
pub enum EmfSink {
    /// The process's stdout (Lambda's log stream).
    Stdout,
    /// A file, appended to (local runs, whose stdout is the CLI's).
    File(PathBuf),
    /// Lines kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

impl EmfSink {
    fn write(&self, line: &str) -> std::io::Result<()> {
        match self {
            // One write of the whole line, so lines of parallel tasks never interleave.
            EmfSink::Stdout => std::io::stdout().lock().write_all(format!("{line}\n").as_bytes()),
            EmfSink::File(path) => {
                let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                file.write_all(format!("{line}\n").as_bytes())
            }
            EmfSink::Memory(lines) => {
                lines.lock().expect("the EMF test sink is never poisoned").push(line.to_owned());
                Ok(())
            }
        }
    }
}

/// Writes a finished release's metrics as an EMF line; see the module docs.
pub struct EmfExporter {
    namespace: String,
    sink: EmfSink,
}

impl EmfExporter {
    pub fn new(spec: &EmfExport, sink: EmfSink) -> EmfExporter {
        EmfExporter { namespace: spec.namespace.clone(), sink }
    }
}

/// The EMF line of a finished release (`figures`: what it added to the DORA counters).
pub fn emf_line(namespace: &str, event: &TelemetryEvent, figures: &Rollup) -> Value {
    let release = &event.release;
    let mut root = Map::new();
    let mut dimensions = vec!["service"];
    root.insert("service".into(), json!(release.service));
    if let Some(team) = &event.team {
        dimensions.push("team");
        root.insert("team".into(), json!(team));
    }
    dimensions.push("environment");
    root.insert("environment".into(), json!(release.environment));

    let finished = release.finished_at.unwrap_or(event.at);
    let duration = (finished - release.started_at.unwrap_or(release.created_at)).num_seconds().max(0);
    let outcome = match release.status {
        ReleaseStatus::Succeeded => Some("Succeeded"),
        ReleaseStatus::Failed => Some("Failed"),
        ReleaseStatus::RolledBack => Some("RolledBack"),
        ReleaseStatus::RollbackFailed => Some("RollbackFailed"),
        // A person's stop: counted apart, never as a failure.
        ReleaseStatus::Cancelled => Some("Cancelled"),
        _ => None,
    };
    let mut metrics: Vec<(&str, &str, Value)> = vec![
        ("Deployments", "Count", json!(figures.deployments)),
        ("FailedDeployments", "Count", json!(figures.failed_deployments)),
        ("Rollbacks", "Count", json!(figures.rollbacks)),
        ("Redeployments", "Count", json!(figures.redeployments)),
        ("DurationSeconds", "Seconds", json!(duration)),
        ("Waves", "Count", json!(release.waves.iter().filter(|wave| wave.started_at.is_some()).count())),
    ];
    if figures.lead_time_samples > 0 {
        metrics.push(("LeadTimeSeconds", "Seconds", json!(figures.lead_time_seconds_total)));
        // 1 when the commits carried could not be listed and the lead time is the release's own
        // commit's: summed, how many lead times are approximations.
        metrics.push(("LeadTimeFallbacks", "Count", json!(figures.lead_time_fallbacks)));
    }
    if figures.restores > 0 {
        metrics.push(("RestoreSeconds", "Seconds", json!(figures.restore_seconds_total)));
    }
    metrics.extend(outcome.map(|outcome| (outcome, "Count", json!(1))));

    let declared: Vec<Value> = metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
    for (name, _, value) in metrics {
        root.insert(name.into(), value);
    }
    // Properties that are no metric: searchable in Logs Insights, not dimensions.
    root.insert("release_id".into(), json!(release.id.0));
    root.insert("status".into(), json!(release.status.to_string()));
    if let Some(sha) = &release.sha {
        root.insert("sha".into(), json!(sha));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": finished.timestamp_millis(),
            "CloudWatchMetrics": [{ "Namespace": namespace, "Dimensions": [dimensions], "Metrics": declared }],
        }),
    );
    Value::Object(root)
}

#[async_trait]
impl TelemetryExporter for EmfExporter {
    fn name(&self) -> &str {
        "cloudwatch-emf"
    }

    async fn export(&self, event: &TelemetryEvent) -> Result<(), ProviderError> {
        let TelemetryKind::ReleaseFinished { figures } = &event.kind else { return Ok(()) };
        let line = emf_line(&self.namespace, event, figures).to_string();
        self.sink.write(&line).map_err(|err| ProviderError::unavailable("writing the release's EMF metrics line").caused_by(err))
    }
}

// ------------------------------------------------------------------ catalog block

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EmfExport {
    /// The CloudWatch namespace of the metrics.
    #[serde(default = "EmfExport::default_namespace")]
    pub namespace: String,
}

impl EmfExport {
    fn default_namespace() -> String {
        "Baton".into()
    }
}

const EXPORT_EMF: &[Field] = &[field("namespace", Kind::Text, "The CloudWatch namespace of the metrics; `Baton` by default.")];

pub const CLOUDWATCH_EMF: ProviderShape = ProviderShape {
    slot: Slot::Export,
    name: "cloudwatch-emf",
    doc: "CloudWatch metrics of each finished release, as Embedded Metric Format log lines.",
    fields: EXPORT_EMF,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<EmfExport>,
};

//! How releases look on a terminal: the live view during `baton release`, and the
//! summaries `release`, `history` and `show` print.

use baton_domain::flow::CaughtError;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{Release, ReleaseStatus, WaveStatus};
use baton_domain::text::counted;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

/// Progress bars for the release's stage and each wave, redrawn from the store.
pub struct LiveView {
    bars: MultiProgress,
}

impl LiveView {
    pub fn new() -> LiveView {
        LiveView { bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()) }
    }

    /// A writer whose lines appear above the bars (the console notifier's lines), or as plain
    /// lines on stderr when it is not a terminal (indicatif draws nothing there).
    pub fn console_writer(&self) -> Box<dyn Write + Send> {
        if io::stderr().is_terminal() { Box::new(AboveBars { bars: self.bars.clone(), pending: Vec::new() }) } else { Box::new(PlainLines) }
    }

    /// Follows the release carried by `execution` until aborted.
    pub fn watch(&self, store: Arc<dyn ReleaseStore>, service: String, execution: String, every: Duration) -> tokio::task::JoinHandle<()> {
        let bars = self.bars.clone();
        tokio::spawn(async move {
            let mut stage_bar: Option<ProgressBar> = None;
            let mut wave_bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
            loop {
                if let Ok(releases) = store.list_releases(&service, None, 20).await
                    && let Some(release) = releases.into_iter().find(|r| r.execution.as_deref() == Some(execution.as_str()))
                {
                    let stage = stage_bar.get_or_insert_with(|| {
                        let bar = bars.add(ProgressBar::new(release.waves.len() as u64));
                        bar.set_style(style("{spinner} {prefix:.bold} [{bar:20}] {pos}/{len} waves  {msg}"));
                        bar.set_prefix(format!("{} {}", release.service, release.id));
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    let healthy = release.waves.iter().filter(|w| w.status == WaveStatus::Healthy).count();
                    stage.set_position(healthy as u64);
                    stage.set_message(format!("{} · {:?}", release.status, release.stage).to_lowercase());
                    for wave in &release.waves {
                        let bar = wave_bars.entry(wave.name.clone()).or_insert_with(|| {
                            let bar = bars.add(ProgressBar::new_spinner());
                            bar.set_style(style("  {prefix:<14} {msg}"));
                            bar.set_prefix(wave.name.clone());
                            bar
                        });
                        bar.set_message(format!("{} ({})", wave.status.as_str(), counted(wave.targets.len(), "target")));
                        bar.tick();
                    }
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Takes the bars off the screen: the summary printed next says where everything ended.
    pub fn finish(&self) {
        let _ = self.bars.clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

struct AboveBars {
    bars: MultiProgress,
    pending: Vec<u8>,
}

impl Write for AboveBars {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.bars.println(String::from_utf8_lossy(&line[..line.len() - 1]))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lines straight to stderr; a closed stderr loses them rather than failing the notifier.
struct PlainLines;

impl Write for PlainLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// An execution history (GetExecutionHistory's events) as the Step Functions console's table
/// shows it: ID, type, step, resource, and how long after the execution's start it happened.
pub fn history_table(events: &[serde_json::Value]) -> String {
    let at = |event: &serde_json::Value| {
        event.get("timestamp").and_then(|t| t.as_str()).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let start = events.first().and_then(at);
    let mut out = String::from("  execution history\n");
    let _ = writeln!(out, "    {:>5}  {:<30} {:<28} {:<24} {:>13}", "ID", "Type", "Step", "Resource", "Started after");
    for event in events {
        let details = event.as_object().into_iter().flatten().filter(|(key, _)| key.ends_with("EventDetails")).map(|(_, d)| d);
        let details: Vec<&serde_json::Value> = details.collect();
        let field = |name: &str| details.iter().find_map(|d| d.get(name).and_then(|v| v.as_str())).unwrap_or("");
        let after = match (start, at(event)) {
            (Some(start), Some(at)) => format!("{} ms", (at - start).num_milliseconds()),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "    {:>5}  {:<30} {:<28} {:<24} {:>13}",
            event.get("id").and_then(|v| v.as_u64()).unwrap_or(0),
            event.get("type").and_then(|v| v.as_str()).unwrap_or("?"),
            field("name"),
            field("resource").rsplit(':').next().unwrap_or(""),
            after
        );
    }
    out
}

/// A Lambda-style cause (`{"errorMessage": ...}`) as the message a person reads.
pub fn cause_message(cause: &str) -> String {
    CaughtError { error: String::new(), cause: cause.to_owned() }.message()
}

fn duration(release: &Release) -> String {
    match (release.started_at.or(Some(release.created_at)), release.finished_at) {
        (Some(start), Some(end)) => format!("{:.1}s", (end - start).num_milliseconds() as f64 / 1000.0),
        _ => "-".into(),
    }
}

/// The summary printed when a release ends, and by `baton show`.
pub fn summary(release: &Release) -> String {
    let mut out = String::new();
    let mark = match release.status {
        ReleaseStatus::Succeeded => "✔",
        ReleaseStatus::Superseded | ReleaseStatus::Skipped | ReleaseStatus::Queued | ReleaseStatus::Running => "•",
        ReleaseStatus::Interrupted => "‖",
        ReleaseStatus::Cancelled => "■",
        ReleaseStatus::Failed | ReleaseStatus::RolledBack => "✘",
        ReleaseStatus::RollbackFailed => "‼",
    };
    let _ =
        writeln!(out, "{mark} {} {} → {}: {} in {}", release.id, release.service, release.environment, release.status, duration(release));
    let sha = release.artifact.as_ref().map(|a| a.sha.as_str()).or(release.sha.as_deref()).unwrap_or("-");
    let _ = writeln!(out, "  trigger   {} {}", release.trigger.kind.as_str(), release.trigger.id);
    if let Some(repository) = &release.trigger.repository {
        let _ = writeln!(out, "  from      {repository}");
    }
    let _ = writeln!(out, "  branch    {} @ {sha}", release.branch);
    if let Some(build) = &release.build {
        let link = build.url.as_deref().map(|url| format!(" {url}")).unwrap_or_default();
        let _ = writeln!(out, "  build     {} {} {} (attempts {}){link}", build.provider, build.run_id, build.status, build.attempts);
    }
    if release.trigger.branch_override {
        let _ = writeln!(out, "  override  the catalog does not name this branch; released with --allow-any-branch");
    }
    if let Some(reason) = &release.trigger.freeze_override {
        let who = release.trigger.actor.as_deref().unwrap_or("an unnamed sender");
        let _ = writeln!(out, "  override  freeze windows overridden by {who}: {reason}");
    }
    if let Some(artifact) = &release.artifact {
        let _ = writeln!(out, "  artifact  {}", artifact.reference);
    }
    if let Some(previous) = &release.previous_artifact {
        let _ = writeln!(out, "  previous  {}", previous.reference);
    }
    for wave in &release.waves {
        let _ = writeln!(out, "  wave {:<14} {:<12} {}", wave.name, wave.status.as_str(), wave.targets.join(", "));
    }
    for approval in &release.approvals {
        let line = match &approval.decision {
            Some(decision) => {
                let at = decision.at.format("%Y-%m-%d %H:%M:%S UTC");
                format!("{} at {at}", baton_domain::rules::approval::describe(&approval.wave, decision))
            }
            None => format!(
                "wave {} waits for approval by {} until {}",
                approval.wave,
                approval.approvers.join(", "),
                approval.deadline.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        };
        let _ = writeln!(out, "  approval  {line}");
    }
    if let Some(changes) = &release.changes {
        let _ = writeln!(out, "  changes   {}", baton_domain::changes::describe(changes));
    }
    if let Some(failure) = &release.failure {
        let _ = writeln!(out, "  failure   {}: {}", failure.error, failure.cause);
    }
    if let Some(cost) = &release.cost {
        let _ = writeln!(
            out,
            "  cost      {} state transitions, {} task invocations, {:.2} Lambda GB-s: ${:.4} at AWS's public prices",
            cost.transitions, cost.invocations, cost.lambda_gb_seconds, cost.dollars
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::history_table;
    use serde_json::json;

    #[test]
    fn the_history_reads_like_the_consoles_table() {
        let events = [
            json!({"id": 1, "previousEventId": 0, "timestamp": "2026-11-29T10:00:00.000Z", "type": "ExecutionStarted",
                   "executionStartedEventDetails": {"input": "{}"}}),
            json!({"id": 2, "previousEventId": 1, "timestamp": "2026-11-29T10:00:00.250Z", "type": "TaskStateEntered",
                   "stateEnteredEventDetails": {"name": "Register", "input": "{}"}}),
            json!({"id": 3, "previousEventId": 2, "timestamp": "2026-11-29T10:00:01.500Z", "type": "LambdaFunctionScheduled",
                   "lambdaFunctionScheduledEventDetails": {"resource": "arn:aws:lambda:us-east-1:1:function:baton-load-catalog"}}),
        ];
        let table = history_table(&events);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[1].contains("ID") && lines[1].contains("Started after"), "{table}");
        assert!(lines[2].contains("ExecutionStarted") && lines[2].ends_with("0 ms"), "{table}");
        assert!(lines[3].contains("TaskStateEntered") && lines[3].contains("Register") && lines[3].ends_with("250 ms"), "{table}");
        assert!(lines[4].contains("baton-load-catalog") && lines[4].ends_with("1500 ms"), "{table}");
    }
}

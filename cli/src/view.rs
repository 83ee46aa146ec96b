//! How releases look on a terminal: the live view during `baton release`, and the
//! summaries `release`, `history` and `show` print.

use baton_domain::catalog::ServiceEntry;
use baton_domain::flow::CaughtError;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{Release, ReleaseStatus, Stage, WaveRecord, WaveStatus};
use baton_domain::text::counted;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bars on screen while a live view runs on a terminal: every other line written to stderr
/// (warnings, log lines, `baton:` notes) goes above them through these, so no stale frame is
/// left between the lines.
static ON_SCREEN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Writes `text` to stderr, above the live view's bars while they are on screen.
pub fn to_stderr(text: &str) {
    let bars = ON_SCREEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    match bars {
        Some(bars) => {
            for line in text.lines() {
                let _ = bars.println(line);
            }
        }
        None => {
            let _ = io::stderr().write_all(text.as_bytes());
        }
    }
}

/// A writer whose whole lines go to [`to_stderr`]: the CLI's log lines, so that a warning (a
/// secret not set, a notification not delivered, an export failing) shows in the live view, and
/// the console notifier's lines.
#[derive(Default)]
pub struct LogLines {
    pending: Vec<u8>,
}

impl Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            to_stderr(&String::from_utf8_lossy(&lines));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Drop for LogLines {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            to_stderr(&format!("{}\n", String::from_utf8_lossy(&self.pending)));
        }
    }
}

/// Progress bars for the release's stage and each wave, redrawn from the store.
pub struct LiveView {
    bars: MultiProgress,
    /// Every bar a watcher added: taken off the screen when the view finishes, so the next
    /// release's view (after a left-behind one is picked up) starts on a clean screen.
    drawn: Arc<Mutex<Vec<ProgressBar>>>,
}

impl LiveView {
    pub fn new() -> LiveView {
        LiveView { bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), drawn: Arc::default() }
    }

    /// A writer whose lines appear above the bars (the console notifier's lines), or as plain
    /// lines on stderr when it is not a terminal.
    pub fn console_writer(&self) -> Box<dyn Write + Send> {
        Box::new(LogLines::default())
    }

    /// Follows the release carried by `execution` until aborted. `bakes`: each wave's bake, for
    /// its countdown (none when bakes are skipped).
    pub fn watch(
        &self,
        store: Arc<dyn ReleaseStore>,
        service: String,
        execution: String,
        every: Duration,
        bakes: BTreeMap<String, Duration>,
    ) -> tokio::task::JoinHandle<()> {
        // indicatif draws nothing when stderr is no terminal: a redirected run gets plain lines.
        if io::stderr().is_terminal() {
            *ON_SCREEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(self.bars.clone());
        }
        let bars = self.bars.clone();
        let drawn = Arc::clone(&self.drawn);
        let add = move |bar: ProgressBar| {
            drawn.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(bar.clone());
            bars.add(bar)
        };
        tokio::spawn(async move {
            let mut stage_bar: Option<ProgressBar> = None;
            let mut wave_bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
            // The stage on screen and since when this process saw it.
            let mut stage_since: Option<(Stage, Instant)> = None;
            loop {
                if let Ok(releases) = store.list_releases(&service, None, 20).await
                    && let Some(release) = releases.into_iter().find(|r| r.execution.as_deref() == Some(execution.as_str()))
                {
                    let stage = stage_bar.get_or_insert_with(|| {
                        let bar = add(ProgressBar::new(release.waves.len() as u64));
                        bar.set_style(style("{spinner} {prefix:.bold} [{bar:20}] {pos}/{len} waves  {wide_msg}"));
                        // The id is on the notifier's lines and the summary; the status needs the width.
                        bar.set_prefix(release.service.clone());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    let since = match stage_since {
                        Some((seen, since)) if seen == release.stage => since,
                        _ => stage_since.insert((release.stage, Instant::now())).1,
                    };
                    let healthy = release.waves.iter().filter(|w| w.status == WaveStatus::Healthy).count();
                    stage.set_position(healthy as u64);
                    let stage_name = format!("{:?}", release.stage).to_lowercase();
                    stage.set_message(format!("{} · {stage_name} {}", release.status, short(since.elapsed())));
                    let now = chrono::Utc::now();
                    for wave in &release.waves {
                        let bar = wave_bars.entry(wave.name.clone()).or_insert_with(|| {
                            let bar = add(ProgressBar::new_spinner());
                            bar.set_style(style("  {prefix:<14} {wide_msg}"));
                            bar.set_prefix(wave.name.clone());
                            bar
                        });
                        bar.set_message(wave_line(&release, wave, bakes.get(&wave.name).copied(), now));
                        bar.tick();
                    }
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Takes the bars off the screen: the summary printed next says where everything ended.
    pub fn finish(&self) {
        *ON_SCREEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        for bar in std::mem::take(&mut *self.drawn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        let _ = self.bars.clear();
    }
}

/// A duration as a person reads it at a glance: `42s`, `3m05s`, `1h02m`.
pub fn short(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

fn since(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    short((now - at).to_std().unwrap_or_default())
}

/// One wave's line in the live view: what it does now, for how long, and what time is left of
/// its bake or its approval's deadline. A wave whose release rolls back shows as rolling back
/// until it is rolled back, whatever it reached before.
pub fn wave_line(release: &Release, wave: &WaveRecord, bake: Option<Duration>, now: chrono::DateTime<chrono::Utc>) -> String {
    let targets = counted(wave.targets.len(), "target");
    let waiting = release.approvals.iter().find(|a| a.wave == wave.name && a.decision.is_none());
    let started = wave.started_at.is_some() || !wave.deploys.is_empty();
    let rolling_back = release.stage == Stage::Rollback && started && !matches!(wave.status, WaveStatus::RolledBack | WaveStatus::Pending);
    if rolling_back {
        let since_rollback = wave.deploys.iter().filter(|d| d.rollback).map(|d| d.started_at).min();
        let elapsed = since_rollback.map(|at| format!(" {}", since(at, now))).unwrap_or_default();
        return format!("rolling back ({targets}){elapsed}");
    }
    match (wave.status, waiting) {
        (WaveStatus::Pending, Some(approval)) => {
            let left = short((approval.deadline - now).to_std().unwrap_or_default());
            format!("waits for approval by {} ({targets}), {left} left", approval.approvers.join(", "))
        }
        (WaveStatus::Deploying, _) => {
            let elapsed = wave.started_at.map(|at| format!(" {}", since(at, now))).unwrap_or_default();
            format!("deploying ({targets}){elapsed}")
        }
        (WaveStatus::Baking, _) => match (wave.bake_started_at, bake) {
            (Some(began), Some(bake)) if !bake.is_zero() => {
                let baked = (now - began).to_std().unwrap_or_default();
                format!("baking ({targets}), {} left of {}", short(bake.saturating_sub(baked)), short(bake))
            }
            _ => format!("baking ({targets}), checking health"),
        },
        (status, _) => match (wave.started_at, wave.finished_at) {
            (Some(began), Some(ended)) => format!("{} ({targets}) in {}", status.as_str(), since(began, ended)),
            _ => format!("{} ({targets})", status.as_str()),
        },
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
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

/// The line above the summary when a repeated `--sha` names a release started before: this run
/// started nothing new, and `--force` would.
pub fn earlier_release(release: &Release, now: chrono::DateTime<chrono::Utc>) -> String {
    let sha = release.sha.as_deref().or(release.artifact.as_ref().map(|a| a.sha.as_str())).unwrap_or("<sha>");
    format!(
        "this commit was released before: showing release {} (started {} ago), nothing new started; \
         `baton release {} --sha {sha} --force` starts a new one\n",
        release.id,
        since(release.created_at, now),
        release.service
    )
}

/// The summary printed when a release ends, and by `baton show`.
pub fn summary(release: &Release) -> String {
    summary_as(release, release.status.as_str())
}

/// How `history` and `show` name the status of an open release whose process is gone.
pub const PROCESS_GONE: &str = "interrupted (process gone)";

/// The status a person reads: an open release no live process runs is not `running`.
pub fn status_label(release: &Release, process_gone: bool) -> &'static str {
    if process_gone && matches!(release.status, ReleaseStatus::Queued | ReleaseStatus::Running) {
        PROCESS_GONE
    } else {
        release.status.as_str()
    }
}

/// The release as `--json` shows it, with the status a person reads beside the recorded one
/// (`interrupted (process gone)` for an open release no live process runs).
pub fn shown_json(release: &Release, status: &str) -> serde_json::Value {
    let mut shown = serde_json::to_value(release.for_display()).unwrap_or_default();
    if let Some(fields) = shown.as_object_mut() {
        fields.insert("shown_status".into(), status.into());
    }
    shown
}

/// The summary with `status` in place of the recorded one.
pub fn summary_as(release: &Release, status: &str) -> String {
    let mut out = String::new();
    let mark = match release.status {
        ReleaseStatus::Succeeded => "✔",
        ReleaseStatus::Superseded | ReleaseStatus::Skipped | ReleaseStatus::Queued | ReleaseStatus::Running => "•",
        ReleaseStatus::Interrupted => "‖",
        ReleaseStatus::Cancelled => "■",
        ReleaseStatus::Failed | ReleaseStatus::RolledBack => "✘",
        ReleaseStatus::RollbackFailed => "‼",
    };
    let _ = writeln!(out, "{mark} {} {} → {}: {status} in {}", release.id, release.service, release.environment, duration(release));
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

/// Who owns `entry` and where its runbook and dashboards are, for the release screen and
/// `baton show`: what a person needs at hand when a release goes wrong.
pub fn service_lines(entry: &ServiceEntry) -> String {
    let mut out = String::new();
    let team = baton_domain::reports::team_of(entry);
    match (team, &entry.delivery.on_call) {
        (Some(team), Some(on_call)) => {
            let _ = writeln!(out, "  team      {team} (on-call {on_call})");
        }
        (Some(team), None) => {
            let _ = writeln!(out, "  team      {team}");
        }
        (None, Some(on_call)) => {
            let _ = writeln!(out, "  on-call   {on_call}");
        }
        (None, None) => {}
    }
    // The source repository is on the trigger line already.
    for link in entry.links.iter().filter(|link| link.kind.as_deref() != Some(baton_domain::catalog::REPOSITORY_LINK_TYPE)) {
        let name = link.kind.as_deref().unwrap_or(&link.name);
        let _ = writeln!(out, "  {name:<9} {}", link.url);
    }
    out
}

/// The closing lines of a local release's screen: what is left of it (a lock held, targets on the
/// new artifact) and the exact command to run next. `process_gone`: no live process runs it.
pub fn next_steps(release: &Release, process_gone: bool) -> String {
    let (id, service) = (&release.id, &release.service);
    let lock = format!("the release lock of {service} [{}]", release.environment);
    let new_artifact = release.artifact.as_ref().map_or("the new artifact".to_owned(), |a| a.reference.clone());
    // Left by a stopped or dead process, it waits for a person.
    let stranded = release.status == ReleaseStatus::Interrupted || (process_gone && !release.status.is_terminal());
    let (left, next) = match release.status {
        // A queued release waits for the lock: it holds none and deployed nothing.
        ReleaseStatus::Queued if process_gone => (
            "nothing: it never took the lock nor deployed".to_owned(),
            format!("the next `baton release {service}` supersedes it; `baton cancel {id} --reason ...` closes it now"),
        ),
        ReleaseStatus::Queued => (
            "nothing yet: it waits for the release lock".to_owned(),
            format!("`baton cancel {id} --reason ...` closes it; `baton services` shows who holds the lock"),
        ),
        _ if stranded => (
            format!("{lock}; any wave it deployed runs {new_artifact}"),
            format!(
                "`baton resume {id}` runs it on, `baton resume {id} --rollback` rolls it back; the next `baton release {service}` \
                 supersedes it (rolls it back first)"
            ),
        ),
        ReleaseStatus::Running | ReleaseStatus::Interrupted => {
            (format!("{lock}, while it runs"), format!("`baton cancel {id} --reason ...` stops it and rolls it back"))
        }
        ReleaseStatus::RollbackFailed => {
            let left = baton_domain::rules::waves::left_on_new_artifact(&release.waves);
            let targets = if left.is_empty() {
                "no target is known to be".to_owned()
            } else {
                left.iter().map(|(wave, target)| format!("{target} (wave {wave})")).collect::<Vec<_>>().join(", ")
            };
            let back = match &release.previous_artifact {
                Some(previous) => format!(
                    "put {} back on them: fix what failed (`baton show {id}`), then `baton release {service} --sha {} --force`",
                    previous.reference, previous.sha
                ),
                None => format!("no previous artifact is recorded: put them right by hand (`baton show {id}` says what failed)"),
            };
            (format!("{targets} on {new_artifact}: a mixed fleet; the lock is free"), back)
        }
        ReleaseStatus::Failed => (
            "nothing: it failed before any wave changed production; the lock is free".to_owned(),
            format!("`baton show {id} --history` says where it stopped; `baton release {service}` once it is fixed"),
        ),
        ReleaseStatus::RolledBack | ReleaseStatus::Cancelled => (
            "nothing: what it deployed was put back and the lock is free".to_owned(),
            format!("`baton show {id} --history` says where it stopped; `baton release {service}` once it is fixed"),
        ),
        ReleaseStatus::Skipped => (
            "nothing: it fired inside a freeze window and never ran; the lock is free".to_owned(),
            format!(
                "`baton freezes --service {service}` says when the window ends; `baton release {service}` then, or with \
                 `--override-freeze --reason ...` for a hotfix"
            ),
        ),
        ReleaseStatus::Succeeded | ReleaseStatus::Superseded => return String::new(),
    };
    format!("  left      {left}\n  next      {next}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-12-01T10:00:00Z";

    fn at(seconds: i64) -> chrono::DateTime<chrono::Utc> {
        T0.parse::<chrono::DateTime<chrono::Utc>>().unwrap() + chrono::TimeDelta::seconds(seconds)
    }

    /// A release of web whose canary (a, b) is in `canary` and whose stage is `stage`.
    fn release(status: &str, stage: &str, canary: serde_json::Value) -> Release {
        let mut wave = json!({"name": "canary", "targets": ["a", "b"], "status": "pending"});
        wave.as_object_mut().unwrap().extend(canary.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "id": "rel-web-1", "service": "web", "environment": "production", "status": status, "stage": stage,
            "trigger": {"kind": "cli", "id": "x"}, "branch": "main", "created_at": T0, "waves": [wave],
            "artifact": {"reference": "web@new", "sha": "new", "branch": "main"},
            "previous_artifact": {"reference": "web@old", "sha": "old", "branch": "main"},
        }))
        .unwrap()
    }

    fn deploy(target: &str, rollback: bool, status: &str) -> serde_json::Value {
        json!({"target": target, "rollback": rollback, "run": {"provider": "command", "id": target, "state": null}, "status": status, "started_at": at(10)})
    }

    #[test]
    fn a_wave_line_says_what_the_wave_does_and_what_time_is_left() {
        let bake = Some(Duration::from_secs(300));
        let cases = [
            ("pending", release("running", "deploy", json!({})), None, "pending (2 targets)"),
            (
                "deploying",
                release("running", "deploy", json!({"status": "deploying", "started_at": at(0)})),
                bake,
                "deploying (2 targets) 1m30s",
            ),
            (
                "baking",
                release("running", "deploy", json!({"status": "baking", "started_at": at(0), "bake_started_at": at(30)})),
                bake,
                "baking (2 targets), 4m00s left of 5m00s",
            ),
            (
                "baking, bakes skipped",
                release("running", "deploy", json!({"status": "baking", "started_at": at(0), "bake_started_at": at(30)})),
                None,
                "baking (2 targets), checking health",
            ),
            (
                "healthy, then its release rolls back",
                release(
                    "running",
                    "rollback",
                    json!({"status": "healthy", "started_at": at(0), "deploys": [deploy("a", false, "succeeded"), deploy("a", true, "running")]}),
                ),
                bake,
                "rolling back (2 targets) 1m20s",
            ),
            (
                "rolled back",
                release("rolled-back", "rollback", json!({"status": "rolled-back", "started_at": at(0), "finished_at": at(45)})),
                bake,
                "rolled back (2 targets) in 45s",
            ),
        ];
        for (name, release, bake, want) in cases {
            assert_eq!(wave_line(&release, &release.waves[0], bake, at(90)), want, "{name}");
        }
    }

    #[test]
    fn a_rollback_failure_names_each_target_left_on_the_new_artifact_and_the_command_that_puts_it_right() {
        let failed = release(
            "rollback-failed",
            "done",
            json!({"status": "failed", "started_at": at(0), "deploys": [
                deploy("a", false, "succeeded"), deploy("b", false, "succeeded"), deploy("a", true, "succeeded"), deploy("b", true, "failed")
            ]}),
        );
        assert_eq!(
            next_steps(&failed, false),
            "  left      b (wave canary) on web@new: a mixed fleet; the lock is free\n  next      put web@old back on them: fix what failed \
             (`baton show rel-web-1`), then `baton release web --sha old --force`\n"
        );
        let running = release("running", "deploy", json!({}));
        assert!(next_steps(&running, false).contains("`baton cancel rel-web-1 --reason ...` stops it"));
        assert!(
            next_steps(&running, true).contains("`baton resume rel-web-1` runs it on"),
            "a release whose process is gone waits for a person"
        );
        assert_eq!(status_label(&running, true), PROCESS_GONE);
        let queued = release("queued", "queued", json!({}));
        assert!(next_steps(&queued, true).starts_with("  left      nothing: it never took the lock"), "a queued release holds no lock");
        assert_eq!(next_steps(&release("succeeded", "done", json!({})), false), "");
    }

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

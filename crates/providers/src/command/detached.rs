//! Builds and deploys run detached ([`CommandContext::start`]): the command gets its own
//! process group and its own directory, `<workspace>/runs/<release>/<what>-<n>`, holding
//! `output.log` (everything it printed, scrubbed), `waiter.lock` and, once it ended,
//! `status.json`. It runs under a small shell wrapper that writes its exit code to `exit-code`,
//! and prints to files there (`stdout.raw`, `stderr.raw`, removed once settled), not to pipes:
//! it outlives the process that started it, and what it did is known whoever looks. A waiter
//! task in the starting process supervises it like [`CommandContext::run`] does and writes the
//! status atomically, holding `waiter.lock` until then. Polls, from any process, need nothing
//! but the [`RunHandle`]: a status is the answer; no status while the lock is held means still
//! running; a free lock and no status means the starting process died (or stopped on a signal),
//! and the command is followed by its pid and start time (a reused pid is not mistaken for it),
//! then settled from its recorded exit code and output files: a command that finished is
//! recorded as it finished, and only one whose wrapper died too is "interrupted".

use super::output::{MAX_LINE_BYTES, Output, Stream};
use super::supervise::{Ended, Exit, TERM_GRACE, follow, signal_group};
use super::{CommandContext, CommandSpec, Outcome, PROVIDER};
use crate::command::env::BatonEnv;
use baton_domain::ports::{ProviderError, RunHandle};
use baton_domain::release::ReleaseId;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a poll waits for a detached run to end before answering that it still runs. The
/// definition polls right after the start and then backs off (15 s for builds), so a short local
/// command is seen ending by the first poll; on the virtual clock, where backoffs take no time,
/// each poll still gives the command this long, so its Retry budget is not spent in a blink.
const POLL_PATIENCE: Duration = Duration::from_secs(5);

/// How long a poll of a `provider`'s build or deploy waits for it to end before answering that it
/// runs: a command's poll waits [`POLL_PATIENCE`]; other providers answer at once. A plan counts
/// the polls a release makes with it.
pub fn poll_patience(provider: &str) -> Duration {
    if provider == PROVIDER { POLL_PATIENCE } else { Duration::ZERO }
}
/// How often a waiting poll looks for the status.
const STATUS_CHECK: Duration = Duration::from_millis(25);
pub(super) const STATUS_FILE: &str = "status.json";
const WAITER_LOCK: &str = "waiter.lock";
pub(super) const OUTPUT_LOG: &str = "output.log";
/// A detached command writes its output here, not to pipes: it never dies of a closed pipe when
/// the process that started it dies, and what it printed is there for whoever settles the run.
/// Raw (unmasked): removed once `output.log` and `status.json` hold it scrubbed.
pub(super) const RAW_STDOUT: &str = "stdout.raw";
pub(super) const RAW_STDERR: &str = "stderr.raw";
/// The exit code a detached command's wrapper writes as it ends, whoever is left to see it.
const EXIT_FILE: &str = "exit-code";
/// The shell a detached command runs under: it runs the command (`$2...`) and records its exit
/// code in the run directory (`$1`), atomically, then exits with it.
const RECORD_EXIT: &str = r#"dir=$1; shift; "$@"; code=$?; printf '%s\n' "$code" > "$dir/exit-code.tmp" && mv "$dir/exit-code.tmp" "$dir/exit-code"; exit "$code""#;

impl CommandContext {
    /// Starts `spec` detached (see the module docs) and returns at once; the run, in a handle's
    /// state, is all a later poll needs. Errors as for [`CommandContext::run`].
    pub(crate) async fn start(&self, spec: &CommandSpec, env: BatonEnv, release: &ReleaseId) -> Result<DetachedRun, ProviderError> {
        let dir = self.claim_run_dir(spec.what, release).await?;
        let lock_path = dir.join(WAITER_LOCK);
        let lock = File::create(&lock_path).and_then(|file| file.lock().map(|()| file));
        let lock = lock.map_err(|e| ProviderError::unavailable(format!("cannot lock {}", lock_path.display())).caused_by(e))?;
        let log_path = dir.join(OUTPUT_LOG);
        let log = File::create(&log_path)
            .map_err(|e| ProviderError::unavailable(format!("cannot create {}", log_path.display())).caused_by(e))?;

        let (child, pid, label) = self.spawn(spec, env, Some(&dir)).await?;
        let run = DetachedRun {
            pid,
            start_ticks: start_ticks(pid),
            dir,
            working_dir: spec.working_dir.clone(),
            label,
            started_at: Utc::now(),
            timeout: spec.timeout,
        };
        let started = run.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            // Should this task be dropped (Baton stopped on a signal, or was killed), the command
            // runs on: its wrapper records how it ended, and the next poll finds that.
            match follow(child, &spec, pid, Some(log), Some(&run.dir)).await {
                Ok(ended) => match run.record(&ended) {
                    Ok(()) => run.forget_raw_output(),
                    Err(e) => tracing::warn!(target: "baton::command", command = spec.what, pid, "cannot record how it ended: {e}"),
                },
                Err(e) => tracing::warn!(target: "baton::command", command = spec.what, pid, "lost track of it: {e}"),
            }
            drop(lock);
        });
        Ok(started)
    }

    /// Creates the next free `<what>-<n>` directory of the release's runs. `create_dir` is
    /// atomic, so concurrent starts (a wave's targets, another process) never share one.
    async fn claim_run_dir(&self, what: &str, release: &ReleaseId) -> Result<PathBuf, ProviderError> {
        let runs = self.workspace.join("runs").join(release.to_string());
        let cannot = |path: &Path, e: std::io::Error| {
            ProviderError::unavailable(format!("cannot create the run directory {}", path.display())).caused_by(e)
        };
        tokio::fs::create_dir_all(&runs).await.map_err(|e| cannot(&runs, e))?;
        let what = what.replace(' ', "-");
        for n in 1.. {
            let dir = runs.join(format!("{what}-{n}"));
            match tokio::fs::create_dir(&dir).await {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(cannot(&dir, e)),
            }
        }
        unreachable!("the run numbers are unbounded")
    }
}

/// The command that runs `spec` detached in run directory `dir`: under the wrapper that records
/// its exit code, its output to files there.
pub(super) fn wrapped(spec: &CommandSpec, dir: &Path) -> Result<tokio::process::Command, ProviderError> {
    // The wrapper always starts: a missing program is refused here, as a spawn refuses it.
    if !program_exists(spec) {
        return Err(ProviderError::rejected(format!(
            "could not start the {} command `{}` ({}) in {}: no such program",
            spec.what,
            spec.display(),
            spec.argv[0],
            spec.place()
        )));
    }
    let raw = |name: &str| {
        File::create(dir.join(name))
            .map_err(|e| ProviderError::unavailable(format!("cannot create {}", dir.join(name).display())).caused_by(e))
    };
    let mut command = tokio::process::Command::new("sh");
    command.args(["-c", RECORD_EXIT, "baton-command"]).arg(dir).args(&spec.argv);
    command.stdout(raw(RAW_STDOUT)?).stderr(raw(RAW_STDERR)?);
    Ok(command)
}

/// Whether the program of `spec` is a file: at its path (from the working directory) when it
/// names one, else on the `PATH` it runs with.
fn program_exists(spec: &CommandSpec) -> bool {
    let program = Path::new(&spec.argv[0]);
    if spec.argv[0].contains('/') {
        return match &spec.working_dir {
            Some(dir) if program.is_relative() => dir.join(program).is_file(),
            _ => program.is_file(),
        };
    }
    let search = spec.env.get("PATH").cloned().or_else(|| std::env::var("PATH").ok()).unwrap_or_default();
    std::env::split_paths(&search).any(|dir| dir.join(program).is_file())
}

/// A command [`CommandContext::start`] started: in the `state` of its [`RunHandle`]. It holds
/// paths, the argv's label and times, never an environment value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct DetachedRun {
    pub pid: u32,
    /// When the process started, in clock ticks since boot: with the pid, it names the process,
    /// so a pid the system gave to another process since is not taken for the command. `None`
    /// where the system does not tell (no `/proc`).
    start_ticks: Option<u64>,
    /// The run's directory: `status.json`, `waiter.lock`, `output.log`.
    pub(super) dir: PathBuf,
    working_dir: Option<PathBuf>,
    label: String,
    pub started_at: DateTime<Utc>,
    timeout: Duration,
}

impl DetachedRun {
    /// How the run ended, waiting up to [`POLL_PATIENCE`] for it to end; `None` while it runs.
    /// Asking again after the end answers the same.
    pub(crate) async fn outcome(&self) -> Result<Option<Outcome>, ProviderError> {
        let waiting = Instant::now();
        loop {
            if let Some(ended) = self.settled()? {
                return Ok(Some(Outcome::new(self.label.clone(), ended, self.working_dir.clone())));
            }
            if waiting.elapsed() >= POLL_PATIENCE {
                return Ok(None);
            }
            tokio::time::sleep(STATUS_CHECK).await;
        }
    }

    /// Kills the command's group if it still runs; its waiter, if alive, records the signal.
    pub(crate) fn cancel(&self) {
        if self.is_alive() {
            signal_group(self.pid, libc::SIGKILL);
        }
    }

    /// The recorded status; without one, settles a run its waiter abandoned: a process that is
    /// gone was interrupted, one past its deadline is killed. `None` while it legitimately runs.
    fn settled(&self) -> Result<Option<Ended>, ProviderError> {
        if let Some(ended) = self.status()? {
            return Ok(Some(ended));
        }
        let lock_path = self.dir.join(WAITER_LOCK);
        let lock = File::open(&lock_path)
            .map_err(|e| ProviderError::unavailable(format!("cannot open {} of the {}", lock_path.display(), self.label)).caused_by(e))?;
        match lock.try_lock() {
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                return Err(ProviderError::unavailable(format!("cannot lock {} of the {}", lock_path.display(), self.label)).caused_by(e));
            }
            Ok(()) => {}
        }
        // The waiter is gone; it may have written the status just before letting go.
        if let Some(ended) = self.status()? {
            return Ok(Some(ended));
        }
        let overdue = Utc::now().signed_duration_since(self.started_at).to_std().unwrap_or_default() > self.timeout + TERM_GRACE;
        let exit = match self.is_alive() {
            true if overdue => {
                signal_group(self.pid, libc::SIGKILL);
                Exit::TimedOut(self.timeout)
            }
            true => return Ok(None),
            // It ended after its waiter: its wrapper recorded how, unless it was killed too.
            false => self.recorded_exit().unwrap_or(Exit::Interrupted),
        };
        let ended = self.ended_from_files(exit);
        self.record(&ended).map_err(|e| ProviderError::unavailable(format!("cannot record how the {} ended", self.label)).caused_by(e))?;
        self.forget_raw_output();
        Ok(Some(ended))
    }

    /// The exit code the command's wrapper recorded, if it lived to.
    fn recorded_exit(&self) -> Option<Exit> {
        std::fs::read_to_string(self.dir.join(EXIT_FILE)).ok()?.trim().parse().ok().map(Exit::Code)
    }

    /// How the run ended as its output files tell, its waiter gone: what it printed (scrubbed)
    /// replaces the partial `output.log`, stdout's lines first.
    fn ended_from_files(&self, exit: Exit) -> Ended {
        let mut output = Output::writing_to(File::create(self.dir.join(OUTPUT_LOG)).ok());
        for (name, stream) in [(RAW_STDOUT, Stream::Stdout), (RAW_STDERR, Stream::Stderr)] {
            let text = std::fs::read(self.dir.join(name)).unwrap_or_default();
            for line in String::from_utf8_lossy(&text).lines() {
                let cut = line.len() > MAX_LINE_BYTES;
                let mut end = line.len().min(MAX_LINE_BYTES);
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                output.push(stream, &baton_domain::redact::scrub_cut(&line[..end], false, cut));
            }
        }
        if let Some(mut log) = output.log.take() {
            let _ = log.flush();
        }
        Ended { exit, tail: baton_domain::redact::scrub_owned(output.tail()), last_stdout_line: output.last_stdout_line }
    }

    /// Removes the unmasked output files once `status.json` and `output.log` hold it scrubbed.
    fn forget_raw_output(&self) {
        for name in [RAW_STDOUT, RAW_STDERR] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    fn status(&self) -> Result<Option<Ended>, ProviderError> {
        let path = self.dir.join(STATUS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ProviderError::rejected(format!("{} of the {}: expected the JSON status its waiter writes", path.display(), self.label))
                    .caused_by(e)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ProviderError::unavailable(format!("cannot read {} of the {}", path.display(), self.label)).caused_by(e)),
        }
    }

    /// Writes `status.json` whole or not at all: a poll never reads half of it.
    fn record(&self, ended: &Ended) -> std::io::Result<()> {
        let temporary = self.dir.join(format!("{STATUS_FILE}.tmp"));
        let mut file = File::create(&temporary)?;
        file.write_all(&serde_json::to_vec(ended).expect("a status serialises to JSON"))?;
        file.sync_all()?;
        std::fs::rename(&temporary, self.dir.join(STATUS_FILE))
    }

    fn is_alive(&self) -> bool {
        self.start_ticks.is_some() && start_ticks(self.pid) == self.start_ticks
    }
}

/// The handle of a detached run whose `state` is `state` (the run, plus what its provider needs).
pub(crate) fn run_handle(run: &DetachedRun, state: &impl Serialize) -> RunHandle {
    RunHandle {
        provider: PROVIDER.to_owned(),
        id: run.pid.to_string(),
        url: None,
        state: serde_json::to_value(state).expect("a detached run's state serialises to JSON"),
    }
}

/// The state [`run_handle`] put in `handle`; `what` ("build", "deploy") is for the message.
pub(crate) fn handle_state<T: DeserializeOwned>(handle: &RunHandle, what: &str) -> Result<T, ProviderError> {
    if handle.provider != PROVIDER {
        return Err(ProviderError::rejected(format!(
            "run {} belongs to the '{}' provider, not the command {what} provider",
            handle.id, handle.provider
        )));
    }
    serde_json::from_value(handle.state.clone()).map_err(|e| {
        ProviderError::rejected(format!(
            "run {} of the command {what} provider: expected a detached run in its handle's state (pid, dir, label, started-at, timeout)",
            handle.id
        ))
        .caused_by(e)
    })
}

/// The start time of live process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); `None` when it is gone, a zombie, or the system has no `/proc`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::{env, spec};
    use crate::test_support::{entry_in, release_id, script};
    use std::collections::BTreeMap;
    use std::os::unix::process::ExitStatusExt;

    /// A run as a later process sees it: rebuilt from its JSON.
    fn travelled(run: &DetachedRun) -> DetachedRun {
        serde_json::from_value(serde_json::to_value(run).unwrap()).unwrap()
    }

    /// A detached run of `body` whose waiter is gone (as when Baton died): a process in its own
    /// group, an unlocked `waiter.lock` and no status.
    fn orphan(dir: &Path, body: &str, timeout: Duration) -> (std::process::Child, DetachedRun) {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sh").args(["-c", body]).process_group(0).spawn().unwrap();
        let run_dir = dir.join("orphan");
        std::fs::create_dir(&run_dir).unwrap();
        File::create(run_dir.join(WAITER_LOCK)).unwrap();
        let run = DetachedRun {
            pid: child.id(),
            start_ticks: start_ticks(child.id()),
            dir: run_dir,
            working_dir: None,
            label: "build command `sh`".into(),
            started_at: Utc::now(),
            timeout,
        };
        assert!(run.start_ticks.is_some(), "this system has no /proc/<pid>/stat");
        (child, run)
    }

    #[tokio::test]
    async fn a_detached_run_returns_at_once_and_any_process_follows_it_from_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), &dir.path().join("ws")).unwrap();
        let go = dir.path().join("go");
        let body = format!("echo waiting >&2; while [ ! -e '{}' ]; do sleep 0.05; done; echo web:1.2", go.display());
        let argv = script(dir.path(), "build.sh", &body);
        let spec = spec(&ctx, &argv, &BTreeMap::new(), None);

        let run = ctx.start(&spec, env(), &release_id()).await.unwrap();
        assert_eq!(run.dir, dir.path().join("ws/web/runs").join(release_id().to_string()).join("test-1"));
        let second = ctx.start(&spec, env(), &release_id()).await.unwrap();
        assert_eq!(second.dir.file_name().unwrap(), "test-2");
        assert_eq!(travelled(&run).settled().unwrap(), None, "it waits for the go file");

        std::fs::write(&go, "").unwrap();
        let outcome = travelled(&run).outcome().await.unwrap().expect("it ended once the go file existed");
        assert!(outcome.succeeded(), "{}", outcome.failure());
        assert_eq!(outcome.last_stdout_line.as_deref(), Some("web:1.2"));
        // stderr and stdout are two pipes: lines come in the order they are read, which a busy
        // machine may not keep across the two (each stream keeps its own order).
        let lines = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        assert_eq!(lines(&outcome.tail), ["waiting", "web:1.2"]);
        let again = travelled(&run).outcome().await.unwrap().unwrap();
        assert_eq!((again.exit, &again.tail), (outcome.exit, &outcome.tail));
        assert_eq!(lines(&std::fs::read_to_string(run.dir.join(OUTPUT_LOG)).unwrap()), ["waiting", "web:1.2"]);
        assert!(second.outcome().await.unwrap().unwrap().succeeded());
    }

    #[tokio::test]
    async fn a_run_whose_waiter_died_is_followed_by_its_process_then_reported_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, run) = orphan(dir.path(), "sleep 30", Duration::from_secs(60));

        assert_eq!(run.settled().unwrap(), None, "the process still runs within its timeout");
        child.kill().unwrap();
        child.wait().unwrap();

        let outcome = run.outcome().await.unwrap().expect("a process that is gone ended");
        assert_eq!(outcome.exit, Exit::Interrupted);
        assert_eq!(outcome.failure(), "build command `sh` exited without a recorded status: Baton was interrupted");
        assert!(run.dir.join(STATUS_FILE).exists(), "recorded, so every later poll answers the same");
        assert_eq!(run.outcome().await.unwrap().unwrap().exit, Exit::Interrupted);
    }

    /// Baton dies (here: the runtime that started the command shuts down) while the command runs;
    /// the command finishes on its own, and a later poll records it as it ended, its last stdout
    /// line included: a build that worked is never taken for one that failed.
    #[test]
    fn a_command_that_outlives_the_process_that_started_it_is_recorded_as_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), &dir.path().join("ws")).unwrap();
        let go = dir.path().join("go");
        let body = format!("echo started; while [ ! -e '{}' ]; do sleep 0.05; done; echo after Baton died; echo web:2.0", go.display());
        let argv = script(dir.path(), "build.sh", &body);
        let failing =
            script(dir.path(), "fails.sh", &format!("while [ ! -e '{}' ]; do sleep 0.05; done; echo broken >&2; exit 4", go.display()));
        let starter = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let (run, fails) = starter.block_on(async {
            let run = ctx.start(&spec(&ctx, &argv, &BTreeMap::new(), None), env(), &release_id()).await.unwrap();
            let fails = ctx.start(&spec(&ctx, &failing, &BTreeMap::new(), None), env(), &release_id()).await.unwrap();
            (run, fails)
        });
        starter.shutdown_background();

        let later = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(travelled(&run).settled().unwrap(), None, "it runs on without its waiter");
        std::fs::write(&go, "").unwrap();
        let settle = |run: &DetachedRun| {
            later.block_on(async {
                loop {
                    if let Some(outcome) = travelled(run).outcome().await.unwrap() {
                        break outcome;
                    }
                }
            })
        };
        let outcome = settle(&run);
        assert!(outcome.succeeded(), "{}", outcome.failure());
        assert_eq!(outcome.last_stdout_line.as_deref(), Some("web:2.0"));
        assert_eq!(outcome.tail, "started\nafter Baton died\nweb:2.0");
        assert_eq!(std::fs::read_to_string(run.dir.join(OUTPUT_LOG)).unwrap(), "started\nafter Baton died\nweb:2.0\n");
        assert!(!run.dir.join(RAW_STDOUT).exists(), "the unmasked output is gone once settled");

        let failed = settle(&fails);
        assert_eq!((failed.exit, failed.tail.as_str()), (Exit::Code(4), "broken"), "a command that failed is recorded failed");
    }

    #[tokio::test]
    async fn an_abandoned_run_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, mut run) = orphan(dir.path(), "sleep 30", Duration::from_secs(1));
        run.started_at -= chrono::Duration::seconds(10);

        let outcome = run.outcome().await.unwrap().expect("an overdue run ends");
        assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_secs(1)));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn a_reused_pid_is_not_taken_for_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let (mut stranger, mut run) = orphan(dir.path(), "sleep 30", Duration::from_secs(1));
        // The same pid, another start: the process the handle named is gone.
        run.start_ticks = run.start_ticks.map(|ticks| ticks + 1);
        run.started_at -= chrono::Duration::seconds(10);

        assert_eq!(run.outcome().await.unwrap().unwrap().exit, Exit::Interrupted);
        run.cancel();
        assert!(stranger.try_wait().unwrap().is_none(), "the stranger was signalled");
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }

    #[tokio::test]
    async fn cancel_kills_a_detached_runs_group_and_its_waiter_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let marker = dir.path().join("survived");
        let argv = script(dir.path(), "slow.sh", &format!("(sleep 1; touch '{}') & echo started; wait", marker.display()));
        let run = ctx.start(&spec(&ctx, &argv, &BTreeMap::new(), None), env(), &release_id()).await.unwrap();

        travelled(&run).cancel();
        let outcome = run.outcome().await.unwrap().expect("a killed run ended");
        assert_eq!(outcome.exit, Exit::Signal(libc::SIGKILL));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the background job outlived the cancel");
    }

    #[test]
    fn the_process_start_time_names_a_live_process_only() {
        let child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let pid = child.id();
        let ticks = start_ticks(pid).expect("a live child has a start time");
        assert!(ticks > 0);
        assert_eq!(start_ticks(pid), Some(ticks), "it does not change");
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(start_ticks(pid), None);
    }
}

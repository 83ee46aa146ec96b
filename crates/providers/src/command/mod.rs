//! Runs catalog commands: an argv without a shell, in the catalog's directory, with `BATON_*`
//! variables, a deadline that kills the whole process group, and output streamed line by line
//! to `tracing` (target `baton::command`) with a bounded tail kept for error messages.
//!
//! Environment: a command does not inherit Baton's environment, which holds Baton's own AWS
//! credentials and every service's tokens. It gets [`BASE_ENV`] (enough to find programs and
//! write temporary files, in the user's locale), then the variables its `pass-env` names (a
//! registry login, a cloud profile), never one the catalog entry uses as a secret (`env:`
//! references in `notify.slack`). The spec's `env` comes next and the `BATON_*` variables last,
//! so a catalog cannot fake them. Values are never logged; neither are the names.
//!
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
//! recorded as it finished, and only one whose wrapper died too is "interrupted". Health samples
//! stay synchronous ([`CommandContext::run`]): they are short and bounded by a timeout.

pub(crate) mod build;
pub(crate) mod catalog;
pub(crate) mod deploy;

use baton_domain::catalog::{Seconds, SecretRef, ServiceEntry};
use baton_domain::ports::{ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId};
use catalog::CommandRun;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

/// What every command gets from Baton's environment. No credential is in it.
pub const BASE_ENV: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TERM", "TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"];

/// The `provider` of every [`RunHandle`] a command provider returns.
pub(crate) const PROVIDER: &str = "command";
/// Output kept for error messages: they travel in the execution state, which is small.
const TAIL_BYTES: usize = 4 * 1024;
/// Longer lines are cut so one runaway line cannot exhaust memory.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Time a timed-out command gets between SIGTERM and SIGKILL to clean up.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long to keep reading output after the command exited, should a process that left
/// its group (setsid) still hold the pipes.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
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
const STATUS_FILE: &str = "status.json";
const WAITER_LOCK: &str = "waiter.lock";
const OUTPUT_LOG: &str = "output.log";
/// A detached command writes its output here, not to pipes: it never dies of a closed pipe when
/// the process that started it dies, and what it printed is there for whoever settles the run.
/// Raw (unmasked): removed once `output.log` and `status.json` hold it scrubbed.
const RAW_STDOUT: &str = "stdout.raw";
const RAW_STDERR: &str = "stderr.raw";
/// The exit code a detached command's wrapper writes as it ends, whoever is left to see it.
const EXIT_FILE: &str = "exit-code";
/// How often the waiter reads a detached command's output files for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);
/// The shell a detached command runs under: it runs the command (`$2...`) and records its exit
/// code in the run directory (`$1`), atomically, then exits with it.
const RECORD_EXIT: &str = r#"dir=$1; shift; "$@"; code=$?; printf '%s\n' "$code" > "$dir/exit-code.tmp" && mv "$dir/exit-code.tmp" "$dir/exit-code"; exit "$code""#;

/// Where a service's commands run and what they must not see; one per catalog entry.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The catalog file, for error messages.
    source: String,
    /// The catalog file's directory, when the catalog came from a local file.
    catalog_dir: Option<PathBuf>,
    /// `<workspace_root>/<service>`, created before each run.
    workspace: PathBuf,
    /// Variables the entry uses as secrets: never passed to a command.
    withheld: Vec<String>,
}

impl CommandContext {
    /// Relative `working-dir`s resolve against the directory of `entry.source`; when the catalog
    /// did not come from a local file (an API, S3), against this process's current directory.
    pub fn new(entry: &ServiceEntry, workspace_root: &Path) -> Result<CommandContext, ProviderError> {
        let mut parts = Path::new(&entry.name).components();
        if !matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) {
            return Err(ProviderError::rejected(format!(
                "{}: service name '{}' cannot name a workspace directory: expected a name without '/' or '..'",
                entry.source, entry.name
            )));
        }
        let catalog_dir = Path::new(&entry.source).parent().filter(|dir| dir.is_dir()).map(Path::to_path_buf);
        // The notifiers' secrets held in variables (any field that reads as a secret reference).
        let withheld = entry
            .delivery
            .notify
            .iter()
            .flat_map(|block| block.settings.values())
            .filter_map(|value| match serde_json::from_value(value.clone()) {
                Ok(SecretRef::Env(name)) => Some(name),
                _ => None,
            })
            .collect();
        Ok(CommandContext { source: entry.source.clone(), catalog_dir, workspace: workspace_root.join(&entry.name), withheld })
    }

    /// Checks a catalog command once, when its provider is built, so a bad spec fails before
    /// anything runs. `field` is the spec's path in the catalog, for the message.
    pub(crate) fn command(
        &self,
        what: &'static str,
        field: &str,
        fields: CommandFields<'_>,
        default_timeout: Duration,
    ) -> Result<CommandSpec, ProviderError> {
        if fields.argv.first().is_none_or(|program| program.trim().is_empty()) {
            return Err(ProviderError::rejected(format!(
                "{}: {field} is empty: expected the program and its arguments, e.g. [\"make\", \"release\"]",
                self.source
            )));
        }
        let timeout = match fields.timeout {
            Some(Seconds(0)) => {
                return Err(ProviderError::rejected(format!(
                    "{}: the timeout of {field} is 0: expected a duration such as 10m",
                    self.source
                )));
            }
            Some(Seconds(seconds)) => Duration::from_secs(seconds),
            None => default_timeout,
        };
        if let Some(name) = fields.pass_env.iter().find(|name| self.withheld.contains(name)) {
            return Err(ProviderError::rejected(format!(
                "{}: the pass-env of {field} names {name}, which this service uses as a secret: Baton's secrets are not the command's",
                self.source
            )));
        }
        Ok(CommandSpec {
            what,
            argv: fields.argv.to_vec(),
            working_dir: self.working_dir(fields.working_dir),
            env: fields.env.clone(),
            pass_env: fields.pass_env.to_vec(),
            timeout,
        })
    }

    /// Where a command with `working-dir` `dir` runs: relative to the catalog file's directory,
    /// which is the default; `None` (the current directory) when the catalog is not in a directory.
    pub(crate) fn working_dir(&self, dir: Option<&str>) -> Option<PathBuf> {
        match dir.map(Path::new) {
            Some(dir) if dir.is_absolute() => Some(dir.to_path_buf()),
            Some(dir) => Some(self.catalog_dir.as_ref().map_or_else(|| dir.to_path_buf(), |base| base.join(dir))),
            None => self.catalog_dir.clone(),
        }
    }

    /// Runs `spec` to completion. `Err` only when it could not start: `Rejected` when it cannot
    /// (missing program or directory), `Unavailable` when the machine refused (no processes left).
    pub(crate) async fn run(&self, spec: &CommandSpec, env: BatonEnv) -> Result<Outcome, ProviderError> {
        let (child, pid, label) = self.spawn(spec, env, None).await?;
        let mut abandoned = GroupGuard(Some(pid));
        let ended = follow(child, spec, pid, None, None).await;
        abandoned.0 = None;
        let ended = ended.map_err(|e| ProviderError::unavailable(format!("lost track of the {label}")).caused_by(e))?;
        Ok(Outcome::new(label, ended, spec.working_dir.clone()))
    }

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

    /// Spawns `spec` in its own process group with piped output, or (`detached` in a run
    /// directory) with its output to files there and its exit code recorded by a wrapper; returns
    /// the child, its pid and the label that names it in messages.
    async fn spawn(&self, spec: &CommandSpec, env: BatonEnv, detached: Option<&Path>) -> Result<(Child, u32, String), ProviderError> {
        if let Some(dir) = spec.working_dir.as_deref().filter(|dir| !dir.is_dir()) {
            return Err(ProviderError::rejected(format!(
                "{}: the working directory {} of the {} command does not exist",
                self.source,
                dir.display(),
                spec.what
            )));
        }
        tokio::fs::create_dir_all(&self.workspace)
            .await
            .map_err(|e| ProviderError::rejected(format!("cannot create the workspace {}", self.workspace.display())).caused_by(e))?;

        let mut command = match detached {
            None => {
                let mut command = tokio::process::Command::new(&spec.argv[0]);
                command.args(&spec.argv[1..]).stdout(Stdio::piped()).stderr(Stdio::piped());
                command
            }
            Some(dir) => {
                // The wrapper always starts: a missing program is refused here, as a spawn refuses it.
                if !program_exists(spec) {
                    let place = spec.working_dir.as_deref().map_or_else(|| "the current directory".into(), |d| d.display().to_string());
                    return Err(ProviderError::rejected(format!(
                        "could not start the {} command `{}` ({}) in {place}: no such program",
                        spec.what,
                        spec.display(),
                        spec.argv[0]
                    )));
                }
                let raw = |name: &str| {
                    File::create(dir.join(name))
                        .map_err(|e| ProviderError::unavailable(format!("cannot create {}", dir.join(name).display())).caused_by(e))
                };
                let mut command = tokio::process::Command::new("sh");
                command.args(["-c", RECORD_EXIT, "baton-command"]).arg(dir).args(&spec.argv);
                command.stdout(raw(RAW_STDOUT)?).stderr(raw(RAW_STDERR)?);
                command
            }
        };
        command.stdin(Stdio::null()).process_group(0);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        command.env_clear();
        let inherited = BASE_ENV.iter().copied().chain(spec.pass_env.iter().map(String::as_str));
        for name in inherited.filter(|name| !self.withheld.iter().any(|withheld| withheld == name)) {
            if let Some(value) = std::env::var_os(name) {
                // What a catalog hands a command from Baton's environment is often a credential
                // (another service's token, an AWS key): masked wherever the command prints it.
                if !BASE_ENV.contains(&name) {
                    baton_domain::redact::remember(&value.to_string_lossy());
                }
                command.env(name, value);
            }
        }
        command.envs(&spec.env).envs(env.0).env("BATON_WORKSPACE", &self.workspace);

        let label = format!("{} command `{}`", spec.what, spec.display());
        let child = command.spawn().map_err(|e| {
            let place = spec.working_dir.as_deref().map_or_else(|| "the current directory".into(), |d| d.display().to_string());
            let message = format!("could not start the {label} ({}) in {place}: {e}", spec.argv[0]);
            match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => ProviderError::rejected(message),
                _ => ProviderError::unavailable(message),
            }
        })?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        tracing::info!(target: "baton::command", command = spec.what, pid, argv = ?spec.argv, dir = ?spec.working_dir, "started");
        Ok((child, pid, label))
    }
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

/// How a command ended and what it printed: what [`follow`] saw, and what `status.json` keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Ended {
    exit: Exit,
    /// Scrubbed of remembered secrets: a poll in another process does not know them.
    tail: String,
    last_stdout_line: Option<String>,
}

/// Streams the command's output (its pipes, or a detached run's files in `raw`) to the log and
/// `log`, enforces its deadline and waits for it to end; its group is killed on the way out.
async fn follow(mut child: Child, spec: &CommandSpec, pid: u32, log: Option<File>, raw: Option<&Path>) -> std::io::Result<Ended> {
    let started = Instant::now();
    let output = Mutex::new(Output { log: log.map(BufWriter::new), ..Output::default() });
    let ended = std::sync::atomic::AtomicBool::new(false);
    let (stdout, stderr): (Box<dyn AsyncRead + Unpin + Send>, Box<dyn AsyncRead + Unpin + Send>) = match raw {
        None => (
            child.stdout.take().map_or_else(|| Box::new(tokio::io::empty()) as Box<_>, |pipe| Box::new(pipe) as Box<_>),
            child.stderr.take().map_or_else(|| Box::new(tokio::io::empty()) as Box<_>, |pipe| Box::new(pipe) as Box<_>),
        ),
        Some(dir) => {
            (Box::new(tokio::fs::File::open(dir.join(RAW_STDOUT)).await?), Box::new(tokio::fs::File::open(dir.join(RAW_STDERR)).await?))
        }
    };
    // A file's end is no end while the command runs: it may write more.
    let growing = raw.is_some().then_some(&ended);
    let exit = {
        let pumps = async {
            tokio::join!(
                pump(stdout, Stream::Stdout, spec.what, pid, &output, growing),
                pump(stderr, Stream::Stderr, spec.what, pid, &output, growing),
            )
        };
        tokio::pin!(pumps);
        let supervise = supervise(&mut child, pid, spec.timeout);
        tokio::pin!(supervise);
        let mut drained = false;
        let exit = loop {
            tokio::select! {
                exit = &mut supervise => break exit,
                _ = &mut pumps, if !drained => drained = true,
            }
        };
        ended.store(true, std::sync::atomic::Ordering::Release);
        if !drained && tokio::time::timeout(DRAIN_GRACE, &mut pumps).await.is_err() {
            tracing::warn!(target: "baton::command", command = spec.what, pid, "a process outside the command's group still holds its output; not waiting for it");
        }
        exit?
    };
    tracing::info!(target: "baton::command", command = spec.what, pid, elapsed_ms = started.elapsed().as_millis() as u64, "{exit}");
    let mut output = output.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(mut log) = output.log.take() {
        log.flush()?;
    }
    Ok(Ended { exit, tail: baton_domain::redact::scrub_owned(output.tail()), last_stdout_line: output.last_stdout_line })
}

/// The parts of a catalog command spec the runner needs, whichever provider it belongs to.
pub(crate) struct CommandFields<'a> {
    pub argv: &'a [String],
    pub working_dir: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    pub pass_env: &'a [String],
    pub timeout: Option<Seconds>,
}

impl<'a> CommandFields<'a> {
    pub fn of(run: &'a CommandRun) -> CommandFields<'a> {
        CommandFields {
            argv: &run.command,
            working_dir: run.working_dir.as_deref(),
            env: &run.env,
            pass_env: &run.pass_env,
            timeout: run.timeout,
        }
    }
}

/// A checked catalog command.
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    /// What it is for ("build", "deploy"...): names it in logs and errors.
    what: &'static str,
    argv: Vec<String>,
    working_dir: Option<PathBuf>,
    env: BTreeMap<String, String>,
    pass_env: Vec<String>,
    timeout: Duration,
}

impl CommandSpec {
    /// The argv as one line, for people.
    pub(crate) fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// The `BATON_*` variables of one run (`BATON_WORKSPACE` is added by the runner).
pub(crate) struct BatonEnv(Vec<(&'static str, String)>);

impl BatonEnv {
    /// The variables every command gets; `sha` is empty when unknown.
    pub(crate) fn new(service: &str, environment: &str, release: &ReleaseId, branch: &str, sha: Option<&str>) -> BatonEnv {
        BatonEnv(vec![
            ("BATON_SERVICE", service.to_owned()),
            ("BATON_ENVIRONMENT", environment.to_owned()),
            ("BATON_RELEASE_ID", release.to_string()),
            ("BATON_BRANCH", branch.to_owned()),
            ("BATON_SHA", sha.unwrap_or_default().to_owned()),
        ])
    }

    /// The variables of a command acting on a built artifact (deploy, rollback, health check):
    /// branch and sha are the artifact's, and `BATON_ARTIFACT` is its reference.
    pub(crate) fn for_artifact(service: &str, environment: &str, release: &ReleaseId, artifact: &Artifact) -> BatonEnv {
        BatonEnv::new(service, environment, release, &artifact.branch, Some(&artifact.sha)).with("BATON_ARTIFACT", &artifact.reference)
    }

    pub(crate) fn with(mut self, name: &'static str, value: impl Into<String>) -> BatonEnv {
        self.0.push((name, value.into()));
        self
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut(Duration),
    /// A detached run's process is gone and nothing recorded how it ended: the process that
    /// started it (and would have) died first.
    Interrupted,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(signal) => write!(f, "was killed by signal {signal}"),
            Exit::TimedOut(after) => write!(f, "timed out after {}s and was killed", after.as_secs()),
            Exit::Interrupted => write!(f, "exited without a recorded status: Baton was interrupted"),
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// "build command `make release`".
    label: String,
    pub exit: Exit,
    /// The last few KiB of stdout and stderr, interleaved as they arrived.
    pub tail: String,
    pub last_stdout_line: Option<String>,
    /// Where it ran; `None` is this process's current directory.
    pub working_dir: Option<PathBuf>,
}

impl Outcome {
    fn new(label: String, ended: Ended, working_dir: Option<PathBuf>) -> Outcome {
        Outcome { label, exit: ended.exit, tail: ended.tail, last_stdout_line: ended.last_stdout_line, working_dir }
    }

    pub(crate) fn succeeded(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// "build command `make` exited with code 2; last output:\n..."
    pub(crate) fn failure(&self) -> String {
        let mut message = format!("{} {}", self.label, self.exit);
        if !self.tail.is_empty() {
            message.push_str("; last output:\n");
            message.push_str(&self.tail);
        }
        message
    }

    /// "build command `make` exited with code 0"
    pub(crate) fn summary(&self) -> String {
        format!("{} {}", self.label, self.exit)
    }

    /// `path` resolved against the directory the command ran in.
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        self.working_dir.as_ref().map_or_else(|| PathBuf::from(path), |dir| dir.join(path))
    }
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
    dir: PathBuf,
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
        let mut output = Output { log: File::create(self.dir.join(OUTPUT_LOG)).ok().map(BufWriter::new), ..Output::default() };
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

/// Waits for the command, enforcing the deadline, then kills what it left in its group.
async fn supervise(child: &mut Child, pid: u32, timeout: Duration) -> std::io::Result<Exit> {
    let exit = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => exit_of(status?),
        Err(_elapsed) => {
            signal_group(pid, libc::SIGTERM);
            if tokio::time::timeout(TERM_GRACE, child.wait()).await.is_err() {
                signal_group(pid, libc::SIGKILL);
                child.wait().await?;
            }
            Exit::TimedOut(timeout)
        }
    };
    // Background jobs die with the command instead of holding the output pipes open. The group
    // id cannot have been reused while any member lives, and an empty group makes this a no-op.
    signal_group(pid, libc::SIGKILL);
    Ok(exit)
}

/// Kills the command's whole group when [`CommandContext::run`] is dropped before the command
/// ended (its caller gave up, the runtime shut down), so no health sample runs unsupervised. A
/// detached run is left to end on its own: its wrapper records how.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, libc::SIGKILL);
        }
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

fn signal_group(pid: u32, signal: libc::c_int) {
    let group = libc::pid_t::try_from(pid).expect("pids fit in pid_t");
    // SAFETY: kill(2) takes plain integers; a negative pid addresses the process group the
    // child leads (spawned with process_group(0)). ESRCH (group already gone) is fine.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-group, signal);
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What the runner keeps of a command's output. Each stream keeps its own recent lines: the
/// pipes are read concurrently, so a final error on stderr may be read before stdout's
/// backlog, and one shared budget would let that backlog push it out.
#[derive(Default)]
struct Output {
    stdout: Tail,
    stderr: Tail,
    /// Arrival order across both streams.
    lines_read: u64,
    last_stdout_line: Option<String>,
    /// A detached run's `output.log`: every line, scrubbed.
    log: Option<BufWriter<File>>,
}

impl Output {
    /// Keeps `line`, scrubbed already: before any cut of the tail can split a secret.
    fn push(&mut self, stream: Stream, line: &str) {
        self.lines_read += 1;
        if let Some(log) = &mut self.log
            && let Err(e) = writeln!(log, "{line}")
        {
            tracing::warn!(target: "baton::command", "stopped writing the output log: {e}");
            self.log = None;
        }
        let tail = match stream {
            Stream::Stdout => {
                if !line.trim().is_empty() {
                    self.last_stdout_line = Some(line.trim().to_owned());
                }
                &mut self.stdout
            }
            Stream::Stderr => &mut self.stderr,
        };
        tail.push(self.lines_read, line.to_owned());
    }

    /// Both streams' recent lines in arrival order, at most [`TAIL_BYTES`] (cut at the front).
    fn tail(&self) -> String {
        let mut lines: Vec<_> = self.stdout.lines.iter().chain(&self.stderr.lines).collect();
        lines.sort_by_key(|(order, _)| *order);
        let joined = lines.into_iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>().join("\n");
        if joined.len() <= TAIL_BYTES {
            return joined;
        }
        let mut cut = joined.len() - TAIL_BYTES;
        while !joined.is_char_boundary(cut) {
            cut += 1;
        }
        format!("…{}", baton_domain::redact::scrub_cut(&joined[cut..], true, false))
    }
}

/// Reads one pipe, or one output file while it grows (until `growing` says the command ended),
/// line by line into the log and the shared output.
async fn pump(
    source: impl AsyncRead + Unpin,
    stream: Stream,
    what: &str,
    pid: u32,
    output: &Mutex<Output>,
    growing: Option<&std::sync::atomic::AtomicBool>,
) {
    let mut reader = BufReader::new(source);
    let mut line = Vec::new();
    let mut consumed = 0;
    loop {
        // Read before looking at the flag: what the command wrote before it ended is read after.
        let ended = growing.is_none_or(|ended| ended.load(std::sync::atomic::Ordering::Acquire));
        let (read, complete) = match read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(target: "baton::command", command = what, pid, stream = stream.name(), "stopped reading: {e}");
                return;
            }
        };
        consumed += read;
        if !complete && !ended {
            // The end of a file the command still writes: the rest of the line comes later.
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            continue;
        }
        if consumed == 0 {
            return;
        }
        let cut = consumed > line.len();
        consumed = 0;
        let text = String::from_utf8_lossy(&line);
        // Scrubbed here, whole: a line cut at its cap may end in the start of a secret.
        let text = baton_domain::redact::scrub_cut(text.trim_end_matches(['\n', '\r']), false, cut);
        tracing::info!(target: "baton::command", command = what, pid, stream = stream.name(), "{text}");
        output.lock().unwrap_or_else(PoisonError::into_inner).push(stream, &text);
        line.clear();
    }
}

/// Reads up to and including the next `\n`, keeping at most `cap` bytes of it (the rest of a
/// longer line is read and dropped), appended to `out`. Returns the bytes consumed (0 at end of
/// input) and whether the line ended (false: the input ended first).
async fn read_line_capped<R: AsyncBufRead + Unpin>(reader: &mut R, out: &mut Vec<u8>, cap: usize) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok((consumed, false));
        }
        let (chunk, complete) = match buffer.iter().position(|&b| b == b'\n') {
            Some(newline) => (&buffer[..=newline], true),
            None => (buffer, false),
        };
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let length = chunk.len();
        reader.consume(length);
        consumed += length;
        if complete {
            return Ok((consumed, true));
        }
    }
}

/// One stream's most recent lines: the fewest that cover half of [`TAIL_BYTES`].
#[derive(Default)]
struct Tail {
    /// (arrival order, line)
    lines: VecDeque<(u64, String)>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, order: u64, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back((order, line));
        while self.lines.len() > 1 && self.bytes - (self.lines[0].1.len() + 1) >= TAIL_BYTES / 2 {
            let (_, dropped) = self.lines.pop_front().expect("more than one line");
            self.bytes -= dropped.len() + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{LogCapture, entry_in, release_id, script};
    use baton_domain::catalog::ProviderBlock;

    fn spec(ctx: &CommandContext, argv: &[String], env: &BTreeMap<String, String>, timeout: Option<Seconds>) -> CommandSpec {
        let fields = CommandFields { argv, working_dir: None, env, pass_env: &[], timeout };
        ctx.command("test", "extensions.baton.build.command", fields, Duration::from_secs(60)).unwrap()
    }

    fn env() -> BatonEnv {
        BatonEnv::new("web", "production", &release_id(), "main", None)
    }

    #[tokio::test]
    async fn runs_in_the_catalog_directory_with_baton_variables_and_without_slack_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let mut entry = entry_in(dir.path());
        // HOME is set in every test environment, so its absence proves the withholding.
        entry.delivery.notify = vec![ProviderBlock::new("slack", serde_json::json!({ "channel": "#deploys", "token": "env:HOME" }))];
        let ctx = CommandContext::new(&entry, &dir.path().join("ws")).unwrap();
        let argv = script(
            dir.path(),
            "env.sh",
            "pwd; echo \"service=$BATON_SERVICE sha=[$BATON_SHA] ws=$BATON_WORKSPACE extra=$EXTRA home=${HOME-unset}\"",
        );
        let extra = BTreeMap::from([("EXTRA".to_string(), "yes".to_string()), ("BATON_SERVICE".to_string(), "forged".to_string())]);

        let outcome = ctx.run(&spec(&ctx, &argv, &extra, None), env()).await.unwrap();

        assert!(outcome.succeeded(), "{}", outcome.failure());
        let cwd = std::fs::canonicalize(dir.path()).unwrap();
        assert!(outcome.tail.starts_with(&format!("{}\n", cwd.display())), "{}", outcome.tail);
        let workspace = dir.path().join("ws").join("web");
        assert_eq!(
            outcome.last_stdout_line.as_deref(),
            Some(format!("service=web sha=[] ws={} extra=yes home=unset", workspace.display()).as_str())
        );
        assert!(workspace.is_dir());
    }

    #[tokio::test]
    async fn commands_get_the_base_environment_and_what_pass_env_names_but_never_a_secret() {
        // Cargo sets CARGO_PKG_NAME for the tests it runs: a variable of Baton's environment
        // outside the base set.
        assert!(std::env::var("CARGO_PKG_NAME").is_ok(), "run under cargo test");
        let dir = tempfile::tempdir().unwrap();
        let mut entry = entry_in(dir.path());
        entry.delivery.notify =
            vec![ProviderBlock::new("slack", serde_json::json!({ "channel": "#deploys", "webhook": { "env": "SLACK_HOOK" } }))];
        let ctx = CommandContext::new(&entry, dir.path()).unwrap();
        let argv = script(dir.path(), "env.sh", "echo \"pkg=${CARGO_PKG_NAME-unset} path=${PATH:+set}\"");
        let with_pass_env = |names: &[String]| {
            let fields = CommandFields { argv: &argv, working_dir: None, env: &BTreeMap::new(), pass_env: names, timeout: None };
            ctx.command("build", "extensions.baton.build.command", fields, Duration::from_secs(60))
        };

        let plain = ctx.run(&with_pass_env(&[]).unwrap(), env()).await.unwrap();
        assert_eq!(plain.last_stdout_line.as_deref(), Some("pkg=unset path=set"));
        let passed = ctx.run(&with_pass_env(&["CARGO_PKG_NAME".into()]).unwrap(), env()).await.unwrap();
        // Passed, and masked: what pass-env hands over may be a credential.
        assert_eq!(passed.last_stdout_line.as_deref(), Some("pkg=*** path=set"));
        let refused = with_pass_env(&["SLACK_HOOK".into()]).unwrap_err();
        assert!(refused.message().contains("names SLACK_HOOK, which this service uses as a secret"), "{refused}");
    }

    #[tokio::test]
    async fn output_is_logged_line_by_line_and_the_tail_is_bounded() {
        let logs = LogCapture::start();
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let argv = script(
            dir.path(),
            "noisy.sh",
            "i=0; while [ $i -lt 500 ]; do echo \"line $i of output\"; i=$((i+1)); done; echo oops >&2; exit 3",
        );
        let secret_env = BTreeMap::from([("API_KEY".to_string(), "value-that-must-not-be-logged".to_string())]);

        let outcome = ctx.run(&spec(&ctx, &argv, &secret_env, None), env()).await.unwrap();

        assert_eq!(outcome.exit, Exit::Code(3));
        assert!(outcome.tail.len() <= TAIL_BYTES + "…".len(), "{}", outcome.tail.len());
        assert!(outcome.tail.contains("\nline 499 of output") && outcome.tail.contains("oops"), "{}", outcome.tail);
        assert!(!outcome.tail.contains("line 3 of output"));
        let failure = outcome.failure();
        assert!(failure.starts_with("test command `") && failure.contains("exited with code 3; last output:\n"), "{failure}");
        let logs = logs.text();
        assert!(logs.contains("baton::command") && logs.contains("line 0 of output") && logs.contains("oops"), "{logs}");
        assert!(!logs.contains("value-that-must-not-be-logged"));
    }

    /// The command's output line reached first on a thread with no subscriber (a sibling test's)
    /// must not be lost to a capture afterwards: see `test_support`'s anchor.
    #[tokio::test]
    async fn output_reached_first_without_a_subscriber_is_still_captured_later() {
        let dir = tempfile::tempdir().unwrap();
        let argv = script(dir.path(), "say.sh", "echo first-reached-elsewhere");
        let run_once = |dir: std::path::PathBuf, argv: Vec<String>| {
            let ctx = CommandContext::new(&entry_in(&dir), &dir).unwrap();
            async move { ctx.run(&spec(&ctx, &argv, &BTreeMap::new(), None), env()).await.unwrap() }
        };
        let (path, args) = (dir.path().to_path_buf(), argv.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run_once(path, args))
        })
        .join()
        .unwrap();

        let logs = LogCapture::start();
        run_once(dir.path().to_path_buf(), argv).await;
        assert!(logs.text().contains("first-reached-elsewhere"), "{}", logs.text());
    }

    /// Masking happens before any cut: a tail cut through a secret, a line cut at its cap through
    /// one, and the last stdout line `status.json` keeps leak no piece of it.
    #[tokio::test]
    async fn a_secret_cut_by_the_tail_or_a_line_cap_leaks_no_piece() {
        const SECRET: &str = "cut-through-secret-4e2b9d";
        baton_domain::redact::remember(SECRET);
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), &dir.path().join("ws")).unwrap();
        // Unmasked, the tail's last TAIL_BYTES would start nine bytes into the secret on the second
        // line; the first line, cut at its cap, ends ten bytes into it.
        let after = TAIL_BYTES - (SECRET.len() - 10) - 1;
        let capped = MAX_LINE_BYTES - 10;
        let body = format!(
            "head -c {capped} /dev/zero | tr '\\0' c; echo {SECRET}; printf '%s' {SECRET}; head -c {after} /dev/zero | tr '\\0' t; echo"
        );
        let argv = script(dir.path(), "cut.sh", &body);
        let run = ctx.start(&spec(&ctx, &argv, &BTreeMap::new(), None), env(), &release_id()).await.unwrap();
        let outcome = loop {
            if let Some(outcome) = run.outcome().await.unwrap() {
                break outcome;
            }
        };
        let status = std::fs::read_to_string(run.dir.join(STATUS_FILE)).unwrap();
        let log = std::fs::read_to_string(run.dir.join(OUTPUT_LOG)).unwrap();
        assert!(outcome.tail.contains("***tttt"), "the line cut by the tail is there, masked: {}", &outcome.tail[..40]);
        for (place, text) in [("tail", &outcome.tail), ("status.json", &status), ("output.log", &log)] {
            for piece in [&SECRET[..10], &SECRET[10..], &SECRET[SECRET.len() - 8..]] {
                assert!(!text.contains(piece), "{piece} of the secret leaked into {place}");
            }
        }
        assert!(log.lines().next().is_some_and(|line| line.ends_with("c***")), "the capped line is masked where it was cut");
        assert!(outcome.last_stdout_line.as_deref().is_some_and(|line| line.starts_with("***t")), "{:?}", outcome.last_stdout_line);
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let marker = dir.path().join("grandchild-survived");
        let body = format!("(sleep 2; touch '{}') & echo started; sleep 30", marker.display());
        let argv = script(dir.path(), "slow.sh", &body);

        let started = Instant::now();
        let outcome = ctx.run(&spec(&ctx, &argv, &BTreeMap::new(), Some(Seconds(1))), env()).await.unwrap();

        assert_eq!(outcome.exit, Exit::TimedOut(Duration::from_secs(1)));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(outcome.failure().contains("timed out after 1s and was killed; last output:\nstarted"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the background job outlived the timeout");
    }

    #[tokio::test]
    async fn an_abandoned_run_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let marker = dir.path().join("survived");
        // A subshell, so that killing only the leader would leave the `touch` to run.
        let argv = script(dir.path(), "slow.sh", &format!("(sleep 1; touch '{}') & wait", marker.display()));
        let spec = spec(&ctx, &argv, &BTreeMap::new(), None);

        let run = ctx.run(&spec, env());
        assert!(tokio::time::timeout(Duration::from_millis(300), run).await.is_err());

        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the command outlived its abandoned run");
    }

    #[tokio::test]
    async fn background_jobs_do_not_keep_a_finished_command_alive() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let argv = script(dir.path(), "bg.sh", "sleep 30 & echo done");

        let started = Instant::now();
        let outcome = ctx.run(&spec(&ctx, &argv, &BTreeMap::new(), None), env()).await.unwrap();

        assert!(outcome.succeeded());
        assert_eq!(outcome.last_stdout_line.as_deref(), Some("done"));
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_missing_program_or_directory_is_rejected_with_both_named() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let argv = vec!["./no-such-build-script".to_string()];
        let result = ctx.run(&spec(&ctx, &argv, &BTreeMap::new(), None), env()).await;
        let Err(ProviderError::Rejected { message, .. }) = result else { panic!("expected Rejected, got {result:?}") };
        assert!(message.contains("(./no-such-build-script)") && message.contains(&dir.path().display().to_string()), "{message}");

        let fields = CommandFields { argv: &argv, working_dir: Some("missing/dir"), env: &BTreeMap::new(), pass_env: &[], timeout: None };
        let in_missing_dir = ctx.command("build", "extensions.baton.build.command", fields, Duration::from_secs(1)).unwrap();
        let result = ctx.run(&in_missing_dir, env()).await;
        let Err(ProviderError::Rejected { message, .. }) = result else { panic!("expected Rejected, got {result:?}") };
        assert!(message.contains("missing/dir") && message.contains("does not exist"), "{message}");
    }

    #[test]
    fn bad_specs_are_rejected_naming_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let entry = entry_in(dir.path());
        let ctx = CommandContext::new(&entry, dir.path()).unwrap();
        let empty = ctx.command(
            "deploy",
            "extensions.baton.deploy.command",
            CommandFields { argv: &[], working_dir: None, env: &BTreeMap::new(), pass_env: &[], timeout: None },
            Duration::from_secs(1),
        );
        let Err(ProviderError::Rejected { message, .. }) = empty else { panic!("expected Rejected") };
        assert!(message.starts_with(&format!("{}: extensions.baton.deploy.command is empty", entry.source)), "{message}");

        let zero = ctx.command(
            "deploy",
            "extensions.baton.deploy.command",
            CommandFields {
                argv: &["true".to_string()],
                working_dir: None,
                env: &BTreeMap::new(),
                pass_env: &[],
                timeout: Some(Seconds(0)),
            },
            Duration::from_secs(1),
        );
        assert!(matches!(zero, Err(ProviderError::Rejected { message: m, .. }) if m.contains("timeout")));

        let mut escaping = entry.clone();
        escaping.name = "../etc".into();
        assert!(
            matches!(CommandContext::new(&escaping, dir.path()), Err(ProviderError::Rejected { message: m, .. }) if m.contains("'../etc'"))
        );
    }

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

    #[tokio::test]
    async fn long_lines_are_cut() {
        let mut input: &[u8] = b"abcdefghij\nxy";
        let mut reader = BufReader::with_capacity(4, &mut input);
        let mut line = Vec::new();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), (11, true));
        assert_eq!(line, b"abcde");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), (2, false));
        assert_eq!(line, b"xy");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), (0, false));
    }

    #[test]
    fn the_tail_keeps_recent_lines_of_both_streams_in_order() {
        let mut output = Output::default();
        output.push(Stream::Stderr, "error: the one line that matters");
        for i in 0..1000 {
            output.push(Stream::Stdout, &format!("progress {i}"));
        }
        output.push(Stream::Stdout, "   ");
        let tail = output.tail();
        assert!(tail.starts_with("error: the one line that matters\nprogress "), "{tail}");
        assert!(tail.ends_with("progress 999\n   ") && !tail.contains("progress 10\n"), "{tail}");
        assert!(tail.len() <= TAIL_BYTES);
        assert_eq!(output.last_stdout_line.as_deref(), Some("progress 999"));

        output.push(Stream::Stderr, &"é".repeat(TAIL_BYTES));
        let tail = output.tail();
        assert!(tail.starts_with('…') && tail.len() <= TAIL_BYTES + "…".len() && tail.ends_with('é'));
    }
}

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

use crate::command_catalog::CommandRun;
use baton_domain::catalog::{Seconds, SecretRef, ServiceEntry};
use baton_domain::ports::{ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

/// What every command gets from Baton's environment. No credential is in it.
const BASE_ENV: &[&str] =
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
        let withheld = entry
            .delivery
            .notify
            .slack
            .iter()
            .flat_map(|slack| [&slack.webhook, &slack.token])
            .flatten()
            .filter_map(|secret| match secret {
                SecretRef::Env(name) => Some(name.clone()),
                SecretRef::Ssm(_) | SecretRef::SecretsManager(_) => None,
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
        let working_dir = match fields.working_dir.map(Path::new) {
            Some(dir) if dir.is_absolute() => Some(dir.to_path_buf()),
            Some(dir) => Some(self.catalog_dir.as_ref().map_or_else(|| dir.to_path_buf(), |base| base.join(dir))),
            None => self.catalog_dir.clone(),
        };
        Ok(CommandSpec {
            what,
            argv: fields.argv.to_vec(),
            working_dir,
            env: fields.env.clone(),
            pass_env: fields.pass_env.to_vec(),
            timeout,
        })
    }

    /// Runs `spec` to completion. `Err` only when it could not start: `Rejected` when it cannot
    /// (missing program or directory), `Unavailable` when the machine refused (no processes left).
    pub(crate) async fn run(&self, spec: &CommandSpec, env: BatonEnv) -> Result<Outcome, ProviderError> {
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

        let mut command = tokio::process::Command::new(&spec.argv[0]);
        command.args(&spec.argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        command.env_clear();
        let inherited = BASE_ENV.iter().copied().chain(spec.pass_env.iter().map(String::as_str));
        for name in inherited.filter(|name| !self.withheld.iter().any(|withheld| withheld == name)) {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.envs(&spec.env).envs(env.0).env("BATON_WORKSPACE", &self.workspace);

        let label = format!("{} command `{}`", spec.what, spec.display());
        let mut child = command.spawn().map_err(|e| {
            let place = spec.working_dir.as_deref().map_or_else(|| "the current directory".into(), |d| d.display().to_string());
            let message = format!("could not start the {label} ({}) in {place}: {e}", spec.argv[0]);
            match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => ProviderError::rejected(message),
                _ => ProviderError::unavailable(message),
            }
        })?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        let mut abandoned = GroupGuard(Some(pid));
        let started = Instant::now();
        tracing::info!(target: "baton::command", command = spec.what, pid, argv = ?spec.argv, dir = ?spec.working_dir, "started");

        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let output = Mutex::new(Output::default());
        let exit = {
            let pumps = async {
                tokio::join!(pump(stdout, Stream::Stdout, spec.what, pid, &output), pump(stderr, Stream::Stderr, spec.what, pid, &output),)
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
            if !drained && tokio::time::timeout(DRAIN_GRACE, &mut pumps).await.is_err() {
                tracing::warn!(target: "baton::command", command = spec.what, pid, "a process outside the command's group still holds its output; not waiting for it");
            }
            exit
        };
        abandoned.0 = None;
        let exit = exit.map_err(|e| ProviderError::unavailable(format!("lost track of the {label}")).caused_by(e))?;
        tracing::info!(target: "baton::command", command = spec.what, pid, elapsed_ms = started.elapsed().as_millis() as u64, "{exit}");

        let output = output.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(Outcome {
            pid,
            label,
            exit,
            tail: output.tail(),
            last_stdout_line: output.last_stdout_line,
            working_dir: spec.working_dir.clone(),
        })
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut(Duration),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(signal) => write!(f, "was killed by signal {signal}"),
            Exit::TimedOut(after) => write!(f, "timed out after {}s and was killed", after.as_secs()),
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub pid: u32,
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

/// A handle for a run that already finished: its outcome travels in `state` and `poll` reads it back.
pub(crate) fn finished_run(outcome: &Outcome, progress: &impl Serialize) -> RunHandle {
    RunHandle {
        provider: PROVIDER.to_owned(),
        id: outcome.pid.to_string(),
        url: None,
        state: serde_json::to_value(progress).expect("progress enums serialise to JSON"),
    }
}

/// The outcome [`finished_run`] recorded.
pub(crate) fn recorded_outcome<T: DeserializeOwned>(run: &RunHandle, what: &str) -> Result<T, ProviderError> {
    if run.provider != PROVIDER {
        return Err(ProviderError::rejected(format!(
            "run {} belongs to the '{}' provider, not the command {what} provider",
            run.id, run.provider
        )));
    }
    serde_json::from_value(run.state.clone()).map_err(|e| {
        ProviderError::rejected(format!("run {} of the command {what} provider records no readable outcome", run.id)).caused_by(e)
    })
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
/// ended (its caller gave up), so no build keeps running unsupervised.
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
}

impl Output {
    fn push(&mut self, stream: Stream, line: &str) {
        self.lines_read += 1;
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
        format!("…{}", &joined[cut..])
    }
}

/// Reads one pipe line by line into the log and the shared output until it closes.
async fn pump(pipe: Option<impl AsyncRead + Unpin>, stream: Stream, what: &str, pid: u32, output: &Mutex<Output>) {
    let Some(pipe) = pipe else { return };
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(target: "baton::command", command = what, pid, stream = stream.name(), "stopped reading: {e}");
                return;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        tracing::info!(target: "baton::command", command = what, pid, stream = stream.name(), "{text}");
        output.lock().unwrap_or_else(PoisonError::into_inner).push(stream, text);
    }
}

/// Reads up to and including the next `\n`, keeping at most `cap` bytes of it (the rest of a
/// longer line is read and dropped). Returns the bytes consumed; 0 at end of input.
async fn read_line_capped<R: AsyncBufRead + Unpin>(reader: &mut R, out: &mut Vec<u8>, cap: usize) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(consumed);
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
            return Ok(consumed);
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
        entry.delivery.notify.slack = Some(baton_domain::catalog::SlackSpec {
            channel: "#deploys".into(),
            webhook: None,
            // HOME is set in every test environment, so its absence proves the withholding.
            token: Some(SecretRef::Env("HOME".into())),
        });
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
        entry.delivery.notify.slack = Some(baton_domain::catalog::SlackSpec {
            channel: "#deploys".into(),
            webhook: Some(SecretRef::Env("SLACK_HOOK".into())),
            token: None,
        });
        let ctx = CommandContext::new(&entry, dir.path()).unwrap();
        let argv = script(dir.path(), "env.sh", "echo \"pkg=${CARGO_PKG_NAME-unset} path=${PATH:+set}\"");
        let with_pass_env = |names: &[String]| {
            let fields = CommandFields { argv: &argv, working_dir: None, env: &BTreeMap::new(), pass_env: names, timeout: None };
            ctx.command("build", "extensions.baton.build.command", fields, Duration::from_secs(60))
        };

        let plain = ctx.run(&with_pass_env(&[]).unwrap(), env()).await.unwrap();
        assert_eq!(plain.last_stdout_line.as_deref(), Some("pkg=unset path=set"));
        let passed = ctx.run(&with_pass_env(&["CARGO_PKG_NAME".into()]).unwrap(), env()).await.unwrap();
        assert_eq!(passed.last_stdout_line.as_deref(), Some("pkg=baton-providers path=set"));
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

    #[tokio::test]
    async fn long_lines_are_cut() {
        let mut input: &[u8] = b"abcdefghij\nxy";
        let mut reader = BufReader::with_capacity(4, &mut input);
        let mut line = Vec::new();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), 11);
        assert_eq!(line, b"abcde");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), 2);
        assert_eq!(line, b"xy");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), 0);
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

//! A command's process group: spawned as its own group, its deadline enforced (SIGTERM, then
//! SIGKILL to the whole group), and what it left behind killed when it ends or is abandoned.

use super::detached::wrapped;
use super::output::{Output, Stream, pump};
use super::{CommandContext, CommandSpec, Outcome};
use crate::command::detached::{RAW_STDERR, RAW_STDOUT};
use crate::command::env::BatonEnv;
use baton_domain::ports::ProviderError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::AsyncRead;
use tokio::process::Child;

/// Time a timed-out command gets between SIGTERM and SIGKILL to clean up.
pub(super) const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long to keep reading output after the command exited, should a process that left
/// its group (setsid) still hold the pipes.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

impl CommandContext {
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

    /// Spawns `spec` in its own process group with piped output, or (`detached` in a run
    /// directory) with its output to files there and its exit code recorded by a wrapper; returns
    /// the child, its pid and the label that names it in messages.
    pub(super) async fn spawn(
        &self,
        spec: &CommandSpec,
        env: BatonEnv,
        detached: Option<&Path>,
    ) -> Result<(Child, u32, String), ProviderError> {
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
            Some(dir) => wrapped(spec, dir)?,
        };
        command.stdin(Stdio::null()).process_group(0);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        self.set_env(&mut command, spec, env);

        let label = format!("{} command `{}`", spec.what, spec.display());
        let child = command.spawn().map_err(|e| {
            let message = format!("could not start the {label} ({}) in {}: {e}", spec.argv[0], spec.place());
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

/// How a command ended and what it printed: what [`follow`] saw, and what `status.json` keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct Ended {
    pub(super) exit: Exit,
    /// Scrubbed of remembered secrets: a poll in another process does not know them.
    pub(super) tail: String,
    pub(super) last_stdout_line: Option<String>,
}

/// Streams the command's output (its pipes, or a detached run's files in `raw`) to the log and
/// `log`, enforces its deadline and waits for it to end; its group is killed on the way out.
pub(super) async fn follow(
    mut child: Child,
    spec: &CommandSpec,
    pid: u32,
    log: Option<File>,
    raw: Option<&Path>,
) -> std::io::Result<Ended> {
    let started = Instant::now();
    let output = Mutex::new(Output::writing_to(log));
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

pub(super) fn signal_group(pid: u32, signal: libc::c_int) {
    let group = libc::pid_t::try_from(pid).expect("pids fit in pid_t");
    // SAFETY: kill(2) takes plain integers; a negative pid addresses the process group the
    // child leads (spawned with process_group(0)). ESRCH (group already gone) is fine.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-group, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::{env, spec};
    use crate::test_support::{entry_in, script};
    use baton_domain::catalog::Seconds;
    use std::collections::BTreeMap;

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
}

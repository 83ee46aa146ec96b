//! The `command` build provider: the build runs on this machine, detached from the task.

use crate::command::catalog::CommandBuild;
use crate::command::{BatonEnv, CommandContext, CommandFields, CommandSpec, DetachedRun, Outcome, handle_state, run_handle};
use async_trait::async_trait;
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle};
use baton_domain::release::{Artifact, UNKNOWN_SHA};
use baton_domain::trace::{TRACEPARENT, build_traceparent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Runs `build.command` like a CI provider runs a build: `start` spawns it and returns, `poll`
/// answers `Running` until it ended (waiting a few seconds for the end first, so a quick build
/// is seen by the poll right after the start), and a later task invocation, another process
/// even, needs nothing but the handle.
///
/// The artifact reference is the trimmed content of `artifact-file` (relative to the working
/// directory) when set, else the build's last non-empty stdout line. Its sha is the request's;
/// without one, `git rev-parse HEAD` in the working directory after the build (the build may
/// have checked out `BATON_BRANCH`), else [`UNKNOWN_SHA`].
pub struct CommandBuildProvider {
    ctx: CommandContext,
    command: CommandSpec,
    artifact_file: Option<String>,
}

/// The handle's state: the run, and what of the request the artifact needs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct BuildRun {
    #[serde(flatten)]
    run: DetachedRun,
    branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha: Option<String>,
}

impl CommandBuildProvider {
    pub fn new(spec: &CommandBuild, ctx: CommandContext) -> Result<CommandBuildProvider, ProviderError> {
        let command = ctx.command("build", "extensions.baton.build.command", CommandFields::of(&spec.run), DEFAULT_TIMEOUT)?;
        Ok(CommandBuildProvider { ctx, command, artifact_file: spec.artifact_file.clone() })
    }

    async fn artifact(&self, outcome: &Outcome, build: &BuildRun) -> Result<Artifact, String> {
        let reference = match &self.artifact_file {
            Some(file) => {
                let path = outcome.path(file);
                let text = tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| format!("{} but its artifact-file {} cannot be read: {e}", outcome.summary(), path.display()))?;
                Some(text.trim().to_owned())
                    .filter(|reference| !reference.is_empty())
                    .ok_or_else(|| format!("{} but its artifact-file {} is empty", outcome.summary(), path.display()))?
            }
            None => outcome.last_stdout_line.clone().ok_or_else(|| {
                format!(
                    "{} but printed nothing on stdout: print the artifact reference as the last line, or set artifact-file",
                    outcome.summary()
                )
            })?,
        };
        let sha = match &build.sha {
            Some(sha) => sha.clone(),
            None => head_commit(outcome).await.unwrap_or_else(|| UNKNOWN_SHA.to_owned()),
        };
        Ok(Artifact { reference, sha, branch: build.branch.clone(), build_url: None })
    }
}

#[async_trait]
impl BuildProvider for CommandBuildProvider {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        let env = BatonEnv::new(&request.service, &request.environment, &request.release_id, &request.branch, request.sha.as_deref())
            .with(TRACEPARENT, build_traceparent(&request.release_id));
        let run = self.ctx.start(&self.command, env, &request.release_id).await?;
        let build = BuildRun { run, branch: request.branch.clone(), sha: request.sha.clone() };
        Ok(run_handle(&build.run, &build))
    }

    /// A local start answers in-process, so no answer of it is lost to a network; a task that died
    /// with it left a run directory but no handle, and nothing that names the process: there is
    /// nothing to follow, and the next start runs the build again.
    async fn find(&self, _request: &BuildRequest, _since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        Ok(None)
    }

    /// Its start time is the spawn's: a local build waits in no queue.
    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let build: BuildRun = handle_state(run, "build")?;
        let progress = match build.run.outcome().await? {
            None => BuildProgress::Running,
            Some(outcome) if outcome.succeeded() => match self.artifact(&outcome, &build).await {
                Ok(artifact) => BuildProgress::Succeeded { artifact },
                Err(reason) => BuildProgress::Failed { reason },
            },
            Some(outcome) => BuildProgress::Failed { reason: outcome.failure() },
        };
        Ok(BuildPoll { progress, started_at: Some(build.run.started_at), run: None })
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        handle_state::<BuildRun>(run, "build")?.run.cancel();
        Ok(())
    }

    /// A local command reports to no one: its build is polled, never parked on.
    fn wait_key(&self, _: &RunHandle) -> Option<baton_domain::waits::WaitKey> {
        None
    }
}

/// The commit checked out where the build ran, if that is a git work tree.
async fn head_commit(outcome: &Outcome) -> Option<String> {
    let mut git = tokio::process::Command::new("git");
    git.args(["rev-parse", "--verify", "HEAD"]).stdin(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    if let Some(dir) = &outcome.working_dir {
        git.current_dir(dir);
    }
    let output = tokio::time::timeout(Duration::from_secs(10), git.output()).await.ok()?.ok()?;
    let sha = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    let is_object_id = matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    (output.status.success() && is_object_id).then_some(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{entry_in, release_id, script};
    use std::path::Path;

    fn provider(dir: &Path, spec: CommandBuild) -> CommandBuildProvider {
        let ctx = CommandContext::new(&entry_in(dir), &dir.join("workspaces")).unwrap();
        CommandBuildProvider::new(&spec, ctx).unwrap()
    }

    fn spec(command: Vec<String>) -> CommandBuild {
        CommandBuild { run: crate::command::catalog::CommandRun::new(command), artifact_file: None }
    }

    fn request(sha: Option<&str>) -> BuildRequest {
        BuildRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            branch: "main".into(),
            sha: sha.map(str::to_owned),
        }
    }

    /// What a later task invocation sees: only the handle, after a JSON round trip.
    async fn outcome(provider: &CommandBuildProvider, request: &BuildRequest) -> BuildProgress {
        let asked = chrono::Utc::now();
        let handle = provider.start(request).await.unwrap();
        let travelled: RunHandle = serde_json::from_str(&serde_json::to_string(&handle).unwrap()).unwrap();
        assert_eq!(travelled.provider, "command");
        let poll = provider.poll(&travelled).await.unwrap();
        let started_at = poll.started_at.expect("a command build says when it was spawned");
        assert!(asked <= started_at && started_at <= chrono::Utc::now(), "{started_at}");
        poll.progress
    }

    #[tokio::test]
    async fn the_last_stdout_line_is_the_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let argv = script(dir.path(), "build.sh", "echo compiling >&2; echo \"registry/web:$BATON_SHA\"; echo '  '");
        let progress = outcome(&provider(dir.path(), spec(argv)), &request(Some("abc123"))).await;
        let expected = Artifact { reference: "registry/web:abc123".into(), sha: "abc123".into(), branch: "main".into(), build_url: None };
        assert_eq!(progress, BuildProgress::Succeeded { artifact: expected });
    }

    #[tokio::test]
    async fn an_artifact_file_wins_and_resolves_against_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        let argv = script(dir.path(), "build.sh", "mkdir -p out && printf 'web-1.4.2.tar.gz\\n' > out/artifact; echo not-this");
        let mut spec = spec(argv);
        spec.run.working_dir = Some("app".into());
        spec.artifact_file = Some("out/artifact".into());
        let BuildProgress::Succeeded { artifact } = outcome(&provider(dir.path(), spec), &request(Some("abc"))).await else {
            panic!("build failed")
        };
        assert_eq!(artifact.reference, "web-1.4.2.tar.gz");
    }

    #[tokio::test]
    async fn without_a_requested_sha_the_git_head_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git").args(args).current_dir(dir.path()).output().unwrap();
            assert!(status.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&status.stderr));
            String::from_utf8(status.stdout).unwrap()
        };
        git(&["init", "-q"]);
        git(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "one"]);
        let head = git(&["rev-parse", "HEAD"]).trim().to_owned();
        let argv = script(dir.path(), "build.sh", "echo artifact");

        let BuildProgress::Succeeded { artifact } = outcome(&provider(dir.path(), spec(argv)), &request(None)).await else {
            panic!("build failed")
        };
        assert_eq!(artifact.sha, head);

        let elsewhere = tempfile::tempdir().unwrap();
        let argv = script(elsewhere.path(), "build.sh", "echo artifact");
        let BuildProgress::Succeeded { artifact } = outcome(&provider(elsewhere.path(), spec(argv)), &request(None)).await else {
            panic!("build failed")
        };
        assert_eq!(artifact.sha, UNKNOWN_SHA);
    }

    #[tokio::test]
    async fn failures_carry_the_exit_code_and_the_output_tail() {
        let dir = tempfile::tempdir().unwrap();
        let argv = script(dir.path(), "build.sh", "echo 'error[E0308]: mismatched types' >&2; exit 101");
        let BuildProgress::Failed { reason } = outcome(&provider(dir.path(), spec(argv)), &request(Some("abc"))).await else {
            panic!("build succeeded")
        };
        assert!(reason.contains("exited with code 101") && reason.ends_with("error[E0308]: mismatched types"), "{reason}");
    }

    #[tokio::test]
    async fn a_build_without_an_artifact_fails() {
        let dir = tempfile::tempdir().unwrap();
        let silent = script(dir.path(), "silent.sh", "echo only-stderr >&2");
        let BuildProgress::Failed { reason } = outcome(&provider(dir.path(), spec(silent.clone())), &request(Some("a"))).await else {
            panic!("build succeeded")
        };
        assert!(reason.contains("exited with code 0 but printed nothing on stdout"), "{reason}");

        let mut with_file = spec(silent);
        with_file.artifact_file = Some("artifact.txt".into());
        let BuildProgress::Failed { reason } = outcome(&provider(dir.path(), with_file), &request(Some("a"))).await else {
            panic!("build succeeded")
        };
        assert!(reason.contains("artifact.txt cannot be read"), "{reason}");
    }

    #[tokio::test]
    async fn a_missing_program_is_rejected_and_foreign_handles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let provider = provider(dir.path(), spec(vec!["./build-does-not-exist".into()]));
        let result = provider.start(&request(None)).await;
        assert!(matches!(&result, Err(ProviderError::Rejected { message: m, .. }) if m.contains("./build-does-not-exist")), "{result:?}");

        let foreign = RunHandle { provider: "github-actions".into(), id: "42".into(), url: None, state: serde_json::Value::Null };
        let result = provider.poll(&foreign).await;
        assert!(matches!(&result, Err(ProviderError::Rejected { message: m, .. }) if m.contains("'github-actions'")), "{result:?}");
        let result = provider.cancel(&foreign).await;
        assert!(matches!(&result, Err(ProviderError::Rejected { message: m, .. }) if m.contains("'github-actions'")), "{result:?}");
    }

    #[tokio::test]
    async fn cancelling_a_finished_build_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let argv = script(dir.path(), "build.sh", "echo artifact");
        let provider = provider(dir.path(), spec(argv));
        let handle = provider.start(&request(Some("abc"))).await.unwrap();
        assert!(matches!(provider.poll(&handle).await.unwrap().progress, BuildProgress::Succeeded { .. }));
        provider.cancel(&handle).await.unwrap();
        assert!(matches!(provider.poll(&handle).await.unwrap().progress, BuildProgress::Succeeded { .. }), "the cancel changed it");
    }
}

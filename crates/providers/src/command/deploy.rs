//! The `command` deployer: one detached run per target, like the command build.

use crate::command::catalog::CommandDeploy;
use crate::command::{BatonEnv, CommandContext, CommandFields, CommandSpec, DetachedRun, handle_state, run_handle};
use async_trait::async_trait;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle};
use baton_domain::trace::{TRACEPARENT, deploy_traceparent};
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Runs `deploy.command` for the request's one target, or on rollback `deploy.rollback-command`
/// (else `command`) with the previous artifact and `BATON_ROLLBACK=true`. `start` spawns it and
/// returns; `poll` answers `Running` until it ended (see [`crate::CommandBuildProvider`]).
pub struct CommandDeployer {
    ctx: CommandContext,
    deploy: CommandSpec,
    rollback: CommandSpec,
}

impl CommandDeployer {
    pub fn new(spec: &CommandDeploy, ctx: CommandContext) -> Result<CommandDeployer, ProviderError> {
        let fields = CommandFields::of(&spec.run);
        let deploy = ctx.command("deploy", "extensions.baton.deploy.command", CommandFields::of(&spec.run), DEFAULT_TIMEOUT)?;
        let rollback = match &spec.rollback_command {
            Some(argv) => {
                ctx.command("rollback", "extensions.baton.deploy.rollback-command", CommandFields { argv, ..fields }, DEFAULT_TIMEOUT)?
            }
            None => ctx.command("rollback", "extensions.baton.deploy.command", fields, DEFAULT_TIMEOUT)?,
        };
        Ok(CommandDeployer { ctx, deploy, rollback })
    }
}

#[async_trait]
impl Deployer for CommandDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let env = BatonEnv::for_artifact(&request.service, &request.environment, &request.release_id, &request.artifact)
            .with("BATON_WAVE", &request.wave)
            .with("BATON_TARGET", &request.target)
            .with("BATON_ROLLBACK", request.rollback.to_string())
            .with(TRACEPARENT, deploy_traceparent(request));
        let command = if request.rollback { &self.rollback } else { &self.deploy };
        if let Some(forward) = request.undoes.as_ref().filter(|_| request.rollback) {
            // A forward command still running would finish after the rollback and leave the
            // target on the new artifact.
            handle_state::<DetachedRun>(forward, "deploy")?.cancel();
        }
        let run = self.ctx.start(command, env, &request.release_id).await?;
        Ok(run_handle(&run, &run))
    }

    async fn poll(&self, run: &RunHandle) -> Result<DeployProgress, ProviderError> {
        let run: DetachedRun = handle_state(run, "deploy")?;
        Ok(match run.outcome().await? {
            None => DeployProgress::Running,
            Some(outcome) if outcome.succeeded() => DeployProgress::Succeeded,
            Some(outcome) => DeployProgress::Failed { reason: outcome.failure() },
        })
    }

    /// A local command reports to no one: its rollouts are polled, never parked on.
    fn wait_key(&self, _: &RunHandle) -> Option<baton_domain::waits::WaitKey> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{entry_in, release_id, script};
    use baton_domain::release::Artifact;
    use std::path::Path;

    fn deployer(dir: &Path, command: Vec<String>, rollback_command: Option<Vec<String>>) -> CommandDeployer {
        let spec = CommandDeploy { run: crate::command::catalog::CommandRun::new(command), rollback_command };
        CommandDeployer::new(&spec, CommandContext::new(&entry_in(dir), dir).unwrap()).unwrap()
    }

    fn request(reference: &str, rollback: bool) -> DeployRequest {
        DeployRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            wave: "canary".into(),
            target: "host-1".into(),
            artifact: Artifact { reference: reference.into(), sha: "abc123".into(), branch: "main".into(), build_url: None },
            rollback,
            undoes: None,
        }
    }

    async fn run_deploy(deployer: &CommandDeployer, request: &DeployRequest) -> DeployProgress {
        let handle = deployer.start(request).await.unwrap();
        let travelled: RunHandle = serde_json::from_value(serde_json::to_value(&handle).unwrap()).unwrap();
        deployer.poll(&travelled).await.unwrap()
    }

    async fn settled(deployer: &CommandDeployer, run: &RunHandle) -> DeployProgress {
        loop {
            match deployer.poll(run).await.unwrap() {
                DeployProgress::Running => continue,
                done => return done,
            }
        }
    }

    const RECORD: &str = "echo \"$0 $BATON_WAVE $BATON_TARGET $BATON_ARTIFACT $BATON_ROLLBACK $BATON_SHA\" >> \"$BATON_WORKSPACE/log\"";

    #[tokio::test]
    async fn deploys_and_rollbacks_run_with_their_variables() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = script(dir.path(), "deploy.sh", RECORD);
        let deployer = deployer(dir.path(), deploy.clone(), None);

        assert_eq!(run_deploy(&deployer, &request("web:2", false)).await, DeployProgress::Succeeded);
        assert_eq!(run_deploy(&deployer, &request("web:1", true)).await, DeployProgress::Succeeded);

        let log = std::fs::read_to_string(dir.path().join("web/log")).unwrap();
        let script = &deploy[1];
        assert_eq!(log, format!("{script} canary host-1 web:2 false abc123\n{script} canary host-1 web:1 true abc123\n"));
    }

    /// The forward deploy's task was killed mid-wave and its command still runs: the rollback
    /// ends it first, so it cannot finish afterwards and leave the target on the new artifact.
    #[tokio::test]
    async fn a_rollback_ends_the_forward_deploy_it_undoes_if_that_still_runs() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = script(
            dir.path(),
            "deploy.sh",
            "[ \"$BATON_ROLLBACK\" = true ] || sleep 3; echo \"$BATON_ARTIFACT\" > \"$BATON_WORKSPACE/on\"",
        );
        let deployer = deployer(dir.path(), deploy, None);

        let forward = deployer.start(&request("web:2", false)).await.unwrap();
        let undo = DeployRequest { undoes: Some(forward.clone()), ..request("web:1", true) };
        let rollback = deployer.start(&undo).await.unwrap();
        assert_eq!(settled(&deployer, &rollback).await, DeployProgress::Succeeded);
        assert!(matches!(settled(&deployer, &forward).await, DeployProgress::Failed { .. }), "the forward deploy was ended");
        assert_eq!(std::fs::read_to_string(dir.path().join("web/on")).unwrap(), "web:1\n");
    }

    #[tokio::test]
    async fn a_rollback_command_replaces_the_deploy_command_on_rollback_only() {
        let dir = tempfile::tempdir().unwrap();
        let deploy = script(dir.path(), "deploy.sh", RECORD);
        let rollback = script(dir.path(), "rollback.sh", RECORD);
        let deployer = deployer(dir.path(), deploy.clone(), Some(rollback.clone()));

        run_deploy(&deployer, &request("web:2", false)).await;
        run_deploy(&deployer, &request("web:1", true)).await;

        let log = std::fs::read_to_string(dir.path().join("web/log")).unwrap();
        assert_eq!(log, format!("{} canary host-1 web:2 false abc123\n{} canary host-1 web:1 true abc123\n", deploy[1], rollback[1]));
    }

    #[tokio::test]
    async fn a_failed_deploy_reports_the_exit_code_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let argv = script(dir.path(), "deploy.sh", "echo \"host $BATON_TARGET unreachable\" >&2; exit 7");
        let DeployProgress::Failed { reason } = run_deploy(&deployer(dir.path(), argv, None), &request("web:2", false)).await else {
            panic!("deploy succeeded")
        };
        assert!(reason.starts_with("deploy command `sh ") && reason.contains("exited with code 7"), "{reason}");
        assert!(reason.ends_with("host host-1 unreachable"), "{reason}");
    }
}

//! The `command` health gate: healthy when a command exits 0, sampled synchronously.

use super::catalog::CommandRun;
use super::{BatonEnv, CommandContext, CommandFields, CommandSpec};
use async_trait::async_trait;
use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError};
use std::time::Duration;

const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Healthy when `command` exits 0. It gets `BATON_WAVE`, `BATON_TARGETS` (comma-separated) and
/// `BATON_ARTIFACT` on top of the release variables.
pub struct CommandGate {
    ctx: CommandContext,
    command: CommandSpec,
}

impl CommandGate {
    pub fn new(spec: &CommandRun, ctx: CommandContext) -> Result<CommandGate, ProviderError> {
        let command =
            ctx.command("health check", "extensions.baton.health.gates: command", CommandFields::of(spec), DEFAULT_COMMAND_TIMEOUT)?;
        Ok(CommandGate { ctx, command })
    }
}

#[async_trait]
impl HealthGate for CommandGate {
    fn describe(&self) -> String {
        format!("command `{}`", self.command.display())
    }

    async fn sample(&self, request: &HealthRequest) -> Result<GateReading, ProviderError> {
        let env = BatonEnv::for_artifact(&request.service, &request.environment, &request.release_id, &request.artifact)
            .with("BATON_WAVE", &request.wave)
            .with("BATON_TARGETS", request.targets.join(","));
        let outcome = self.ctx.run(&self.command, env).await?;
        Ok(if outcome.succeeded() {
            GateReading::Healthy { saw: outcome.summary() }
        } else {
            GateReading::Unhealthy { saw: outcome.failure() }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{entry_in, health_request, script};

    #[tokio::test]
    async fn a_health_command_sees_the_wave_and_its_targets() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let argv = script(
            dir.path(),
            "health.sh",
            "echo \"$BATON_WAVE $BATON_TARGETS $BATON_ARTIFACT\"; [ \"$BATON_TARGETS\" = host-1,host-2 ] || exit 4",
        );
        let spec = CommandRun::new(argv);
        let reading = CommandGate::new(&spec, ctx.clone()).unwrap().sample(&health_request()).await.unwrap();
        assert!(matches!(&reading, GateReading::Healthy { saw } if saw.ends_with("exited with code 0")), "{reading:?}");

        let mut one_target = health_request();
        one_target.targets.pop();
        let reading = CommandGate::new(&spec, ctx).unwrap().sample(&one_target).await.unwrap();
        let GateReading::Unhealthy { saw } = reading else { panic!("{reading:?}") };
        assert!(saw.contains("exited with code 4; last output:\ncanary host-1 web:2"), "{saw}");
    }
}

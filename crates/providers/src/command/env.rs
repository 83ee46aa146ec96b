//! What a command sees of the environment: a small base, what its `pass-env` names, the spec's
//! `env`, then the `BATON_*` variables, which it cannot override.

use super::{CommandContext, CommandSpec};
use baton_domain::release::{Artifact, ReleaseId};

/// What every command gets from Baton's environment. No credential is in it.
pub const BASE_ENV: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TERM", "TZ", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"];

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

impl CommandContext {
    /// Gives `command` the environment of `spec` and nothing else of Baton's: the base, then
    /// what `pass-env` names (never a withheld secret), the spec's `env`, then `env`.
    pub(super) fn set_env(&self, command: &mut tokio::process::Command, spec: &CommandSpec, env: BatonEnv) {
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
    }
}

#[cfg(test)]
mod tests {
    use crate::command::tests::{env, spec};
    use crate::command::{CommandContext, CommandFields};
    use crate::test_support::{entry_in, script};
    use baton_domain::catalog::ProviderBlock;
    use std::collections::BTreeMap;
    use std::time::Duration;

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
}

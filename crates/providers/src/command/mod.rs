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
//! Builds and deploys run detached, outliving the process that started them (see [`detached`]);
//! health samples stay synchronous ([`CommandContext::run`]): they are short and bounded by a
//! timeout. [`supervise`] owns the process group, [`output`] what it printed.

pub(crate) mod build;
pub(crate) mod catalog;
pub(crate) mod deploy;
mod detached;
mod env;
pub(crate) mod gate;
mod output;
mod supervise;

pub use detached::poll_patience;
pub(crate) use detached::{DetachedRun, handle_state, run_handle};
pub use env::BASE_ENV;
pub(crate) use env::BatonEnv;
use supervise::Ended;
pub(crate) use supervise::Exit;

use baton_domain::catalog::{Seconds, SecretRef, ServiceEntry};
use baton_domain::ports::ProviderError;
use catalog::CommandRun;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The `provider` of every [`RunHandle`](baton_domain::ports::RunHandle) a command provider returns.
pub(crate) const PROVIDER: &str = "command";

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

    /// Where it runs, for people.
    fn place(&self) -> String {
        self.working_dir.as_deref().map_or_else(|| "the current directory".into(), |dir| dir.display().to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{entry_in, release_id};

    pub(super) fn spec(ctx: &CommandContext, argv: &[String], env: &BTreeMap<String, String>, timeout: Option<Seconds>) -> CommandSpec {
        let fields = CommandFields { argv, working_dir: None, env, pass_env: &[], timeout };
        ctx.command("test", "extensions.baton.build.command", fields, Duration::from_secs(60)).unwrap()
    }

    pub(super) fn env() -> BatonEnv {
        BatonEnv::new("web", "production", &release_id(), "main", None)
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
}

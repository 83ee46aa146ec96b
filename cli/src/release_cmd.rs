//! `baton release`: one release of one service, on this machine by default.

use crate::exit;
use crate::failure::Failure;
use crate::view::{self, LiveView};
use baton_domain::error::chain_text;
use baton_domain::refname::check_branch_name;
use baton_domain::release::{Release, ReleaseStatus, Signal, Trigger, TriggerKind};
use baton_local_runner::{Finished, LocalBaton, LocalConfig, LocalError, Run};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct ReleaseArgs {
    /// The service to release, as its catalog entry names it (`dd-service` or `metadata.name`).
    pub service: String,
    /// Commit to release (default: whatever the build produces from the branch).
    #[arg(long)]
    pub sha: Option<String>,
    /// Branch to build (default: the catalog's release branch); the release or feature branch
    /// the catalog names, unless --allow-any-branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Release a --branch the catalog does not name; the release records the override.
    #[arg(long, requires = "branch")]
    pub allow_any_branch: bool,
    /// Environment (default: the catalog entry's); must match the entry.
    #[arg(long)]
    pub environment: Option<String>,
    /// Catalog directory or file.
    #[arg(long, env = "BATON_CATALOG", default_value = "catalog")]
    pub catalog: PathBuf,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Skip bake times (for demos and tests). Waiting for another release of the service, and
    /// polls, still take their time.
    #[arg(long)]
    pub no_wait: bool,
    /// Start a new release even when one of this commit (`--sha`) was started before.
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object on stdout (no live view).
    #[arg(long)]
    pub json: bool,
    /// Start the release on Baton's state machine in AWS instead of on this machine; follow it with `baton status`.
    #[arg(long)]
    pub remote: bool,
    /// The release state machine (with --remote) [default: $BATON_STATE_MACHINE_ARN].
    #[arg(long, requires = "remote")]
    pub state_machine_arn: Option<String>,
}

#[derive(Args, Clone)]
pub struct StateDirArg {
    /// Where the local store, workspaces and execution histories live [default: the platform data dir, e.g. ~/.local/share/baton].
    #[arg(long, env = "BATON_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    pub fn resolve(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(baton_store_sqlite::default_state_dir)
    }
}

pub async fn run(args: ReleaseArgs) -> ExitCode {
    // Checked here for a prompt answer; admission checks it again for every other sender.
    if let Some(branch) = &args.branch
        && let Err(why) = check_branch_name(branch)
    {
        let hint = "git's rules: no '..', '//', '@{', spaces, control characters or any of ~^:?*[\\; no leading '-' or '/'; no trailing '/', '.' or '.lock'";
        return Failure::usage(format!("--branch '{}' is not a git branch name: it {why}", branch.escape_debug())).hint(hint).report();
    }
    if args.remote {
        return run_remote(args).await;
    }
    let (baton, live) = match open_local(&args.catalog, &args.state, args.no_wait, args.json) {
        Ok(opened) => opened,
        Err(code) => return code,
    };

    let signal = cli_signal(&args);
    // Each invocation is its own execution, even when its signal repeats an earlier one (the
    // registration then finds that release and this execution ends naming it).
    let execution = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let input = serde_json::to_value(&signal).unwrap_or_default();

    let run = baton.start(&execution, input);
    follow(&baton, &args.service, &execution, run, live, args.json).await
}

/// The local Baton over `catalog` and the state directory, with the live view unless `json`.
pub fn open_local(catalog: &Path, state: &StateDirArg, no_wait: bool, json: bool) -> Result<(LocalBaton, Option<LiveView>), ExitCode> {
    let live = (!json).then(LiveView::new);
    let config = LocalConfig {
        catalog: catalog.to_owned(),
        state_dir: state.resolve(),
        console: live.as_ref().map(|view| view.console_writer()),
        clock: baton_asl::Clock::Real,
        slack_api_base: None,
        skip_bakes: no_wait,
    };
    match LocalBaton::open(config) {
        Ok(baton) => Ok((baton, live)),
        Err(err @ LocalError::Catalog(_)) => {
            let catalog = catalog.display();
            let hint = format!("fix the catalog ({catalog}) and run again; `baton catalog validate {catalog}` lists every error");
            Err(Failure::usage(&err).sources_of(&err).hint(hint).report())
        }
        Err(err) => Err(Failure::usage("cannot start the local run").caused_by(&err).report()),
    }
}

/// Follows a local run of `execution` to its end (the live view unless `json`), then prints the
/// release it carried and exits as its final state says.
pub async fn follow(baton: &LocalBaton, service: &str, execution: &str, run: Run, live: Option<LiveView>, json: bool) -> ExitCode {
    let watcher = live
        .as_ref()
        .map(|view| view.watch(baton.ports().store.clone(), service.to_owned(), execution.to_owned(), Duration::from_millis(200)));
    let Finished { outcome, journal_error } = run.finished().await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    if let Some(err) = journal_error {
        errln!(
            "baton: warning: the execution journal is incomplete (`show --history` and a resume after a crash miss its end): {}",
            chain_text(&err)
        );
    }

    let store = &baton.ports().store;
    let release = match store.list_releases(service, None, 100).await {
        Ok(releases) => find_release(releases, execution, &outcome.output),
        Err(err) => {
            return Failure::failed("the run ended but the store cannot be read").caused_by(&err).report();
        }
    };
    if let Some(view) = &live {
        view.finish();
    }

    let rejected = release.is_none() && outcome.error.is_some();
    if json {
        let summary = json!({
            "execution": {"name": execution, "status": outcome.status, "error": outcome.error, "cause": outcome.cause},
            "release": release,
        });
        outln!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        match &release {
            Some(release) => out!("{}", view::summary(release)),
            None => {
                let error = outcome.error.as_deref().unwrap_or("unknown");
                let cause = outcome.cause.as_deref().map(view::cause_message).unwrap_or_default();
                let message = format!("release not started: {error}: {cause}");
                return if rejected { Failure::usage(message) } else { Failure::failed(message) }.report();
            }
        }
    }
    if rejected {
        return exit::code(exit::USAGE);
    }
    match release.map(|r| r.status) {
        Some(ReleaseStatus::Succeeded | ReleaseStatus::Superseded) => exit::code(exit::OK),
        Some(ReleaseStatus::RollbackFailed) => exit::code(exit::ROLLBACK_FAILED),
        _ => exit::code(exit::FAILED),
    }
}

/// This invocation as a signal. A release of a named commit is idempotent: the same service,
/// environment, branch and `--sha` make the same trigger id, so repeating the command names the
/// release already started instead of starting another (unless `--force`). Without `--sha` every
/// call releases the branch's head anew.
fn cli_signal(args: &ReleaseArgs) -> Signal {
    let id = match &args.sha {
        Some(sha) if !args.force => {
            let environment = args.environment.as_deref().unwrap_or("default");
            let branch = args.branch.as_deref().unwrap_or("default");
            format!("{environment}/{branch}/{sha}")
        }
        _ => uuid::Uuid::new_v4().to_string(),
    };
    Signal {
        service: args.service.clone(),
        environment: args.environment.clone(),
        sha: args.sha.clone(),
        branch: args.branch.clone(),
        trigger: Trigger { branch_override: args.allow_any_branch, ..Trigger::new(TriggerKind::Cli, id, std::env::var("USER").ok()) },
        changed_at: None,
    }
}

async fn run_remote(args: ReleaseArgs) -> ExitCode {
    let signal = cli_signal(&args);
    match crate::remote::start_remote(&signal, args.state_machine_arn.clone()).await {
        Ok(started) => {
            if args.json {
                outln!("{}", json!({"execution_arn": started.execution_arn, "name": started.name, "new": started.new}));
            } else {
                let what = if started.new { "started" } else { "already running as" };
                outln!("{} release {what} {}", args.service, started.execution_arn);
                outln!("follow it with: baton status {} --watch", started.execution_arn);
            }
            exit::code(exit::OK)
        }
        Err(err @ (crate::remote::RemoteError::NoStateMachine | crate::remote::RemoteError::Https(_))) => {
            Failure::usage(&err).sources_of(&err).report()
        }
        Err(err) => Failure::failed("cannot start the release on AWS").caused_by(&err).report(),
    }
}

/// The release this execution carried: the one it created, or (for a duplicate signal) the
/// one its output names.
fn find_release(releases: Vec<Release>, execution: &str, output: &Option<serde_json::Value>) -> Option<Release> {
    let named = output.as_ref().and_then(|o| o.pointer("/release/id")).and_then(|id| id.as_str()).map(str::to_owned);
    releases.into_iter().find(|r| r.execution.as_deref() == Some(execution) || Some(r.id.as_str()) == named.as_deref())
}

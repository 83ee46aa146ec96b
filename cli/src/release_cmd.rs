//! `baton release`: one release of one service, on this machine by default.

use crate::exit;
use crate::failure::Failure;
use crate::signals::{self, Interrupts};
use crate::view::{self, LiveView};
use baton_asl::ExecutionStatus;
use baton_domain::error::{ErrorName, chain_text};
use baton_domain::refname::check_branch_name;
use baton_domain::release::{Release, ReleaseStatus, Signal, Stage, Trigger, TriggerKind};
use baton_domain::support::{CancelAsked, ask_to_cancel};
use baton_local_runner::{Finished, Journaled, LocalBaton, LocalConfig, LocalError, ResumeError, Resumption, Run, describe};
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
    /// Release through the catalog's freeze windows (a hotfix): recorded with who and --reason,
    /// shown in the timeline and the Slack message.
    #[arg(long, requires = "reason")]
    pub override_freeze: bool,
    /// Why the freeze is overridden (with --override-freeze).
    #[arg(long, requires = "override_freeze")]
    pub reason: Option<String>,
    /// Environment (default: the catalog entry's); must match the entry.
    #[arg(long)]
    pub environment: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArg,
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
    /// A release of the service that a killed or interrupted run left behind is superseded by
    /// this one: rolled back (or, if a newer release deployed since, closed) before it starts.
    /// With this it is run on to its end first instead.
    #[arg(long, conflicts_with = "remote")]
    pub resume_interrupted: bool,
    /// Start the release on Baton's state machine in AWS instead of on this machine; follow it with `baton status`.
    #[arg(long)]
    pub remote: bool,
    /// The release state machine (with --remote) [default: $BATON_STATE_MACHINE_ARN].
    #[arg(long, requires = "remote")]
    pub state_machine_arn: Option<String>,
}

#[derive(Args, Clone)]
pub struct CatalogArg {
    /// Catalog directory or file.
    #[arg(long = "catalog", env = "BATON_CATALOG", default_value = "catalog")]
    pub path: PathBuf,
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
    let (baton, live) = match open_local(&args.catalog.path, &args.state, args.no_wait, args.json, "baton release") {
        Ok(opened) => opened,
        Err(code) => return code,
    };

    if let Some(code) = pick_up_left_behind(&baton, &args, live.as_ref()).await {
        return code;
    }
    let signal = cli_signal(&args);
    // Each invocation is its own execution, even when its signal repeats an earlier one (the
    // registration then finds that release and this execution ends naming it).
    let execution = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let input = serde_json::to_value(&signal).unwrap_or_default();

    // Claimed before it starts, so that no resume or cancel can run the release it registers
    // beside this process.
    let owned = match baton.claim(&execution).await {
        Ok(Ok(owned)) => owned,
        Ok(Err(owner)) => return Failure::failed(format!("execution {execution} is run by {}", describe(&owner))).report(),
        Err(err) => return Failure::failed("cannot claim the release's run").caused_by(&err).report(),
    };
    let run = baton.start_owned(owned, input);
    follow(&baton, &args.service, &execution, run, live.as_ref(), Report::of(args.json)).await
}

/// Picks up the service's releases whose run was killed or interrupted (no live process owns
/// them; a killed waiter for the lock included), before anything else deploys over their
/// half-done waves. This newer signal supersedes them, as it does any older waiting signal: they
/// are rolled back (the next release never silently ships an older commit), or run on with
/// --resume-interrupted; one older than a release that has deployed since is closed touching no
/// target (running it on or rolling it back would undo newer work). Answers the exit code when one could not be closed. A release
/// another process owns is left to it: the new release waits for its lock.
async fn pick_up_left_behind(baton: &LocalBaton, args: &ReleaseArgs, live: Option<&LiveView>) -> Option<ExitCode> {
    // A store that cannot be read is reported by the release's own registration.
    let releases = baton.ports().store.list_releases(&args.service, args.environment.as_deref(), 20).await.ok()?;
    let person = crate::person();
    for left in releases.iter().filter(|r| !r.status.is_terminal()) {
        let Some(execution) = &left.execution else { continue };
        if !matches!(baton.journaled(execution).await, Ok(Journaled::Resumable(_))) {
            continue;
        }
        let newer_work = releases.iter().find(|r| r.created_at > left.created_at && r.started_at.is_some());
        let (how, what) = match newer_work {
            Some(newer) => (
                Resumption::Close {
                    why: format!("the newer release {} has deployed since; {person} released {} again", newer.id, left.service),
                },
                "this release supersedes it: closing it, touching no target (a newer release deployed since)".to_owned(),
            ),
            None if args.resume_interrupted => (Resumption::RunOn, "running it on to its end (--resume-interrupted)".to_owned()),
            None => (
                Resumption::RollBack { why: format!("superseded: {person} released {} again", left.service) },
                "this release supersedes it: rolling back what it touched (--resume-interrupted runs it on instead)".to_owned(),
            ),
        };
        errln!("baton: release {} of {} was left {} by an earlier run: {what} first", left.id, left.service, left.status);
        let report = if args.json { Report::Quiet } else { Report::Text };
        let (run, state) = match baton.resume_release(left, &how, &person).await {
            Ok(resumed) => resumed,
            // Another process (a resume, a cancel, another release) took it at the same moment:
            // it is theirs; this release waits for the lock as any other would.
            Err(err @ (ResumeError::Owned { .. } | ResumeError::Ended { .. })) => {
                errln!("baton: {err}; leaving it to them");
                continue;
            }
            Err(err) => return Some(crate::resume_cmd::refused(left, err)),
        };
        errln!("baton: picking {} up at {state}", left.id);
        let code = follow(baton, &left.service, execution, run, live, report).await;
        if signals::stopped_by_one(code) {
            // A person's stop covers the release that was to follow too.
            return Some(code);
        }
        let closed = baton.ports().store.get_release(&left.id).await.ok().flatten();
        match closed.as_ref().map(|r| r.status) {
            Some(status) if status.is_terminal() && status != ReleaseStatus::RollbackFailed => {
                errln!("baton: release {} ended {status}; now releasing {}", left.id, left.service);
            }
            _ => {
                // A person must act first; `--json` still answers with one object saying why.
                if args.json {
                    let why = format!("release {} was left behind and could not be closed: {} is not released", left.id, left.service);
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&json!({"release": null, "left_behind": closed, "error": why})).unwrap_or_default()
                    );
                }
                return Some(code);
            }
        }
    }
    None
}

/// Records `release`'s stop by `signal` as a person's cancel (who, and by what) on its record, as
/// `baton cancel` does, so it closes `cancelled` whoever finishes its rollback; answers the cause
/// its rollback records.
async fn stop_requested(baton: &LocalBaton, release: &Release, signal: i32) -> String {
    let reason = format!("{} on `baton release`", signals::name(signal));
    let person = crate::person();
    if release.stage == Stage::Rollback {
        // It failed by itself and rolls back already: that failure is what it ends with.
        errln!("baton: {} is rolling back already: letting the rollback finish", release.id);
        return format!("{person} stopped the release while it rolled back: {reason}");
    }
    match ask_to_cancel(baton.ports().store.as_ref(), &release.id, &person, &reason, chrono::Utc::now()).await {
        Ok(CancelAsked::Asked(asked)) => asked.cancel_requested.unwrap_or_else(|| format!("{person} cancelled the release: {reason}")),
        Ok(_) => format!("{person} cancelled the release: {reason}"),
        Err(err) => {
            errln!("baton: warning: cannot record the stop on the release (it still rolls back): {}", chain_text(&err));
            format!("{person} cancelled the release: {reason}")
        }
    }
}

/// How `follow` reports the release once it ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Text,
    Json,
    /// Nothing on stdout: another report follows (a left-behind release picked up before a `--json` release).
    Quiet,
}

impl Report {
    pub fn of(json: bool) -> Report {
        if json { Report::Json } else { Report::Text }
    }
}

/// The local Baton over `catalog` and the state directory, with the live view unless `json`.
/// `command` names this process in its claims on release runs ("baton resume").
pub fn open_local(
    catalog: &Path,
    state: &StateDirArg,
    no_wait: bool,
    json: bool,
    command: &str,
) -> Result<(LocalBaton, Option<LiveView>), ExitCode> {
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
        Ok(baton) => Ok((baton.with_owner(&format!("{command} by {}", crate::person())), live)),
        Err(err @ LocalError::Catalog(_)) => {
            let catalog = catalog.display();
            let hint = format!("fix the catalog ({catalog}) and run again; `baton catalog validate {catalog}` lists every error");
            Err(Failure::usage(&err).sources_of(&err).hint(hint).report())
        }
        Err(err) => Err(Failure::usage("cannot start the local run").caused_by(&err).report()),
    }
}

/// Follows a local run of `execution` to its end (the live view unless `json`), then prints the
/// release it carried and exits as its final state says. SIGINT or SIGTERM is a person's stop: the
/// request goes on the record with who sent it, the release rolls back what it touched (a queued
/// one touches nothing) and closes `cancelled`, freeing its lock, and this exits 130 or 143. A
/// second signal stops that too and leaves the release `interrupted` for `baton resume`. A
/// person's `baton cancel` makes this process roll the release back and close it likewise.
pub async fn follow(baton: &LocalBaton, service: &str, execution: &str, mut run: Run, live: Option<&LiveView>, report: Report) -> ExitCode {
    let mut interrupts = match Interrupts::listen() {
        Ok(interrupts) => Some(interrupts),
        Err(err) => {
            errln!("baton: warning: cannot listen for SIGINT/SIGTERM (they kill the run, which `baton resume` picks up): {err}");
            None
        }
    };
    // The first signal, once the release is rolling back on it.
    let mut stopping: Option<i32> = None;
    let (outcome, release, signal) = loop {
        let watcher =
            live.map(|view| view.watch(baton.ports().store.clone(), service.to_owned(), execution.to_owned(), Duration::from_millis(200)));
        let stopper = run.stopper();
        let finished = run.finished();
        tokio::pin!(finished);
        let mut signal = None;
        let Finished { outcome, journal_error, lost_to, owned } = tokio::select! {
            done = &mut finished => done,
            got = async { match &mut interrupts { Some(interrupts) => interrupts.next().await, None => std::future::pending().await } } => {
                let name = signals::name(got);
                if stopping.is_none() {
                    errln!("baton: {name}: stopping the release: rolling back what it touched (again to leave it interrupted for `baton resume`)");
                } else {
                    errln!("baton: {name} again: stopping the rollback; the release stays interrupted (again to abort at once)");
                }
                stopper.stop(Some(ErrorName::Interrupted.as_str().to_owned()), Some(format!("stopped by {name}")));
                signal = Some(got);
                finished.await
            }
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if let Some(taker) = lost_to {
            // Another process owns the release now: this one must not touch it again.
            return Failure::failed(format!("this process stopped beating long enough to lose the release; {taker} runs it now"))
                .hint("`baton show` follows it")
                .report();
        }
        if let Some(err) = journal_error {
            errln!(
                "baton: warning: the execution journal is incomplete (`show --history` and a resume after a crash miss its end): {}",
                chain_text(&err)
            );
        }
        let release = match baton.ports().store.list_releases(service, None, 100).await {
            Ok(releases) => find_release(releases, execution, &outcome.output),
            Err(err) => {
                return Failure::failed("the run ended but the store cannot be read").caused_by(&err).report();
            }
        };
        // Stopped with Baton.Interrupted and no signal here: a person cancelled it (`baton cancel`).
        let cancelled = outcome.status == ExecutionStatus::Aborted && outcome.error.as_deref() == Some(ErrorName::Interrupted.as_str());
        let first_signal = signal.filter(|_| stopping.is_none());
        let ended = match (&release, signal) {
            (Some(release), _) if !release.status.is_terminal() && ((cancelled && signal.is_none()) || first_signal.is_some()) => {
                let why = match first_signal {
                    Some(got) => {
                        stopping = Some(got);
                        stop_requested(baton, release, got).await
                    }
                    None => outcome.cause.clone().unwrap_or_else(|| "cancelled".to_owned()),
                };
                let how = Resumption::RollBack { why };
                // Rolled back under the claim it ran under: nobody else can pick it up between.
                let resumed = match owned {
                    Some(owned) => baton.resume_claimed(&release.id, owned, &how, &crate::person()).await,
                    None => baton.resume_release(release, &how, &crate::person()).await,
                };
                match resumed {
                    Ok((next, state)) => {
                        errln!("baton: cancelled: rolling {} back (at {state})", release.id);
                        run = next;
                        continue;
                    }
                    Err(err @ ResumeError::Owned { .. }) => {
                        return Failure::failed(&err).hint("it rolls the cancelled release back").report();
                    }
                    Err(err) => return Failure::failed("the release was cancelled but cannot be rolled back").caused_by(&err).report(),
                }
            }
            (Some(stopped), Some(got)) if !stopped.status.is_terminal() => {
                let why = format!(
                    "stopped by {} while it rolled back (`baton resume {} --rollback` finishes the rollback)",
                    signals::name(got),
                    stopped.id
                );
                if let Err(err) = baton.mark_interrupted(stopped, &why).await {
                    errln!("baton: warning: cannot record the release as interrupted: {}", chain_text(&err));
                }
                errln!(
                    "baton: {} is left interrupted and holds the lock of {}: `baton resume {} --rollback` finishes rolling it back",
                    stopped.id,
                    stopped.service,
                    stopped.id
                );
                let reread = baton.ports().store.get_release(&stopped.id).await.ok().flatten().or(release.clone());
                (outcome, reread, signal)
            }
            _ => (outcome, release, signal.or(stopping)),
        };
        // Recorded as it ended (interrupted included) first: whoever claims it next reads that.
        if let Some(owned) = owned
            && let Err(err) = owned.give_up().await
        {
            errln!("baton: warning: cannot give the release's run up (another process may take it in seconds): {}", chain_text(&err));
        }
        break ended;
    };
    if let Some(view) = live {
        view.finish();
    }

    let rejected = release.is_none() && outcome.error.is_some() && signal.is_none();
    if report == Report::Json {
        let summary = json!({
            "execution": {"name": execution, "status": outcome.status, "error": outcome.error, "cause": outcome.cause},
            "release": release,
        });
        outln!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        match &release {
            Some(_) if report == Report::Quiet => {}
            Some(release) => {
                out!("{}", view::summary(release));
                if matches!(release.status, ReleaseStatus::Superseded | ReleaseStatus::Skipped)
                    && let Some(cause) = outcome.output.as_ref().and_then(|o| o.pointer("/error/Cause")).and_then(|c| c.as_str())
                {
                    outln!("  why       {}", view::cause_message(cause));
                }
            }
            None => {
                let error = outcome.error.as_deref().unwrap_or("unknown");
                let cause = outcome.cause.as_deref().map(view::cause_message).unwrap_or_default();
                let message = format!("release not started: {error}: {cause}");
                return if rejected { Failure::usage(message) } else { Failure::failed(message) }.report();
            }
        }
    }
    if let Some(signal) = signal {
        return exit::code(exit::signalled(signal));
    }
    if rejected {
        return exit::code(exit::USAGE);
    }
    exit_for(release.map(|r| r.status))
}

/// The exit code of a release that ended with `status`.
pub fn exit_for(status: Option<ReleaseStatus>) -> ExitCode {
    exit::code(status.map_or(exit::FAILED, exit_value))
}

/// The exit code's value for a release that ended with `status` (`baton status` reads it from
/// the execution's outcome).
pub fn exit_value(status: ReleaseStatus) -> u8 {
    match status {
        ReleaseStatus::Succeeded => exit::OK,
        ReleaseStatus::Superseded => exit::SUPERSEDED,
        ReleaseStatus::Skipped => exit::SKIPPED,
        ReleaseStatus::RollbackFailed => exit::ROLLBACK_FAILED,
        ReleaseStatus::Cancelled => exit::CANCELLED,
        _ => exit::FAILED,
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
        trigger: Trigger {
            branch_override: args.allow_any_branch,
            freeze_override: args.reason.clone().filter(|_| args.override_freeze),
            ..Trigger::new(TriggerKind::Cli, id, std::env::var("USER").ok())
        },
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

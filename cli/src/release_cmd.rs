//! `baton release`: one release of one service, on this machine by default.

use crate::callbacks::{EventsArgs, serve};
use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::follow::{Report, follow};
use crate::local::{CatalogArg, StateDirArg, open_local};
use crate::signals;
use crate::view::LiveView;
use baton_domain::refname::check_branch_name;
use baton_domain::release::{ReleaseStatus, Signal, Trigger, TriggerKind};
use baton_local_runner::{Journaled, LocalBaton, ResumeError, Resumption, describe};
use clap::Args;
use serde_json::json;

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
    #[command(flatten)]
    pub events: EventsArgs,
}

pub async fn run(args: ReleaseArgs) -> Outcome {
    // Checked here for a prompt answer; admission checks it again for every other sender.
    if let Some(branch) = &args.branch
        && let Err(why) = check_branch_name(branch)
    {
        let hint = "git's rules: no '..', '//', '@{', spaces, control characters or any of ~^:?*[\\; no leading '-' or '/'; no trailing '/', '.' or '.lock'";
        return Err(Failure::usage(format!("--branch '{}' is not a git branch name: it {why}", branch.escape_debug())).hint(hint));
    }
    if args.remote {
        if args.events.events_listen.is_some() {
            return Err(Failure::usage(
                "--events-listen is for a release on this machine: on AWS the provider-events function receives the callbacks",
            ));
        }
        return run_remote(args).await;
    }
    let bound = args.events.bind().await?;
    let events_url = bound.as_ref().map(|bound| bound.url.clone());
    let (baton, live) = open_local(&args.catalog.path, &args.state, args.no_wait, args.json, "baton release", events_url)?;
    // Listening before a left-behind release is picked up: it may wait for callbacks too.
    let _listening = serve(&baton, bound).await?;

    if let Some(code) = pick_up_left_behind(&baton, &args, live.as_ref()).await {
        return code;
    }
    warn_of_mixed_fleet(&baton, &args).await;
    let signal = cli_signal(&args);
    // Each invocation is its own execution, even when its signal repeats an earlier one (the
    // registration then finds that release and this execution ends naming it).
    let execution = format!("cli-{}", uuid::Uuid::new_v4().simple());
    let input = serde_json::to_value(&signal).unwrap_or_default();

    // Claimed before it starts, so that no resume or cancel can run the release it registers
    // beside this process.
    let owned = match baton.claim(&execution).await {
        Ok(Ok(owned)) => owned,
        Ok(Err(owner)) => return Err(Failure::failed(format!("execution {execution} is run by {}", describe(&owner)))),
        Err(err) => return Err(Failure::failed("cannot claim the release's run").caused_by(&err)),
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
async fn pick_up_left_behind(baton: &LocalBaton, args: &ReleaseArgs, live: Option<&LiveView>) -> Option<Outcome> {
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
            Err(err) => return Some(crate::follow::refused(left, err)),
        };
        errln!("baton: picking {} up at {state}", left.id);
        let code = match follow(baton, &left.service, execution, run, live, report).await {
            Ok(code) => code,
            failed @ Err(_) => return Some(failed),
        };
        if signals::stopped_by_one(code) {
            // A person's stop covers the release that was to follow too.
            return Some(Ok(code));
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
                return Some(Ok(code));
            }
        }
    }
    None
}

/// Warns, before this release starts, when the service's latest release ended `rollback-failed`:
/// the targets it left on its new artifact run another version than the rest until this one
/// deploys over them.
async fn warn_of_mixed_fleet(baton: &LocalBaton, args: &ReleaseArgs) {
    let Ok(releases) = baton.ports().store.list_releases(&args.service, args.environment.as_deref(), 20).await else { return };
    let Some(last) = releases.iter().find(|r| r.status.is_terminal() && r.started_at.is_some()) else { return };
    if last.status != ReleaseStatus::RollbackFailed {
        return;
    }
    let left = baton_domain::rules::waves::left_on_new_artifact(&last.waves);
    if left.is_empty() {
        return;
    }
    let targets: Vec<String> = left.iter().map(|(wave, target)| format!("{target} (wave {wave})")).collect();
    let artifact = last.artifact.as_ref().map_or("its new artifact".to_owned(), |a| a.reference.clone());
    errln!(
        "baton: warning: a mixed fleet: {}'s last release {} ended rollback-failed and left {} on {artifact}; this release deploys over them wave by wave",
        args.service,
        last.id,
        targets.join(", ")
    );
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
            ..Trigger::new(TriggerKind::Cli, id, Some(crate::person()))
        },
        changed_at: None,
    }
}

async fn run_remote(args: ReleaseArgs) -> Outcome {
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
            Ok(exit::code(exit::OK))
        }
        Err(err @ (crate::remote::RemoteError::NoStateMachine | crate::remote::RemoteError::Https(_))) => {
            Err(Failure::usage(&err).sources_of(&err))
        }
        Err(err) => Err(Failure::failed("cannot start the release on AWS").caused_by(&err)),
    }
}

//! `baton resume`: picks up a release whose local run was killed or interrupted, from the last
//! state its journal recorded, and runs it on, or rolls it back and closes it.

use crate::failure::Failure;
use crate::release_cmd::{CatalogArg, Report, StateDirArg, follow, open_local};
use baton_domain::release::ReleaseId;
use baton_local_runner::{ResumeError, Resumption};
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct ResumeArgs {
    /// The release to pick up (`baton history <service>` lists them).
    pub release_id: String,
    /// Roll back what it deployed and close it (cancelled, with Baton.Interrupted) instead of running it on.
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub catalog: CatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Skip bake times still ahead (as `baton release --no-wait`).
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as one JSON object on stdout (no live view).
    #[arg(long)]
    pub json: bool,
}

/// Exits as `baton release` does once the release ends.
pub async fn run(args: ResumeArgs) -> ExitCode {
    let (baton, live) = match open_local(&args.catalog.path, &args.state, args.no_wait, args.json, "baton resume") {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let id = ReleaseId(args.release_id.clone());
    let release = match baton.ports().store.get_release(&id).await {
        Ok(Some(release)) => release,
        Ok(None) => {
            return Failure::usage(format!("no release {id} in the local store")).hint("`baton history <service>` lists them").report();
        }
        Err(err) => return Failure::failed(&err).sources_of(&err).report(),
    };
    let person = crate::person();
    let how = if args.rollback {
        Resumption::RollBack { why: format!("{person} rolled back the interrupted release") }
    } else {
        Resumption::RunOn
    };
    pick_up(&baton, &release, &how, &person, live.as_ref(), Report::of(args.json)).await
}

/// Resumes `release` as `how` says, then follows it to its end.
pub async fn pick_up(
    baton: &baton_local_runner::LocalBaton,
    release: &baton_domain::release::Release,
    how: &Resumption,
    person: &str,
    live: Option<&crate::view::LiveView>,
    report: Report,
) -> ExitCode {
    match baton.resume_release(release, how, person).await {
        Ok((run, state)) => {
            let what = if matches!(how, Resumption::RunOn) { "resuming" } else { "rolling back" };
            errln!("baton: {what} {} ({}) at {state}", release.id, release.service);
            let execution = release.execution.clone().unwrap_or_default();
            follow(baton, &release.service, &execution, run, live, report).await
        }
        Err(err) => refused(release, err),
    }
}

/// Reports why `release` could not be picked up; nothing of it was touched.
pub fn refused(release: &baton_domain::release::Release, err: ResumeError) -> ExitCode {
    match err {
        err @ ResumeError::Ended { .. } => Failure::usage(&err).report(),
        err @ ResumeError::Owned { .. } => {
            Failure::failed(&err).hint(format!("`baton cancel {}` stops it; or let it finish", release.id)).report()
        }
        err @ ResumeError::NotRegistered { .. } => Failure::failed(&err).hint(format!("`baton resume {}` runs it on", release.id)).report(),
        err => Failure::failed(&err).sources_of(&err).report(),
    }
}

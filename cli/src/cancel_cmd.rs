//! `baton cancel`: a person settles a release: rolled back if any wave deployed, closed, its lock
//! freed, who and why recorded. A live local run is asked to stop (it rolls itself back); a
//! killed or interrupted one is rolled back by this command.

use crate::failure::Failure;
use crate::release_cmd::{CatalogArg, Report, StateDirArg, exit_for, open_local};
use baton_domain::ports::StoreError;
use baton_domain::release::{EventKind, ReleaseId, StageEvent};
use baton_local_runner::{LocalBaton, Resumption, SILENT_AFTER};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;

#[derive(Args)]
pub struct CancelArgs {
    /// The release to cancel (`baton history <service>` lists them).
    pub release_id: String,
    /// Why: recorded in the release's timeline and failure with who ran the command.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub catalog: CatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Exits as `baton release` does once the release is closed (1 rolled back or failed, 3 when its
/// rollback failed).
pub async fn run(args: CancelArgs) -> ExitCode {
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Failure::usage("--reason is empty").hint("say why the release is cancelled: it goes in its timeline").report();
    }
    // No bakes lie ahead of a rollback: the catalog's are skipped.
    let (baton, live) = match open_local(&args.catalog.path, &args.state, true, args.json) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let store = baton.ports().store.clone();
    let id = ReleaseId(args.release_id.clone());
    let release = match store.get_release(&id).await {
        Ok(Some(release)) => release,
        Ok(None) => {
            return Failure::usage(format!("no release {id} in the local store")).hint("`baton history <service>` lists them").report();
        }
        Err(err) => return Failure::failed(&err).sources_of(&err).report(),
    };
    if release.status.is_terminal() {
        return Failure::usage(format!("release {id} is {}: there is nothing to cancel", release.status)).report();
    }
    let Some(execution) = release.execution.clone() else {
        return Failure::failed(format!("release {id} names no execution to stop")).report();
    };
    let person = crate::person();
    let why = format!("{person} cancelled the release: {reason}");
    let event = StageEvent {
        release_id: id.clone(),
        at: chrono::Utc::now(),
        stage: release.stage,
        wave: None,
        target: None,
        kind: EventKind::Cancelled,
        message: why.clone(),
    };
    if let Err(err) = store.append_event(&event).await {
        return Failure::failed("cannot record the cancellation").caused_by(&err).report();
    }
    match stop_live_run(&baton, &execution, &why).await {
        Ok(true) => errln!("baton: the process running {id} stopped"),
        Ok(false) => {}
        Err(err) => return Failure::failed("cannot ask the running release to stop").caused_by(&err).report(),
    }
    let release = match store.get_release(&id).await {
        Ok(Some(release)) => release,
        Ok(None) => return Failure::failed(format!("release {id} vanished from the local store")).report(),
        Err(err) => return Failure::failed(&err).sources_of(&err).report(),
    };
    if !release.status.is_terminal() {
        let how = Resumption::RollBack { why };
        return crate::resume_cmd::pick_up(&baton, &release, &how, &person, live.as_ref(), Report::of(args.json)).await;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json!({"release": release})).unwrap_or_default());
    } else {
        out!("{}", crate::view::summary(&release));
    }
    exit_for(Some(release.status))
}

/// Asks a live run of `execution` to stop and roll back, and waits until no process runs it any
/// more; false when none did. A run that dies on the way leaves the rollback to the caller.
async fn stop_live_run(baton: &LocalBaton, execution: &str, why: &str) -> Result<bool, StoreError> {
    if !baton.running_elsewhere(execution).await? || !baton.request_cancel(execution, why).await? {
        return Ok(false);
    }
    errln!("baton: asked the process running the release to stop and roll back; waiting for it");
    // Its stopped run ends and its rollback starts a moment later: silent twice in a row is gone.
    loop {
        if !baton.running_elsewhere(execution).await? {
            tokio::time::sleep(SILENT_AFTER).await;
            if !baton.running_elsewhere(execution).await? {
                return Ok(true);
            }
        }
    }
}

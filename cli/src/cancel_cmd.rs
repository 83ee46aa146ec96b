//! `baton cancel`: a person settles a release: rolled back if any wave deployed, closed, its lock
//! freed, who and why recorded. A live local run is asked to stop (it rolls itself back, and this
//! waits for it); a killed or interrupted one is claimed and rolled back by this command.

use crate::failure::Failure;
use crate::release_cmd::{CatalogArg, Report, StateDirArg, exit_for, open_local};
use baton_domain::release::{EventKind, ReleaseId, StageEvent};
use baton_local_runner::{HEARTBEAT, ResumeError, Resumption};
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
    let (baton, live) = match open_local(&args.catalog.path, &args.state, true, args.json, "baton cancel") {
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
    let how = Resumption::RollBack { why: why.clone() };
    let mut asked = None;
    loop {
        match baton.resume_release(&release, &how, &person).await {
            Ok((run, state)) => {
                errln!("baton: rolling {id} back (at {state})");
                return crate::release_cmd::follow(&baton, &release.service, &execution, run, live.as_ref(), Report::of(args.json)).await;
            }
            Err(ResumeError::Ended { .. }) => break,
            // A live process runs it: asked once to stop, it rolls the release back itself (under
            // the same claim); this waits until it is closed, or until that process dies and its
            // claim can be taken here.
            Err(ResumeError::Owned { owner, .. }) => {
                if asked.is_none() {
                    match baton.request_cancel(&execution, &why).await {
                        Ok(_) => errln!("baton: {owner} runs {id}: asked it to stop and roll back; waiting for it"),
                        Err(err) => return Failure::failed("cannot ask the running release to stop").caused_by(&err).report(),
                    }
                    asked = Some(owner);
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
            Err(err) => return crate::resume_cmd::refused(&release, err),
        }
    }
    let release = match store.get_release(&id).await {
        Ok(Some(release)) => release,
        Ok(None) => return Failure::failed(format!("release {id} vanished from the local store")).report(),
        Err(err) => return Failure::failed(&err).sources_of(&err).report(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json!({"release": release})).unwrap_or_default());
    } else {
        out!("{}", crate::view::summary(&release));
    }
    exit_for(Some(release.status))
}

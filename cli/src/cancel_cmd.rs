//! `baton cancel`: a person settles a release: rolled back if any wave deployed, closed, its lock
//! freed, who and why recorded. A live local run is asked to stop (it rolls itself back, and this
//! waits for it); a killed or interrupted one is claimed and rolled back by this command.
//! With `--remote`, the release runs on AWS: the request goes on its record in the release table,
//! and the execution's next task rolls it back (never StopExecution: docs/aws.md).

use crate::failure::{Failure, Outcome};
use crate::follow::Report;
use crate::local::{RecordedCatalogArg, StateDirArg, open_local, recorded_release};
use baton_domain::ports::ReleaseStore;
use baton_domain::release::ReleaseId;
use baton_domain::support::{CancelAsked, ask_to_cancel};
use baton_local_runner::{HEARTBEAT, ResumeError, Resumption};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct CancelArgs {
    /// The release to cancel (`baton history <service>` lists them).
    pub release_id: String,
    /// Why: recorded in the release's timeline and failure with who ran the command.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub catalog: RecordedCatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Cancel a release running on AWS: the request goes on its record in the release table, and
    /// its execution's next task rolls it back, cancels its build, notifies and unlocks.
    #[arg(long)]
    pub remote: bool,
    /// The release table (with --remote; the stack's ReleaseTableName output).
    #[arg(long, env = "BATON_RELEASE_TABLE", requires = "remote")]
    pub table: Option<String>,
    /// With --remote: wait until the release is closed, and exit as `baton release` does.
    #[arg(long, requires = "remote")]
    pub wait: bool,
}

/// Exits as `baton release` does once the release is closed (5 cancelled, 3 when its rollback
/// failed).
pub async fn run(args: CancelArgs) -> Outcome {
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(Failure::usage("--reason is empty").hint("say why the release is cancelled: it goes in its timeline"));
    }
    if args.remote {
        return run_remote(&args, reason).await;
    }
    // No bakes lie ahead of a rollback: the catalog's are skipped.
    let id = ReleaseId(args.release_id.clone());
    let catalog = args.catalog.resolve(&args.state, &id).await;
    let (baton, live) = open_local(&catalog, &args.state, true, args.json, "baton cancel", None)?;
    let store = baton.ports().store.clone();
    let release = recorded_release(store.as_ref(), &id).await?;
    if release.status.is_terminal() {
        return Err(Failure::usage(format!("release {id} is {}: there is nothing to cancel", release.status)));
    }
    let Some(execution) = release.execution.clone() else {
        return Err(Failure::failed(format!("release {id} names no execution to stop")));
    };
    let person = crate::person();
    // On the record as `--remote` puts it, so the release closes `cancelled` whoever rolls it
    // back, and its timeline says who asked and why.
    let why = match ask_to_cancel(store.as_ref(), &id, &person, reason, chrono::Utc::now()).await {
        Ok(CancelAsked::Asked(asked)) => asked.cancel_requested.unwrap_or_else(|| format!("{person} cancelled the release: {reason}")),
        Ok(CancelAsked::Closed(status)) => return Err(Failure::usage(format!("release {id} is {status}: there is nothing to cancel"))),
        Ok(CancelAsked::Missing) => return Err(Failure::failed(format!("release {id} vanished from the local store"))),
        Err(err) => return Err(Failure::failed("cannot record the cancellation").caused_by(&err)),
    };
    let how = Resumption::RollBack { why: why.clone() };
    let mut asked = None;
    loop {
        match baton.resume_release(&release, &how, &person).await {
            Ok((run, state)) => {
                errln!("baton: rolling {id} back (at {state})");
                return crate::follow::follow(&baton, &release.service, &execution, run, live.as_ref(), Report::of(args.json)).await;
            }
            Err(ResumeError::Ended { .. }) => break,
            // A live process runs it: asked once to stop, it rolls the release back itself (under
            // the same claim); this waits until it is closed, or until that process dies and its
            // claim can be taken here.
            Err(ResumeError::Owned { owner, .. }) => {
                if asked.is_none() {
                    match baton.request_cancel(&execution, &why).await {
                        Ok(_) => errln!("baton: {owner} runs {id}: asked it to stop and roll back; waiting for it"),
                        Err(err) => return Err(Failure::failed("cannot ask the running release to stop").caused_by(&err)),
                    }
                    asked = Some(owner);
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
            Err(err) => return crate::follow::refused(&release, err),
        }
    }
    let release = match store.get_release(&id).await {
        Ok(Some(release)) => release,
        Ok(None) => return Err(Failure::failed(format!("release {id} vanished from the local store"))),
        Err(err) => return Err(Failure::failed(&err).sources_of(&err)),
    };
    report_closed(&release, args.json)
}

/// How often `--remote --wait` reads the record.
const REMOTE_POLL: std::time::Duration = std::time::Duration::from_secs(5);

async fn run_remote(args: &CancelArgs, reason: &str) -> Outcome {
    let Some(table) = args.table.as_deref() else {
        return Err(Failure::usage("--remote needs the release table")
            .hint("pass --table or set BATON_RELEASE_TABLE (the stack's ReleaseTableName output)"));
    };
    let config = match crate::remote::aws_config().await {
        Ok(config) => config,
        Err(err) => return Err(Failure::usage(&err).sources_of(&err)),
    };
    let store = baton_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let id = ReleaseId(args.release_id.clone());
    let release = match ask_to_cancel(&store, &id, &crate::person(), reason, chrono::Utc::now()).await {
        Ok(CancelAsked::Asked(release)) => release,
        Ok(CancelAsked::Missing) => {
            return Err(Failure::usage(format!("no release {id} in table {table}")).hint("`baton history <service>` lists them"));
        }
        Ok(CancelAsked::Closed(status)) => return Err(Failure::usage(format!("release {id} is {status}: there is nothing to cancel"))),
        Err(err) => return Err(Failure::failed("cannot record the cancel request").caused_by(&err)),
    };
    if !args.wait {
        if args.json {
            outln!("{}", json!({"release": release.id, "cancel_requested": release.cancel_requested}));
        } else {
            outln!("asked {id} to stop: its next task rolls it back, cancels its build, notifies and unlocks");
            outln!("follow it with: baton status {id} --watch");
        }
        return Ok(crate::exit::code(crate::exit::OK));
    }
    errln!("baton: asked {id} to stop; waiting for it to roll back and close");
    let release = loop {
        match store.get_release(&id).await {
            Ok(Some(release)) if release.status.is_terminal() => break release,
            Ok(Some(_)) => tokio::time::sleep(REMOTE_POLL).await,
            Ok(None) => return Err(Failure::failed(format!("release {id} vanished from table {table}"))),
            Err(err) => return Err(Failure::failed(&err).sources_of(&err)),
        }
    };
    report_closed(&release, args.json)
}

/// The closed release, as `baton release` shows it, and its exit code.
fn report_closed(release: &baton_domain::release::Release, json: bool) -> Outcome {
    if json {
        outln!("{}", serde_json::to_string_pretty(&json!({"release": release.for_display()})).unwrap_or_default());
    } else {
        out!("{}", crate::view::summary(release));
        out!("{}", crate::view::next_steps(release, false));
    }
    Ok(crate::exit::for_release(Some(release.status)))
}

//! `baton resume`: picks up a release whose local run was killed or interrupted, from the last
//! state its journal recorded, and runs it on, or rolls it back and closes it.

use crate::callbacks::{EventsArgs, serve};
use crate::failure::Outcome;
use crate::follow::{Report, pick_up};
use crate::local::{RecordedCatalogArg, StateDirArg, open_local, recorded_release};
use baton_domain::release::ReleaseId;
use baton_local_runner::Resumption;
use clap::Args;

#[derive(Args)]
pub struct ResumeArgs {
    /// The release to pick up (`baton history <service>` lists them).
    pub release_id: String,
    /// Roll back what it deployed and close it (cancelled, with Baton.Interrupted) instead of running it on.
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub catalog: RecordedCatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Skip bake times still ahead (as `baton release --no-wait`).
    #[arg(long)]
    pub no_wait: bool,
    /// Print the result as one JSON object on stdout (no live view).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub events: EventsArgs,
}

/// Exits as `baton release` does once the release ends.
pub async fn run(args: ResumeArgs) -> Outcome {
    let id = ReleaseId(args.release_id.clone());
    let catalog = args.catalog.resolve(&args.state, &id).await;
    let bound = args.events.bind().await?;
    let events_url = bound.as_ref().map(|bound| bound.url.clone());
    let (baton, live) = open_local(&catalog, &args.state, args.no_wait, args.json, "baton resume", events_url)?;
    let release = recorded_release(baton.ports().store.as_ref(), &id).await?;
    let _listening = serve(&baton, bound).await?;
    let person = crate::person();
    let how = if args.rollback {
        Resumption::RollBack { why: format!("{person} rolled back the interrupted release") }
    } else {
        Resumption::RunOn
    };
    pick_up(&baton, &release, &how, &person, live.as_ref(), Report::of(args.json)).await
}

//! `baton unlock`: frees a service's release lock by hand, saying who and why, for a release
//! whose process died (its lease would free the lock within 15 minutes anyway).

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::{CatalogArg, StateDirArg};
use crate::local::{live_owner, open_store};
use baton_domain::catalog::FsCatalog;
use baton_domain::error::chain_text;
use baton_domain::ports::CatalogSource;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{LockKey, ReleaseId};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct UnlockArgs {
    /// The service whose lock to free.
    pub service: String,
    /// Why: recorded in the holding release's timeline with who ran the command.
    #[arg(long)]
    pub reason: String,
    /// The environment of the lock (default: the catalog entry's).
    #[arg(long)]
    pub environment: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when a lock was freed, 1 when none was held.
pub async fn run(args: UnlockArgs) -> Outcome {
    if args.reason.trim().is_empty() {
        return Err(Failure::usage("--reason is empty").hint("say why the lock is freed: it goes in the release's timeline"));
    }
    let environment = match &args.environment {
        Some(environment) => environment.clone(),
        None => environment_from_catalog(&args).await?,
    };
    let store = open_store(&args.state)?;
    let person = crate::person();
    let key = LockKey::new(&args.service, &environment);
    let freed = match baton_domain::support::unlock_by_hand(&store, &key, &person, args.reason.trim(), chrono::Utc::now()).await {
        Ok(freed) => freed,
        Err(err) => return Err(Failure::failed(&err).sources_of(&err)),
    };
    let next = match &freed {
        Some(info) => what_becomes_of(&store, &info.holder, &args.service).await,
        None => None,
    };
    if args.json {
        let holder = freed.as_ref().map(|info| info.holder.to_string());
        outln!(
            "{}",
            json!({"service": args.service, "environment": environment, "freed": freed.is_some(), "holder": holder, "holder_next": next})
        );
    } else {
        match &freed {
            Some(info) => {
                outln!("freed the lock of {} [{environment}] held by {} (its lease ran to {})", args.service, info.holder, info.expires_at);
                if let Some(next) = &next {
                    outln!("{next}");
                }
            }
            None => outln!("{} [{environment}] holds no lock", args.service),
        }
    }
    Ok(exit::code(if freed.is_some() { exit::OK } else { exit::FAILED }))
}

/// What happens to `holder`, the release whose lock was freed, said for the person who freed it.
async fn what_becomes_of(store: &dyn ReleaseStore, holder: &ReleaseId, service: &str) -> Option<String> {
    let release = match store.get_release(holder).await {
        Ok(Some(release)) => release,
        Ok(None) => return Some(format!("{holder} is not in the store: nothing more happens to it")),
        Err(err) => return Some(format!("cannot read {holder} to say what becomes of it: {}", chain_text(&err))),
    };
    if release.status.is_terminal() {
        return Some(format!("{holder} is {}: nothing more happens to it", release.status));
    }
    Some(match live_owner(store, &release).await {
        Some(owner) => format!(
            "{holder} is {} and still run by {}: it takes the lock back at its next step unless another release took it, and stops \
             if one did; `baton cancel {holder} --reason ...` stops it",
            release.status, owner.owner
        ),
        _ => format!(
            "{holder} is {} and no process runs it: the next `baton release {service}` supersedes it (rolls back what it touched, \
             or closes it if a newer release deployed since); `baton resume {holder}` runs it on, `baton cancel {holder} --reason ...` \
             rolls it back now",
            release.status
        ),
    })
}

async fn environment_from_catalog(args: &UnlockArgs) -> Result<String, Failure> {
    let hint = "pass --environment, or --catalog with the service's entry";
    let catalog = FsCatalog::open(baton_providers::registry(), &args.catalog.path)
        .map_err(|err| Failure::usage("cannot read the catalog").caused_by(&err).hint(hint))?;
    match catalog.service(&args.service).await {
        Ok(entry) => Ok(entry.delivery.environment),
        Err(err) => Err(Failure::usage(format!("no environment for {}", args.service)).caused_by(&err).hint(hint)),
    }
}

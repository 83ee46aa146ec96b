//! `baton unlock`: frees a service's release lock by hand, saying who and why, for a release
//! whose process died (its lease would free the lock within 15 minutes anyway).

use crate::exit;
use crate::failure::Failure;
use crate::release_cmd::{CatalogArg, StateDirArg};
use crate::report_cmd::open_store;
use baton_domain::catalog::FsCatalog;
use baton_domain::ports::CatalogSource;
use baton_domain::release::LockKey;
use clap::Args;
use serde_json::json;
use std::process::ExitCode;

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
pub async fn run(args: UnlockArgs) -> ExitCode {
    if args.reason.trim().is_empty() {
        return Failure::usage("--reason is empty").hint("say why the lock is freed: it goes in the release's timeline").report();
    }
    let environment = match &args.environment {
        Some(environment) => environment.clone(),
        None => match environment_from_catalog(&args).await {
            Ok(environment) => environment,
            Err(code) => return code,
        },
    };
    let store = match open_store(&args.state) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let person = crate::person();
    let key = LockKey::new(&args.service, &environment);
    let freed = match baton_domain::support::unlock_by_hand(&store, &key, &person, args.reason.trim(), chrono::Utc::now()).await {
        Ok(freed) => freed,
        Err(err) => return Failure::failed(&err).sources_of(&err).report(),
    };
    if args.json {
        let holder = freed.as_ref().map(|info| info.holder.to_string());
        outln!("{}", json!({"service": args.service, "environment": environment, "freed": freed.is_some(), "holder": holder}));
    } else {
        match &freed {
            Some(info) => {
                outln!("freed the lock of {} [{environment}] held by {} (its lease ran to {})", args.service, info.holder, info.expires_at)
            }
            None => outln!("{} [{environment}] holds no lock", args.service),
        }
    }
    exit::code(if freed.is_some() { exit::OK } else { exit::FAILED })
}

async fn environment_from_catalog(args: &UnlockArgs) -> Result<String, ExitCode> {
    let hint = "pass --environment, or --catalog with the service's entry";
    let catalog = FsCatalog::open(baton_providers::registry(), &args.catalog.path)
        .map_err(|err| Failure::usage("cannot read the catalog").caused_by(&err).hint(hint).report())?;
    match catalog.service(&args.service).await {
        Ok(entry) => Ok(entry.delivery.environment),
        Err(err) => Err(Failure::usage(format!("no environment for {}", args.service)).caused_by(&err).hint(hint).report()),
    }
}

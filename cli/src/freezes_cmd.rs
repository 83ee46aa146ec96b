//! `baton freezes`: the freeze windows in force at an instant and the next ones, per service,
//! from the local catalog (each service's own windows and the organisation's `freezes.yaml`), or
//! with `--remote` from the catalog pushed to the AWS stack's catalog table (the windows the
//! releases there obey).

use crate::failure::{Failure, Outcome};
use crate::local::CatalogArg;
use baton_aws::catalog::DynamoCatalog;
use baton_domain::catalog::{FsCatalog, OnFreeze, ServiceEntry};
use baton_domain::rules::freeze::{self, Occurrence};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;

/// How far ahead the next windows are looked for, and how many are listed per service.
const LOOK_AHEAD_DAYS: i64 = 30;
const NEXT_SHOWN: usize = 5;

#[derive(Args)]
pub struct FreezesArgs {
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only services releasing to this environment.
    #[arg(long)]
    pub environment: Option<String>,
    /// The instant to look at, RFC 3339 (default: now).
    #[arg(long)]
    pub at: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArg,
    /// Read the catalog pushed to the AWS stack (`baton catalog push`) instead of the local one.
    #[arg(long)]
    pub remote: bool,
    /// The catalog table (with --remote; the stack's CatalogTableName output).
    #[arg(long, env = "BATON_CATALOG_TABLE", requires = "remote")]
    pub table: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Every service of the catalog the flags name, and where it was read.
async fn services(args: &FreezesArgs) -> Result<(Vec<ServiceEntry>, String), Failure> {
    if !args.remote {
        let catalog =
            FsCatalog::open(baton_providers::registry(), &args.catalog.path).map_err(|err| Failure::usage(&err).sources_of(&err))?;
        return Ok((catalog.catalog().services().to_vec(), args.catalog.path.display().to_string()));
    }
    let Some(table) = args.table.as_deref() else {
        return Err(Failure::usage("--remote needs the catalog table")
            .hint("pass --table or set BATON_CATALOG_TABLE (the stack's CatalogTableName output)"));
    };
    let config = crate::remote::aws_config().await.map_err(|err| Failure::usage(&err).sources_of(&err))?;
    let catalog = DynamoCatalog::new(aws_sdk_dynamodb::Client::new(&config), table, baton_providers::registry());
    let entries = catalog.services().await.map_err(|err| Failure::failed(format!("cannot read catalog table {table}")).caused_by(&err))?;
    Ok((entries, format!("catalog table {table}")))
}

/// Exit 0 when listed, 1 when the remote catalog cannot be read, 2 on bad input or an
/// unreadable local catalog.
pub async fn run(args: FreezesArgs) -> Outcome {
    let at = match &args.at {
        None => Utc::now(),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(at) => at.with_timezone(&Utc),
            Err(_) => {
                return Err(Failure::usage(format!("--at '{text}' is not an RFC 3339 time")).hint("e.g. --at 2026-12-24T18:00:00+01:00"));
            }
        },
    };
    let (entries, source) = services(&args).await?;
    let services: Vec<_> = entries
        .iter()
        .filter(|entry| args.service.as_deref().is_none_or(|name| name == entry.name))
        .filter(|entry| args.environment.as_deref().is_none_or(|env| env == entry.delivery.environment))
        .collect();
    if let Some(name) = &args.service
        && services.is_empty()
    {
        let hint = if args.remote { "`baton catalog push` puts it there" } else { "run `baton catalog validate` to see every problem" };
        return Err(Failure::usage(format!("no valid service `{name}` in {source}")).hint(hint));
    }
    let mut listed = Vec::new();
    for entry in services {
        let environment = &entry.delivery.environment;
        let windows = match entry.delivery.freeze.rules() {
            Ok(windows) => windows,
            Err(why) => return Err(Failure::failed(format!("{}: {why}", entry.source))),
        };
        let in_force = freeze::in_force(&windows, environment, at);
        let next: Vec<Occurrence> =
            freeze::upcoming(&windows, environment, at, at + TimeDelta::days(LOOK_AHEAD_DAYS)).into_iter().take(NEXT_SHOWN).collect();
        let open = freeze::first_open(&windows, environment, at).map_err(|frozen| frozen.to_string());
        listed.push((entry, in_force, next, open));
    }
    if args.json {
        let services: Vec<_> = listed
            .iter()
            .map(|(entry, in_force, next, open)| {
                json!({
                    "service": entry.name,
                    "environment": entry.delivery.environment,
                    "on_freeze": entry.delivery.freeze.on_freeze(),
                    "in_force": in_force,
                    "open_at": open.as_ref().ok(),
                    "frozen_forever": open.as_ref().err(),
                    "next": next,
                })
            })
            .collect();
        outln!("{}", json!({ "at": at, "services": services }));
        return Ok(ExitCode::SUCCESS);
    }
    for (entry, in_force, next, open) in &listed {
        let mode = match entry.delivery.freeze.on_freeze() {
            OnFreeze::Wait => "releases wait",
            OnFreeze::Refuse => "releases are refused",
        };
        match (in_force.is_empty(), open) {
            (true, _) => outln!("{} ({}): open", entry.name, entry.delivery.environment),
            (false, Ok(open)) => outln!("{} ({}): frozen until {} ({mode})", entry.name, entry.delivery.environment, open.to_rfc3339()),
            (false, Err(why)) => outln!("{} ({}): {why}", entry.name, entry.delivery.environment),
        }
        for window in in_force {
            outln!("  in force: {window}");
        }
        for window in next {
            outln!("  next: `{}` from {} to {} ({})", window.window, window.start.to_rfc3339(), window.end.to_rfc3339(), window.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

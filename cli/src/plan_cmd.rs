//! `baton plan`: what a release of a service would do, started nothing. The entry as registration
//! resolves it, admission, the build, each wave with its targets, bake, gates and approval, the
//! freezes, what a rollback puts back, the expected duration from the service's records and the
//! expected cost, polled and parked on the providers' events, counted by running the release
//! definition with simulated answers (`baton_local_runner::plan_release`). Nothing is written, no
//! provider is called.

use crate::dora_cmd::human;
use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::{CatalogArg, StateDirArg, open_store};
use baton_domain::catalog::{FsCatalog, ProviderBlock};
use baton_domain::ports::{CatalogSource, ReleaseStore};
use baton_domain::rules::plan::{Percentiles, Plan, Verdict};
use baton_local_runner::{Forecast, PlanError, Planned, plan_release};
use clap::Args;
use serde_json::json;
use std::fmt::Write as _;

#[derive(Args)]
pub struct PlanArgs {
    /// The service to plan, as the catalog names it.
    pub service: String,
    /// The commit the release would build [default: the head of the branch].
    #[arg(long)]
    pub sha: Option<String>,
    /// The branch the release would build [default: the catalog's release branch].
    #[arg(long)]
    pub branch: Option<String>,
    /// The environment; a catalog entry releases to one [default: the entry's].
    #[arg(long)]
    pub environment: Option<String>,
    /// Plan a hotfix that passes the freeze windows, as `baton release --override-freeze` would.
    #[arg(long, requires = "reason")]
    pub override_freeze: bool,
    /// Why the freeze would be overridden (with --override-freeze).
    #[arg(long, requires = "override_freeze")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Plan against Baton on AWS: the stack's catalog and release tables instead of the local
    /// catalog and records.
    #[arg(long)]
    pub remote: bool,
    /// The catalog table (with --remote; the stack's CatalogTableName output).
    #[arg(long, env = "BATON_CATALOG_TABLE", requires = "remote")]
    pub catalog_table: Option<String>,
    /// The release table (with --remote; the stack's ReleaseTableName output).
    #[arg(long, env = "BATON_RELEASE_TABLE", requires = "remote")]
    pub release_table: Option<String>,
    /// Print one JSON object on stdout: the resolved entry, the plan and the cost.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when the release would run, 1 when admission would refuse or skip it (the plan is
/// still printed), 2 on bad input, an unreadable catalog or store.
pub async fn run(args: PlanArgs) -> Outcome {
    let input = json!({
        "service": args.service,
        "sha": args.sha,
        "branch": args.branch,
        "environment": args.environment,
        "trigger": {"kind": "cli", "id": "plan", "actor": crate::person(), "freeze_override": args.reason},
    });
    let now = chrono::Utc::now();
    let planned = if args.remote { plan_remote(&args, &input, now).await } else { plan_local(&args, &input, now).await };
    let planned = planned?;
    if args.json {
        outln!("{}", serde_json::to_value(&planned).unwrap_or_default());
    } else {
        out!("{}", describe(&planned));
    }
    Ok(match planned.plan.admission {
        Verdict::Allowed => exit::code(exit::OK),
        Verdict::Refused { .. } | Verdict::Skipped { .. } => exit::code(exit::FAILED),
    })
}

/// From the catalog directory and the local store, when there is one (no store: no history).
async fn plan_local(args: &PlanArgs, input: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> Result<Planned, Failure> {
    let catalog = FsCatalog::open(baton_providers::registry(), &args.catalog.path).map_err(|err| Failure::usage(&err).sources_of(&err))?;
    let database = baton_store_sqlite::database_path(&args.state.resolve());
    let store = match database.exists() {
        true => Some(open_store(&args.state)?),
        false => None,
    };
    planned(&catalog, store.as_ref().map(|store| store as &dyn ReleaseStore), input, now).await
}

/// From the stack's catalog and release tables.
async fn plan_remote(args: &PlanArgs, input: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> Result<Planned, Failure> {
    let (Some(catalog_table), Some(release_table)) = (&args.catalog_table, &args.release_table) else {
        let hint = "pass --catalog-table and --release-table, or set BATON_CATALOG_TABLE and BATON_RELEASE_TABLE (the stack's CatalogTableName and ReleaseTableName outputs)";
        return Err(Failure::usage("--remote needs the catalog and release tables").hint(hint));
    };
    let config = crate::remote::aws_config().await.map_err(|err| Failure::usage(&err).sources_of(&err))?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let catalog = baton_aws::DynamoCatalog::new(dynamodb.clone(), catalog_table, baton_providers::registry());
    let store = baton_aws::DynamoStore::new(dynamodb, release_table);
    planned(&catalog, Some(&store), input, now).await
}

async fn planned(
    catalog: &dyn CatalogSource,
    store: Option<&dyn ReleaseStore>,
    input: &serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Planned, Failure> {
    plan_release(catalog, store, input, now).await.map_err(|err| match &err {
        PlanError::Catalog(_) | PlanError::Invalid(_) => Failure::usage(&err).sources_of(&err),
        PlanError::Store(_) | PlanError::Local(_) | PlanError::Simulation { .. } => Failure::failed(&err).sources_of(&err),
    })
}

/// The plan as a person reads it.
fn describe(planned: &Planned) -> String {
    let Planned { entry, plan, cost } = planned;
    let mut out = String::new();
    let sha = plan.sha.as_deref().unwrap_or("the branch head");
    let _ = writeln!(out, "Plan: {} → {}, {} @ {sha}", plan.service, plan.environment, plan.branch);
    let _ = writeln!(out, "  catalog     {}", entry.source);
    let delivery = &entry.delivery;
    let team = delivery.team.as_deref().or(entry.team.as_deref()).unwrap_or("-");
    let feature = delivery.feature_branch.as_deref().map(|branch| format!(", feature branch {branch}")).unwrap_or_default();
    let _ = writeln!(out, "  entry       team {team}, release branch {}{feature}", delivery.release_branch);
    if let Some(on_call) = &delivery.on_call {
        let _ = writeln!(out, "  on call     {on_call}");
    }
    let admission = match &plan.admission {
        Verdict::Allowed => "allowed".to_owned(),
        Verdict::Refused { reason } => format!("refused: {reason}"),
        Verdict::Skipped { window } => format!("skipped (a schedule inside {window})"),
    };
    let _ = writeln!(out, "  admission   {admission}");
    let _ = writeln!(out, "  build       {} (timeout {})", block(&plan.build), human(Some(plan.build_timeout_seconds as f64)));
    let _ = writeln!(out, "  deploy      {}", block(&plan.deploy));
    let _ = writeln!(out, "  health      every {}:", human(Some(plan.health_interval_seconds as f64)));
    for gate in &plan.gates {
        let _ =
            writeln!(out, "    {} ({} healthy in a row to pass, {} unhealthy to fail)", block(&gate.gate), gate.consecutive, gate.failures);
    }
    let _ = writeln!(out, "  waves");
    for planned in &plan.waves {
        let wave = &planned.wave;
        let _ = writeln!(out, "    {}/{} {}: {}", wave.index + 1, wave.total, wave.name, wave.targets.join(", "));
        let _ = write!(
            out,
            "        bake {}, deploy timeout {}",
            human(Some(wave.bake_seconds as f64)),
            human(Some(wave.deploy_timeout_seconds as f64))
        );
        let _ = writeln!(out, ", expected to start {}", planned.expected_start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        if let Some(approval) = &planned.approval {
            let who = if approval.approvers.is_empty() { "anyone".to_owned() } else { approval.approvers.join(", ") };
            let four_eyes = if approval.four_eyes { ", not the release's author" } else { "" };
            let timeout = human(Some(approval.timeout.0 as f64));
            let _ = writeln!(out, "        approval by {who}{four_eyes}, within {timeout} (then {:?})", approval.on_timeout);
        }
        for window in &planned.freezes {
            let _ = writeln!(out, "        waits: {window}");
        }
    }
    let _ = match &plan.rollback_to {
        Some(artifact) => {
            writeln!(out, "  rollback    every target back to {} ({} @ {})", artifact.reference, artifact.branch, artifact.sha)
        }
        None => writeln!(out, "  rollback    nothing ran before: every target's deploy is removed"),
    };
    let _ = writeln!(out, "  freezes     {}", freezes(plan));
    let _ = writeln!(out, "  duration    {}", duration(plan));
    match cost {
        Some(forecast) => out.push_str(&costs(plan, forecast)),
        None => out.push_str("  cost        none: the release would not run\n"),
    }
    out
}

/// Both flows' costs, the entry's first, and what they are counted from.
fn costs(plan: &Plan, forecast: &Forecast) -> String {
    let net = human(Some(forecast.safety_net_seconds as f64));
    let parks = if forecast.bakes_park { "builds, rollouts and bakes park" } else { "builds and rollouts park, the gates are sampled" };
    let rows = match forecast.waits_for_events {
        true => [
            (format!("on events (as the entry runs; safety net {net}; {parks})"), &forecast.events),
            ("polled (events: {wait: false})".to_owned(), &forecast.polling),
        ],
        false => [
            ("polled (as the entry runs)".to_owned(), &forecast.polling),
            (format!("on events (events: {{wait: true}}, safety net {net}; {parks})"), &forecast.events),
        ],
    };
    let mut out = String::new();
    for (row, (flow, estimate)) in rows.iter().enumerate() {
        let label = if row == 0 { "cost" } else { "" };
        let (cost, calls) = (&estimate.cost, &estimate.provider_calls);
        let _ = writeln!(
            out,
            "  {label:<11} {flow}: {} state transitions, {} Lambda invocations, ${:.4}",
            cost.transitions, cost.invocations, cost.dollars
        );
        let _ = writeln!(
            out,
            "                provider API calls: {} build, {} rollout polls, {} gate samples",
            calls.build, calls.rollout_polls, calls.gate_samples
        );
    }
    let assumed = |p: Option<Percentiles>| match p {
        Some(p) => format!("of {} (p50 of recent releases)", human(Some(p.p50_seconds as f64))),
        None => "ending at its first poll (no history)".to_owned(),
    };
    let expected = &plan.expected;
    let _ = writeln!(
        out,
        "              counted for a build {} and each wave's deploy {}, at public prices; Lambda compute not foreseen",
        assumed(expected.build),
        assumed(expected.deploy)
    );
    out
}

fn block(block: &ProviderBlock) -> String {
    format!("{} {}", block.provider, serde_json::Value::Object(block.settings.clone()))
}

fn freezes(plan: &Plan) -> String {
    let freezes = &plan.freezes;
    let mut said: Vec<String> = freezes.in_force.iter().map(|window| format!("in force: {window}")).collect();
    said.extend(freezes.coming.iter().filter(|window| !freezes.in_force.contains(window)).map(|window| {
        format!("coming: `{}` from {} to {} ({})", window.window, window.start.to_rfc3339(), window.end.to_rfc3339(), window.reason)
    }));
    if said.is_empty() { "none in force or coming".to_owned() } else { said.join("; ") }
}

fn duration(plan: &Plan) -> String {
    let expected = &plan.expected;
    let bakes = human(Some(expected.bakes_seconds as f64));
    let percentiles = |p: Option<Percentiles>| match p {
        Some(p) => format!("p50 {}, p90 {}", human(Some(p.p50_seconds as f64)), human(Some(p.p90_seconds as f64))),
        None => "no history".to_owned(),
    };
    let total = match expected.total {
        Some(_) => percentiles(expected.total),
        None => format!("no history: the bakes alone take {bakes}"),
    };
    format!("{total} (bakes {bakes}; build {}; each wave's deploy {})", percentiles(expected.build), percentiles(expected.deploy))
}

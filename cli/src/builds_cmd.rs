//! `baton builds`: a service's CI builds over a window, from the build records of its releases:
//! each build's duration, the p50/p90 duration, the failure rate and the flaky commits.

use crate::dora_cmd::human;
use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::StateDirArg;
use crate::local::open_store;
use crate::scope::ScopeArgs;
use baton_domain::ports::ReleaseStore;
use baton_domain::rules::builds::{BuildReport, MeasuredFrom, report};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Args)]
pub struct BuildsArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only releases to this environment [default: every environment].
    #[arg(long)]
    pub environment: Option<String>,
    /// The window: releases created in the last N days.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
    #[command(flatten)]
    pub state: StateDirArg,
    /// One JSON object on stdout (fields are only ever added).
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints: the window, then the report's `builds`, `summary` and `flaky`.
#[derive(Serialize)]
struct Document<'a> {
    /// The service, when the report is one service's.
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    scope: &'a str,
    name: &'a str,
    services: &'a [String],
    environment: Option<&'a str>,
    days: u64,
    since: DateTime<Utc>,
    #[serde(flatten)]
    report: &'a BuildReport,
}

pub async fn run(args: BuildsArgs) -> Outcome {
    let scope = args.scope.resolve(&args.state)?;
    let store = open_store(&args.state)?;
    // Whole days: the range check above keeps this in TimeDelta's bounds.
    let since = Utc::now() - TimeDelta::days(i64::try_from(args.days).unwrap_or(i64::MAX));
    let environment = args.environment.as_deref();
    let mut releases = Vec::new();
    for service in &scope.services {
        match store.releases_since(service, environment, since).await {
            Ok(found) => releases.extend(found),
            Err(err) => return Err(Failure::failed(&err).sources_of(&err)),
        }
    }
    if releases.is_empty() {
        scope.known_to(&store, environment).await?;
    }
    let report = report(&releases);
    if args.json {
        let document = Document {
            service: (scope.kind == "service").then_some(scope.name.as_str()),
            scope: scope.kind,
            name: &scope.name,
            services: &scope.services,
            environment,
            days: args.days,
            since,
            report: &report,
        };
        outln!("{}", serde_json::to_string_pretty(&document).unwrap_or_default());
    } else {
        let place = environment.unwrap_or("every environment");
        let named = if scope.kind == "service" {
            scope.name.clone()
        } else {
            format!("{} {} ({} services)", scope.kind, scope.name, scope.services.len())
        };
        outln!("{named} in {place}, last {} days (since {})", args.days, since.format("%Y-%m-%d %H:%M UTC"));
        out!("{}", text(&report));
    }
    Ok(exit::code(exit::OK))
}

/// The table of builds, newest first, then the summary and the flaky commits.
fn text(report: &BuildReport) -> String {
    let mut out = String::new();
    if report.builds.is_empty() {
        let _ = writeln!(out, "  no builds in the window");
        return out;
    }
    let _ = writeln!(
        out,
        "  {:<19}  {:<9}  {:>9}  {:>7}  {:>8}  {:<12}  {:<11}  {:<24}  RELEASE",
        "QUEUED", "STATUS", "DURATION", "QUEUE", "ATTEMPTS", "SHA", "ENVIRONMENT", "RUN"
    );
    let mut from_request = false;
    for row in &report.builds {
        let mut duration = human(row.duration_seconds.map(|seconds| seconds as f64));
        if row.duration_seconds.is_some() && row.measured_from == MeasuredFrom::Queued {
            duration.push('*');
            from_request = true;
        }
        let sha = row.sha.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "  {:<19}  {:<9}  {duration:>9}  {:>7}  {:>8}  {:<12}  {:<11}  {:<24}  {}",
            row.queued_at.format("%Y-%m-%d %H:%M:%S"),
            row.status.as_str(),
            human(row.queue_seconds.map(|seconds| seconds as f64)),
            row.attempts,
            &sha[..sha.len().min(12)],
            row.environment,
            format!("{} {}", row.provider, row.run_id),
            row.release_id,
        );
    }
    let summary = &report.summary;
    let rate = summary.failure_rate.map_or("-".into(), |rate| format!("{:.0}%", rate * 100.0));
    let _ = writeln!(
        out,
        "  {} builds: {} succeeded, {} failed, {} cancelled, {} running; failure rate {rate} (of ended builds); \
         p50 {}, p90 {} (nearest rank)",
        summary.builds,
        summary.succeeded,
        summary.failed,
        summary.cancelled,
        summary.running,
        human(summary.p50_seconds.map(|s| s as f64)),
        human(summary.p90_seconds.map(|s| s as f64)),
    );
    if from_request {
        let _ = writeln!(out, "  * from Baton's request to the end: the provider did not say when the build started");
    }
    for flaky in &report.flaky {
        let failed: Vec<&str> = flaky.failed.iter().map(|id| id.as_str()).collect();
        let _ = writeln!(out, "  flaky: {} failed in {} and then passed in {}", flaky.sha, failed.join(", "), flaky.passed);
    }
    out
}

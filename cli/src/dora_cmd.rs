//! `baton dora` (also `baton metrics`): the four DORA figures of a service, a team or a
//! repository over a window, with their bands and a weekly trend, from the daily rollups
//! record-metrics keeps. A report reads one rollup per service and day, never the releases.

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::StateDirArg;
use crate::local::open_store;
use crate::scope::{Scope, ScopeArgs};
use baton_domain::reports::{self, Delivery};
use baton_domain::rules::dora::{Band, Durations, Figures, Week};
use chrono::{NaiveDate, Utc};
use clap::Args;
use serde::Serialize;

/// What each figure counts, as `baton dora --help` says it (README "baton dora" has the detail).
pub const FIGURES: &str = "What each figure counts (releases to --environment that ended in the window):
  deployments           releases that changed the environment (a wave began), whatever their end;
                        a release that never deployed (refused, build failed, superseded) or that a
                        person cancelled counts nowhere
  change failure rate   failed deployments (failed, rolled back, rollback failed) over deployments of a
                        change: a redeployment (a release putting back a version shipped before, the
                        rollback run of a bad change) is a deployment but no change; a person's cancel
                        is no failure
  lead time             per commit carried, from its time to the end of the first successful deployment
                        that carried it; median, p90 and mean, to the millisecond
  time to restore       from the end of a failed deployment to the end of the next successful one of
                        that service; median, p90 and mean, to the millisecond";

#[derive(Args)]
pub struct DoraArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Environment whose releases count.
    #[arg(long, default_value = "production")]
    pub environment: String,
    /// The window up to today (UTC): days (`90d`) or weeks (`12w`).
    #[arg(long, default_value = "30d", value_parser = parse_window, conflicts_with = "days")]
    pub since: u64,
    /// The window in days (the older form of --since).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: Option<u64>,
    #[command(flatten)]
    pub state: StateDirArg,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `90d`, `12w` or a plain number of days, as days (1 to 3650).
pub fn parse_window(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.strip_suffix('d') {
        Some(number) => (number, 1),
        None => text.strip_suffix('w').map_or((text, 1), |number| (number, 7)),
    };
    number
        .parse::<u64>()
        .ok()
        .map(|n| n.saturating_mul(unit))
        .filter(|days| (1..=3650).contains(days))
        .ok_or_else(|| format!("'{text}' is not a window of 1 to 3650 days: write days or weeks, e.g. 90d or 12w"))
}

#[derive(Serialize)]
struct Report<'a> {
    /// What the figures span: `service`, `team` or `repository`, and its name.
    scope: &'static str,
    name: &'a str,
    services: Vec<&'a str>,
    environment: &'a str,
    from: NaiveDate,
    to: NaiveDate,
    #[serde(flatten)]
    figures: &'a Figures,
    // The fields `baton metrics --json` printed before, kept for scripts that read them.
    mean_lead_time_seconds: Option<f64>,
    mean_time_to_restore_seconds: Option<f64>,
    weeks: Vec<Week>,
}

pub async fn run(args: DoraArgs) -> Outcome {
    let scope = args.scope.resolve(&args.state)?;
    let store = open_store(&args.state)?;
    scope.known_to(&store, Some(&args.environment)).await?;
    let Scope { kind: scope, name, services: members } = scope;
    let days = args.days.unwrap_or(args.since);
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    // The same read as the dashboard's team page: one rollup query per service.
    let group = match reports::group(&store, scope, &name, &names, &args.environment, days, Utc::now()).await {
        Ok(group) => group,
        Err(err) => return Err(Failure::failed(&err).sources_of(&err)),
    };
    let Delivery { from, to, figures, weeks, .. } = group.delivery;
    let report = Report {
        scope,
        name: &name,
        services: members.iter().map(String::as_str).collect(),
        environment: &args.environment,
        from,
        to,
        figures: &figures,
        mean_lead_time_seconds: figures.lead_time.mean_seconds,
        mean_time_to_restore_seconds: figures.time_to_restore.mean_seconds,
        weeks,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(exit::code(exit::OK));
    }
    print_report(&report);
    Ok(exit::code(exit::OK))
}

fn print_report(report: &Report<'_>) {
    let f = report.figures;
    let spanning = if report.scope == "service" { String::new() } else { format!(" ({} services)", report.services.len()) };
    outln!("{} {}{spanning} in {}, {} days ({} to {})", report.scope, report.name, report.environment, f.days, report.from, report.to);
    let band = |band: Option<Band>| band.map_or("-", Band::as_str);
    outln!(
        "  deployment frequency   {:<8} {} deployments: {:.2} a day, {:.1} a week",
        band(Some(f.bands.deployment_frequency)),
        f.deployments,
        f.deployments_per_day,
        f.deployments_per_week
    );
    outln!("  lead time for changes  {:<8} {} (change to released{})", band(f.bands.lead_time), durations(&f.lead_time), fallbacks(f));
    let rate = f.change_failure_rate.map_or("-".into(), |r| format!("{:.1}%", r * 100.0));
    outln!(
        "  change failure rate    {:<8} {rate}: {} failed of {} changes ({} rolled back; {} redeployments not counted)",
        band(f.bands.change_failure_rate),
        f.failed_deployments,
        f.deployments - f.redeployments,
        f.rollbacks,
        f.redeployments
    );
    outln!(
        "  time to restore        {:<8} {} (failed deployment to the next good one)",
        band(f.bands.time_to_restore),
        durations(&f.time_to_restore)
    );
    outln!("  week of      deploys  failed  lead p50");
    for week in &report.weeks {
        outln!("  {}  {:>7}  {:>6}  {}", week.starts, week.deployments, week.failed_deployments, human(week.lead_time_p50_seconds));
    }
}

/// How many lead times are approximations, so a reader weighs the figure: each deployment that
/// fell back to its own commit measured one for all it carried.
fn fallbacks(f: &Figures) -> String {
    match f.lead_time_fallbacks {
        0 => String::new(),
        n => format!("; {n} approximate: measured from a deployment's own commit alone, `baton show` says why"),
    }
}

fn durations(d: &Durations) -> String {
    if d.samples == 0 {
        return "-".into();
    }
    match d.p50_seconds {
        Some(p50) => format!("median {}, p90 {} ({} measured)", human(Some(p50)), human(d.p90_seconds), d.samples),
        // Days rolled up before quantiles were kept have sums only.
        None => format!("mean {} ({} measured)", human(d.mean_seconds), d.samples),
    }
}

/// A length of time as a person reads it; `-` when there is none.
pub(crate) fn human(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.1} min", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{:.1} days", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_time_line_counts_its_approximations() {
        use baton_domain::release::Rollup;
        let exact = Rollup { deployments: 3, lead_time_samples: 5, ..Rollup::default() };
        assert_eq!(fallbacks(&baton_domain::rules::dora::figures(7, [&exact])), "");
        let approximate = Rollup { lead_time_fallbacks: 2, ..exact };
        assert_eq!(
            fallbacks(&baton_domain::rules::dora::figures(7, [&approximate])),
            "; 2 approximate: measured from a deployment's own commit alone, `baton show` says why"
        );
    }

    #[test]
    fn windows_are_days_or_weeks() {
        assert_eq!(parse_window("90d"), Ok(90));
        assert_eq!(parse_window("12w"), Ok(84));
        assert_eq!(parse_window("30"), Ok(30));
        for bad in ["0d", "3651d", "d", "-3d", "90 days", "1y"] {
            let error = parse_window(bad).unwrap_err();
            assert!(error.contains(bad) && error.contains("e.g. 90d"), "{bad}: {error}");
        }
    }
}

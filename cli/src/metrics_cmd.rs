//! `baton metrics`: the four DORA figures of a service, from the daily rollups record-metrics keeps.

use crate::exit;
use crate::failure::Failure;
use crate::release_cmd::StateDirArg;
use crate::report_cmd::open_store;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::Rollup;
use chrono::{Days, Utc};
use clap::Args;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Args)]
pub struct MetricsArgs {
    pub service: String,
    /// Environment whose releases count.
    #[arg(long, default_value = "production")]
    pub environment: String,
    /// The window, in days up to today (UTC).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
    #[command(flatten)]
    pub state: StateDirArg,
    #[arg(long)]
    pub json: bool,
}

/// DORA figures over a window. Means, not medians: the rollups keep sums so that adding a
/// release never needs a read.
#[derive(Debug, PartialEq, Serialize)]
pub struct Dora {
    pub days: u64,
    pub deployments: u64,
    pub deployments_per_day: f64,
    /// Failed deployments over deployments; `None` without deployments.
    pub change_failure_rate: Option<f64>,
    pub mean_lead_time_seconds: Option<f64>,
    pub mean_time_to_restore_seconds: Option<f64>,
    pub rollbacks: u64,
}

pub fn dora(days: u64, rollups: &[Rollup]) -> Dora {
    let total = rollups.iter().fold(Rollup::default(), |mut sum, day| {
        sum += day;
        sum
    });
    let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
    Dora {
        days,
        deployments: total.deployments,
        deployments_per_day: total.deployments as f64 / days as f64,
        change_failure_rate: ratio(total.failed_deployments, total.deployments),
        mean_lead_time_seconds: ratio(total.lead_time_seconds_total, total.lead_time_samples),
        mean_time_to_restore_seconds: ratio(total.restore_seconds_total, total.restores),
        rollbacks: total.rollbacks,
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

pub async fn run(args: MetricsArgs) -> ExitCode {
    let store = match open_store(&args.state) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let to = Utc::now().date_naive();
    let from = to.checked_sub_days(Days::new(args.days - 1)).unwrap_or(to);
    let rollups = match store.rollups(&args.service, &args.environment, from, to).await {
        Ok(days) => days.into_iter().map(|(_, rollup)| rollup).collect::<Vec<_>>(),
        Err(err) => {
            return Failure::failed(&err).sources_of(&err).report();
        }
    };
    let figures = dora(args.days, &rollups);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&figures).unwrap_or_default());
        return exit::code(exit::OK);
    }
    outln!("{} in {}, last {} days ({from} to {to})", args.service, args.environment, args.days);
    outln!("  deployment frequency   {} deployments, {:.2} a day", figures.deployments, figures.deployments_per_day);
    outln!("  lead time for changes  {} (mean, merge to released)", human(figures.mean_lead_time_seconds));
    let rate = figures.change_failure_rate.map_or("-".into(), |r| format!("{:.0}%", r * 100.0));
    outln!("  change failure rate    {rate} ({} rolled back)", figures.rollbacks);
    outln!("  time to restore        {} (mean, failed deployment to the next good one)", human(figures.mean_time_to_restore_seconds));
    exit::code(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_summed_days() {
        let days = [
            Rollup {
                deployments: 3,
                failed_deployments: 1,
                rollbacks: 1,
                lead_time_seconds_total: 600,
                lead_time_samples: 2,
                restore_seconds_total: 0,
                restores: 0,
            },
            Rollup {
                deployments: 1,
                failed_deployments: 0,
                rollbacks: 0,
                lead_time_seconds_total: 300,
                lead_time_samples: 1,
                restore_seconds_total: 900,
                restores: 1,
            },
        ];
        let figures = dora(2, &days);
        assert_eq!(figures.deployments, 4);
        assert_eq!(figures.deployments_per_day, 2.0);
        assert_eq!(figures.change_failure_rate, Some(0.25));
        assert_eq!(figures.mean_lead_time_seconds, Some(300.0));
        assert_eq!(figures.mean_time_to_restore_seconds, Some(900.0));
        assert_eq!(dora(7, &[]).change_failure_rate, None, "no deployments, no rate");
    }
}

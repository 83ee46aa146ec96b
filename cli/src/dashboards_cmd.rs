//! `baton dashboards datadog`: a service's or a team's Datadog dashboard, Baton's deploy markers
//! over its APM graphs, written as the Dashboards API's JSON or pushed (created, then replaced).

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::CatalogArg;
use baton_domain::catalog::CatalogLoader;
use baton_providers::datadog_dashboards::{DashboardsApi, service_dashboard, team_dashboard};
use clap::{ArgGroup, Args, Subcommand};

#[derive(Subcommand)]
pub enum DashboardsCommand {
    /// A Datadog dashboard of a service or a team: Baton's deploy markers over the APM request,
    /// error and latency graphs. Prints the JSON, or with --push creates it (or replaces the one
    /// with the same title) through the Dashboards API with DD_API_KEY, DD_APP_KEY and DD_SITE.
    Datadog(DatadogArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["service", "team"])))]
pub struct DatadogArgs {
    /// The service, as the catalog names it.
    #[arg(long)]
    pub service: Option<String>,
    /// Every service of this team.
    #[arg(long)]
    pub team: Option<String>,
    /// The APM operation whose trace.<span>.* metrics the graphs show.
    #[arg(long, default_value = "http.request")]
    pub span: String,
    /// Create or replace the dashboard in Datadog instead of printing it.
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub catalog: CatalogArg,
}

pub async fn run(command: DashboardsCommand) -> Outcome {
    let DashboardsCommand::Datadog(args) = command;
    let loaded = match CatalogLoader::new(baton_providers::registry()).load_with_env_root(&args.catalog.path) {
        Ok(loaded) => loaded,
        Err(err) => return Err(Failure::usage(format!("cannot read the catalog at {}", args.catalog.path.display())).caused_by(&err)),
    };
    let dashboard = match (&args.service, &args.team) {
        (Some(service), _) => match loaded.services().iter().find(|e| &e.name == service) {
            Some(entry) => service_dashboard(entry, &args.span),
            None => return Err(Failure::usage(format!("no service {service} in the catalog at {}", args.catalog.path.display()))),
        },
        (_, Some(team)) => match team_dashboard(team, loaded.services(), &args.span) {
            Some(dashboard) => dashboard,
            None => {
                return Err(Failure::usage(format!("no service of the catalog at {} has team {team}", args.catalog.path.display())));
            }
        },
        (None, None) => unreachable!("clap requires --service or --team"),
    };
    if !args.push {
        outln!("{}", serde_json::to_string_pretty(&dashboard).unwrap_or_default());
        return Ok(exit::code(exit::OK));
    }
    let api = match baton_providers::http_client().and_then(DashboardsApi::from_env) {
        Ok(api) => api,
        Err(err) => return Err(Failure::usage(&err)),
    };
    match api.push(&dashboard).await {
        Ok(pushed) => {
            let done = if pushed.created { "created" } else { "replaced" };
            outln!("{done} Datadog dashboard {} {}", pushed.id, pushed.url.as_deref().unwrap_or(""));
            Ok(exit::code(exit::OK))
        }
        Err(err) => Err(Failure::failed(&err)),
    }
}

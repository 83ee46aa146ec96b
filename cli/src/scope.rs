//! Which services a report covers: one by name, or a team's or a repository's, found in the
//! catalog. `baton dora`, `baton history` and `baton builds` take the same arguments.

use crate::failure::Failure;
use crate::local::{CatalogArg, StateDirArg};
use baton_domain::catalog::{CatalogLoader, REPORT_INDEX_FILE, ServiceSummary};
use baton_domain::ports::ReleaseStore;
use clap::{ArgGroup, Args};

#[derive(Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["service", "service_flag", "team", "repo"])))]
pub struct ScopeArgs {
    /// The service (as `--service`).
    #[arg(value_name = "SERVICE")]
    pub service: Option<String>,
    /// One service.
    #[arg(long = "service", value_name = "SERVICE")]
    pub service_flag: Option<String>,
    /// Every service of a team (the catalog's `team`): one report across them.
    #[arg(long)]
    pub team: Option<String>,
    /// Every service whose catalog entry names this repository (`owner/name`).
    #[arg(long)]
    pub repo: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArg,
}

/// The services a report covers, and what the person asked for.
pub struct Scope {
    /// `service`, `team` or `repository`.
    pub kind: &'static str,
    pub name: String,
    pub services: Vec<String>,
}

impl ScopeArgs {
    /// The services in scope: the one named, or the catalog's entries of the team or repository
    /// (exit 2 when the catalog cannot be read or none matches), found through the catalog index
    /// kept in the state directory when the catalog has not changed since.
    pub fn resolve(&self, state: &StateDirArg) -> Result<Scope, Failure> {
        if let Some(service) = self.service.as_ref().or(self.service_flag.as_ref()) {
            return Ok(Scope { kind: "service", name: service.clone(), services: vec![service.clone()] });
        }
        let index = state.resolve().join(REPORT_INDEX_FILE);
        let catalog =
            CatalogLoader::for_reports(baton_providers::registry()).report_services(&self.catalog.path, &index).map_err(|err| {
                Failure::usage(format!("cannot read the catalog at {}", self.catalog.path.display()))
                    .caused_by(&err)
                    .hint("--team and --repo find their services in the catalog: pass --catalog DIR")
            })?;
        let belongs = |service: &ServiceSummary| match (&self.team, &self.repo) {
            (Some(team), _) => service.team.as_deref() == Some(team.as_str()),
            (_, Some(repo)) => service.declares_repository(repo),
            (None, None) => false,
        };
        let (kind, name) = match (&self.team, &self.repo) {
            (Some(team), _) => ("team", team.clone()),
            (_, Some(repo)) => ("repository", repo.clone()),
            (None, None) => unreachable!("clap requires one of the scope arguments"),
        };
        let services: Vec<String> = catalog.into_iter().filter(belongs).map(|service| service.name).collect();
        if services.is_empty() {
            return Err(Failure::usage(format!("no service of the catalog at {} has {kind} {name}", self.catalog.path.display()))
                .hint("`baton catalog validate` lists the catalog's services with their team and links"));
        }
        Ok(Scope { kind, name, services })
    }
}

impl Scope {
    /// A single service must be one the store has seen: a name with no release at all is most
    /// likely a typo (or a service not in the catalog), and a report of nothing would hide it
    /// (exit 2, as every report says it).
    pub async fn known_to(&self, store: &dyn ReleaseStore, environment: Option<&str>) -> Result<(), Failure> {
        if self.kind != "service" {
            return Ok(());
        }
        match store.list_releases(&self.name, environment, 1).await {
            Ok(any) if any.is_empty() => {
                let place = environment.map(|e| format!(" in {e}")).unwrap_or_default();
                Err(Failure::usage(format!("no releases of {}{place} in the local store", self.name))
                    .hint("`baton history <service>` lists a service's releases; check the name (the catalog's) and --environment"))
            }
            Ok(_) => Ok(()),
            Err(err) => Err(Failure::failed(&err).sources_of(&err)),
        }
    }
}

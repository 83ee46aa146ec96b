//! `baton services`: the catalog's services, each with its last local release, that release's
//! state and the service's lock: where to look first when something is stuck.

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::{CatalogArg, StateDirArg, open_store, process_gone};
use crate::view;
use baton_domain::catalog::CatalogLoader;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{LockInfo, LockKey, Release};
use clap::Args;
use serde::Serialize;

#[derive(Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub catalog: CatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
    /// One JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One service as the list shows it.
#[derive(Serialize)]
struct Row {
    service: String,
    environment: String,
    team: Option<String>,
    /// Its newest release in the catalog's environment, if any ran here.
    last_release: Option<Release>,
    /// The status a person reads (`interrupted (process gone)` for an open release no process runs).
    state: Option<&'static str>,
    lock: Option<LockInfo>,
}

pub async fn run(args: ServicesArgs) -> Outcome {
    let path = &args.catalog.path;
    let loaded = CatalogLoader::new(baton_providers::registry()).load_with_env_root(path).map_err(|err| {
        Failure::usage(format!("cannot read the catalog at {}", path.display()))
            .caused_by(&err)
            .hint("pass the catalog directory with --catalog DIR, or set BATON_CATALOG")
    })?;
    // No store yet is no release yet, not an error.
    let store = baton_store_sqlite::database_path(&args.state.resolve()).exists().then(|| open_store(&args.state)).transpose()?;
    let now = chrono::Utc::now();
    let mut entries: Vec<_> = loaded.services().iter().collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let environment = entry.delivery.environment.clone();
        let (last_release, lock) = match &store {
            Some(store) => {
                let last =
                    store.list_releases(&entry.name, Some(&environment), 1).await.map_err(|err| Failure::failed(&err).sources_of(&err))?;
                let lock = store
                    .lock_holder(&LockKey::new(&entry.name, &environment), now)
                    .await
                    .map_err(|err| Failure::failed(&err).sources_of(&err))?;
                (last.into_iter().next(), lock)
            }
            None => (None, None),
        };
        let state = match (&store, &last_release) {
            (Some(store), Some(release)) => {
                Some(view::status_label(release, !release.status.is_terminal() && process_gone(store, release).await))
            }
            _ => None,
        };
        let team = baton_domain::reports::team_of(entry).map(str::to_owned);
        rows.push(Row { service: entry.name.clone(), environment, team, last_release, state, lock });
    }
    let invalid: Vec<&str> = loaded.invalid_services().collect();
    if !invalid.is_empty() {
        // Left out of the list, not silently: an entry that does not load cannot be released.
        errln!(
            "{} not listed: their catalog entries are invalid ({}); `baton catalog validate {}` says why",
            baton_domain::text::counted(invalid.len(), "service"),
            invalid.join(", "),
            path.display()
        );
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(exit::code(exit::OK));
    }
    if rows.is_empty() && invalid.is_empty() {
        outln!("no services in the catalog at {}", path.display());
    }
    let width = |field: fn(&Row) -> usize| rows.iter().map(field).max().unwrap_or(0);
    let (name_width, environment_width) = (width(|r| r.service.len()), width(|r| r.environment.len()));
    let team_width = width(|r| r.team.as_deref().map_or(1, str::len));
    let state_width = width(|r| r.state.map_or(14, str::len));
    for row in &rows {
        let team = row.team.as_deref().unwrap_or("-");
        let last = match (&row.last_release, row.state) {
            (Some(release), Some(state)) => {
                let age = (now - release.created_at).to_std().unwrap_or_default();
                format!("{state:<state_width$}  {} ago  {}", view::short(age), release.id)
            }
            _ => format!("{:<state_width$}", "never released"),
        };
        let lock = match &row.lock {
            Some(lock) => format!("locked by {} until {}", lock.holder, lock.expires_at.format("%H:%M:%S UTC")),
            None => "lock free".to_owned(),
        };
        outln!("{:<name_width$}  {:<environment_width$}  {team:<team_width$}  {last}  {lock}", row.service, row.environment);
    }
    Ok(exit::code(exit::OK))
}

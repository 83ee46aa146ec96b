//! The local Baton every local command works on: the catalog and state directory arguments,
//! and opening the run (`release`, `resume`, `cancel`) or just the store (reports, `unlock`).

use crate::failure::Failure;
use crate::view::LiveView;
use baton_domain::ports::{ReleaseStore, RunOwner};
use baton_domain::release::{Release, ReleaseId};
use baton_domain::support::RUN_SILENT_AFTER;
use baton_local_runner::{LocalBaton, LocalConfig, LocalError};
use baton_store_sqlite::SqliteStore;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct CatalogArg {
    /// Catalog directory or file.
    #[arg(long = "catalog", env = "BATON_CATALOG", default_value = "catalog")]
    pub path: PathBuf,
}

/// The catalog of a command that picks a recorded release up (`resume`, `cancel`): by default
/// the one the release was started with.
#[derive(Args, Clone)]
pub struct RecordedCatalogArg {
    /// Catalog directory or file [default: the directory the release's entry was read from, as its record names it, else ./catalog].
    #[arg(long = "catalog", env = "BATON_CATALOG")]
    pub path: Option<PathBuf>,
}

impl RecordedCatalogArg {
    /// --catalog, else the directory release `id`'s kept entry was read from (when it is still
    /// there), else `./catalog`. A store that cannot be read is reported by the command itself.
    pub async fn resolve(&self, state: &StateDirArg, id: &ReleaseId) -> PathBuf {
        if let Some(path) = &self.path {
            return path.clone();
        }
        let recorded = match open_store(state) {
            Ok(store) => store.kept_entry(id).await.ok().flatten(),
            Err(_) => None,
        };
        recorded
            .and_then(|entry| Path::new(&entry.source).parent().map(Path::to_owned))
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(|| PathBuf::from("catalog"))
    }
}

#[derive(Args, Clone)]
pub struct StateDirArg {
    /// Where the local store, workspaces and execution histories live [default: the platform data dir, e.g. ~/.local/share/baton].
    #[arg(long, env = "BATON_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    pub fn resolve(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(baton_store_sqlite::default_state_dir)
    }
}

/// The local Baton over `catalog` and the state directory, with the live view unless `json`.
/// `command` names this process in its claims on release runs ("baton resume"); `events_url`
/// is where its callback listener is reached, when it listens (`--events-listen`).
pub fn open_local(
    catalog: &Path,
    state: &StateDirArg,
    no_wait: bool,
    json: bool,
    command: &str,
    events_url: Option<String>,
) -> Result<(LocalBaton, Option<LiveView>), Failure> {
    if !catalog.exists() {
        return Err(Failure::usage(format!("no catalog at {}", catalog.display()))
            .hint("pass the catalog directory (or file) with --catalog DIR, or set BATON_CATALOG"));
    }
    let live = (!json).then(LiveView::new);
    let config = LocalConfig {
        catalog: catalog.to_owned(),
        state_dir: state.resolve(),
        console: live.as_ref().map(|view| view.console_writer()),
        clock: baton_asl::Clock::Real,
        slack_api_base: None,
        skip_bakes: no_wait,
        poll_only: events_url.is_none(),
        events_url,
    };
    match LocalBaton::open(config) {
        Ok(baton) => Ok((baton.with_owner(&format!("{command} by {}", crate::person())), live)),
        Err(err @ LocalError::Catalog(_)) => {
            let catalog = catalog.display();
            let hint = format!("fix the catalog ({catalog}) and run again; `baton catalog validate {catalog}` lists every error");
            Err(Failure::usage(&err).sources_of(&err).hint(hint))
        }
        Err(err) => Err(Failure::usage("cannot start the local run").caused_by(&err)),
    }
}

/// The local store, for commands that read or settle records without running a release.
pub fn open_store(state: &StateDirArg) -> Result<SqliteStore, Failure> {
    let dir = state.resolve();
    let path = baton_store_sqlite::database_path(&dir);
    if !path.exists() {
        let failure = Failure::usage(format!("no local store at {}", path.display()));
        return Err(failure.hint("run `baton release` first, or pass --state-dir"));
    }
    SqliteStore::open(&path).map_err(|err| Failure::usage(format!("cannot open {}", path.display())).caused_by(&err))
}

/// The release `id` from the local store, or the failure saying it is not there.
pub async fn recorded_release(store: &dyn ReleaseStore, id: &ReleaseId) -> Result<Release, Failure> {
    match store.get_release(id).await {
        Ok(Some(release)) => Ok(release),
        Ok(None) => Err(Failure::usage(format!("no release {id} in the local store")).hint("`baton history <service>` lists them")),
        Err(err) => Err(Failure::failed(&err).sources_of(&err)),
    }
}

/// Whether no live process runs the open `release`: nobody owns its run, or its owner stopped
/// beating ([`RUN_SILENT_AFTER`]). Such a release is `interrupted (process gone)` to a person,
/// whatever its record says.
pub async fn process_gone(store: &dyn ReleaseStore, release: &Release) -> bool {
    live_owner(store, release).await.is_none()
}

/// The process that runs `release` now, if one does (its heartbeat is fresh).
pub async fn live_owner(store: &dyn ReleaseStore, release: &Release) -> Option<RunOwner> {
    let owner = store.run_owner(release.execution.as_deref()?).await.ok().flatten()?;
    let silent_for = (chrono::Utc::now() - owner.beat_at).to_std().unwrap_or_default();
    (silent_for < RUN_SILENT_AFTER).then_some(owner)
}

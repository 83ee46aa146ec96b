//! Wires the local ports: the SQLite store under the state directory, the catalog read
//! from files, the command/HTTP/Slack providers, the system clock.

use crate::{LocalBaton, LocalError};
use async_trait::async_trait;
use baton_domain::catalog::{FsCatalog, Seconds, ServiceEntry};
use baton_domain::ports::{CatalogError, CatalogSource, StoreError, SystemClock};
use baton_domain::support::Ports;
use baton_providers::{EmfSink, EnvSecretResolver, LocalProviders};
use baton_store_sqlite::SqliteStore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct LocalConfig {
    /// A catalog directory or file.
    pub catalog: PathBuf,
    /// Holds `baton.db` (records and execution journals) and the command providers' workspaces.
    pub state_dir: PathBuf,
    /// Where the console notifier writes (the terminal, for `baton release`); none to stay quiet.
    pub console: Option<Box<dyn Write + Send>>,
    /// `Clock::Real` for real runs; `Clock::Virtual` makes bakes and backoff waits instant.
    pub clock: baton_asl::Clock,
    /// Slack Web API base URL; Slack's own when `None`.
    pub slack_api_base: Option<String>,
    /// Every wave's bake taken as zero (`baton release --no-wait`): unlike the virtual clock,
    /// lock waits and polls still take the time they take.
    pub skip_bakes: bool,
    /// Where the providers reach this process's callback listener ([`LocalBaton::serve_callbacks`]),
    /// when it listens: the `webhook` deployer hands out callback URLs under it.
    pub events_url: Option<String>,
    /// Nothing delivers events to this process (`baton release` without `--events-listen`): the
    /// catalog's `events: {wait: true}` is read as off and every wait polls. An embedder that
    /// delivers events itself ([`LocalBaton::deliver`]) leaves it false.
    pub poll_only: bool,
}

impl LocalConfig {
    pub fn workspace(state_dir: &Path) -> PathBuf {
        state_dir.join("workspace")
    }

    /// Where the `cloudwatch-emf` exporter writes a local run's metric lines (stdout is the CLI's).
    pub fn emf_log(state_dir: &Path) -> PathBuf {
        state_dir.join("metrics.emf.jsonl")
    }
}

impl LocalBaton {
    pub fn open(config: LocalConfig) -> Result<LocalBaton, LocalError> {
        let catalog = FsCatalog::open(baton_providers::registry(), &config.catalog)?;
        let entries = catalog.catalog().services().to_vec();
        let adjust = Adjust { skip_bakes: config.skip_bakes, poll_only: config.poll_only };
        let catalog: Arc<dyn CatalogSource> =
            if adjust.changes_nothing() { Arc::new(catalog) } else { Arc::new(Adjusted(catalog, adjust)) };
        // Absolute once, here: commands run in other directories must all see one workspace.
        let state_dir = std::path::absolute(&config.state_dir)
            .map_err(|err| StoreError::unavailable(format!("state directory {}", config.state_dir.display())).caused_by(err))?;
        let store = SqliteStore::open(&baton_store_sqlite::database_path(&state_dir))?;
        let mut providers =
            LocalProviders::new(LocalConfig::workspace(&state_dir), config.console, Arc::new(EnvSecretResolver), config.slack_api_base)?
                .with_emf_sink(EmfSink::File(LocalConfig::emf_log(&state_dir)))
                .with_telemetry_defaults_from_env()?;
        if let Some(url) = config.events_url {
            providers = providers.with_events_url(url);
        }
        let providers = Arc::new(providers);
        let ports = Ports { store: Arc::new(store.clone()), catalog, providers: providers.clone(), clock: Arc::new(SystemClock) };
        let baton = LocalBaton::new(ports, config.clock)?.with_journal(store);
        Ok(LocalBaton { callbacks_from: Some(Arc::new(CallbackSources { providers, entries })), ..baton })
    }
}

/// What the callback listener builds its receivers from: the catalog's `events-secret`s.
pub(crate) struct CallbackSources {
    pub(crate) providers: Arc<LocalProviders>,
    pub(crate) entries: Vec<ServiceEntry>,
}

/// How a local run reads the file catalog.
#[derive(Clone, Copy)]
struct Adjust {
    /// Every wave's bake at zero (`--no-wait`).
    skip_bakes: bool,
    /// `events.wait` off: no listener, so no event could end a wait.
    poll_only: bool,
}

impl Adjust {
    fn changes_nothing(self) -> bool {
        !self.skip_bakes && !self.poll_only
    }
}

struct Adjusted(FsCatalog, Adjust);

#[async_trait]
impl CatalogSource for Adjusted {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError> {
        let mut entry = self.0.service(name).await?;
        let Adjust { skip_bakes, poll_only } = self.1;
        if skip_bakes {
            entry.delivery.deploy.waves.iter_mut().for_each(|wave| wave.bake = Seconds(0));
        }
        if poll_only {
            entry.delivery.events.wait = false;
        }
        Ok(entry)
    }
}

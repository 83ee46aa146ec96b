//! Wires the local ports: the SQLite store under the state directory, the catalog read
//! from files, the command/HTTP/Slack providers, the system clock.

use crate::{LocalBaton, LocalError};
use baton_domain::catalog::FsCatalog;
use baton_domain::ports::SystemClock;
use baton_domain::support::Ports;
use baton_providers::{EnvSecretResolver, LocalProviders};
use baton_store_sqlite::SqliteStore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct LocalConfig {
    /// A catalog directory or file.
    pub catalog: PathBuf,
    /// Holds `baton.db`, the command providers' workspaces and saved execution histories.
    pub state_dir: PathBuf,
    /// Where the console notifier writes (the terminal, for `baton release`); none to stay quiet.
    pub console: Option<Box<dyn Write + Send>>,
    /// `Clock::Real` for real runs; `Clock::Virtual` makes bakes and backoff waits instant.
    pub clock: baton_asl::Clock,
    /// Slack Web API base URL; Slack's own when `None`.
    pub slack_api_base: Option<String>,
}

impl LocalConfig {
    pub fn workspace(state_dir: &Path) -> PathBuf {
        state_dir.join("workspace")
    }

    pub fn executions(state_dir: &Path) -> PathBuf {
        state_dir.join("executions")
    }
}

impl LocalBaton {
    pub fn open(config: LocalConfig) -> Result<LocalBaton, LocalError> {
        let catalog = FsCatalog::open(&config.catalog)?;
        let store = SqliteStore::open(&baton_store_sqlite::database_path(&config.state_dir))?;
        let providers = LocalProviders::new(
            LocalConfig::workspace(&config.state_dir),
            config.console,
            Arc::new(EnvSecretResolver),
            config.slack_api_base,
        )?;
        let ports =
            Ports { store: Arc::new(store), catalog: Arc::new(catalog), providers: Arc::new(providers), clock: Arc::new(SystemClock) };
        LocalBaton::new(ports, config.clock)
    }
}

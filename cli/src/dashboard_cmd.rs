//! `baton dashboard`: the release dashboard over the local store (or the AWS stack's release
//! table with --remote), served live on loopback or written as a static site.

use crate::dora_cmd::parse_window;
use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::open_store;
use crate::local::{CatalogArg, StateDirArg};
use crate::remote;
use crate::signals::Interrupts;
use baton_aws::stepfunctions;
use baton_dashboard::{ExecutionHistories, Site};
use baton_domain::catalog::{CatalogLoader, ServiceEntry};
use baton_domain::ports::{ReleaseStore, StoreError};
use baton_store_sqlite::SqliteStore;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct DashboardArgs {
    /// Serve the dashboard at this address, updating live [default when --out is not given: 127.0.0.1:8080].
    /// Any address but loopback needs --token.
    #[arg(long, visible_alias = "listen", value_name = "ADDR", conflicts_with = "out")]
    pub serve: Option<SocketAddr>,
    /// Write every view as a static site into DIR (for a wiki, a bucket, a CI artifact) and exit.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The token a served dashboard asks for (`Authorization: Bearer`, or `?token=` once in a browser).
    #[arg(long, env = "BATON_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The window of the DORA figures and builds: days or weeks, e.g. 90d or 12w.
    #[arg(long, default_value = "90d", value_parser = parse_window)]
    pub since: u64,
    /// Seconds between a served page's live updates.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub refresh: u64,
    /// Read the AWS stack's release table (your own AWS credentials) instead of the local store.
    #[arg(long)]
    pub remote: bool,
    /// The release table with --remote (the stack's ReleaseTableName output).
    #[arg(long, env = "BATON_RELEASE_TABLE")]
    pub table: Option<String>,
    /// The stack's state machine with --remote (its StateMachineArn output): release pages then
    /// show each execution's history.
    #[arg(long, env = remote::STATE_MACHINE_ENV)]
    pub state_machine_arn: Option<String>,
    #[command(flatten)]
    pub catalog: CatalogArg,
    #[command(flatten)]
    pub state: StateDirArg,
}

const DEFAULT_ADDRESS: &str = "127.0.0.1:8080";

/// The embedded store's journal, as the release pages show an execution's history.
struct Journal(Arc<SqliteStore>);

#[async_trait::async_trait]
impl ExecutionHistories for Journal {
    async fn history(&self, execution: &str, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut events = self.0.journal(execution).await?;
        events.truncate(limit);
        Ok(events)
    }
}

/// The site over the local store (with its journal), or the stack's release table.
async fn site(args: &DashboardArgs, entries: Vec<ServiceEntry>) -> Result<Site, Failure> {
    if !args.remote {
        let local = Arc::new(open_store(&args.state)?);
        return Ok(Site::new(local.clone(), entries, args.since).with_histories(Arc::new(Journal(local))));
    }
    let Some(table) = args.table.clone() else {
        return Err(Failure::usage("--remote reads the stack's release table: pass --table or set BATON_RELEASE_TABLE")
            .hint("the stack's ReleaseTableName output"));
    };
    let config = remote::aws_config().await.map_err(|err| Failure::usage(&err).sources_of(&err))?;
    let store: Arc<dyn ReleaseStore> = Arc::new(baton_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table));
    let site = Site::new(store, entries, args.since);
    match remote::state_machine_arn(args.state_machine_arn.clone()) {
        Ok(state_machine_arn) => {
            Ok(site.with_histories(Arc::new(stepfunctions::SfnHistories::new(aws_sdk_sfn::Client::new(&config), Some(state_machine_arn)))))
        }
        Err(err) => {
            errln!("release pages show no execution history: {err}");
            Ok(site)
        }
    }
}

pub async fn run(args: DashboardArgs) -> Outcome {
    let loaded = match CatalogLoader::for_reports(baton_providers::registry()).load_with_env_root(&args.catalog.path) {
        Ok(loaded) => loaded,
        Err(err) => {
            return Err(Failure::usage(format!("cannot read the catalog at {}", args.catalog.path.display()))
                .caused_by(&err)
                .hint("the dashboard lists the catalog's services: pass --catalog DIR"));
        }
    };
    let site = site(&args, loaded.services().to_vec()).await?;
    if let Some(dir) = &args.out {
        return match baton_dashboard::export(&site, dir, chrono::Utc::now()).await {
            Ok(pages) => {
                outln!("wrote {pages} pages to {}: open {}", dir.display(), dir.join("index.html").display());
                Ok(exit::code(exit::OK))
            }
            Err(err) => Err(Failure::failed(&err)),
        };
    }
    let address = args.serve.unwrap_or_else(|| DEFAULT_ADDRESS.parse().expect("the default address parses"));
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(err) => return Err(Failure::usage(format!("cannot listen on {address}")).caused_by(&err)),
    };
    let bound = listener.local_addr().map_or(address, |a| a);
    outln!("dashboard at http://{bound}/ (Ctrl-C stops it)");
    let site = Arc::new(site.refreshing_every(args.refresh));
    let mut interrupts = match Interrupts::listen() {
        Ok(interrupts) => interrupts,
        Err(err) => return Err(Failure::failed("cannot listen for Ctrl-C").caused_by(&err)),
    };
    tokio::select! {
        served = baton_dashboard::serve(site, listener, args.token.clone()) => match served {
            Ok(()) => Ok(exit::code(exit::OK)),
            Err(err) => Err(Failure::usage(&err)),
        },
        _ = interrupts.next() => Ok(exit::code(exit::OK)),
    }
}

//! `baton history` and `baton show`: what the local store recorded.

use crate::exit;
use crate::failure::Failure;
use crate::release_cmd::StateDirArg;
use crate::scope::ScopeArgs;
use crate::view;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::ReleaseId;
use baton_store_sqlite::SqliteStore;
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only releases to this environment [default: every environment].
    #[arg(long)]
    pub environment: Option<String>,
    /// How many releases, newest first (across the scope's services).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub state: StateDirArg,
    /// One JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The release's id, as `baton history` lists it (`rel-<service>-...`).
    pub release_id: String,
    /// Also print the Step Functions execution history of the run.
    #[arg(long)]
    pub history: bool,
    #[command(flatten)]
    pub state: StateDirArg,
    /// The release record as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn open_store(state: &StateDirArg) -> Result<SqliteStore, ExitCode> {
    let dir = state.resolve();
    let path = baton_store_sqlite::database_path(&dir);
    if !path.exists() {
        let failure = Failure::usage(format!("no local store at {}", path.display()));
        return Err(failure.hint("run `baton release` first, or pass --state-dir").report());
    }
    SqliteStore::open(&path).map_err(|err| Failure::usage(format!("cannot open {}", path.display())).caused_by(&err).report())
}

pub async fn history(args: HistoryArgs) -> ExitCode {
    let scope = match args.scope.resolve() {
        Ok(scope) => scope,
        Err(code) => return code,
    };
    let store = match open_store(&args.state) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let mut releases = Vec::new();
    for service in &scope.services {
        match store.list_releases(service, args.environment.as_deref(), args.limit).await {
            Ok(found) => releases.extend(found),
            Err(err) => return Failure::failed(&err).sources_of(&err).report(),
        }
    }
    releases.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    releases.truncate(args.limit);
    if args.json {
        let shown: Vec<_> = releases.iter().map(baton_domain::release::Release::for_display).collect();
        outln!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
        return exit::code(exit::OK);
    }
    if releases.is_empty() {
        outln!("no releases of {} {} recorded", scope.kind, scope.name);
    }
    let several = scope.services.len() > 1;
    for release in &releases {
        let sha = release.artifact.as_ref().map(|a| a.sha.as_str()).or(release.sha.as_deref()).unwrap_or("-");
        let service = if several { format!("{:<20} ", release.service) } else { String::new() };
        outln!(
            "{}  {service}{:<11} {:<11} {:<8} {}  {}",
            release.created_at.format("%Y-%m-%d %H:%M:%S"),
            release.status.as_str(),
            release.environment,
            release.trigger.kind.as_str(),
            &sha[..sha.len().min(12)],
            release.id
        );
    }
    exit::code(exit::OK)
}

pub async fn show(args: ShowArgs) -> ExitCode {
    let store = match open_store(&args.state) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let id = ReleaseId(args.release_id.clone());
    let (release, events) = match (store.get_release(&id).await, store.events(&id).await) {
        (Ok(Some(release)), Ok(events)) => (release, events),
        (Ok(None), _) => {
            return Failure::usage(format!("no release {id} in the local store")).hint("`baton history <service>` lists them").report();
        }
        (Err(err), _) | (_, Err(err)) => {
            return Failure::failed(&err).sources_of(&err).report();
        }
    };
    // The journal is written as the run goes: a running or killed release has its history so far.
    let history = match (args.history, &release.execution) {
        (false, _) => None,
        (true, Some(execution)) => match store.journal(execution).await {
            Ok(history) if !history.is_empty() => Some(history),
            Ok(_) => return Failure::failed(format!("no execution history of {id} in the local store's journal")).report(),
            Err(err) => return Failure::failed("cannot read the execution journal").caused_by(&err).report(),
        },
        (true, None) => return Failure::failed(format!("release {id} names no execution")).report(),
    };
    if args.json {
        let doc = serde_json::json!({"release": release.for_display(), "events": events, "history": history});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return exit::code(exit::OK);
    }
    out!("{}", view::summary(&release));
    outln!("  timeline");
    for event in &events {
        let wave = event.wave.as_deref().map(|w| format!("[{w}] ")).unwrap_or_default();
        outln!(
            "    {}  {:<9} {:<10} {wave}{}",
            event.at.format("%H:%M:%S%.3f"),
            format!("{:?}", event.stage).to_lowercase(),
            event.kind,
            event.message
        );
    }
    if let Some(history) = history {
        out!("{}", view::history_table(&history));
    }
    exit::code(exit::OK)
}

//! `baton history` and `baton show`: what the local store recorded.

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::{StateDirArg, open_store, process_gone, recorded_release};
use crate::scope::ScopeArgs;
use crate::view;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::ReleaseId;
use clap::Args;

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

pub async fn history(args: HistoryArgs) -> Outcome {
    let scope = args.scope.resolve(&args.state)?;
    let store = open_store(&args.state)?;
    scope.known_to(&store, args.environment.as_deref()).await?;
    let mut releases = Vec::new();
    for service in &scope.services {
        match store.list_releases(service, args.environment.as_deref(), args.limit).await {
            Ok(found) => releases.extend(found),
            Err(err) => return Err(Failure::failed(&err).sources_of(&err)),
        }
    }
    releases.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    releases.truncate(args.limit);
    let mut labels = Vec::with_capacity(releases.len());
    for release in &releases {
        labels.push(view::status_label(release, !release.status.is_terminal() && process_gone(&store, release).await));
    }
    if args.json {
        let shown: Vec<_> = releases.iter().zip(&labels).map(|(release, label)| view::shown_json(release, label)).collect();
        outln!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
        return Ok(exit::code(exit::OK));
    }
    if releases.is_empty() {
        outln!("no releases of {} {} recorded", scope.kind, scope.name);
    }
    let several = scope.services.len() > 1;
    let status_width = labels.iter().map(|label| label.len()).max().unwrap_or(0).max(11);
    for (release, status) in releases.iter().zip(&labels) {
        let sha = release.artifact.as_ref().map(|a| a.sha.as_str()).or(release.sha.as_deref()).unwrap_or("-");
        let service = if several { format!("{:<20} ", release.service) } else { String::new() };
        outln!(
            "{}  {service}{status:<status_width$} {:<11} {:<8} {}  {}",
            release.created_at.format("%Y-%m-%d %H:%M:%S"),
            release.environment,
            release.trigger.kind.as_str(),
            &sha[..sha.len().min(12)],
            release.id
        );
    }
    Ok(exit::code(exit::OK))
}

pub async fn show(args: ShowArgs) -> Outcome {
    let store = open_store(&args.state)?;
    let id = ReleaseId(args.release_id.clone());
    let release = recorded_release(&store, &id).await?;
    let events = store.events(&id).await.map_err(|err| Failure::failed(&err).sources_of(&err))?;
    // The journal is written as the run goes: a running or killed release has its history so far.
    let history = match (args.history, &release.execution) {
        (false, _) => None,
        (true, Some(execution)) => match store.journal(execution).await {
            Ok(history) if !history.is_empty() => Some(history),
            Ok(_) => return Err(Failure::failed(format!("no execution history of {id} in the local store's journal"))),
            Err(err) => return Err(Failure::failed("cannot read the execution journal").caused_by(&err)),
        },
        (true, None) => return Err(Failure::failed(format!("release {id} names no execution"))),
    };
    let gone = !release.status.is_terminal() && process_gone(&store, &release).await;
    let status = view::status_label(&release, gone);
    if args.json {
        let doc = serde_json::json!({"release": view::shown_json(&release, status), "events": events, "history": history});
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(exit::code(exit::OK));
    }
    out!("{}", view::summary_as(&release, status));
    // Who owns it and its runbook, from the entry the release kept (the catalog may have moved on).
    if let Ok(Some(entry)) = store.kept_entry(&id).await {
        out!("{}", view::service_lines(&entry));
    }
    out!("{}", view::next_steps(&release, gone));
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
    Ok(exit::code(exit::OK))
}

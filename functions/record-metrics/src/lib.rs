//! record-metrics: closes the release record and adds it to the day's DORA rollups (the
//! rules are in [`baton_domain::rules::dora`]), then tells the telemetry exporters the release
//! finished (best effort: see [`baton_domain::telemetry`]). On AWS it also puts the release's
//! cost on its record, from its execution's history ([`baton_domain::rules::cost`]).

use baton_domain::changes;
use baton_domain::error::{TaskError, chain_text};
use baton_domain::flow::{Done, OutcomeStatus, RecordMetricsRequest, ReleaseContext};
use baton_domain::ports::{ExecutionHistories, TelemetryKind};
use baton_domain::release::{EventKind, Stage};
use baton_domain::rules::{cost, dora, timeline};
use baton_domain::support::{Ports, call_json, close_release};
use baton_domain::telemetry;

/// How far back the figures sent to the exporters look for the previous deployment, as the
/// close does.
const FIGURES_HISTORY: usize = 50;
/// The most history events the cost reads: all Step Functions keeps of one execution.
const COST_HISTORY_EVENTS: usize = 25_000;
/// How long reading them may take: a long history is 25 pages, and a release never waits on
/// its price for long.
const COST_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

pub const NAME: &str = "record-metrics";

/// `histories` reads the execution's history to price the release (on AWS); the embedded
/// executor passes none, as it prices the whole execution from its journal once it ends.
pub async fn handle(
    ports: &Ports,
    histories: Option<&dyn ExecutionHistories>,
    payload: serde_json::Value,
) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| record(ports, histories, request)).await
}

pub async fn record(ports: &Ports, histories: Option<&dyn ExecutionHistories>, request: RecordMetricsRequest) -> Result<Done, TaskError> {
    let context = &request.release;
    if request.outcome.status == OutcomeStatus::Succeeded {
        record_changes(ports, context).await?;
    }
    // The record and its rollup are written in one transaction, so a retried task finds either
    // both done or neither.
    let closed = close_release(ports.store.as_ref(), &context.id, &request.outcome, ports.clock.now()).await?;
    let Some(ending) = EventKind::ending(closed.status) else { return Ok(Done {}) };
    // A task given up on that no state after its Catch told (the paths straight to MarkFailed).
    if let Some(gave_up) = request.outcome.error.as_ref().and_then(timeline::gave_up)
        && !ports.store.events(&context.id).await?.iter().any(|event| event.kind == EventKind::GaveUp)
    {
        let stage = ports.release(context).await?.stage;
        ports.record_event(context, stage, None, EventKind::GaveUp, gave_up).await?;
    }
    // A retry after a close that landed but whose answer was lost finds the release closed and
    // its timeline perhaps without the ending; a retry after the ending was written adds none.
    let ended = !closed.now
        && ports.store.events(&context.id).await?.last().is_some_and(|event| event.stage == Stage::Done && event.kind == ending);
    if !ended {
        if let Some(histories) = histories {
            record_cost(ports, histories, context, request.execution.as_deref()).await?;
        }
        // Exported before the ending is written, so the ending stays the timeline's last event
        // (an export that failed is recorded before it).
        let release = ports.release(context).await?;
        let history = ports.store.list_releases(&release.service, Some(&release.environment), FIGURES_HISTORY).await?;
        let figures = dora::rollup_delta(&release, &history);
        let entry = ports.entry(context).await?;
        telemetry::export(ports, context, &entry, &release, TelemetryKind::ReleaseFinished { figures }).await?;
        ports.record_event(context, Stage::Done, None, ending, format!("release {}", closed.status)).await?;
    }
    Ok(Done {})
}

/// Puts on the record of a successful deployment the commits it carried (their lead times, which
/// the close adds to the day's rollup), before the close. Reading the history is best effort
/// ([`changes::carried`]); a retry after the close finds the release closed and reads nothing.
async fn record_changes(ports: &Ports, context: &ReleaseContext) -> Result<(), TaskError> {
    let release = ports.release(context).await?;
    if release.status.is_terminal() || !dora::reached_production(&release) {
        return Ok(());
    }
    let entry = ports.entry(context).await?;
    let history = ports.store.list_releases(&release.service, Some(&release.environment), FIGURES_HISTORY).await?;
    let changes = changes::carried(ports.providers.as_ref(), &entry, &release, &history, ports.clock.now()).await;
    let line = changes::describe(&changes);
    ports.update_release(context, |release| release.changes = Some(changes.clone())).await?;
    ports.record_event_once(context, Stage::Done, EventKind::Carried, line).await
}

/// Puts on the record what its execution cost so far (every state up to this task: the few
/// that close the release are left out), unless a retry finds it there. A history that cannot be
/// read never fails the release: the timeline says why the cost is missing.
async fn record_cost(
    ports: &Ports,
    histories: &dyn ExecutionHistories,
    context: &ReleaseContext,
    execution: Option<&str>,
) -> Result<(), TaskError> {
    if ports.release(context).await?.cost.is_some() {
        return Ok(());
    }
    let read = match execution {
        None => Err("the state machine passes no execution ARN (`$$.Execution.Id`): redeploy the stack".to_owned()),
        Some(execution) => match tokio::time::timeout(COST_BUDGET, histories.history(execution, COST_HISTORY_EVENTS)).await {
            Ok(Ok(events)) => Ok(events),
            Ok(Err(err)) => Err(format!("cannot read the execution's history: {}", chain_text(&err))),
            Err(_) => Err(format!("the execution's history took longer than {} s to read", COST_BUDGET.as_secs())),
        },
    };
    match read {
        Ok(events) => {
            let cost = cost::estimate(&cost::usage(&events), cost::BATON_FUNCTIONS, &cost::PUBLIC_PRICES);
            ports.update_release(context, |release| release.cost = Some(cost.clone())).await.map(drop)
        }
        Err(why) => ports.record_event_once(context, Stage::Done, EventKind::CostUnknown, format!("cost unknown: {why}")).await,
    }
}

//! `baton status <release-id|execution-arn> [--watch] [--json]`: a release's execution on AWS,
//! from DescribeExecution and GetExecutionHistory.

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::local::{StateDirArg, open_store, process_gone, recorded_release};
use crate::remote::{self, RemoteError};
use crate::view;
use baton_aws::DynamoStore;
use baton_aws::stepfunctions::{ReleaseView, describe_release, execution_arn};
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{Release, ReleaseId};
use clap::Args;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Args)]
pub struct StatusArgs {
    /// A release id (rel-...) or an execution ARN (arn:aws:states:...:execution:...).
    pub release: String,
    /// Follow the execution until it ends, printing each change.
    #[arg(long)]
    pub watch: bool,
    /// Print JSON (one object per change with --watch).
    #[arg(long)]
    pub json: bool,
    /// Seconds between polls with --watch.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// The release table, to find a release id's execution (the stack's ReleaseTableName output).
    #[arg(long, env = "BATON_RELEASE_TABLE")]
    pub table: Option<String>,
    /// The release state machine, when the release record names its execution without an ARN.
    #[arg(long, env = remote::STATE_MACHINE_ENV)]
    pub state_machine_arn: Option<String>,
    /// A release id without --table is a local release: read from this state directory's store.
    #[command(flatten)]
    pub state: StateDirArg,
}

pub async fn run(args: StatusArgs) -> Outcome {
    if !args.release.starts_with("arn:") && args.table.is_none() {
        return local(&args).await;
    }
    let config = match remote::aws_config().await {
        Ok(config) => config,
        Err(err) => {
            return Err(Failure::usage(&err).sources_of(&err));
        }
    };
    let arn = match resolve(&args, &config).await {
        Ok(arn) => arn,
        Err(message) => {
            return Err(Failure::usage(message));
        }
    };
    let client = aws_sdk_sfn::Client::new(&config);
    let mut last: Option<ReleaseView> = None;
    loop {
        let view = match describe_release(&client, &arn).await {
            Ok(view) => view,
            Err(err) => {
                return Err(Failure::usage(&err).sources_of(&err));
            }
        };
        if last.as_ref() != Some(&view) {
            if args.json {
                outln!("{}", serde_json::to_string(&view).expect("a ReleaseView serialises"));
            } else {
                if last.is_some() {
                    outln!();
                }
                out!("{}", render(&view));
            }
        }
        if !(args.watch && view.is_running()) {
            return Ok(exit::code(exit_code(&view)));
        }
        last = Some(view);
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}

/// A local release, from the local store: no AWS call.
async fn local(args: &StatusArgs) -> Outcome {
    let store = open_store(&args.state)?;
    let id = ReleaseId(args.release.clone());
    let mut last: Option<Release> = None;
    loop {
        let hint = "`baton history <service>` lists the local releases; for one on AWS pass --table or set BATON_RELEASE_TABLE";
        let release = recorded_release(&store, &id).await.map_err(|failure| failure.hint(hint))?;
        let gone = !release.status.is_terminal() && process_gone(&store, &release).await;
        let status = view::status_label(&release, gone);
        if last.as_ref() != Some(&release) {
            if args.json {
                outln!("{}", view::shown_json(&release, status));
            } else {
                if last.is_some() {
                    outln!();
                }
                out!("{}", view::summary_as(&release, status));
                out!("{}", view::next_steps(&release, gone));
            }
        }
        // A release whose process is gone changes no more until a person acts.
        if !args.watch || release.status.is_terminal() || gone {
            let open = !release.status.is_terminal();
            return Ok(if open { exit::code(exit::OK) } else { exit::for_release(Some(release.status)) });
        }
        last = Some(release);
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}

/// `baton release`'s codes, from the outcome the execution names rather than its status: a
/// failed build or a clean rollback ends the execution SUCCEEDED (no fault, no alarm), yet the
/// release failed. An execution that ended with none (refused before anything was recorded,
/// timed out, aborted) fails unless it succeeded (a merge that releases nothing).
fn exit_code(view: &ReleaseView) -> u8 {
    if view.is_running() {
        return exit::OK;
    }
    match view.outcome {
        Some(outcome) => exit::value_for(outcome),
        None if view.status == "SUCCEEDED" => exit::OK,
        None => exit::FAILED,
    }
}

/// The execution ARN for an ARN or a release id (through the release record).
async fn resolve(args: &StatusArgs, config: &aws_config::SdkConfig) -> Result<String, String> {
    if args.release.starts_with("arn:") {
        return Ok(args.release.clone());
    }
    let table = args.table.as_deref().ok_or_else(|| {
        format!(
            "'{}' is a release id: pass --table or set BATON_RELEASE_TABLE to look up its execution, or give the execution ARN",
            args.release
        )
    })?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(config), table);
    let release = store
        .get_release(&ReleaseId(args.release.clone()))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("release {} is not in table {table}", args.release))?;
    let execution = release
        .execution
        .ok_or_else(|| format!("release {} has no execution recorded (it never reached AWS Step Functions)", args.release))?;
    if execution.starts_with("arn:") {
        return Ok(execution);
    }
    let machine = remote::state_machine_arn(args.state_machine_arn.clone())
        .map_err(|e: RemoteError| format!("release {} names execution '{execution}' without its ARN: {e}", args.release))?;
    execution_arn(&machine, &execution).ok_or_else(|| format!("'{machine}' is not a state machine ARN"))
}

fn render(view: &ReleaseView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "execution  {}", view.execution_arn);
    let time = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let stopped = view.stopped_at.map(|at| format!(", stopped {}", time(at))).unwrap_or_default();
    let _ = writeln!(out, "status     {} (started {}{stopped})", view.status, time(view.started_at));
    if let Some(outcome) = view.outcome {
        let _ = writeln!(out, "outcome    {outcome}");
    }
    if let Some(state) = &view.current_state {
        let _ = writeln!(out, "state      {state}");
    }
    if let Some(release) = &view.release {
        out.push_str(&view::summary(release));
    }
    if let Some(error) = &view.error {
        let cause = view.cause.as_deref().map(view::cause_message).unwrap_or_default();
        let _ = writeln!(out, "error      {error}: {cause}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::release::ReleaseStatus;

    fn execution(status: &str) -> ReleaseView {
        ReleaseView {
            execution_arn: "arn:aws:states:us-east-1:0:execution:baton:web-1".into(),
            name: "web-1".into(),
            status: status.into(),
            started_at: "2026-03-01T10:00:00Z".parse().unwrap(),
            stopped_at: None,
            current_state: Some("DeployWave".into()),
            stage: None,
            waves: Vec::new(),
            release: None,
            outcome: None,
            error: None,
            cause: None,
        }
    }

    #[test]
    fn renders_status_state_and_error() {
        let mut failed = execution("FAILED");
        failed.error = Some("Baton.BuildFailed".into());
        failed.cause = Some("compile error".into());
        let text = render(&failed);
        assert!(text.contains("status     FAILED (started 2026-03-01 10:00:00 UTC)"), "{text}");
        assert!(text.contains("state      DeployWave"), "{text}");
        assert!(text.contains("error      Baton.BuildFailed: compile error"), "{text}");
    }

    #[test]
    fn the_exit_code_follows_the_outcome_not_the_execution_status() {
        let ended = |status: &str, outcome: Option<ReleaseStatus>| exit_code(&ReleaseView { outcome, ..execution(status) });
        let cases = [
            (ended("SUCCEEDED", Some(ReleaseStatus::Succeeded)), exit::OK),
            (ended("SUCCEEDED", Some(ReleaseStatus::RolledBack)), exit::FAILED),
            (ended("SUCCEEDED", Some(ReleaseStatus::Failed)), exit::FAILED),
            (ended("SUCCEEDED", Some(ReleaseStatus::Superseded)), exit::SUPERSEDED),
            (ended("SUCCEEDED", Some(ReleaseStatus::Cancelled)), exit::CANCELLED),
            (ended("SUCCEEDED", Some(ReleaseStatus::Skipped)), exit::SKIPPED),
            (ended("FAILED", Some(ReleaseStatus::RollbackFailed)), exit::ROLLBACK_FAILED),
            (ended("FAILED", Some(ReleaseStatus::Failed)), exit::FAILED),
            (ended("SUCCEEDED", None), exit::OK),
            (ended("FAILED", None), exit::FAILED),
            (ended("TIMED_OUT", None), exit::FAILED),
            (ended("RUNNING", Some(ReleaseStatus::RolledBack)), exit::OK),
        ];
        for (index, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "case {index}");
        }
    }
}

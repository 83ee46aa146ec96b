//! `baton dev`: the AWS stack on this machine (crates/local-stack).

use crate::exit;
use crate::failure::{Failure, Outcome};
use baton_domain::release::{ReleaseStatus, Signal, Trigger, TriggerKind};
use baton_local_stack::{LocalStack, StackOptions, iam};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum DevCommand {
    /// Release a service through the AWS stack run on this machine: the template's state machine,
    /// each task run by the function's own binary behind a local Lambda Runtime API, the
    /// template's tables on a local DynamoDB (AWS_ENDPOINT_URL_DYNAMODB, e.g. DynamoDB Local).
    /// Then checks every AWS operation the functions performed against their IAM policies.
    /// Exits 0 when the release succeeded and IAM allowed every operation, 1 otherwise.
    Release(DevReleaseArgs),
}

#[derive(Args)]
pub struct DevReleaseArgs {
    /// The service to release, as its catalog entry names it.
    service: String,
    /// Catalog directory or file, pushed to the stack's catalog table first.
    #[arg(long, env = "BATON_CATALOG", default_value = "catalog")]
    catalog: PathBuf,
    /// The SAM template.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// Where the function binaries (baton-load-catalog, ...) are [default: next to this baton binary].
    #[arg(long)]
    functions_dir: Option<PathBuf>,
    /// Names the tables and functions (`<stack>-<LogicalId>`) [default: baton-dev-<random>].
    #[arg(long)]
    stack_name: Option<String>,
    /// Where function logs and AWS operation records go [default: <temp dir>/<stack name>].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Skip bake times and backoff waits (the virtual clock); function timeouts still apply.
    #[arg(long)]
    no_wait: bool,
    /// A template parameter, as `sam deploy --parameter-overrides` takes it (repeatable):
    /// `--parameter ArtifactBucket=acme-builds` grants deploy-wave the bucket's zips.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parameter)]
    parameters: Vec<(String, String)>,
    /// The commit to release [default: the build provider's own choice].
    #[arg(long)]
    sha: Option<String>,
}

fn parameter(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, found `{text}`")),
    }
}

pub async fn run(command: DevCommand) -> Outcome {
    match command {
        DevCommand::Release(args) => release(args).await,
    }
}

async fn release(args: DevReleaseArgs) -> Outcome {
    let stack_name = args.stack_name.clone().unwrap_or_else(|| format!("baton-dev-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let binaries = match args.functions_dir.clone().or_else(|| std::env::current_exe().ok()?.parent().map(PathBuf::from)) {
        Some(dir) => dir,
        None => {
            return Err(Failure::usage("cannot tell where the function binaries are").hint("pass --functions-dir"));
        }
    };
    let options = StackOptions {
        template: args.template.clone(),
        stack_name: stack_name.clone(),
        binaries,
        state_dir: args.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(&stack_name)),
        catalog: args.catalog.clone(),
        clock: if args.no_wait { baton_asl::Clock::Virtual } else { baton_asl::Clock::Real },
        parameters: args.parameters.iter().cloned().collect(),
        function_env: Vec::new(),
    };
    let started = Instant::now();
    let stack = match LocalStack::up(&options).await {
        Ok(stack) => stack,
        Err(err) => {
            return Err(Failure::usage("cannot bring the local stack up").caused_by(&err));
        }
    };
    outln!("stack {stack_name} up in {:.1}s (tables: {})", started.elapsed().as_secs_f64(), table_names(&stack));

    let signal = Signal {
        service: args.service.clone(),
        environment: None,
        sha: args.sha.clone(),
        branch: None,
        trigger: Trigger::new(TriggerKind::Cli, uuid::Uuid::new_v4().to_string(), Some(crate::person())),
        changed_at: None,
    };
    let started = Instant::now();
    let outcome = stack.run(&format!("dev-{}", signal.trigger.id), serde_json::to_value(&signal).unwrap_or_default()).await;
    outln!("execution {:?} in {:.1}s", outcome.status, started.elapsed().as_secs_f64());
    if let Some(error) = &outcome.error {
        outln!("  error: {error}: {}", outcome.cause.as_deref().unwrap_or_default());
    }
    for function in stack.functions().filter(|f| f.cold_starts() > 0) {
        outln!("  {}: {} environment(s), log {}", function.spec().name, function.cold_starts(), function.log_file().display());
    }
    let release = match stack.release(&args.service, &outcome).await {
        Ok(release) => release,
        Err(err) => {
            return Err(Failure::failed(&err).sources_of(&err));
        }
    };
    let status = release.as_ref().map(|r| r.status);
    match &release {
        Some(release) => outln!("release {} {:?}", release.id.0, release.status),
        None => outln!("no release was recorded"),
    }

    let reports = match stack.iam_reports() {
        Ok(reports) => reports,
        Err(err) => {
            return Err(Failure::failed("cannot check IAM").caused_by(&err));
        }
    };
    out!("IAM check of what ran against {}:\n{}", args.template.display(), iam::render(&reports));
    let denied = reports.values().any(|r| !r.denied.is_empty());
    stack.shutdown();
    if denied || status != Some(ReleaseStatus::Succeeded) { Ok(exit::code(exit::FAILED)) } else { Ok(exit::code(exit::OK)) }
}

fn table_names(stack: &LocalStack) -> String {
    stack.tables().iter().map(|(_, name)| name.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::parameter;

    #[test]
    fn parameters_are_name_equals_value() {
        assert_eq!(parameter("ArtifactBucket=acme-builds"), Ok(("ArtifactBucket".into(), "acme-builds".into())));
        assert_eq!(parameter("AssumableRoleArns="), Ok(("AssumableRoleArns".into(), String::new())), "an empty value is a value");
        assert_eq!(parameter("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parameter("ArtifactBucket"), Err("expected NAME=VALUE, found `ArtifactBucket`".into()));
        assert!(parameter("=x").is_err());
    }
}

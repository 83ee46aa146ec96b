//! `baton catalog validate` and `baton catalog push`.
use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::pass_env;
use baton_aws::catalog::{CatalogFilesError, cloud_loader, loaded_catalog_items, push_catalog};
use baton_aws::scheduler::{ScheduleTarget, SyncScope, sync_schedules};
use baton_domain::catalog::{CATALOG_ROOT_ENV, CatalogLoader, LoadedCatalog};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Check service definitions: Datadog's structure and every `extensions.baton` block.
    /// Exits 0 when valid, 1 when there is any error (an empty file, an unknown schema
    /// version and a path without definitions are errors), 2 when the path cannot be read.
    /// With --cloud, also what `push` refuses: the `command` providers, and secrets outside the
    /// names the stack's functions may read (`baton/providers/*`, notify's `baton/slack/*`).
    Validate(ValidateArgs),
    /// Validate (as `validate --cloud`: no `command` provider), then store every definition in the catalog table Baton's functions read, and
    /// make the EventBridge Scheduler schedules of the pushed services match their `schedule`
    /// (other services' schedules are left alone unless --prune-schedules). Pushes nothing
    /// when any file has an error. What a service repository's CI runs on merge.
    Push(PushArgs),
}

#[derive(Args)]
pub struct PushArgs {
    /// A catalog directory or one file.
    path: PathBuf,
    #[command(flatten)]
    root: RootArg,
    /// The stack's CatalogTableName output.
    #[arg(long, env = "BATON_CATALOG_TABLE")]
    table: String,
    /// The stack's ScheduleGroupName output; without it schedules are left alone.
    #[arg(long, env = "BATON_SCHEDULE_GROUP")]
    schedule_group: Option<String>,
    /// The stack's StateMachineArn output (what schedules start).
    #[arg(long, env = "BATON_STATE_MACHINE_ARN", requires = "schedule_group")]
    state_machine_arn: Option<String>,
    /// The stack's ScheduleRoleArn output (the role schedules assume).
    #[arg(long, env = "BATON_SCHEDULE_ROLE_ARN", requires = "schedule_group")]
    schedule_role_arn: Option<String>,
    /// The stack's ReleaseStartDeadLetterQueueArn output: where firings that could not start a
    /// release go after Scheduler's retries.
    #[arg(long, env = "BATON_SCHEDULE_DLQ_ARN", requires = "schedule_group")]
    schedule_dlq_arn: Option<String>,
    /// Also delete the schedules of services this push does not define. Without it only the
    /// pushed services' schedules change, so each service repository can push its own catalog.
    #[arg(long, requires = "schedule_group")]
    prune_schedules: bool,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// A catalog directory (searched recursively for *.yaml, *.yml and *.json) or one file.
    path: PathBuf,
    #[command(flatten)]
    root: RootArg,
    /// Check the catalog as `push` does, for releases on AWS: providers that run on this
    /// machine (`command`) are refused, naming what to use instead, and so are secret references
    /// outside the prefixes the stack's IAM grants, naming the prefix expected.
    #[arg(long)]
    cloud: bool,
    /// Print `{"services": [names], "errors": [diagnostics], "warnings": [unlisted pass-env variables]}` instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RootArg {
    /// Directory every `working-dir` and `artifact-file` must stay inside (default: the
    /// repository holding the catalog, else its directory).
    #[arg(long = "root", env = CATALOG_ROOT_ENV)]
    root: Option<PathBuf>,
}

impl RootArg {
    fn load(&self, path: &Path, for_cloud: bool) -> std::io::Result<LoadedCatalog> {
        CatalogLoader { root: self.root.as_deref(), for_cloud, ..CatalogLoader::new(baton_providers::registry()) }.load(path)
    }
}

pub async fn run(command: CatalogCommand) -> Outcome {
    match command {
        CatalogCommand::Validate(args) => validate(&args),
        CatalogCommand::Push(args) => push(&args).await,
    }
}

async fn push(args: &PushArgs) -> Outcome {
    let catalog = match args.root.load(&args.path, true) {
        Ok(catalog) => catalog,
        Err(err) => {
            return Err(Failure::usage(format!("cannot read catalog {}", args.path.display())).caused_by(&err));
        }
    };
    if !catalog.diagnostics().is_empty() {
        err!("{}", validation_report(&catalog, false));
        return Err(Failure::failed("nothing pushed: fix the catalog first"));
    }
    let target = match (&args.schedule_group, &args.state_machine_arn, &args.schedule_role_arn) {
        (None, _, _) => None,
        (Some(group), Some(arn), Some(role)) => Some((
            group,
            ScheduleTarget { state_machine_arn: arn.clone(), role_arn: role.clone(), dead_letter_arn: args.schedule_dlq_arn.clone() },
        )),
        (Some(_), _, _) => {
            return Err(Failure::usage("--schedule-group needs --state-machine-arn and --schedule-role-arn")
                .hint("or set BATON_STATE_MACHINE_ARN and BATON_SCHEDULE_ROLE_ARN"));
        }
    };
    let items = match loaded_catalog_items(&cloud_loader(baton_providers::registry()), &catalog) {
        Ok(items) => items,
        Err(err @ CatalogFilesError::Read { .. }) => {
            return Err(Failure::usage(&err).sources_of(&err));
        }
        Err(err) => {
            return Err(Failure::failed(&err).sources_of(&err));
        }
    };
    let config = match crate::remote::aws_config().await {
        Ok(config) => config,
        Err(err) => {
            return Err(Failure::usage(&err).sources_of(&err));
        }
    };
    if let Err(err) = push_catalog(&aws_sdk_dynamodb::Client::new(&config), &args.table, &items).await {
        return Err(Failure::failed(format!("cannot push to {}", args.table)).caused_by(&err));
    }
    outln!("pushed {} to {}", count(items.len(), "service"), args.table);
    if let Some((group, target)) = target {
        let scope = if args.prune_schedules { SyncScope::All } else { SyncScope::Services };
        match sync_schedules(&aws_sdk_scheduler::Client::new(&config), group, catalog.services(), &target, scope).await {
            Ok(report) => outln!(
                "schedules in {group}: {} created, {} updated, {} unchanged, {} deleted",
                report.created.len(),
                report.updated.len(),
                report.unchanged.len(),
                report.deleted.len()
            ),
            Err(err) => {
                return Err(Failure::failed("the catalog was pushed but the schedules were not synced").caused_by(&err));
            }
        }
    }
    Ok(exit::code(exit::OK))
}

fn validate(args: &ValidateArgs) -> Outcome {
    let catalog = match args.root.load(&args.path, args.cloud) {
        Ok(catalog) => catalog,
        Err(err) => {
            return Err(Failure::usage(format!("cannot read catalog {}", args.path.display())).caused_by(&err));
        }
    };
    out!("{}", validation_report(&catalog, args.json));
    Ok(exit::code(validation_status(&catalog)))
}

/// Any error fails validation, whether or not it belongs to a Baton service.
fn validation_status(catalog: &LoadedCatalog) -> u8 {
    if catalog.diagnostics().is_empty() { exit::OK } else { exit::FAILED }
}

/// One `file:line: path: message` line per problem, one line per command script reading a
/// variable its `pass-env` does not list (a warning: it fails nothing), and a summary; or the
/// JSON form.
fn validation_report(catalog: &LoadedCatalog, json: bool) -> String {
    let names: Vec<&str> = catalog.services().iter().map(|s| s.name.as_str()).collect();
    let errors = catalog.diagnostics();
    let warnings: Vec<pass_env::Unlisted> = catalog.services().iter().flat_map(pass_env::unlisted).collect();
    if json {
        return serde_json::json!({ "services": names, "errors": errors, "warnings": warnings }).to_string() + "\n";
    }
    let mut out: String = errors.iter().map(|d| format!("{d}\n")).collect();
    out.extend(warnings.iter().map(|w| format!("{w}\n")));
    out += &format!("{}, {}", count(names.len(), "service"), count(errors.len(), "error"));
    if !warnings.is_empty() {
        out += &format!(", {} (add the variables to the block's pass-env)", count(warnings.len(), "warning"));
    }
    out += "\n";
    out
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_catalog(path: &Path) -> std::io::Result<LoadedCatalog> {
        RootArg { root: None }.load(path, false)
    }

    fn repo(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    #[test]
    fn the_examples_report_no_errors() {
        let catalog = load_catalog(&repo("examples/catalog")).unwrap();
        assert_eq!(validation_report(&catalog, false), "3 services, 0 errors\n");
        assert_eq!(
            validation_report(&catalog, true),
            "{\"services\":[\"flaky-api\",\"hello-api\",\"hello-web\"],\"errors\":[],\"warnings\":[]}\n"
        );
    }

    #[test]
    fn errors_print_as_file_line_path_message() {
        let path = repo("crates/domain/tests/fixtures/catalog/invalid");
        let catalog = load_catalog(&path).unwrap();
        let file = path.join("top-level-baton.yaml").display().to_string();
        let text = validation_report(&catalog, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with(&format!("{file}:4: baton: unknown field `baton`")), "{text}");
        assert_eq!(lines[1], "0 services, 1 error");

        let json: serde_json::Value = serde_json::from_str(&validation_report(&catalog, true)).unwrap();
        assert_eq!(json["services"], serde_json::json!([]));
        assert_eq!(json["errors"][0]["file"], file.as_str());
        assert_eq!(json["errors"][0]["line"], 4);
        assert_eq!(json["errors"][0]["path"], "baton");
    }

    #[test]
    fn the_examples_run_commands_so_they_are_refused_for_the_cloud_only() {
        let root = RootArg { root: None };
        let local = root.load(&repo("examples/catalog"), false).unwrap();
        assert_eq!(validation_status(&local), exit::OK);

        let cloud = root.load(&repo("examples/catalog"), true).unwrap();
        assert_eq!(validation_status(&cloud), exit::FAILED);
        let report = validation_report(&cloud, false);
        let hello_web = repo("examples/catalog/hello-web.yaml").display().to_string();
        let refusal = format!("{hello_web}:35: extensions.baton.build.provider: `command` runs on the machine running Baton");
        let refusals: Vec<&str> = report.lines().filter(|line| line.starts_with(&hello_web) && line.contains("running Baton")).collect();
        assert_eq!(refusals.len(), 3, "the build, the deploy and the gate: {report}");
        assert!(
            refusals[0].starts_with(&refusal)
                && refusals[0].contains("use `github-actions`, `gitlab-ci`, `buildkite`, `circleci` or `codebuild`"),
            "{report}"
        );
        assert!(refusals[1].contains("extensions.baton.deploy.provider") && refusals[1].contains("use `ecs`, `lambda`"), "{report}");
        assert!(refusals[2].contains("extensions.baton.health.gates[0].provider") && refusals[2].contains("`cloudwatch`"), "{report}");
    }

    #[test]
    fn cloud_examples_name_secrets_the_stack_may_read_and_others_are_refused_with_the_prefix_expected() {
        let root = RootArg { root: None };
        let examples = root.load(&repo("examples/providers"), true).unwrap();
        assert_eq!(
            validation_report(&examples, false).lines().last(),
            Some("6 services, 0 errors"),
            "{}",
            validation_report(&examples, false)
        );

        let dir = tempfile::tempdir().unwrap();
        let payments = std::fs::read_to_string(repo("examples/providers/payments-ecs.yaml")).unwrap();
        let moved = payments
            .replace("secrets-manager:baton/providers/github-token", "secrets-manager:baton/github-token")
            .replace("secrets-manager:baton/slack/payments-pagerduty-routing-key", "ssm:/baton/providers/pagerduty-key")
            .replace("token: secrets-manager:baton/slack/bot-token", "token: {secrets-manager: slack-bot}");
        std::fs::write(dir.path().join("payments.yaml"), moved).unwrap();
        let catalog = root.load(dir.path(), true).unwrap();
        assert_eq!(validation_status(&catalog), exit::FAILED);
        let report = validation_report(&catalog, false);
        let file = dir.path().join("payments.yaml").display().to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 4, "{report}");
        assert!(
            lines[0].starts_with(&format!("{file}:16: extensions.baton.build.token: `secrets-manager:baton/github-token` is outside")),
            "{report}"
        );
        assert!(lines[0].contains("expected secrets-manager:baton/providers/<name>"), "{report}");
        assert!(lines[1].starts_with(&format!("{file}:51: extensions.baton.notify.slack.token: `secrets-manager:slack-bot`")), "{report}");
        assert!(lines[2].starts_with(&format!("{file}:55: extensions.baton.notify.pagerduty.routing-key:")), "{report}");
        assert!(lines[2].contains("what notify may read on AWS: expected ssm:/baton/slack/<name>"), "{report}");
        // Locally any secret may be read: the rule is the stack's.
        assert_eq!(validation_status(&root.load(dir.path(), false).unwrap()), exit::OK);
    }

    #[test]
    fn a_lambda_canary_hold_longer_than_a_wave_may_deploy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lambda = std::fs::read_to_string(repo("examples/providers/checkout-lambda.yaml")).unwrap();
        std::fs::write(dir.path().join("checkout.yaml"), lambda.replace("hold: 5m", "hold: 2h")).unwrap();
        let catalog = RootArg { root: None }.load(dir.path(), true).unwrap();
        let report = validation_report(&catalog, false);
        let file = dir.path().join("checkout.yaml").display().to_string();
        assert!(
            report
                .starts_with(&format!("{file}:20: extensions.baton.deploy.canary.hold: expected a duration of at most 1800s, found 7200s")),
            "{report}"
        );
    }

    #[test]
    fn what_validation_used_to_pass_silently_fails() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = load_catalog(dir.path()).unwrap();
        assert_eq!(validation_status(&catalog), exit::FAILED, "a directory without definitions");
        let report = validation_report(&catalog, false);
        assert!(report.ends_with("found no *.yaml, *.yml or *.json file\n0 services, 1 error\n"), "{report}");

        std::fs::write(dir.path().join("empty.yaml"), "").unwrap();
        std::fs::write(dir.path().join("future.yaml"), "schema-version: v9\ndd-service: later\n").unwrap();
        let catalog = load_catalog(dir.path()).unwrap();
        assert_eq!(validation_status(&catalog), exit::FAILED);
        let report = validation_report(&catalog, false);
        assert!(report.contains("empty.yaml: (document): expected at least one Datadog service definition"), "{report}");
        assert!(report.contains("future.yaml:1: schema-version: unknown schema-version `v9`"), "{report}");
        assert!(report.ends_with("0 services, 2 errors\n"), "{report}");

        let catalog = load_catalog(&repo("examples/catalog")).unwrap();
        assert_eq!(validation_status(&catalog), exit::OK);
    }

    #[test]
    fn a_script_reading_a_variable_pass_env_does_not_list_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let entry = std::fs::read_to_string(repo("examples/catalog/hello-web.yaml")).unwrap();
        // The build reads DEPLOY_REGION, and its pass-env lists only EXAMPLE_BUILD_FAILS.
        let entry = entry.replace("working-dir: ../services/common", "working-dir: scripts");
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        for script in ["build.sh", "deploy.sh", "health.sh"] {
            std::fs::copy(repo("examples/services/common").join(script), dir.path().join("scripts").join(script)).unwrap();
        }
        std::fs::write(dir.path().join("scripts/build.sh"), "echo \"$DEPLOY_REGION $EXAMPLE_BUILD_FAILS ${BATON_SHA}\"\n").unwrap();
        std::fs::write(dir.path().join("hello-web.yaml"), entry).unwrap();
        let catalog = RootArg { root: Some(dir.path().to_owned()) }.load(dir.path(), false).unwrap();
        assert_eq!(validation_status(&catalog), exit::OK, "a warning fails nothing: {}", validation_report(&catalog, false));
        let report = validation_report(&catalog, false);
        let file = dir.path().join("hello-web.yaml").canonicalize().unwrap().display().to_string();
        assert!(
            report
                .contains(&format!("{file}: extensions.baton.build: warning: build.sh reads DEPLOY_REGION, which pass-env does not list")),
            "{report}"
        );
        assert!(report.ends_with("1 service, 0 errors, 1 warning (add the variables to the block's pass-env)\n"), "{report}");
        let json: serde_json::Value = serde_json::from_str(&validation_report(&catalog, true)).unwrap();
        assert_eq!(json["warnings"][0]["variables"], serde_json::json!(["DEPLOY_REGION"]));
    }
}

//! `baton`: run releases locally on the embedded executor, control Baton on AWS, read reports.
//!
//! Exit codes: `exit::HELP` lists them (and `baton --help` shows that list).

/// print!/println!/eprintln! that never panic: with a closed stdout or stderr (`baton ... | head`)
/// the rest of the output is lost, and nothing else.
// Everything the CLI prints is scrubbed of the secrets it resolved, and a closed pipe is no panic.
macro_rules! out {
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = write!(std::io::stdout(), "{}", baton_domain::redact::scrub(&format!($($arg)*))); }};
}
macro_rules! outln {
    () => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout()); }};
    ($($arg:tt)*) => {{ use std::io::Write as _; let _ = writeln!(std::io::stdout(), "{}", baton_domain::redact::scrub(&format!($($arg)*))); }};
}
// Lines on stderr go above the live view's bars while it is on screen (`view::to_stderr`).
macro_rules! err {
    ($($arg:tt)*) => {{ $crate::view::to_stderr(&baton_domain::redact::scrub(&format!($($arg)*))); }};
}
macro_rules! errln {
    () => {{ $crate::view::to_stderr("\n"); }};
    ($($arg:tt)*) => {{ $crate::view::to_stderr(&format!("{}\n", baton_domain::redact::scrub(&format!($($arg)*)))); }};
}

mod approve_cmd;
mod asl_cmd;
mod builds_cmd;
mod callbacks;
mod cancel_cmd;
mod catalog_cmd;
mod dashboard_cmd;
mod dashboards_cmd;
mod dev_cmd;
mod dora_cmd;
mod exit;
mod failure;
mod follow;
mod freezes_cmd;
mod local;
mod pass_env;
mod plan_cmd;
mod release_cmd;
mod remote;
mod report_cmd;
mod resume_cmd;
mod scope;
mod services_cmd;
mod shell_cmd;
mod signals;
mod status_cmd;
mod unlock_cmd;
mod view;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// Executions are JSON-tree work: see the workspace Cargo.toml and docs/asl.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Release orchestrator for AWS: catalog-driven, wave-by-wave releases",
    after_help = exit::HELP,
    disable_help_subcommand = true
)]
struct Cli {
    /// Log as JSON lines on stderr (the Lambda format) instead of plain text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Release a service: build, deploy wave by wave with bake and health checks, roll back on failure.
    Release(release_cmd::ReleaseArgs),
    /// What a release of a service would do, starting nothing: waves, freezes, rollback target,
    /// expected duration and cost.
    Plan(plan_cmd::PlanArgs),
    /// A service's recent releases, newest first.
    History(report_cmd::HistoryArgs),
    /// One release: waves, timeline and, on request, its execution history.
    Show(report_cmd::ShowArgs),
    /// CI builds of a service: durations, p50/p90, failure rate and flaky commits.
    Builds(builds_cmd::BuildsArgs),
    /// DORA figures of a service, team or repository: deployment frequency, lead time, change
    /// failure rate and time to restore, with their bands and a weekly trend.
    #[command(visible_alias = "metrics", after_help = dora_cmd::FIGURES)]
    Dora(dora_cmd::DoraArgs),
    /// The release dashboard: what is releasing now, each service's timeline, builds and DORA
    /// trends, teams and the organisation; served live on loopback or written as a static site.
    Dashboard(dashboard_cmd::DashboardArgs),
    /// Dashboards for the team's own monitoring: Baton's deploy markers over a service's graphs.
    #[command(subcommand)]
    Dashboards(dashboards_cmd::DashboardsCommand),
    /// A release's execution on AWS Step Functions: status, current state, stage and waves.
    Status(status_cmd::StatusArgs),
    /// Freeze windows in force at an instant (default now) and the next ones, per service.
    Freezes(freezes_cmd::FreezesArgs),
    /// Pick up a release whose local run was killed or interrupted: run it on, or --rollback.
    Resume(resume_cmd::ResumeArgs),
    /// Approve (or --reject) the wave a release waits on, saying why; recorded with who and where.
    Approve(approve_cmd::ApproveArgs),
    /// Cancel a release, saying why: a live local run stops and rolls back, a killed one is rolled back here.
    Cancel(cancel_cmd::CancelArgs),
    /// The catalog's services, each with its last local release, that release's state and the lock.
    Services(services_cmd::ServicesArgs),
    /// Free a service's release lock by hand (a release whose process died), saying why.
    Unlock(unlock_cmd::UnlockArgs),
    /// Run or validate Amazon States Language definitions on the embedded executor.
    #[command(subcommand)]
    Asl(asl_cmd::AslCommand),
    /// Validate a service catalog, or push it to Baton on AWS.
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCommand),
    /// Run the AWS stack's own function binaries on this machine, as Lambda would.
    #[command(subcommand)]
    Dev(dev_cmd::DevCommand),
    /// Print the help of baton or of a command (`baton help catalog validate`), as --help does.
    Help(shell_cmd::HelpArgs),
    /// Print a shell completion script: `baton completions bash > /etc/bash_completion.d/baton`.
    Completions(shell_cmd::CompletionsArgs),
    /// Print the baton(1) man page, or write one page per command with --out.
    Man(shell_cmd::ManArgs),
}

/// Who runs the command, as timelines record a person's act (`release`, `unlock`, `resume`,
/// `cancel`): the login name from the environment, else the account's name (`id -un`, which reads
/// the password database: a cron job or a container often sets no USER).
fn person() -> String {
    static PERSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PERSON
        .get_or_init(|| {
            let from_env =
                ["USER", "LOGNAME", "USERNAME"].iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
            from_env.or_else(account_name).unwrap_or_else(|| "someone".into())
        })
        .clone()
}

fn account_name() -> Option<String> {
    let output = std::process::Command::new("id").arg("-un").stdin(std::process::Stdio::null()).output().ok()?;
    let name = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !name.is_empty()).then_some(name)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    baton_logging::init_to(baton_logging::Format::from_env(cli.log_json), "warn", ansi, view::LogLines::default);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return failure::Failure::usage("cannot start the async runtime").caused_by(&err).report(),
    };
    // The one place a command's failure is printed.
    runtime.block_on(run(cli.command)).unwrap_or_else(failure::Failure::report)
}

async fn run(command: Command) -> failure::Outcome {
    match command {
        Command::Release(args) => release_cmd::run(args).await,
        Command::Plan(args) => plan_cmd::run(args).await,
        Command::History(args) => report_cmd::history(args).await,
        Command::Show(args) => report_cmd::show(args).await,
        Command::Builds(args) => builds_cmd::run(args).await,
        Command::Dora(args) => dora_cmd::run(args).await,
        Command::Freezes(args) => freezes_cmd::run(args).await,
        Command::Dashboard(args) => dashboard_cmd::run(args).await,
        Command::Dashboards(cmd) => dashboards_cmd::run(cmd).await,
        Command::Status(args) => status_cmd::run(args).await,
        Command::Resume(args) => resume_cmd::run(args).await,
        Command::Approve(args) => approve_cmd::run(args).await,
        Command::Cancel(args) => cancel_cmd::run(args).await,
        Command::Services(args) => services_cmd::run(args).await,
        Command::Unlock(args) => unlock_cmd::run(args).await,
        Command::Asl(cmd) => asl_cmd::run(cmd).await,
        Command::Catalog(cmd) => catalog_cmd::run(cmd).await,
        Command::Dev(cmd) => dev_cmd::run(cmd).await,
        Command::Help(args) => shell_cmd::help(args),
        Command::Completions(args) => shell_cmd::completions(args),
        Command::Man(args) => shell_cmd::man(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and every argument says what it is for: an empty line in `--help` is a
    /// question a person at 3 a.m. cannot ask anyone.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none_or(|about| about.to_string().trim().is_empty()) {
                    missing.push(format!("`{path}` has no description"));
                }
                walk(sub, &path, missing);
            }
            for arg in command.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                if arg.get_help().is_none_or(|help| help.to_string().trim().is_empty()) {
                    missing.push(format!("`{path}`: argument `{}` has no help", arg.get_id()));
                }
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "baton", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}

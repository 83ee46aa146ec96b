//! `baton asl run|validate`.
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AslCommand {}

pub async fn run(command: AslCommand) -> ExitCode {
    match command {}
}

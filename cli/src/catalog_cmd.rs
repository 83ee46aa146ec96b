//! `baton catalog validate`.
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum CatalogCommand {}

pub async fn run(command: CatalogCommand) -> ExitCode {
    match command {}
}

//! `baton catalog validate`.
use crate::exit;
use baton_core::catalog::{LoadedCatalog, load_catalog};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Check service definitions: Datadog's structure and every `extensions.baton` block.
    /// Exits 0 when valid, 1 when there are errors, 2 when the path cannot be read.
    Validate(ValidateArgs),
}

#[derive(Args)]
pub struct ValidateArgs {
    /// A catalog directory (searched recursively for *.yaml, *.yml and *.json) or one file.
    path: PathBuf,
    /// Print `{"services": [names], "errors": [diagnostics]}` instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: CatalogCommand) -> ExitCode {
    match command {
        CatalogCommand::Validate(args) => validate(&args),
    }
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let catalog = match load_catalog(&args.path) {
        Ok(catalog) => catalog,
        Err(err) => {
            eprintln!("baton: cannot read catalog {}: {err}", args.path.display());
            return exit::code(exit::USAGE);
        }
    };
    print!("{}", validation_report(&catalog, args.json));
    exit::code(if catalog.diagnostics().is_empty() { exit::OK } else { exit::FAILED })
}

/// One `file:line: path: message` line per problem and a summary, or the JSON form.
fn validation_report(catalog: &LoadedCatalog, json: bool) -> String {
    let names: Vec<&str> = catalog.services().iter().map(|s| s.name.as_str()).collect();
    let errors = catalog.diagnostics();
    if json {
        return serde_json::json!({ "services": names, "errors": errors }).to_string() + "\n";
    }
    let mut out: String = errors.iter().map(|d| format!("{d}\n")).collect();
    out += &format!("{}, {}\n", count(names.len(), "service"), count(errors.len(), "error"));
    out
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn repo(path: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
    }

    #[test]
    fn the_examples_report_no_errors() {
        let catalog = load_catalog(&repo("examples/catalog")).unwrap();
        assert_eq!(validation_report(&catalog, false), "2 services, 0 errors\n");
        assert_eq!(
            validation_report(&catalog, true),
            "{\"services\":[\"flaky-api\",\"hello-web\"],\"errors\":[]}\n"
        );
    }

    #[test]
    fn errors_print_as_file_line_path_message() {
        let path = repo("functions/core/tests/fixtures/catalog/invalid");
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
}

//! examples/catalog's hello-api, as examples/github-actions.sh runs it: `baton release` with its
//! build dispatched to github-stand-in (GitHub Actions' REST API on 127.0.0.1, running the
//! workflow as examples/services/hello-api/release.sh), through the real definition, handlers
//! and provider.
//!
//! The stand-in's binary is built by `cargo test --workspace` (its crate's own tests need it);
//! `CARGO_BIN_EXE_*` names only this crate's binaries, so it is found beside `baton`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const TOKEN: &str = "stand-in-token-e2e-7f3a";
const SHA: &str = "4f2a9c1e0b7d5a3c9e8f7a6b5c4d3e2f1a0b9c8d";
/// The stand-in's URL in the checked-in catalog, replaced by each test's own.
const CATALOG_API_URL: &str = "http://127.0.0.1:8714";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// A running github-stand-in; it exits when this is dropped (its stdin closes).
struct StandIn {
    child: Child,
    url: String,
    log: PathBuf,
}

impl StandIn {
    fn start(dir: &Path, env: &[(&str, &str)]) -> StandIn {
        let binary = Path::new(env!("CARGO_BIN_EXE_baton")).with_file_name("github-stand-in");
        assert!(
            binary.is_file(),
            "no {}: `cargo test --workspace` builds it; with --test, add `--test stand_in` (the stand-in's own tests)",
            binary.display()
        );
        let log = dir.join("stand-in.log");
        let mut child = Command::new(binary)
            .args(["--port", "0", "--repository", "acme/hello-api", "--exit-on-stdin-eof"])
            .args(["--workflow", "release.yml=examples/services/hello-api/release.sh"])
            .current_dir(repo())
            .env("GITHUB_STAND_IN_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start github-stand-in");
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
        let url = url.trim().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "the stand-in prints its URL first, got '{url}'");
        StandIn { child, url, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// examples/catalog's hello-api with the stand-in's URL and absolute working directories (the
/// copy lives outside the repository; `BATON_CATALOG_ROOT` admits them).
fn catalog(dir: &Path, stand_in: &StandIn) -> PathBuf {
    let original = std::fs::read_to_string(repo().join("examples/catalog/hello-api.yaml")).unwrap();
    assert!(original.contains(&format!("api-url: {CATALOG_API_URL}")), "hello-api's api-url is the stand-in's default");
    let services = format!("working-dir: {}/", repo().join("examples/services").display());
    let copy = original.replace(CATALOG_API_URL, &stand_in.url).replace("working-dir: ../services/", &services);
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::write(catalog.join("hello-api.yaml"), copy).unwrap();
    catalog
}

fn release(dir: &Path, stand_in: &StandIn) -> (Output, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "hello-api", "--no-wait", "--json", "--sha", SHA, "--catalog"])
        .arg(catalog(dir, stand_in))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("HELLO_API_GITHUB_TOKEN", TOKEN)
        .env("BATON_CATALOG_ROOT", repo().join("examples"))
        .output()
        .expect("run baton");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(TOKEN) && !String::from_utf8_lossy(&output.stderr).contains(TOKEN), "the token leaked");
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {stdout}\nstderr: {}\nstand-in: {}", String::from_utf8_lossy(&output.stderr), stand_in.log())
    });
    (output, summary)
}

fn wave_statuses(release: &Value) -> Vec<&str> {
    release["waves"].as_array().unwrap().iter().map(|w| w["status"].as_str().unwrap()).collect()
}

#[test]
fn hello_api_builds_on_the_github_stand_in_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = StandIn::start(dir.path(), &[]);
    let (output, summary) = release(dir.path(), &stand_in);
    let release = &summary["release"];
    assert_eq!(output.status.code(), Some(0), "{summary:#}\nstand-in: {}", stand_in.log());
    assert_eq!(release["status"], "succeeded");
    assert_eq!(wave_statuses(release), ["healthy", "healthy", "healthy"]);

    let run_page = format!("{}/acme/hello-api/actions/runs/1", stand_in.url);
    let build = &release["build"];
    assert_eq!(
        (&build["provider"], &build["run_id"], &build["url"], &build["status"]),
        (&Value::from("github-actions"), &Value::from("1"), &Value::from(run_page.as_str()), &Value::from("succeeded")),
        "{build:#}"
    );
    let artifact = &release["artifact"];
    assert_eq!(artifact["reference"], "ghcr.io/acme/hello-api:4f2a9c1", "named by the template from the run's head_sha");
    assert_eq!(artifact["build_url"], run_page.as_str());
    let deployed = dir.path().join("state/workspace/hello-api/targets/api-euw1-a/current");
    assert_eq!(std::fs::read_to_string(deployed).unwrap().trim(), "ghcr.io/acme/hello-api:4f2a9c1");

    // The dispatch's inputs reached the workflow's script.
    let log = stand_in.log();
    let id = release["id"].as_str().unwrap();
    assert!(log.contains(&format!("builds main@{SHA} (baton_sha '{SHA}') for release {id}")), "{log}");
    assert!(log.contains("run 1: completed, success"), "{log}");
}

#[test]
fn a_failed_workflow_fails_hello_api_before_any_wave() {
    let dir = tempfile::tempdir().unwrap();
    let stand_in = StandIn::start(dir.path(), &[("EXAMPLE_BUILD_FAILS", "1")]);
    let (output, summary) = release(dir.path(), &stand_in);
    let release = &summary["release"];
    assert_eq!(output.status.code(), Some(1), "{summary:#}\nstand-in: {}", stand_in.log());
    assert_eq!(release["status"], "failed");
    assert_eq!(release["failure"]["error"], "Baton.BuildFailed");
    let run_page = format!("{}/acme/hello-api/actions/runs/1", stand_in.url);
    let cause = release["failure"]["cause"].as_str().unwrap();
    assert!(cause.contains("conclusion 'failure'") && cause.contains(&run_page), "names the conclusion and the run: {cause}");
    assert_eq!((&release["build"]["status"], &release["build"]["url"]), (&Value::from("failed"), &Value::from(run_page.as_str())));
    assert_eq!(wave_statuses(release), ["pending", "pending", "pending"]);
    assert!(!dir.path().join("state/workspace/hello-api/targets").exists(), "nothing was deployed");
    assert!(stand_in.log().contains("failing on purpose"), "{}", stand_in.log());
}

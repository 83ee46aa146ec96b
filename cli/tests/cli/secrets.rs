//! Secrets never leave Baton: a failing build that prints its environment and a credentials
//! file holding one of the service's secrets, with known secret values in Baton's environment.
//! None of them may reach the logs, the errors, the record, the history, `show` or Slack.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const AWS_SECRET: &str = "aws-secret-9d2f1c77e0";
const OTHER_TOKEN: &str = "ghp_other-service-7c3a51";
const HOOK_PATH: &str = "/services/T0/B0/hook-secret-5b1e";

/// A Slack incoming webhook that keeps every body it is sent; with `echo`, it refuses each one
/// with an error page that repeats the request's path, as some proxies do.
fn slack_answering(echo: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{HOOK_PATH}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            }
            let answer = if echo {
                let page = format!("no such hook: POST {HOOK_PATH}");
                format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len())
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_owned()
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, bodies)
}

fn slack() -> (String, Arc<Mutex<Vec<String>>>) {
    slack_answering(false)
}

fn catalog(dir: &Path, webhook: &str) {
    catalog_passing(dir, webhook, "[]", "env; cat creds.txt; echo build failed >&2; exit 3\n");
}

/// The leaky service, whose build gets `pass_env` and runs `build`.
fn catalog_passing(dir: &Path, webhook: &str, pass_env: &str, build: &str) {
    std::fs::write(
        dir.join("leaky.yaml"),
        format!("schema-version: v2.2\ndd-service: leaky\nteam: web\nextensions:\n  baton:\n    environment: production\n    \
         release-branch: main\n    build:\n      provider: command\n      command: [\"sh\", \"build.sh\"]\n      pass-env: {pass_env}\n    deploy:\n      \
         provider: command\n      command: [\"true\"]\n      waves:\n        - name: all\n          targets: [box-1]\n    \
         health:\n      gates: [{{provider: command, command: [\"true\"]}}]\n    notify:\n      slack:\n        channel: \"#releases\"\n        webhook: env:LEAKY_SLACK_WEBHOOK\n"),
    )
    .unwrap();
    // A credentials file that happens to hold the service's Slack webhook, printed by a careless build.
    std::fs::write(dir.join("creds.txt"), format!("webhook={webhook}\n")).unwrap();
    std::fs::write(dir.join("build.sh"), build).unwrap();
}

fn baton(dir: &Path, webhook: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("LEAKY_SLACK_WEBHOOK", webhook)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .env("OTHER_SERVICE_TOKEN", OTHER_TOKEN)
        .env("BATON_LOG", "info,baton::command=debug")
        .output()
        .expect("run baton")
}

fn text(output: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn a_build_that_prints_its_environment_and_a_secret_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (webhook, slack_bodies) = slack();
    catalog(dir.path(), &webhook);
    let catalog_dir = dir.path().to_str().unwrap();

    let release = baton(dir.path(), &webhook, &["release", "leaky", "--no-wait", "--json", "--catalog", catalog_dir]);
    assert_eq!(release.status.code(), Some(1), "a failed build exits 1: {}", text(&release));
    let summary: serde_json::Value = serde_json::from_slice(&release.stdout).unwrap();
    let id = summary["release"]["id"].as_str().unwrap().to_owned();

    let outputs = [
        ("release", text(&release)),
        ("show --json", text(&baton(dir.path(), &webhook, &["show", &id, "--json"]))),
        ("show --history", text(&baton(dir.path(), &webhook, &["show", &id, "--history"]))),
        ("history --json", text(&baton(dir.path(), &webhook, &["history", "leaky", "--json"]))),
        ("slack", slack_bodies.lock().unwrap().join("\n")),
    ];
    for (place, output) in &outputs {
        for secret in [AWS_SECRET, OTHER_TOKEN, HOOK_PATH] {
            assert!(!output.contains(secret), "{secret} leaked into {place}:\n{output}");
        }
    }

    // The test could fail: the build's output did travel to each place, masked.
    let cause = summary["release"]["failure"]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("BATON_SERVICE=leaky") && cause.contains("webhook=***"), "{cause}");
    assert!(outputs[0].1.contains("webhook=***"), "the command's output is logged: {}", outputs[0].1);
    assert!(outputs[4].1.contains("leaky"), "Slack heard of the release: {}", outputs[4].1);
}

/// Every file under `dir` (records, journals, command status and output files), as text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push((path.display().to_string(), String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned()));
        }
    }
    files
}

/// The four ways out the first test does not take: output cut to its last 4 KiB through the
/// webhook, `status.json`'s last stdout line, values the build gets through `pass-env`, and a
/// webhook's error page that repeats the request's (secret) path.
#[test]
fn cut_output_status_files_pass_env_values_and_echoed_error_pages_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (webhook, _) = slack_answering(true);
    // The last line is the webhook then enough padding that the tail's 4 KiB start halfway
    // through the webhook; it is also the last stdout line.
    let build = "env\nurl=$(sed 's/^webhook=//' creds.txt)\nprintf 'webhook=%s' \"$url\"\n\
                 head -c $((4096 - ${#url} / 2)) /dev/zero | tr '\\0' p\necho\nexit 3\n";
    catalog_passing(dir.path(), &webhook, "[OTHER_SERVICE_TOKEN, AWS_SECRET_ACCESS_KEY]", build);
    let catalog_dir = dir.path().to_str().unwrap();

    let release = baton(dir.path(), &webhook, &["release", "leaky", "--no-wait", "--json", "--catalog", catalog_dir]);
    assert_eq!(release.status.code(), Some(1), "a failed build exits 1: {}", text(&release));
    let summary: serde_json::Value = serde_json::from_slice(&release.stdout).unwrap();
    let id = summary["release"]["id"].as_str().unwrap().to_owned();

    let mut outputs = vec![
        ("release".to_owned(), text(&release)),
        ("show --json".to_owned(), text(&baton(dir.path(), &webhook, &["show", &id, "--json"]))),
        ("show --history".to_owned(), text(&baton(dir.path(), &webhook, &["show", &id, "--history"]))),
    ];
    outputs.extend(files_under(&dir.path().join("state")));
    // Pieces of the webhook a cut could leave: its secret path's end, and its start.
    let webhook_start = &webhook[..webhook.len() / 2];
    for (place, output) in &outputs {
        for secret in [AWS_SECRET, OTHER_TOKEN, HOOK_PATH, &HOOK_PATH[HOOK_PATH.len() - 8..], webhook_start] {
            assert!(!output.contains(secret), "{secret} leaked into {place}:\n{output}");
        }
    }

    // The test could fail: each way out was taken.
    let said = &outputs[0].1;
    assert!(said.contains("OTHER_SERVICE_TOKEN=***") && said.contains("AWS_SECRET_ACCESS_KEY=***"), "pass-env reached the build: {said}");
    assert!(said.contains("no such hook: POST ***"), "the webhook's error page was printed: {said}");
    let cause = summary["release"]["failure"]["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("pppp"), "the cut line is the failure's last output: {cause}");
    let status = outputs.iter().find(|(place, _)| place.ends_with("status.json")).expect("the build's status.json");
    assert!(status.1.contains("last-stdout-line"), "{}", status.1);
}

//! `baton release --events-listen`: a local release receives the `webhook` deployer's callback on
//! loopback and moves on at once, where it would wait for its safety net; a forged callback is
//! refused and changes nothing; without the listener the same release polls.

use crate::support::baton_command;
use baton_providers::{CALLBACK_SIGNATURE_HEADER, callback_signature};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "hook-secret-41c9e07a";
/// The catalog's `events.safety-net`: a wait no event ends lasts this long.
const SAFETY_NET_SECONDS: u64 = 600;

/// One HTTP request as the stand-in read it.
struct Received {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received { method, path, body })
}

fn respond(mut stream: &TcpStream, status: &str, body: &Value) {
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// POSTs `body` to `url` (http://host:port/path) signed for `signed_path` under `secret`; the
/// answer's status and JSON body.
fn post_callback(url: &str, signed_path: &str, secret: &str, body: &Value) -> (u16, Value) {
    let rest = url.strip_prefix("http://").expect("a loopback callback URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let body = body.to_string();
    let signature = callback_signature(secret.as_bytes(), chrono::Utc::now().timestamp(), signed_path, body.as_bytes());
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{CALLBACK_SIGNATURE_HEADER}: {signature}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let json = answer.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok()).unwrap_or(Value::Null);
    (status, json)
}

/// What the stand-in saw and did.
#[derive(Default)]
struct Log {
    /// The `callback_url` each deploy request carried.
    callback_urls: Vec<Option<String>>,
    /// Each callback it sent: what, and the listener's answer.
    callbacks: Vec<(&'static str, u16, Value)>,
}

/// The team's deploy endpoint: starts run "7" for each target, answers `running` to the first
/// status poll and `succeeded` after. When the deploy request carries a `callback_url`, it calls
/// back after that first poll (the release has parked by then: the park records its waits, then
/// polls once): a forged callback, one signed for another release's URL, then the real one.
fn endpoint() -> (String, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/deploy", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        let mut callback_url = None;
        let mut finished = false;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = read_request(&stream) else { continue };
            match (request.method.as_str(), request.path.as_str()) {
                ("POST", "/deploy") => {
                    let sent: Value = serde_json::from_slice(&request.body).unwrap();
                    callback_url = sent["callback_url"].as_str().map(str::to_owned);
                    kept.lock().unwrap().callback_urls.push(callback_url.clone());
                    respond(&stream, "202 Accepted", &json!({"status_url": "/runs/7", "id": "7"}));
                }
                ("GET", "/runs/7") if finished => respond(&stream, "200 OK", &json!({"state": "succeeded"})),
                ("GET", "/runs/7") => {
                    respond(&stream, "200 OK", &json!({"state": "running"}));
                    drop(stream);
                    finished = true;
                    if let Some(url) = &callback_url {
                        call_back(url, &kept);
                    }
                }
                _ => respond(&stream, "404 Not Found", &json!({})),
            }
        }
    });
    (url, log)
}

fn call_back(url: &str, log: &Mutex<Log>) {
    let path = &url[url.find("/webhook/").unwrap()..];
    let release = path.split('/').nth(2).unwrap();
    let other = path.replace(release, "rel-another");
    let done = json!({"id": "7", "state": "succeeded"});
    let sent = [
        ("forged", post_callback(url, path, "not-the-secret", &done)),
        ("signed for another release's URL", post_callback(url, &other, SECRET, &done)),
        ("real", post_callback(url, path, SECRET, &done)),
    ];
    log.lock().unwrap().callbacks.extend(sent.into_iter().map(|(what, (status, body))| (what, status, body)));
}

fn catalog(dir: &Path, endpoint: &str) {
    std::fs::write(
        dir.join("hooked.yaml"),
        format!(
            "schema-version: v2.2\ndd-service: hooked\nteam: web\nextensions:\n  baton:\n    environment: production\n    \
             release-branch: main\n    build:\n      provider: command\n      command: [\"echo\", \"hooked@1\"]\n    deploy:\n      \
             provider: webhook\n      url: {endpoint}\n      secret: env:HOOK_SECRET\n      waves:\n        - name: all\n          \
             targets: [web-1]\n    health:\n      gates: [{{provider: command, command: [\"true\"]}}]\n    \
             events: {{wait: true, safety-net: {SAFETY_NET_SECONDS}s}}\n"
        ),
    )
    .unwrap();
}

/// `baton release hooked` with `extra`, stopped (and failed) if it runs into the safety net.
fn release(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["release", "hooked", "--no-wait", "--json"];
    args.extend_from_slice(extra);
    let mut child = baton_command(&dir.join("state"), dir, &args)
        .env("HOOK_SECRET", SECRET)
        .env("BATON_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run baton");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(SAFETY_NET_SECONDS - 60) {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("the release ran into its safety net:\n{}", String::from_utf8_lossy(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    child.wait_with_output().unwrap()
}

fn succeeded(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(summary["release"]["status"], "succeeded", "{summary}");
    summary
}

#[test]
fn a_listening_release_moves_on_at_the_webhook_callback_and_refuses_a_forged_one() {
    let dir = tempfile::tempdir().unwrap();
    let (url, log) = endpoint();
    catalog(dir.path(), &url);

    let output = release(dir.path(), &["--events-listen", "127.0.0.1:0"]);

    let summary = succeeded(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listening for provider callbacks on http://127.0.0.1:") && stderr.contains("(/webhook)"), "{stderr}");
    let log = log.lock().unwrap();
    let release = summary["release"]["id"].as_str().unwrap();
    let callback_url = log.callback_urls[0].as_deref().expect("the deploy request says where to call back");
    assert!(callback_url.starts_with("http://127.0.0.1:"), "{callback_url}");
    assert!(callback_url.ends_with(&format!("/webhook/{release}/web-1")), "the URL names the release and target: {callback_url}");
    let answers: Vec<(&str, u16)> = log.callbacks.iter().map(|(what, status, _)| (*what, *status)).collect();
    assert_eq!(answers, [("forged", 401), ("signed for another release's URL", 401), ("real", 202)]);
    assert_eq!(log.callbacks[2].2, json!({"resumed": 1, "ignored": 0}), "the refused callbacks left the wait for the real one");
}

#[test]
fn without_the_listener_the_same_release_polls() {
    let dir = tempfile::tempdir().unwrap();
    let (url, log) = endpoint();
    catalog(dir.path(), &url);

    succeeded(&release(dir.path(), &[]));

    let log = log.lock().unwrap();
    assert_eq!(log.callback_urls, [None], "no callback URL is handed out");
    assert!(log.callbacks.is_empty());
}

#[test]
fn the_listener_binds_a_free_loopback_port_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    catalog(dir.path(), "http://127.0.0.1:9/deploy");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let cases = [
        (vec!["--events-listen", taken.as_str()], vec![taken.as_str(), "in use"]),
        (vec!["--events-listen", "0.0.0.0:0"], vec!["0.0.0.0:0 is not a loopback address", "--events-listen-any-interface"]),
        (vec!["--events-listen", "127.0.0.1:0", "--events-url", "https://tunnel.example/baton"], vec!["--events-url", "no path"]),
    ];
    for (extra, expected) in cases {
        let output = release(dir.path(), &extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{extra:?}: {part}: {stderr}");
        }
    }
}

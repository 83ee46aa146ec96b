//! The local Lambda against a stand-in runtime: a shell script speaking the Runtime API with
//! curl, so each Lambda behaviour (warm reuse, environment, timeout, errors, init failure) is
//! checked without building the function binaries or any emulator.

use baton_local_stack::lambda::{LambdaFunction, SandboxSettings};
use baton_local_stack::template::FunctionSpec;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers by the event's `mode`: `echo` (its environment and headers), `sleep`, `fail`.
const RUNTIME: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
[ -n "$INIT_FAIL" ] && { curl -sS -X POST -d '{"errorType":"Runtime.InitTest","errorMessage":"no config"}' "$api/init/error" >/dev/null; exit 3; }
while :; do
  curl -sS -D headers -o event "$api/invocation/next" || exit 1
  header() { grep -i "^$1:" headers | cut -d' ' -f2 | tr -d '\r'; }
  id=$(header lambda-runtime-aws-request-id)
  case "$(cat event)" in
    *sleep*) sleep 30 ;;
    *fail*) curl -sS -X POST -H 'Lambda-Runtime-Function-Error-Type: Baton.Test' -d '{"errorType":"Baton.Test","errorMessage":"it broke"}' "$api/invocation/$id/error" >/dev/null ;;
    *) curl -sS -X POST -d "{\"pid\":$$,\"name\":\"$AWS_LAMBDA_FUNCTION_NAME\",\"memory\":\"$AWS_LAMBDA_FUNCTION_MEMORY_SIZE\",\"table\":\"$BATON_RELEASE_TABLE\",\"home\":\"${HOME:-}\",\"arn\":\"$(header lambda-runtime-invoked-function-arn)\",\"deadline\":\"$(header lambda-runtime-deadline-ms)\",\"id\":\"$id\"}" "$api/invocation/$id/response" >/dev/null ;;
  esac
done
"#;

const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:dev-FakeFunction";

fn function(dir: &Path, timeout: Duration, extra_env: &[(&str, &str)]) -> LambdaFunction {
    let script = dir.join("fake-runtime");
    std::fs::write(&script, RUNTIME).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut environment: BTreeMap<String, String> = extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    environment.insert("BATON_RELEASE_TABLE".into(), "dev-ReleaseTable".into());
    let spec = FunctionSpec {
        logical_id: "FakeFunction".into(),
        name: "dev-FakeFunction".into(),
        arn: ARN.into(),
        binary: "fake-runtime".into(),
        timeout,
        memory_mb: 256,
        environment,
        log_format: "JSON".into(),
        reserved_concurrency: None,
        alias: Some("live".into()),
    };
    let settings =
        SandboxSettings { binaries: dir.to_path_buf(), state_dir: dir.join("state"), region: "us-east-1".into(), passthrough: Vec::new() };
    LambdaFunction::new(spec, Arc::new(settings))
}

#[tokio::test]
async fn an_environment_stays_warm_and_sees_only_lambdas_variables() {
    let dir = tempfile::tempdir().unwrap();
    let function = function(dir.path(), Duration::from_secs(10), &[]);
    let started = Instant::now();
    let first = function.invoke(ARN, &json!({"mode": "echo"})).await.unwrap();
    let second = function.invoke(ARN, &json!({"mode": "echo"})).await.unwrap();
    function.shutdown();

    assert_eq!(first["pid"], second["pid"], "the second invocation reuses the warm process");
    assert_eq!(function.cold_starts(), 1);
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["name"], "dev-FakeFunction");
    assert_eq!(first["memory"], "256");
    assert_eq!(first["table"], "dev-ReleaseTable", "the template's variables are set");
    assert_eq!(first["home"], "", "the host's environment is not passed on");
    assert_eq!(first["arn"], ARN, "the ARN the caller invoked");
    let deadline: u128 = first["deadline"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    assert!(deadline > now && deadline <= now + 10_000, "deadline {deadline} is the hand-out time plus the timeout (now {now})");
    eprintln!("two invocations (one cold start) in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_function_past_its_timeout_is_killed_and_fails_as_sandbox_timedout() {
    let dir = tempfile::tempdir().unwrap();
    let function = function(dir.path(), Duration::from_secs(1), &[]);
    let first = function.invoke(ARN, &json!({"mode": "echo"})).await.unwrap();
    let started = Instant::now();
    let failure = function.invoke(ARN, &json!({"mode": "sleep"})).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "the timeout cut the wait: {:?}", started.elapsed());
    assert_eq!(failure.error, "Sandbox.Timedout");
    let cause: Value = serde_json::from_str(failure.cause.as_deref().unwrap()).unwrap();
    assert!(cause["errorMessage"].as_str().unwrap().contains("Task timed out after 1.00 seconds"), "{cause}");
    let pid = first["pid"].as_i64().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the timed-out environment's process is gone");

    let after = function.invoke(ARN, &json!({"mode": "echo"})).await.unwrap();
    function.shutdown();
    assert_ne!(after["pid"], first["pid"], "the next invocation starts a new environment");
    assert_eq!(function.cold_starts(), 2);
}

#[tokio::test]
async fn a_handler_error_is_the_task_failure_with_lambdas_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let function = function(dir.path(), Duration::from_secs(10), &[]);
    let failure = function.invoke(ARN, &json!({"mode": "fail"})).await.unwrap_err();
    let healthy = function.invoke(ARN, &json!({"mode": "echo"})).await;
    function.shutdown();
    assert_eq!(failure.error, "Baton.Test");
    assert_eq!(
        serde_json::from_str::<Value>(failure.cause.as_deref().unwrap()).unwrap(),
        json!({"errorType": "Baton.Test", "errorMessage": "it broke"})
    );
    assert!(healthy.is_ok(), "a handler error leaves the environment warm");
    assert_eq!(function.cold_starts(), 1);
}

#[tokio::test]
async fn an_init_failure_reports_the_error_the_runtime_posted() {
    let dir = tempfile::tempdir().unwrap();
    let function = function(dir.path(), Duration::from_secs(10), &[("INIT_FAIL", "1")]);
    let failure = function.invoke(ARN, &json!({"mode": "echo"})).await.unwrap_err();
    assert_eq!(failure.error, "Runtime.InitTest");
    assert!(failure.cause.unwrap().contains("no config"));
}

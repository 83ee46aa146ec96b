//! `baton asl run` as the conformance runner calls it: the input file is judged against AWS's
//! 256 KiB quota before it is parsed, and a file that is not JSON is named.

use std::process::Output;

use serde_json::Value;

fn asl_run(dir: &std::path::Path, input: &str) -> Output {
    let definition = dir.join("definition.json");
    std::fs::write(&definition, r#"{"StartAt":"Echo","States":{"Echo":{"Type":"Pass","End":true}}}"#).unwrap();
    let input_file = dir.join("input.json");
    std::fs::write(&input_file, input).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["asl", "run"])
        .arg(&definition)
        .arg("--input")
        .arg(&input_file)
        .output()
        .unwrap()
}

fn printed(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn an_input_that_fits_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = asl_run(dir.path(), r#"{"sha": "abc"}"#);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(printed(&out), serde_json::json!({"status": "SUCCEEDED", "output": {"sha": "abc"}}));
}

#[test]
fn an_input_of_megabytes_fails_the_execution_with_data_limit_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    // Well past what any escape could shrink back under the quota, so it is refused unparsed.
    let out = asl_run(dir.path(), &format!(r#"{{"blob": "{}"}}"#, "x".repeat(8 << 20)));
    assert_eq!(out.status.code(), Some(0), "the execution failed, the command did not: {}", String::from_utf8_lossy(&out.stderr));
    let printed = printed(&out);
    assert_eq!(printed["status"], "FAILED");
    assert_eq!(printed["error"], "States.DataLimitExceeded");
}

#[test]
fn an_input_just_over_the_quota_fails_the_same_way_once_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let out = asl_run(dir.path(), &format!(r#"{{"blob": "{}"}}"#, "x".repeat(262_144)));
    assert_eq!(printed(&out)["error"], "States.DataLimitExceeded");
}

#[test]
fn an_input_that_is_not_json_is_named_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = asl_run(dir.path(), "{not json");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("input.json") && stderr.contains("not valid JSON"), "{stderr}");
}

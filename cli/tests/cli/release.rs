//! The README's first command, as a user runs it: `baton release` on the bundled examples.

use crate::support::{baton_command, examples};
use std::path::Path;
use std::process::{Command, Output};

fn baton(state: &Path, args: &[&str]) -> Output {
    baton_command(state, &examples(), args).output().expect("run baton")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn the_example_service_releases_and_the_flaky_one_rolls_back() {
    let state = tempfile::tempdir().unwrap();
    let ok = baton(state.path(), &["release", "hello-web", "--no-wait", "--json"]);
    assert_eq!(ok.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&ok.stderr));
    let summary = json(&ok);
    assert_eq!(summary["release"]["status"], "succeeded");
    assert_eq!(summary["release"]["waves"].as_array().unwrap().len(), 3);

    let flaky = baton(state.path(), &["release", "flaky-api", "--no-wait", "--json"]);
    assert_eq!(flaky.status.code(), Some(1), "a rolled-back release exits 1");
    let summary = json(&flaky);
    assert_eq!(summary["release"]["status"], "rolled-back");
    let waves: Vec<(String, String)> = summary["release"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap().to_owned(), w["status"].as_str().unwrap().to_owned()))
        .collect();
    let expected =
        [("canary", "rolled-back"), ("one-region", "rolled-back"), ("rest", "pending")].map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(waves, expected);

    let id = summary["release"]["id"].as_str().unwrap();
    let show = Command::new(env!("CARGO_BIN_EXE_baton")).args(["show", id, "--history", "--state-dir"]).arg(state.path()).output().unwrap();
    assert_eq!(show.status.code(), Some(0));
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("rolled-back") && text.contains("RollbackWaves"), "{text}");

    let history = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["history", "flaky-api", "--json", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(json(&history).as_array().unwrap().len(), 1);

    // The DORA figures of what just ran: by service, by the catalog's team, and under the older name.
    let flaky = json(&baton(state.path(), &["dora", "--service", "flaky-api", "--since", "2w", "--json"]));
    assert_eq!((&flaky["deployments"], &flaky["failed_deployments"], &flaky["change_failure_rate"]), (&1.into(), &1.into(), &1.0.into()));
    assert_eq!((&flaky["days"], &flaky["bands"]["change_failure_rate"]), (&14.into(), &"low".into()));
    assert_eq!(flaky["weeks"].as_array().unwrap().iter().map(|w| w["deployments"].as_u64().unwrap()).sum::<u64>(), 1);
    let team = json(&baton(state.path(), &["dora", "--team", "web-platform", "--json"]));
    assert_eq!((&team["scope"], &team["services"]), (&"team".into(), &serde_json::json!(["hello-api", "hello-web"])));
    assert_eq!((&team["deployments"], &team["failed_deployments"], &team["change_failure_rate"]), (&1.into(), &0.into(), &0.0.into()));
    let metrics = json(&baton(state.path(), &["metrics", "hello-web", "--days", "7", "--json"]));
    assert_eq!((&metrics["deployments"], &metrics["days"]), (&1.into(), &7.into()));
    let nobody = baton(state.path(), &["dora", "--team", "nobody"]);
    assert_eq!(nobody.status.code(), Some(2), "a team with no service is a usage error");
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("team nobody"));
    // A service name nothing was released as is a typo, in every report as in `builds`.
    for report in ["history", "metrics", "dora", "builds"] {
        let typo = baton(state.path(), &[report, "hello-wbe"]);
        assert_eq!(typo.status.code(), Some(2), "{report}: {}", String::from_utf8_lossy(&typo.stderr));
        assert!(String::from_utf8_lossy(&typo.stderr).contains("no releases of hello-wbe"), "{report}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_baton")).args(["dora", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("a person's cancel") && help.contains("is no failure") && help.contains("to the millisecond"), "{help}");

    // History and builds take the same scopes: a team's releases, a repository's builds.
    let team_history = json(&baton(state.path(), &["history", "--team", "web-platform", "--json"]));
    let services: Vec<&str> = team_history.as_array().unwrap().iter().map(|r| r["service"].as_str().unwrap()).collect();
    assert_eq!(services, ["hello-web"], "flaky-api is another team's");
    let builds = json(&baton(state.path(), &["builds", "--repo", "acme/hello-web", "--json"]));
    assert_eq!(
        (&builds["scope"], &builds["services"], &builds["summary"]["builds"]),
        (&"repository".into(), &serde_json::json!(["hello-web"]), &1.into())
    );
    assert!(builds.get("service").is_none(), "a repository's report names no one service");
    let nobody = baton(state.path(), &["builds", "--repo", "acme/nothing"]);
    assert_eq!(nobody.status.code(), Some(2));
}

#[test]
fn services_names_the_entries_it_leaves_out_because_they_are_invalid() {
    let (state, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The examples' layout (catalog beside the scripts), rooted in the temporary directory.
    let catalog = root.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    let copied = Command::new("cp").arg("-r").arg(examples().join("../services")).arg(root.path()).status().unwrap();
    assert!(copied.success());
    let services = |args: &[&str]| baton_command(state.path(), &catalog, args).env("BATON_CATALOG_ROOT", root.path()).output().unwrap();
    let web = std::fs::read_to_string(examples().join("hello-web.yaml")).unwrap();
    let broken = web.replace("dd-service: hello-web", "dd-service: broken-web").replace("bake: ", "bake: whenever-");
    assert_ne!(broken, web.replace("dd-service: hello-web", "dd-service: broken-web"), "the example has a bake to break");
    std::fs::write(catalog.join("broken-web.yaml"), broken).unwrap();
    let only_invalid = services(&["services"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&only_invalid.stdout), String::from_utf8_lossy(&only_invalid.stderr));
    assert_eq!(only_invalid.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains("no services"), "an invalid entry is a service, not nothing: {stdout}");
    assert!(
        stderr.contains("1 service not listed") && stderr.contains("(broken-web)") && stderr.contains("baton catalog validate"),
        "{stderr}"
    );

    std::fs::write(catalog.join("hello-web.yaml"), &web).unwrap();
    let listed = services(&["services", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().iter().map(|row| row["service"].as_str().unwrap()).collect::<Vec<_>>(), ["hello-web"]);
    assert!(String::from_utf8_lossy(&listed.stderr).contains("(broken-web)"), "the JSON list keeps stdout clean and still says so");
}

#[test]
fn bad_usage_and_configuration_exit_2_with_a_reason() {
    let state = tempfile::tempdir().unwrap();
    let missing = baton(state.path(), &["release", "no-such-service", "--no-wait"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("'no-such-service' is not in the catalog"));

    let no_catalog = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "hello-web", "--catalog", "/nonexistent/catalog", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(no_catalog.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_catalog.stderr).contains("/nonexistent/catalog"));

    let bad_flag = Command::new(env!("CARGO_BIN_EXE_baton")).args(["release", "--no-such-flag"]).output().unwrap();
    assert_eq!(bad_flag.status.code(), Some(2));
}

#[test]
fn a_repeated_release_of_one_commit_starts_nothing_new_unless_forced() {
    let state = tempfile::tempdir().unwrap();
    let first = baton(state.path(), &["release", "hello-web", "--sha", "4f2a9c1e", "--no-wait", "--json"]);
    assert_eq!(first.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&first.stderr));
    let first_id = json(&first)["release"]["id"].clone();

    let again = baton(state.path(), &["release", "hello-web", "--sha", "4f2a9c1e", "--no-wait", "--json"]);
    assert_eq!(again.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(json(&again)["release"]["id"], first_id, "the same commit names the release already made");
    let shown = baton(state.path(), &["release", "hello-web", "--sha", "4f2a9c1e", "--no-wait"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.starts_with(&format!("this commit was released before: showing release {} (started ", first_id.as_str().unwrap()))
            && text.contains("`baton release hello-web --sha 4f2a9c1e --force` starts a new one"),
        "{text}"
    );

    let forced = baton(state.path(), &["release", "hello-web", "--sha", "4f2a9c1e", "--no-wait", "--json", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&forced.stderr));
    assert_ne!(json(&forced)["release"]["id"], first_id, "--force starts a new release");
}

#[test]
fn the_actor_is_the_accounts_name_when_the_environment_names_nobody() {
    let state = tempfile::tempdir().unwrap();
    let account = Command::new("id").arg("-un").output().unwrap();
    let account = String::from_utf8_lossy(&account.stdout).trim().to_owned();
    let mut release = baton_command(state.path(), &examples(), &["release", "hello-web", "--no-wait", "--json"]);
    let output = release.env_remove("USER").env_remove("LOGNAME").env_remove("USERNAME").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(json(&output)["release"]["trigger"]["actor"], account.as_str());
}

#[test]
fn status_reads_a_local_release_from_the_store_and_says_in_one_line_that_aws_has_no_credentials() {
    let state = tempfile::tempdir().unwrap();
    let release = baton(state.path(), &["release", "hello-web", "--no-wait", "--json"]);
    let id = json(&release)["release"]["id"].as_str().unwrap().to_owned();
    let home = tempfile::tempdir().unwrap();
    // Nothing of AWS in reach: no keys, no profile, no instance metadata.
    let without_aws = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command.args(args).arg("--state-dir").arg(state.path()).env("HOME", home.path()).env("AWS_EC2_METADATA_DISABLED", "true");
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "BATON_RELEASE_TABLE"] {
            command.env_remove(name);
        }
        command.output().unwrap()
    };
    let local = without_aws(&["status", &id]);
    assert_eq!(local.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&local.stderr));
    assert!(String::from_utf8_lossy(&local.stdout).contains(&format!("{id} hello-web → production: succeeded")));
    assert!(local.stderr.is_empty(), "no AWS call, no warning: {}", String::from_utf8_lossy(&local.stderr));
    let unknown = without_aws(&["status", "rel-nowhere-1"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("for one on AWS pass --table"));

    let remote = without_aws(&["status", "arn:aws:states:us-east-1:123456789012:execution:baton:web-1"]);
    let said = String::from_utf8_lossy(&remote.stderr);
    assert_eq!(remote.status.code(), Some(2), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(said.starts_with("baton: no AWS credentials (") && said.contains("set AWS_PROFILE"), "{said}");
}

#[test]
fn a_relative_state_directory_is_one_place_for_every_command() {
    let cwd = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "hello-web", "--no-wait", "--json", "--state-dir", "state", "--catalog"])
        .arg(&examples)
        .current_dir(cwd.path())
        .output()
        .expect("run baton");
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(cwd.path().join("state/workspace/hello-web/targets/web-use1-a/current").exists(), "the workspace is under ./state");
}

#[test]
fn the_lock_of_a_killed_release_is_freed_by_hand_with_a_reason() {
    let state = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    // Killed in the canary's 5 s bake: the record says running and the lock is held for its lease.
    let mut release = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "hello-web", "--json", "--catalog"])
        .arg(&examples)
        .arg("--state-dir")
        .arg(state.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start baton release");
    let started = std::time::Instant::now();
    // Empty until the release has written its store.
    let history = || {
        let output =
            Command::new(env!("CARGO_BIN_EXE_baton")).args(["history", "hello-web", "--json", "--state-dir"]).arg(state.path()).output();
        serde_json::from_slice::<serde_json::Value>(&output.unwrap().stdout).unwrap_or_default()
    };
    while history()[0]["waves"][0]["status"] != "baking" {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the canary never baked: {}", history());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    release.kill().unwrap();
    release.wait().unwrap();
    let killed = history()[0].clone();
    assert_eq!(killed["status"], "running");

    // Past the silence after which a run's owner counts as gone (RUN_SILENT_AFTER, 3 s).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let id = killed["id"].as_str().unwrap();
    let listed = String::from_utf8_lossy(&baton(state.path(), &["history", "hello-web"]).stdout).into_owned();
    let line = listed.lines().find(|line| line.ends_with(id)).unwrap_or_default();
    assert!(line.contains("interrupted (process gone)"), "history does not call a dead release running: {listed}");
    assert_eq!(history()[0]["shown_status"], "interrupted (process gone)", "nor does its JSON");
    let services = String::from_utf8_lossy(&baton(state.path(), &["services"]).stdout).into_owned();
    let line = services.lines().find(|line| line.starts_with("hello-web ")).unwrap_or_default();
    assert!(
        line.contains("web-platform  interrupted (process gone)") && line.contains(&format!("{id}  locked by {id} until ")),
        "services lists the stuck release and its lock: {services}"
    );
    assert!(
        services.lines().any(|line| line.starts_with("flaky-api ") && line.contains("never released") && line.ends_with("lock free")),
        "{services}"
    );
    let shown = Command::new(env!("CARGO_BIN_EXE_baton")).args(["show", id, "--state-dir"]).arg(state.path()).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains("hello-web → production: interrupted (process gone)")
            && shown.contains("  left      the release lock of hello-web [production]")
            && shown.contains(&format!("  next      `baton resume {id}` runs it on, `baton resume {id} --rollback` rolls it back"))
            && shown
                .contains("  team      web-platform (on-call web-platform-primary)\n  runbook   https://example.com/runbooks/hello-web\n"),
        "show says the process is gone, what is left and what to run next: {shown}"
    );
    let unlock = |reason: &str| baton(state.path(), &["unlock", "hello-web", "--reason", reason, "--json"]);
    let freed = unlock("the release process was killed");
    assert_eq!(freed.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&freed.stderr));
    assert_eq!(json(&freed)["holder"], killed["id"]);
    let next = json(&freed)["holder_next"].as_str().unwrap_or_default().to_owned();
    let id = killed["id"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{id} is running and no process runs it: the next `baton release hello-web` supersedes it"))
            && next.contains(&format!("`baton resume {id}` runs it on")),
        "unlock says what becomes of the release that held the lock: {next}"
    );
    let again = unlock("twice");
    assert_eq!((again.status.code(), json(&again)["freed"].clone()), (Some(1), serde_json::Value::Bool(false)), "nothing left to free");
    let empty = unlock(" ");
    assert_eq!(empty.status.code(), Some(2), "a reason is required");

    let show = Command::new(env!("CARGO_BIN_EXE_baton")).args(["show", id, "--json", "--state-dir"]).arg(state.path()).output().unwrap();
    let events = json(&show)["events"].clone();
    let unlocked: Vec<&serde_json::Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "unlocked").collect();
    assert_eq!(unlocked.len(), 1, "{events}");
    assert!(unlocked[0]["message"].as_str().unwrap().ends_with("released the lock by hand: the release process was killed"), "{events}");

    // The next release runs at once instead of waiting out the lease, once it has rolled the
    // killed one back (superseded it).
    let next = baton(state.path(), &["release", "hello-web", "--no-wait", "--force", "--json"]);
    assert_eq!(next.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&next.stderr));
    let show = Command::new(env!("CARGO_BIN_EXE_baton")).args(["show", id, "--json", "--state-dir"]).arg(state.path()).output().unwrap();
    assert_eq!(json(&show)["release"]["status"], "cancelled", "the killed release was superseded: rolled back, not shipped");
}

#[test]
fn builds_reports_a_commit_that_failed_then_passed_as_flaky() {
    let state = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    let release = |fail: bool, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command.args(["release", "hello-web", "--sha", "4f2a9c1e", "--no-wait", "--json", "--catalog"]).arg(&examples);
        command.arg("--state-dir").arg(state.path()).args(extra);
        if fail {
            command.env("EXAMPLE_BUILD_FAILS", "1");
        }
        command.output().expect("run baton")
    };
    let failed = release(true, &[]);
    assert_eq!(failed.status.code(), Some(1), "a failed build fails the release: {}", String::from_utf8_lossy(&failed.stderr));
    let failed_id = json(&failed)["release"]["id"].clone();
    let passed = release(false, &["--force"]);
    assert_eq!(passed.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&passed.stderr));
    let passed_id = json(&passed)["release"]["id"].clone();

    let builds =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_baton")).args(args).arg("--state-dir").arg(state.path()).output().unwrap();
    let report = builds(&["builds", "hello-web", "--json"]);
    assert_eq!(report.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&report.stderr));
    let report = json(&report);
    let rows = report["builds"].as_array().unwrap();
    let seen: Vec<(&serde_json::Value, &str, &str, u64)> = rows
        .iter()
        .map(|b| (&b["release_id"], b["status"].as_str().unwrap(), b["sha"].as_str().unwrap(), b["attempts"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, vec![(&passed_id, "succeeded", "4f2a9c1e", 1), (&failed_id, "failed", "4f2a9c1e", 1)], "newest first: {report}");
    for row in rows {
        // A command build says when it was spawned: durations run from there, the queue is apart.
        assert_eq!((row["provider"].as_str(), row["measured_from"].as_str()), (Some("command"), Some("started")), "{row}");
        assert!(row["duration_seconds"].is_u64() && row["queue_seconds"].is_u64() && row["finished_at"].is_string(), "{row}");
    }
    assert!(rows[1]["reason"].as_str().unwrap().contains("failing on purpose"), "{report}");
    assert_eq!(
        (report["service"].as_str(), report["days"].as_u64(), &report["environment"]),
        (Some("hello-web"), Some(30), &serde_json::Value::Null)
    );
    let summary = &report["summary"];
    assert_eq!((summary["builds"].as_u64(), summary["failure_rate"].as_f64()), (Some(2), Some(0.5)), "{summary}");
    assert_eq!(
        report["flaky"],
        serde_json::json!([{"service": "hello-web", "sha": "4f2a9c1e", "failed": [failed_id], "passed": passed_id}])
    );

    let text = builds(&["builds", "hello-web", "--environment", "production"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("2 builds: 1 succeeded, 1 failed") && text.contains("flaky: 4f2a9c1e failed in"), "{text}");

    let unknown = builds(&["builds", "no-such-service"]);
    assert_eq!(unknown.status.code(), Some(2), "an unknown service is bad usage");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no releases of no-such-service"));
    let other_environment = builds(&["builds", "hello-web", "--environment", "staging", "--json"]);
    assert_eq!(other_environment.status.code(), Some(2), "nothing ever released there");
}

#[test]
fn a_branch_is_a_git_ref_name_and_one_the_catalog_names_unless_overridden() {
    let state = tempfile::tempdir().unwrap();
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    for (branch, reason) in [
        ("main..next", "contains '..'"),
        ("-x", "begins with '-'"),
        ("a b", "contains ' '"),
        ("topic.lock", "has the component 'topic.lock' ending with '.lock'"),
    ] {
        // `=`: clap would take a leading '-' for a flag.
        let bad = baton(state.path(), &["release", "hello-web", "--no-wait", &format!("--branch={branch}"), "--allow-any-branch"]);
        assert_eq!(bad.status.code(), Some(2), "{branch}: {}", stderr(&bad));
        let text = stderr(&bad);
        assert!(text.contains(&format!("--branch '{branch}' is not a git branch name: it {reason}")), "{branch}: {text}");
    }

    // hello-web releases `main` only.
    let outside = baton(state.path(), &["release", "hello-web", "--no-wait", "--branch", "topic"]);
    assert_eq!(outside.status.code(), Some(2), "{}", stderr(&outside));
    let text = stderr(&outside);
    assert!(text.contains("branch 'topic' is not a branch 'hello-web' releases: its release branch is 'main'"), "{text}");
    assert!(text.contains("--allow-any-branch"), "names the way out: {text}");

    let overridden = baton(state.path(), &["release", "hello-web", "--no-wait", "--json", "--branch", "topic", "--allow-any-branch"]);
    assert_eq!(overridden.status.code(), Some(0), "{}", stderr(&overridden));
    let release = json(&overridden)["release"].clone();
    assert_eq!((release["branch"].as_str(), release["trigger"]["branch_override"].as_bool()), (Some("topic"), Some(true)));
    let show = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["show", release["id"].as_str().unwrap(), "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("branch    topic") && text.contains("released with --allow-any-branch"), "{text}");

    // The release branch needs no override, and records none.
    let main = baton(state.path(), &["release", "hello-web", "--no-wait", "--json", "--branch", "main", "--allow-any-branch"]);
    assert_eq!(main.status.code(), Some(0), "{}", stderr(&main));
    assert_eq!(json(&main)["release"]["trigger"].get("branch_override"), None);
}

/// The store's view of hello-web's releases in `state`, newest first.
fn history(state: &Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_baton")).args(["history", "hello-web", "--json", "--state-dir"]).arg(state).output();
    serde_json::from_slice(&output.expect("run baton history").stdout).unwrap_or_default()
}

fn spawn_release(state: &Path, extra: &[&str]) -> std::process::Child {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "hello-web", "--no-wait"])
        .args(extra)
        .arg("--catalog")
        .arg(&examples)
        .arg("--state-dir")
        .arg(state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start baton release")
}

/// Whether hello-web's lock is free: `baton unlock` frees nothing (exit 1) when none is held.
fn lock_is_free(state: &Path) -> bool {
    let unlock = baton(state, &["unlock", "hello-web", "--reason", "checking the lock", "--json"]);
    unlock.status.code() == Some(1)
}

#[test]
fn a_second_no_wait_release_waits_for_the_lock_and_then_runs() {
    let state = tempfile::tempdir().unwrap();
    let first = spawn_release(state.path(), &["--json"]);
    let started = std::time::Instant::now();
    while history(state.path())[0]["status"] != "running" {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the first release never ran: {}", history(state.path()));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = spawn_release(state.path(), &["--json"]);
    let (first, second) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    for output in [&first, &second] {
        assert_eq!(output.status.code(), Some(0), "both ship, one after the other: {}", String::from_utf8_lossy(&output.stderr));
    }
    let (first, second) = (json(&first)["release"].clone(), json(&second)["release"].clone());
    assert_eq!((first["status"].as_str(), second["status"].as_str()), (Some("succeeded"), Some("succeeded")));
    let time = |value: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap();
    assert!(time(&second["started_at"]) >= time(&first["finished_at"]), "the second ran after the first: {first} {second}");
    assert!(second["heartbeat_at"].is_string(), "the second waited for the lock, trying for it: {second}");
    assert!(lock_is_free(state.path()));
}

#[test]
fn a_release_whose_output_pipes_are_closed_still_ends_and_exits_with_its_code() {
    let state = tempfile::tempdir().unwrap();
    // Like `baton release ... | head -1`: the readers go away before the first line.
    let mut release = spawn_release(state.path(), &[]);
    drop(release.stdout.take());
    drop(release.stderr.take());
    let status = release.wait().expect("wait for baton release");
    assert_eq!(status.code(), Some(0), "the release's own exit code, not a panic's");
    let record = history(state.path())[0].clone();
    assert_eq!((record["status"].as_str(), record["finished_at"].is_string()), (Some("succeeded"), true), "{record}");
    assert!(lock_is_free(state.path()), "the lock was given back");
}

/// A service whose build waits while the file `$HOLD` exists, so that a test can keep it running.
const HELD_BUILD: &str = r#"schema-version: v2.2
dd-service: held-api
team: payments
extensions:
  baton:
    environment: production
    release-branch: main
    build:
      provider: command
      command: ["sh", "-c", "while [ -e \"$HOLD\" ]; do sleep 0.05; done; echo held-api-$BATON_RELEASE_ID.tar.gz"]
      env: {HOLD: "HOLD_PATH"}
    deploy:
      provider: command
      command: ["true"]
      waves:
        - {name: all, targets: [a], bake: 0s}
    health:
      gates:
        - {provider: command, command: ["true"]}
"#;

#[test]
fn of_two_waiting_releases_the_older_is_superseded_and_exits_4() {
    let state = tempfile::tempdir().unwrap();
    let catalog = tempfile::tempdir().unwrap();
    let hold = catalog.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    std::fs::write(catalog.path().join("held-api.yaml"), HELD_BUILD.replace("HOLD_PATH", &hold.display().to_string())).unwrap();
    let start = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
        command.args(["release", "held-api", "--no-wait", "--catalog"]).arg(catalog.path()).arg("--state-dir").arg(state.path());
        if json {
            command.arg("--json");
        }
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("start baton release")
    };
    let statuses = || {
        let output =
            Command::new(env!("CARGO_BIN_EXE_baton")).args(["history", "held-api", "--json", "--state-dir"]).arg(state.path()).output();
        let history: serde_json::Value = serde_json::from_slice(&output.expect("run baton history").stdout).unwrap_or_default();
        history
            .as_array()
            .map(|h| h.iter().map(|r| r["status"].as_str().unwrap_or_default().to_owned()).collect::<Vec<String>>())
            .unwrap_or_default()
    };
    let wait_for = |expected: &[&str]| {
        let started = std::time::Instant::now();
        while statuses() != expected {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "never reached {expected:?}: {:?}", statuses());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let running = start(true);
    wait_for(&["running"]);
    let older = start(false);
    wait_for(&["queued", "running"]);
    let newer = start(true);
    wait_for(&["queued", "queued", "running"]);
    std::fs::remove_file(&hold).unwrap();

    let (running, older, newer) =
        (running.wait_with_output().unwrap(), older.wait_with_output().unwrap(), newer.wait_with_output().unwrap());
    assert_eq!(running.status.code(), Some(0), "{}", String::from_utf8_lossy(&running.stderr));
    assert_eq!(newer.status.code(), Some(0), "the newest signal ships: {}", String::from_utf8_lossy(&newer.stderr));
    assert_eq!(older.status.code(), Some(4), "the superseded release says it did not ship: {}", String::from_utf8_lossy(&older.stderr));
    let newer_id = json(&newer)["release"]["id"].as_str().unwrap().to_owned();
    let text = String::from_utf8_lossy(&older.stdout);
    assert!(text.contains("superseded") && text.contains(&format!("superseded by the newer release {newer_id}")), "{text}");
}

/// A service whose second wave fails to deploy and whose rollback fails on one canary target.
pub(crate) const ROLLBACK_FAILS: &str = r#"schema-version: v2.2
dd-service: stuck-api
team: payments
extensions:
  baton:
    environment: production
    release-branch: main
    build:
      provider: command
      command: ["sh", "-c", "echo stuck-api-$BATON_RELEASE_ID.tar.gz"]
    deploy:
      provider: command
      command:
        - sh
        - -c
        - |
          if [ "$BATON_ROLLBACK" = true ] && [ "$BATON_TARGET" = canary-b ]; then echo "access denied on canary-b" >&2; exit 4; fi
          if [ "$BATON_ROLLBACK" = false ] && [ "$BATON_WAVE" = rest ]; then echo "image pull failed" >&2; exit 1; fi
          exit 0
      waves:
        - {name: canary, targets: [canary-a, canary-b], bake: 0s}
        - {name: rest, targets: [rest-a], bake: 0s}
    health:
      gates:
        - {provider: command, command: ["true"]}
"#;

#[test]
fn a_rollback_that_fails_on_one_target_exits_3() {
    let state = tempfile::tempdir().unwrap();
    let catalog = tempfile::tempdir().unwrap();
    std::fs::write(catalog.path().join("stuck-api.yaml"), ROLLBACK_FAILS).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "stuck-api", "--no-wait", "--json", "--catalog"])
        .arg(catalog.path())
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run baton");
    assert_eq!(output.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let release = json(&output)["release"].clone();
    assert_eq!(release["status"], "rollback-failed", "{release}");
    let canary = &release["waves"][0];
    let rollbacks: Vec<(&str, &str)> = canary["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["rollback"] == true)
        .map(|d| (d["target"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(rollbacks.len(), 2, "both canary targets were rolled back, the refused one too: {canary}");
    assert!(rollbacks.contains(&("canary-a", "succeeded")) && rollbacks.contains(&("canary-b", "failed")), "{rollbacks:?}");

    // The screen names the target left on the new artifact and the command that puts it right.
    let id = release["id"].as_str().unwrap();
    let artifact = release["artifact"]["reference"].as_str().unwrap();
    let shown = Command::new(env!("CARGO_BIN_EXE_baton")).args(["show", id, "--state-dir"]).arg(state.path()).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("  left      canary-b (wave canary) on {artifact}: a mixed fleet; the lock is free")),
        "only canary-b was not put back: {shown}"
    );
    assert!(
        shown.contains(&format!("  next      put {} back on them", release["previous_artifact"]["reference"].as_str().unwrap_or("?")))
            || shown.contains("  next      no previous artifact is recorded"),
        "{shown}"
    );

    // The next release of the service warns of the mixed fleet before it starts.
    let next = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["release", "stuck-api", "--no-wait", "--catalog"])
        .arg(catalog.path())
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run baton");
    let warned = String::from_utf8_lossy(&next.stderr);
    assert!(
        warned.contains(&format!(
            "baton: warning: a mixed fleet: stuck-api's last release {id} ended rollback-failed and left canary-b (wave canary) on {artifact}"
        )),
        "{warned}"
    );
}

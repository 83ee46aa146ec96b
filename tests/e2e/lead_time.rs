//! Lead time per commit on the embedded executor: the service's command build runs in a git
//! checkout, and each successful release carries the commits since the previous deployment's,
//! read with `git` by record-metrics.

use baton_asl::ExecutionStatus;
use baton_domain::release::{Change, EventKind};
use baton_e2e::*;
use std::path::Path;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=Ann", "-c", "user.email=ann@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A new empty commit on what is checked out; its id.
fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn input(trigger: &str, sha: &str) -> serde_json::Value {
    serde_json::json!({"service": SERVICE, "sha": sha, "trigger": {"kind": "cli", "id": trigger, "actor": "test"}})
}

#[tokio::test]
async fn each_release_carries_the_commits_since_the_previous_deployment() {
    let fixture = Fixture::new();
    fixture.write_catalog(SERVICE, "");
    // The checkout holds the catalog, where the build runs.
    let checkout = fixture.dir.path();
    git(checkout, &["init", "-q", "-b", "main"]);
    let first = commit(checkout, "first");
    let baton = fixture.baton();

    // The first deployment counts its own commit, and says why.
    assert_status(&baton.run("exec-1", input("cli-1", &first)).await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-1").await;
    let changes = release.changes.clone().expect("a successful deployment records what it carried");
    assert_eq!((changes.since.as_deref(), changes.commits.len()), (None, 1));
    assert!(changes.fallback.as_deref().is_some_and(|why| why.contains("first deployment")), "{changes:?}");

    // Two commits later: both, each with its own time.
    let second = commit(checkout, "second");
    let third = commit(checkout, "third");
    assert_status(&baton.run("exec-2", input("cli-2", &third)).await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-2").await;
    let changes = release.changes.clone().expect("carried");
    let shas: Vec<&str> = changes.commits.iter().map(|c: &Change| c.sha.as_str()).collect();
    assert_eq!((changes.since.as_deref(), shas, changes.fallback), (Some(first.as_str()), vec![second.as_str(), third.as_str()], None));
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let carried: Vec<&str> = events.iter().filter(|e| e.kind == EventKind::Carried).map(|e| e.message.as_str()).collect();
    assert_eq!(carried, [format!("2 commits since {}, each a lead time", &first[..12])]);
    assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Succeeded), "the ending stays last");

    // A force push: the branch restarts from the first commit; the third is in no history of the new head.
    git(checkout, &["reset", "-q", "--hard", &first]);
    let rewritten = commit(checkout, "rewritten");
    assert_status(&baton.run("exec-3", input("cli-3", &rewritten)).await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-3").await;
    let changes = release.changes.clone().expect("carried");
    assert_eq!(changes.commits.iter().map(|c| c.sha.as_str()).collect::<Vec<_>>(), [rewritten.as_str()]);
    assert!(changes.fallback.as_deref().is_some_and(|why| why.contains("force push")), "{changes:?}");
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::Carried && e.message.contains("force push")), "{events:#?}");

    // One lead time per commit: 1 + 2 + 1.
    let day = release.finished_at.unwrap().date_naive();
    let rollups = baton.ports().store.rollups(SERVICE, ENVIRONMENT, day, day).await.unwrap();
    let samples: u64 = rollups.iter().map(|(_, rollup)| rollup.lead_time_samples).sum();
    assert_eq!(samples, 4);
}

#[tokio::test]
async fn a_history_that_cannot_be_read_never_fails_a_release() {
    // No checkout: git has no history to read where the build runs.
    let fixture = Fixture::new();
    fixture.write_catalog(SERVICE, "");
    let baton = fixture.baton();
    for (execution, sha) in [("exec-1", "4f2a9c1e"), ("exec-2", "5e3b0d2f")] {
        assert_status(&baton.run(execution, input(execution, sha)).await, ExecutionStatus::Succeeded);
    }
    let release = release_of(&baton, "exec-2").await;
    let changes = release.changes.clone().expect("carried");
    let why = changes.fallback.as_deref().unwrap_or_default();
    assert!(why.contains("could not compare 4f2a9c1e...5e3b0d2f") && why.contains("only its own commit counts"), "{why}");
    // Its own commit's time is unknown too, and the CLI signal carried none: nothing measured.
    assert!(changes.commits.is_empty(), "{changes:?}");
    assert_consistent(&baton, &release).await;
}

//! `baton cancel --remote` on the stack: the request on the release record stops the running
//! execution at its next task, which rolls the release back, notifies and unlocks, through the
//! function binaries and within their IAM policies.

use super::stack::{repo, signal, stack_of};
use baton_asl::ExecutionStatus;
use baton_aws::DynamoStore;
use baton_domain::error::ErrorName;
use baton_domain::ports::{Clock, ReleaseStore, SystemClock};
use baton_domain::release::{EventKind, LockKey, Release, ReleaseStatus, WaveStatus};
use baton_domain::support::{CancelAsked, ask_to_cancel};
use baton_local_stack::iam;
use std::path::Path;
use std::time::{Duration, Instant};

/// `service`, whose second wave's deploy holds until `gate` exists, so the test can act on the
/// release while that wave rolls out. Each test names its own service: the command provider's
/// workspaces and runs are per service, and the tests run at once.
pub(super) fn catalog(dir: &Path, gate: &Path, service: &str) -> std::path::PathBuf {
    // Working directories stay inside the catalog's: the example's scripts are copied there.
    let scripts = dir.join("svc");
    std::fs::create_dir_all(&scripts).unwrap();
    for script in ["build.sh", "deploy.sh", "health.sh"] {
        std::fs::copy(repo("examples/services/common").join(script), scripts.join(script)).unwrap();
    }
    std::fs::write(
        scripts.join("deploy-held.sh"),
        format!(
            "#!/bin/sh\nif [ \"$BATON_WAVE\" = second ] && [ \"${{BATON_ROLLBACK:-false}}\" != true ]; then\n  \
             while [ ! -f '{gate}' ]; do sleep 0.1; done\nfi\nexec sh deploy.sh\n",
            gate = gate.display()
        ),
    )
    .unwrap();
    let entry = r#"schema-version: v2.2
dd-service: SERVICE
team: web-platform
extensions:
  baton:
    environment: production
    release-branch: main
    build:
      provider: command
      command: ["sh", "build.sh"]
      working-dir: svc
      timeout: 2m
    deploy:
      provider: command
      command: ["sh", "deploy-held.sh"]
      working-dir: svc
      timeout: 1m
      waves:
        - name: first
          targets: [held-a]
          bake: 5s
        - name: second
          targets: [held-b]
          bake: 5s
    health:
      interval: 2s
      gates:
        - provider: command
          command: ["sh", "health.sh"]
          working-dir: svc
          timeout: 30s
"#;
    let path = dir.join(format!("{service}.yaml"));
    std::fs::write(&path, entry.replace("SERVICE", service)).unwrap();
    path
}

/// The newest release of `service`, once its second wave has begun.
async fn second_wave_begun(store: &DynamoStore, service: &str) -> Release {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let newest = store.list_releases(service, None, 1).await.unwrap().into_iter().next();
        assert!(Instant::now() < deadline, "the second wave never began: {newest:#?}");
        if let Some(release) = newest.filter(|r| r.waves.get(1).is_some_and(|w| w.started_at.is_some())) {
            return release;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_remote_rolls_the_running_release_back_unlocks_and_closes_it_as_cancelled() {
    let state = tempfile::tempdir().unwrap();
    let gate = state.path().join("let-the-second-wave-finish");
    let catalog = catalog(state.path(), &gate, "held-web");
    let stack = stack_of(state.path(), catalog).await;
    let store = stack.release_store().unwrap();

    let cancel = async {
        // The second wave has begun (its deploy holds): cancel, then let its deploy end.
        let release = second_wave_begun(&store, "held-web").await;
        let asked = ask_to_cancel(&store, &release.id, "ann", "wrong commit", SystemClock.now()).await.unwrap();
        assert!(matches!(asked, CancelAsked::Asked(_)), "{asked:?}");
        std::fs::write(&gate, "").unwrap();
        release.id
    };
    let (outcome, id) = tokio::join!(stack.run("held-web", signal("held-web")), cancel);

    let release = store.get_release(&id).await.unwrap().expect("the release is in the release table");
    eprintln!("held-web: {:?} {:?}: {:?}", outcome.status, outcome.error, release.failure);
    assert_eq!(release.status, ReleaseStatus::Cancelled, "{:?}", release.failure);
    let failure = release.failure.as_ref().expect("the record says why it stopped");
    assert_eq!(failure.error, ErrorName::Interrupted.as_str());
    assert!(failure.cause.contains("ann cancelled the release: wrong commit"), "{}", failure.cause);
    assert!(release.waves.iter().all(|w| w.status == WaveStatus::RolledBack), "every wave that began is rolled back: {:?}", release.waves);
    let events = store.events(&id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::Cancelled && e.message == "ann cancelled the release: wrong commit"), "{events:?}");
    let lock = store.lock_holder(&LockKey::new("held-web", "production"), SystemClock.now()).await.unwrap();
    assert_eq!(lock, None, "the cancelled release freed its lock");
    // Cancelled by a person and rolled back cleanly: an outcome, not a fault (no failed-execution alarm).
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    let named = |pointer: &str| outcome.output.as_ref().and_then(|o| o.pointer(pointer)).and_then(|v| v.as_str());
    assert_eq!((named("/outcome/status"), named("/outcome/error/Error")), (Some("cancelled"), Some(ErrorName::Interrupted.as_str())));

    let reports = stack.iam_reports().unwrap();
    let text = iam::render(&reports);
    assert!(reports.values().all(|r| r.denied.is_empty()), "operations the template's policies do not allow:\n{text}");
    stack.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_execution_is_closed_by_the_next_release_of_the_service() {
    let state = tempfile::tempdir().unwrap();
    let gate = state.path().join("let-the-second-wave-finish");
    let catalog = catalog(state.path(), &gate, "stopped-web");
    let stack = stack_of(state.path(), catalog).await;
    let store = stack.release_store().unwrap();

    // What the docs say never to do: StopExecution mid-wave. No task runs after it.
    let execution = stack.start("stopped-web-stopped", signal("stopped-web"));
    let stopped = second_wave_begun(&store, "stopped-web").await;
    execution.stop(None, None);
    assert_eq!(execution.outcome().await.status, ExecutionStatus::Aborted);
    std::fs::write(&gate, "").unwrap();
    let left = store.get_release(&stopped.id).await.unwrap().unwrap();
    assert_eq!(left.status, ReleaseStatus::Running, "nothing closed it");
    // Its lease lapses 15 minutes after its last task; the test frees the lock rather than wait.
    let key = LockKey::new("stopped-web", "production");
    assert!(store.unlock(&key, &stopped.id).await.unwrap(), "the stopped release held the lock");

    let outcome = stack.run("stopped-web-next", signal("stopped-web")).await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    let closed = store.get_release(&stopped.id).await.unwrap().unwrap();
    assert_eq!(closed.status, ReleaseStatus::Failed, "the next release closed it");
    let failure = closed.failure.expect("the record says why");
    assert_eq!(failure.error, ErrorName::Interrupted.as_str());
    assert!(failure.cause.contains("ended without closing it") && failure.cause.contains("let its lock lapse"), "{}", failure.cause);
    let events = store.events(&stopped.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::Interrupted), "{events:?}");

    let reports = stack.iam_reports().unwrap();
    let text = iam::render(&reports);
    assert!(reports.values().all(|r| r.denied.is_empty()), "operations the template's policies do not allow:\n{text}");
    stack.shutdown();
}

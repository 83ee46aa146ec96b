//! A catalog entry larger than a Step Functions payload may be (256 KiB) releases: the execution's
//! state carries only a reference to it (the release), and each task reads the entry the
//! release was registered with from the store, so no state outgrows the quota and skips Unlock.

use baton_asl::{Clock, ExecutionStatus};
use baton_domain::catalog::{FsCatalog, ServiceEntry};
use baton_domain::ports::{CatalogError, CatalogSource, SystemClock};
use baton_domain::release::{ReleaseStatus, WaveStatus};
use baton_domain::support::Ports;
use baton_e2e::*;
use baton_local_runner::{LocalBaton, Run};
use baton_providers::{EnvSecretResolver, LocalProviders};
use baton_store_sqlite::SqliteStore;
use std::sync::{Arc, Mutex};

/// Step Functions' quota on a state's input, output and task result: 256 KiB.
const PAYLOAD_QUOTA: usize = 256 * 1024;

/// Adds `count` documentation links to the fixture's entry of [`SERVICE`]: configuration no task
/// acts on, which only makes the entry large.
fn add_links(fixture: &Fixture, count: usize) {
    let path = fixture.catalog().join(format!("{SERVICE}.yaml"));
    let yaml = std::fs::read_to_string(&path).unwrap();
    let links: String = (0..count)
        .map(|i| format!("  - {{name: \"Runbook {i:05}\", type: doc, url: \"https://runbooks.example.com/{SERVICE}/sections/{i:05}/a-long-page-name\"}}\n"))
        .collect();
    std::fs::write(&path, yaml.replacen("links:\n", &format!("links:\n{links}"), 1)).unwrap();
}

#[tokio::test]
async fn a_release_whose_entry_is_over_the_payload_quota_completes_and_unlocks() {
    let fixture = Fixture::new();
    add_links(&fixture, 3_000);
    let baton = fixture.baton();
    let entry = baton.ports().catalog.service(SERVICE).await.expect("the large entry is valid");
    let json = serde_json::to_string(&entry).unwrap();
    assert!(json.len() > PAYLOAD_QUOTA, "the entry must outgrow a state's payload: {} bytes", json.len());

    let outcome = baton.run("exec-large", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-large").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    assert_eq!(baton.ports().store.kept_entry(&release.id).await.unwrap(), Some(entry), "the release kept the entry it ran with");
    assert_consistent(&baton, &release).await;

    // The failure paths (rollback, its Catch, Unlock) read the entry too, and still unlock.
    fixture.set("unhealthy-one-region");
    let outcome = baton.run("exec-large-bad", cli_input("cli-2")).await;
    assert_outcome(&outcome, "rolled-back", "Baton.HealthCheckFailed");
    let release = release_of(&baton, "exec-large-bad").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert_eq!(release.waves[0].status, WaveStatus::RolledBack);
    assert_consistent(&baton, &release).await;
}

/// The catalog as it is now: a test changes it under a running release.
pub(crate) struct ChangingCatalog(Mutex<Arc<dyn CatalogSource>>);

impl ChangingCatalog {
    /// The fixture's catalog as its files are now.
    pub(crate) fn of(fixture: &Fixture) -> Arc<ChangingCatalog> {
        Arc::new(ChangingCatalog(Mutex::new(files_of(fixture))))
    }

    /// Reads the fixture's files again: what the catalog says from now on.
    pub(crate) fn reload(&self, fixture: &Fixture) {
        *self.0.lock().unwrap() = files_of(fixture);
    }
}

fn files_of(fixture: &Fixture) -> Arc<dyn CatalogSource> {
    Arc::new(FsCatalog::open(baton_providers::registry(), fixture.catalog()).unwrap())
}

#[async_trait::async_trait]
impl CatalogSource for ChangingCatalog {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError> {
        let current = self.0.lock().unwrap().clone();
        current.service(name).await
    }
}

/// A release of the fixture's service on a Baton that reads `catalog`, held in its build: running,
/// the moment a test changes the catalog under it (and clears `hold-build`).
pub(crate) async fn held_release(fixture: &Fixture, catalog: Arc<ChangingCatalog>) -> (LocalBaton, Run) {
    fixture.set("hold-build");
    let local = LocalProviders::new(fixture.state_dir().join("workspace"), None, Arc::new(EnvSecretResolver), None).unwrap();
    let ports = Ports {
        store: Arc::new(SqliteStore::open(&baton_store_sqlite::database_path(&fixture.state_dir())).unwrap()),
        catalog,
        providers: Arc::new(local),
        clock: Arc::new(SystemClock),
    };
    let baton = LocalBaton::new(ports, Clock::Scaled(1000)).unwrap();
    let running = baton.start("exec-held", cli_input("cli-1"));
    wait_for_status(&baton, "exec-held", ReleaseStatus::Running).await;
    (baton, running)
}

/// The entry a release started with is the one it finishes with: a catalog change mid-release
/// (here, while it builds) does not reach it.
#[tokio::test]
async fn a_catalog_change_mid_release_does_not_reach_the_running_release() {
    let fixture = Fixture::new();
    let catalog = ChangingCatalog::of(&fixture);
    let (baton, running) = held_release(&fixture, catalog.clone()).await;
    // The new definition's deploy fails everywhere: a task that read it would fail the release.
    let fails = "      provider: command\n      command: [\"sh\", \"-c\", \"exit 9\"]\n";
    fixture.write_catalog_with_blocks(SERVICE, "", fails, fails);
    catalog.reload(&fixture);
    fixture.clear("hold-build");

    assert_status(&running.outcome().await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-held").await;
    let artifact = release.artifact.clone().expect("artifact").reference;
    for (_, targets) in WAVES {
        for target in targets {
            assert_eq!(fixture.deployed(SERVICE, target).as_deref(), Some(artifact.as_str()), "{target}");
        }
    }
    assert_consistent(&baton, &release).await;
}

/// A retried registration (the same execution, its first attempt's answer lost) after a catalog
/// change answers the release it registered: the entry kept first, and that entry's waves.
#[tokio::test]
async fn a_registration_retried_after_a_catalog_change_keeps_the_first_entry() {
    let fixture = Fixture::new();
    let catalog = ChangingCatalog::of(&fixture);
    let ports = Ports { catalog: catalog.clone(), ..fixture.baton().ports().clone() };
    let first = baton_load_catalog::register(&ports, &cli_input("cli-1"), "exec-retried").await.unwrap();
    let entry = ports.catalog.service(SERVICE).await.unwrap();

    let changed = Fixture::with_waves(&[("everything".to_string(), vec!["box-9".to_string()])]);
    catalog.reload(&changed);
    let retried = baton_load_catalog::register(&ports, &cli_input("cli-1"), "exec-retried").await.unwrap();
    assert!(!retried.duplicate, "a retry of the same execution is no duplicate");
    assert_eq!(retried.release, first.release);
    assert_eq!(retried.waves, first.waves, "the waves of the entry the release was registered with");
    assert_eq!(ports.store.kept_entry(&first.release.id).await.unwrap(), Some(entry));
}

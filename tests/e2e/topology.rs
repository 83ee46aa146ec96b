//! Releases of a service whose waves are computed from a topology: the release deploys the
//! waves `rules::topology` gives for the entry it was registered with, records them, and keeps
//! them when the catalog changes under it.

use crate::large_entry::{ChangingCatalog, held_release};
use baton_asl::ExecutionStatus;
use baton_domain::catalog::WaveSpec;
use baton_domain::ports::CatalogSource;
use baton_domain::release::{Release, ReleaseStatus};
use baton_domain::rules::topology::compute;
use baton_e2e::*;

/// A target and its labels: name, region, zone.
pub(crate) type Placed = (String, String, String);

/// `regions` regions, each of zones of the given sizes: targets `r1-a1-t001`, ... in catalog order.
pub(crate) fn placed(regions: &[&[usize]]) -> Vec<Placed> {
    let mut targets = Vec::new();
    for (r, zones) in regions.iter().enumerate() {
        for (a, &size) in zones.iter().enumerate() {
            let (region, az) = (format!("r{}", r + 1), format!("r{}-a{}", r + 1, a + 1));
            targets.extend((1..=size).map(|t| (format!("{az}-t{t:03}"), region.clone(), az.clone())));
        }
    }
    targets
}

/// Rewrites the fixture's entry of [`SERVICE`] so that its waves come from `targets` under
/// `policy` (the lines under `waves:`).
pub(crate) fn write_topology(fixture: &Fixture, targets: &[Placed], policy: &str) {
    let path = fixture.catalog().join(format!("{SERVICE}.yaml"));
    let yaml = std::fs::read_to_string(&path).unwrap();
    // From the listed waves, or from an earlier topology's targets, to the health block.
    let start = yaml.find("      targets:\n").or_else(|| yaml.find("      waves:\n")).expect("the waves");
    let end = yaml.find("    health:\n").expect("the health block");
    let targets: String =
        targets.iter().map(|(name, region, az)| format!("        - {{name: {name}, region: {region}, az: {az}}}\n")).collect();
    let topology = format!("      targets:\n{targets}      waves:\n        from: topology\n{policy}");
    std::fs::write(&path, format!("{}{topology}{}", &yaml[..start], &yaml[end..])).unwrap();
}

const POLICY: &str = "        order: [one, az, region, rest]\n        max-share: {region: 50%}\n        bake: 10m\n";

fn waves_of(release: &Release) -> Vec<(String, Vec<String>)> {
    release.waves.iter().map(|w| (w.name.clone(), w.targets.clone())).collect()
}

fn specs(waves: &[WaveSpec]) -> Vec<(String, Vec<String>)> {
    waves.iter().map(|w| (w.name.clone(), w.targets.clone())).collect()
}

fn names(targets: &[&str]) -> Vec<String> {
    targets.iter().map(|t| (*t).to_owned()).collect()
}

#[tokio::test]
async fn a_topology_release_deploys_and_records_the_computed_waves() {
    let fixture = Fixture::new();
    write_topology(&fixture, &placed(&[&[2, 2], &[2, 2], &[2, 2]]), POLICY);
    let baton = fixture.baton();
    let entry = baton.ports().catalog.service(SERVICE).await.expect("the topology entry is valid");
    let computed = compute(entry.delivery.deploy.topology.as_ref().expect("a topology")).unwrap();

    let outcome = baton.run("exec-topology", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-topology").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    // One target, the rest of its zone, the rest of its region (half of it: its share), then
    // the other regions half by half.
    let expected = vec![
        ("one".to_owned(), names(&["r1-a1-t001"])),
        ("az".to_owned(), names(&["r1-a1-t002"])),
        ("region".to_owned(), names(&["r1-a2-t001", "r1-a2-t002"])),
        ("rest-1".to_owned(), names(&["r2-a1-t001", "r2-a1-t002", "r3-a1-t001", "r3-a1-t002"])),
        ("rest-2".to_owned(), names(&["r2-a2-t001", "r2-a2-t002", "r3-a2-t001", "r3-a2-t002"])),
    ];
    assert_eq!(waves_of(&release), expected, "the hand-checked waves");
    assert_eq!(specs(&computed), expected, "the computation's waves");
    let kept = baton.ports().store.kept_entry(&release.id).await.unwrap().expect("the kept entry");
    assert_eq!(specs(&kept.delivery.deploy.waves), expected, "the waves are kept with the release");
    let artifact = release.artifact.clone().expect("artifact").reference;
    for (_, targets) in &expected {
        for target in targets {
            assert_eq!(fixture.deployed(SERVICE, target).as_deref(), Some(artifact.as_str()), "{target}");
        }
    }
    assert_consistent(&baton, &release).await;
}

/// The waves a release was registered with are the ones it runs: a catalog change mid-release
/// (another policy, another target) reaches neither its waves nor its targets.
#[tokio::test]
async fn a_catalog_change_mid_release_does_not_change_its_computed_waves() {
    let fixture = Fixture::new();
    let targets = placed(&[&[2, 2], &[2, 2]]);
    write_topology(&fixture, &targets, POLICY);
    let catalog = ChangingCatalog::of(&fixture);
    let registered = specs(&catalog.service(SERVICE).await.unwrap().delivery.deploy.waves);
    let (baton, running) = held_release(&fixture, catalog.clone()).await;

    let mut changed = targets.clone();
    changed.push(("r1-a1-t003".into(), "r1".into(), "r1-a1".into()));
    write_topology(&fixture, &changed, "        order: [1%, 100%]\n        bake: 10m\n");
    catalog.reload(&fixture);
    let now = specs(&catalog.service(SERVICE).await.unwrap().delivery.deploy.waves);
    assert_ne!(now, registered, "the catalog now gives other waves");
    fixture.clear("hold-build");

    assert_status(&running.outcome().await, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-held").await;
    assert_eq!(waves_of(&release), registered, "the release ran the waves it was registered with");
    let kept = baton.ports().store.kept_entry(&release.id).await.unwrap().expect("the kept entry");
    assert_eq!(specs(&kept.delivery.deploy.waves), registered);
    let artifact = release.artifact.clone().expect("artifact").reference;
    for (name, _, _) in &targets {
        assert_eq!(fixture.deployed(SERVICE, name).as_deref(), Some(artifact.as_str()), "{name}");
    }
    assert_eq!(fixture.deployed(SERVICE, "r1-a1-t003"), None, "a target added mid-release is not deployed by it");
    assert_consistent(&baton, &release).await;
}

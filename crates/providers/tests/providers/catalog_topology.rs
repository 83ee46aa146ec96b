//! Waves computed from a topology, as the catalog declares them: the entry read carries the
//! computed waves, and a topology that cannot satisfy its policy is refused with the file, line,
//! field and why.

use crate::catalog_validation::{FILE, assert_diag, line_of, only_error};
use baton_domain::catalog::topology::{MaxShare, Percent, Step};
use baton_domain::catalog::*;
use baton_domain::rules::topology::compute;
use baton_providers::registry;

const BASE: &str = r#"schema-version: v2.2
dd-service: edge
team: edge-team
extensions:
  baton:
    environment: production
    release-branch: main
    build:
      provider: command
      command: ["sh", "build.sh"]
    deploy:
      provider: command
      command: ["sh", "deploy.sh"]
      targets:
        - {name: edge-eu-a1, region: eu-west-1, az: eu-west-1a}
        - {name: edge-us-a1, region: us-east-1, az: us-east-1a}
        - {name: edge-eu-a2, region: eu-west-1, az: eu-west-1a}
        - {name: edge-eu-b1, region: eu-west-1, az: eu-west-1b}
        - {name: edge-us-b1, region: us-east-1, az: us-east-1b}
        - {name: edge-eu-b2, region: eu-west-1, az: eu-west-1b}
      waves:
        from: topology
        order: [one, az, region, rest]
        max-share: {region: 100%}
        bake: 2m
    health:
      gates:
        - provider: http
          url: https://edge.example.com/health
"#;

fn with(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "fixture snippet {from:?} must occur once");
    BASE.replacen(from, to, 1)
}

fn entry(text: &str) -> ServiceEntry {
    let (services, diagnostics) = CatalogLoader::new(registry()).parse(FILE, text);
    assert_eq!(diagnostics, vec![]);
    services.into_iter().next().expect("one service")
}

#[test]
fn the_entry_read_carries_the_waves_its_topology_gives() {
    let entry = entry(BASE);
    let deploy = &entry.delivery.deploy;
    let waves: Vec<(&str, Vec<&str>)> =
        deploy.waves.iter().map(|w| (w.name.as_str(), w.targets.iter().map(String::as_str).collect())).collect();
    assert_eq!(
        waves,
        [
            ("one", vec!["edge-eu-a1"]),
            ("az", vec!["edge-eu-a2"]),
            ("region", vec!["edge-eu-b1", "edge-eu-b2"]),
            ("rest", vec!["edge-us-a1", "edge-us-b1"]),
        ],
        "the catalog's first target, its zone, its region, then the rest"
    );
    assert!(deploy.waves.iter().all(|w| w.bake == Seconds(120) && w.deploy_timeout == WaveSpec::DEFAULT_DEPLOY_TIMEOUT));
    let topology = deploy.topology.as_ref().expect("the topology is kept beside its waves");
    assert_eq!(topology.policy.order, [Step::One, Step::Domain("az".into()), Step::Domain("region".into()), Step::Rest]);
    assert_eq!(topology.policy.max_share, Some(MaxShare::Labels([("region".to_owned(), Percent::WHOLE)].into())));
    assert_eq!(deploy.waves, compute(topology).unwrap());
    assert_eq!(deploy.target.provider, "command");
    assert!(!deploy.target.settings.contains_key("targets"), "the labeled targets are no provider field");
}

/// The model as kept with a release reads back with its waves as they were computed, never
/// computed again: whatever the rules or the policy say later, the release keeps its waves.
#[test]
fn a_kept_entry_keeps_its_computed_waves() {
    let entry = entry(BASE);
    let mut kept = serde_json::to_value(&entry).unwrap();
    assert!(kept["delivery"]["deploy"]["waves"].is_array());
    kept["delivery"]["deploy"]["topology"]["policy"]["order"] = serde_json::json!(["rest"]);
    let read: ServiceEntry = serde_json::from_value(kept).unwrap();
    assert_eq!(read.delivery.deploy.waves, entry.delivery.deploy.waves);
    assert_eq!(read.delivery.deploy.topology.unwrap().policy.order, [Step::Rest]);
}

#[test]
fn percentages_keep_the_labels_together() {
    let text = with("order: [one, az, region, rest]", "order: [20%, 50%, 100%]");
    let waves: Vec<(String, Vec<String>)> = entry(&text).delivery.deploy.waves.into_iter().map(|w| (w.name, w.targets)).collect();
    let expected = [
        ("percent-20", vec!["edge-eu-a1", "edge-eu-a2"]),
        ("percent-50", vec!["edge-eu-b1"]),
        ("percent-100-1", vec!["edge-eu-b2"]),
        ("percent-100-2", vec!["edge-us-a1", "edge-us-b1"]),
    ];
    let expected: Vec<(String, Vec<String>)> =
        expected.into_iter().map(|(name, targets)| (name.to_owned(), targets.into_iter().map(str::to_owned).collect())).collect();
    assert_eq!(waves, expected, "2 of 6, then 3, then all: eu-west-1 zone by zone, and us-east-1 only once eu-west-1 is done");
}

#[test]
fn a_topology_that_cannot_satisfy_its_policy_is_refused_saying_why() {
    let text = with("max-share: {region: 100%}", "max-share: {region: 34%}");
    assert_diag(
        &only_error(&text),
        line_of(&text, "max-share"),
        "extensions.baton.deploy.waves.max-share.region",
        "region `us-east-1` has 2 targets: a wave holding any of it holds 50%, above the max-share of 34%",
    );
    let text = with("order: [one, az, region, rest]", "order: [one, zone, rest]");
    assert_diag(&only_error(&text), line_of(&text, "order:"), "extensions.baton.deploy.waves.order[1]", "no target carries a label `zone`");
    let text = with("{name: edge-eu-b1, region: eu-west-1, az: eu-west-1b}", "{name: edge-eu-b1, region: eu-west-1}");
    assert_diag(&only_error(&text), line_of(&text, "edge-eu-b1"), "extensions.baton.deploy.targets[3]", "`edge-eu-b1` has no `az` label");
    let text = with("order: [one, az, region, rest]", "order: [one, az]");
    assert_diag(&only_error(&text), line_of(&text, "order:"), "extensions.baton.deploy.waves.order[1]", "end with `rest`");
}

#[test]
fn targets_and_the_policy_go_together() {
    let text = BASE.replace(
        "      waves:\n        from: topology\n        order: [one, az, region, rest]\n        max-share: {region: 100%}\n        bake: 2m\n",
        "      waves:\n        - name: all\n          targets: [edge-eu-a1]\n",
    );
    assert_diag(
        &only_error(&text),
        text.lines().position(|line| line == "      targets:").unwrap() + 1,
        "extensions.baton.deploy.targets",
        "`targets` with labels go with `waves: {from: topology, ...}`",
    );
}

#[test]
fn fields_of_a_topology_are_checked_one_by_one() {
    // (replace, with, the line's text, path, message)
    let cases = [
        (
            "{name: edge-us-a1, region: us-east-1, az: us-east-1a}",
            "{name: edge-us-a1, region: us-east-1, az: 1}",
            "edge-us-a1",
            "extensions.baton.deploy.targets[1].az",
            "quote numbers",
        ),
        (
            "{name: edge-us-a1, region: us-east-1, az: us-east-1a}",
            "{region: us-east-1, az: us-east-1a}",
            "{region: us-east-1, az: us-east-1a}",
            "extensions.baton.deploy.targets[1].name",
            "missing required field",
        ),
        (
            "{name: edge-us-a1, region: us-east-1, az: us-east-1a}",
            "{name: edge-us-a1, region: us-east-1, az: us-east-1a, rest: x}",
            "edge-us-a1",
            "extensions.baton.deploy.targets[1].rest",
            "a step of `waves.order`, not a label",
        ),
        (
            "order: [one, az, region, rest]",
            "order: [one, 150%]",
            "order:",
            "extensions.baton.deploy.waves.order[1]",
            "a percentage from 0.01% to 100%",
        ),
        ("max-share: {region: 100%}", "max-share: half", "max-share", "extensions.baton.deploy.waves.max-share", "with its `%`"),
        ("from: topology", "from: regions", "from:", "extensions.baton.deploy.waves.from", "unknown value `regions`"),
    ];
    for (from, to, needle, path, message) in cases {
        let text = with(from, to);
        let d = only_error(&text);
        assert_diag(&d, line_of(&text, needle), path, message);
    }
    let text = BASE.replace("      targets:\n", "      unused:\n");
    let (_, diagnostics) = CatalogLoader::new(registry()).parse(FILE, &text);
    assert!(
        diagnostics
            .iter()
            .any(|d| d.path == "extensions.baton.deploy.targets" && d.message.contains("computes the waves from labeled targets")),
        "{diagnostics:#?}"
    );
}

/// Every computed wave bakes, and samples its gates: the bakes of all of them must fit the
/// execution's history quota, as listed waves' do.
#[test]
fn the_computed_waves_bakes_fit_the_history() {
    let text = with("bake: 2m", "bake: 10h").replace("max-share: {region: 100%}", "max-share: {region: 50%}");
    let d = only_error(&text);
    assert_diag(&d, line_of(&text, "bake: 10h"), "extensions.baton.deploy.waves.bake", "samples of the gates");
    assert!(d.message.contains("the topology gives"), "{}", d.message);
}

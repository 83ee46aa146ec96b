//! Catalog parsing and validation, rule by rule. Each failing case asserts the
//! file, line, path and message of the diagnostic it expects.

use baton_aws::clients::{AwsAccess, access_for};
use baton_aws::codebuild::CodeBuildBuild;
use baton_aws::ecs::EcsDeploy;
use baton_aws::lambda::{LambdaCanary, LambdaDeploy};
use baton_domain::catalog::*;
use baton_domain::ports::{CatalogError, CatalogSource};
use baton_providers::{
    BuildkiteBuild, CircleCiBuild, CommandBuild, CommandDeploy, CommandRun, DatadogGate, GitLabCiBuild, GitLabProject, HttpGate,
    OpsgenieRegion, OpsgenieSpec, PagerDutySpec, PipelineParameter, SlackSpec, registry,
};
use std::collections::BTreeMap;

fn parse_catalog_documents(file: &str, text: &str) -> (Vec<ServiceEntry>, Vec<Diagnostic>) {
    CatalogLoader::new(registry()).parse(file, text)
}

fn load_catalog(path: &std::path::Path) -> std::io::Result<LoadedCatalog> {
    CatalogLoader::new(registry()).load(path)
}

/// A loader whose root is `root`.
fn rooted(root: &std::path::Path) -> CatalogLoader<'_> {
    CatalogLoader { root: Some(root), ..CatalogLoader::new(registry()) }
}

pub(crate) const FILE: &str = "catalog/shop.yaml";

const BASE: &str = r#"schema-version: v2.2
dd-service: shop
team: shop-team
links:
  - name: Runbook
    type: runbook
    url: https://example.com/runbook
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
      waves:
        - name: canary
          targets: [c1]
          bake: 5s
        - name: rest
          targets: [r1, r2]
    health:
      interval: 10s
      gates:
        - provider: http
          url: https://shop.example.com/health
          consecutive: 3
"#;

/// BASE with `from` replaced by `to` (which must occur exactly once).
fn with(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "fixture snippet {from:?} must occur once");
    BASE.replacen(from, to, 1)
}

/// 1-based line of the only line of `text` containing `needle`.
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(needle)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "{needle:?} must be on exactly one line");
    lines[0]
}

/// The only diagnostic for `text`; fails the test when there are none or several.
pub(crate) fn only_error(text: &str) -> Diagnostic {
    let (services, mut diagnostics) = parse_catalog_documents(FILE, text);
    assert!(services.is_empty(), "an invalid document yields no service");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    diagnostics.remove(0)
}

pub(crate) fn assert_diag(d: &Diagnostic, line: usize, path: &str, message_part: &str) {
    assert_eq!(d.file, FILE);
    assert_eq!(d.line, Some(line), "{d}");
    assert_eq!(d.path, path, "{d}");
    assert!(d.message.contains(message_part), "{:?} should contain {:?}", d.message, message_part);
}

#[test]
fn v2_2_happy_path_builds_the_entry() {
    let (services, diagnostics) = parse_catalog_documents(FILE, BASE);
    assert_eq!(diagnostics, vec![]);
    let [entry] = &services[..] else { panic!("one service") };
    assert_eq!(entry.name, "shop");
    assert_eq!(entry.schema, SchemaVersion::V2_2);
    assert_eq!(entry.team.as_deref(), Some("shop-team"));
    assert_eq!(entry.source, FILE);
    assert_eq!(entry.links, vec![Link { name: "Runbook".into(), url: "https://example.com/runbook".into(), kind: Some("runbook".into()) }]);
    let d = &entry.delivery;
    assert_eq!((d.environment.as_str(), d.release_branch.as_str()), ("production", "main"));
    assert_eq!(
        d.build.decode::<CommandBuild>().unwrap(),
        CommandBuild { run: CommandRun::new(vec!["sh".into(), "build.sh".into()]), artifact_file: None }
    );
    assert_eq!(d.deploy.waves.len(), 2);
    assert_eq!(
        d.deploy.waves[0],
        WaveSpec {
            name: "canary".into(),
            targets: vec!["c1".into()],
            bake: Seconds(5),
            deploy_timeout: WaveSpec::DEFAULT_DEPLOY_TIMEOUT,
            approval: None
        }
    );
    assert_eq!(d.deploy.waves[1].bake, Seconds(0), "bake defaults to 0");
    let [gate] = &d.health.gates[..] else { panic!("one gate") };
    assert_eq!((d.health.interval, gate.consecutive, gate.failures), (Seconds(10), 3, 1));
    assert_eq!(
        gate.gate.decode::<HttpGate>().unwrap(),
        HttpGate { url: "https://shop.example.com/health".into(), expect_status: vec![], body_contains: None }
    );
    assert!(d.notify.is_empty());
}

#[test]
fn v3_happy_path_takes_owner_and_lets_the_block_override_the_team() {
    let text = r##"apiVersion: v3
kind: service
metadata:
  name: billing
  owner: payments
  links:
    - {name: Repo, type: repo, url: "https://example.com/git/billing"}
spec:
  lifecycle: production
  languages: [rust]
integrations:
  pagerduty:
    serviceURL: https://example.pagerduty.com/service-directory/PABC
extensions:
  other-tool: {anything: goes}
  baton:
    environment: staging
    release-branch: main
    feature-branch: next
    schedule: cron(0 9 ? * MON-FRI *)
    team: payments-releases
    build: {provider: command, command: [make, dist], artifact-file: out/ref, env: {PROFILE: release}, timeout: 10m}
    deploy:
      provider: command
      command: [./deploy]
      rollback-command: [./rollback]
      waves: [{name: all, targets: [eu, us], bake: 90}]
    health: {gates: [{provider: command, command: [./check]}]}
    notify:
      slack: {channel: "#payments", token: "secrets-manager:slack/bot", webhook: {ssm: /slack/webhook}}
      pagerduty: {routing-key: "ssm:/pagerduty/billing"}
      opsgenie: {api-key: "env:OPSGENIE_KEY", region: EU}
"##;
    let (services, diagnostics) = parse_catalog_documents("billing.yaml", text);
    assert_eq!(diagnostics, vec![]);
    let entry = &services[0];
    assert_eq!((entry.name.as_str(), entry.schema), ("billing", SchemaVersion::V3));
    assert_eq!(entry.team.as_deref(), Some("payments-releases"));
    assert_eq!(entry.links[0].url, "https://example.com/git/billing");
    let d = &entry.delivery;
    assert_eq!(d.schedule.as_deref(), Some("cron(0 9 ? * MON-FRI *)"));
    let build: CommandBuild = d.build.decode().unwrap();
    assert_eq!(build.run.timeout, Some(Seconds(600)));
    assert_eq!(build.run.env.get("PROFILE").map(String::as_str), Some("release"));
    let deploy: CommandDeploy = d.deploy.target.decode().unwrap();
    assert_eq!(deploy.rollback_command, Some(vec!["./rollback".to_string()]));
    assert_eq!(d.deploy.waves[0].bake, Seconds(90));
    let slack: SlackSpec = d.notifier("slack").unwrap().decode().unwrap();
    assert_eq!(slack.token, Some(SecretRef::SecretsManager("slack/bot".into())));
    assert_eq!(slack.webhook, Some(SecretRef::Ssm("/slack/webhook".into())));
    let pagerduty: PagerDutySpec = d.notifier("pagerduty").unwrap().decode().unwrap();
    assert_eq!(pagerduty, PagerDutySpec { routing_key: SecretRef::Ssm("/pagerduty/billing".into()) });
    let opsgenie: OpsgenieSpec = d.notifier("opsgenie").unwrap().decode().unwrap();
    assert_eq!(opsgenie, OpsgenieSpec { api_key: SecretRef::Env("OPSGENIE_KEY".into()), region: OpsgenieRegion::Eu });
}

#[test]
fn the_catalog_team_is_used_when_the_block_names_none() {
    let text = BASE.replace("team: shop-team\n", "");
    let (services, _) = parse_catalog_documents(FILE, &text);
    assert_eq!(services[0].team, None);
}

#[test]
fn several_documents_per_file_and_json_text() {
    let second = BASE.replace("dd-service: shop", "dd-service: cart");
    let other_team = "schema-version: v2.2\ndd-service: search\nteam: search-team\n";
    let text = format!("{BASE}---\n{other_team}---\n{second}");
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["shop", "cart"], "the service without a Baton block is not Baton's");

    // JSON is read by the same parser, with line numbers.
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "schema-version": "v2.2", "dd-service": "shop", "team": "shop-team",
        "links": [{ "name": "Runbook", "type": "runbook", "url": "https://example.com/runbook" }],
        "extensions": { "baton": {
            "environment": "production", "release-branch": "main",
            "build": { "provider": "command", "command": ["sh", "build.sh"] },
            "deploy": { "provider": "command", "command": ["sh", "deploy.sh"], "waves": [{ "name": "canary", "targets": ["c1"] }] },
            "health": { "gates": [{ "provider": "http", "url": "https://shop.example.com/health" }] },
        } },
    }))
    .unwrap();
    let (services, diagnostics) = parse_catalog_documents("shop.json", &json);
    assert_eq!((services.len(), diagnostics.len()), (1, 0));
    let broken = json.replace("\"release-branch\"", "\"release_branch\"");
    let (_, diagnostics) = parse_catalog_documents("shop.json", &broken);
    let typo = diagnostics.iter().find(|d| d.path == "extensions.baton.release_branch").expect("the typo is reported");
    assert_eq!(typo.line, Some(line_of(&broken, "release_branch")));
}

#[test]
fn documents_without_a_baton_block_are_still_checked_against_datadog() {
    let text = "schema-version: v2.2\ndd-service: search\ntype: website\nowner: me\n";
    let (services, diagnostics) = parse_catalog_documents(FILE, text);
    assert!(services.is_empty());
    assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].path, "type");
    assert!(diagnostics[0].message.contains("unknown value `website`; expected one of `web`"));
    assert_eq!((diagnostics[1].line, diagnostics[1].path.as_str()), (Some(4), "owner"));
}

#[test]
fn other_datadog_versions_are_skipped_unless_they_carry_a_baton_block() {
    let (services, diagnostics) = parse_catalog_documents(FILE, "schema-version: v2.1\ndd-service: old\nanything: 1\n");
    assert_eq!((services.len(), diagnostics.len()), (0, 0));
    let text = with("schema-version: v2.2", "schema-version: v2.1");
    assert_diag(&only_error(&text), 1, "schema-version", "Baton reads `schema-version: v2.2` and `apiVersion: v3`");
}

#[test]
fn unknown_versions_are_errors_that_name_the_versions_read() {
    let text = with("schema-version: v2.2", "schema-version: v9");
    let d = only_error(&text);
    assert_diag(&d, 1, "schema-version", "unknown schema-version `v9`: Baton reads `schema-version: v2.2` and `apiVersion: v3`");
    assert!(d.message.ends_with("and skips Datadog's older `v2`, `v2.1`"), "{d}");
    let d = only_error("schema-version: 2.2\ndd-service: shop\n");
    assert_diag(&d, 1, "schema-version", "expected a version string for schema-version, found a number: Baton reads");
    let d = only_error("apiVersion: v4\nkind: service\nmetadata: {name: shop}\n");
    assert_diag(&d, 1, "apiVersion", "unknown apiVersion `v4`: Baton reads");
    // Without a Baton block too: nothing is skipped silently but Datadog's own older versions.
    let d = only_error("schema-version: v2.3\ndd-service: shop\n");
    assert_diag(&d, 1, "schema-version", "unknown schema-version `v2.3`");
}

#[test]
fn a_text_without_documents_is_an_error() {
    for text in ["", "# only a comment\n", "---\n...\n"] {
        let d = only_error(text);
        assert_eq!((d.line, d.path.as_str()), (None, "(document)"), "{text:?}");
        assert_eq!(d.message, "expected at least one Datadog service definition, found no YAML or JSON document");
    }
}

#[test]
fn quoted_input_is_cut_short_in_messages() {
    let key = "k".repeat(1_000); // plain keys past 1024 characters are not YAML
    let d = only_error(&with("    release-branch: main", &format!("    release-branch: main\n    {key}: 1")));
    assert!(d.message.starts_with(&format!("unknown field `{}...`; expected one of", "k".repeat(64))), "{d}");
    assert!(d.message.len() < 300);
}

#[test]
fn a_document_that_is_no_datadog_definition_is_an_error() {
    assert_diag(&only_error("name: x\n"), 1, "(document)", "expected a Datadog service definition");
}

#[test]
fn unknown_keys_suggest_the_closest_field() {
    let text = with("      command: [\"sh\", \"build.sh\"]", "      comand: [\"sh\", \"build.sh\"]");
    let (_, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics.len(), 2, "the then-missing command, and the typo: {diagnostics:#?}");
    let provider_line = line_of(&text, "comand") - 1;
    assert_diag(&diagnostics[0], provider_line, "extensions.baton.build.command", "missing required field");
    assert_diag(
        &diagnostics[1],
        line_of(&text, "comand"),
        "extensions.baton.build.comand",
        "unknown field `comand` (did you mean `command`?); expected one of `provider`, `command`, `working-dir`",
    );

    let text = with("    release-branch: main", "    release-branch: main\n    replicas: 3");
    assert_eq!(
        only_error(&text).message,
        "unknown field `replicas`; expected one of `environment`, `release-branch`, \
        `feature-branch`, `schedule`, `team`, `on-call`, `build`, `build-timeout`, `deploy`, `health`, `notify`, `telemetry`, `freeze`, `events`"
    );
}

#[test]
fn unknown_provider_suggests_one() {
    let text = with("        - provider: http", "        - provider: htp");
    assert_diag(
        &only_error(&text),
        line_of(&text, "provider: htp"),
        "extensions.baton.health.gates[0].provider",
        "unknown provider `htp` (did you mean `http`?); expected one of `cloudwatch`, `datadog`, `http`, `command`",
    );
}

#[test]
fn forbidden_top_level_keys_point_to_extensions() {
    let text = with("team: shop-team", "team: shop-team\nbaton: {}");
    assert_diag(&only_error(&text), 2 + 1 + 1, "baton", "unknown field `baton`; expected one of `schema-version`, `dd-service`");
    assert!(only_error(&text).message.ends_with("Baton's settings go under `extensions.baton`"));
}

#[test]
fn wrong_types_say_what_was_expected() {
    let text = with("release-branch: main", "release-branch: [main]");
    assert_diag(
        &only_error(&text),
        line_of(&text, "release-branch"),
        "extensions.baton.release-branch",
        "expected a non-empty string, found a list",
    );
    let text = with("release-branch: main", "release-branch:");
    assert!(only_error(&text).message.ends_with("found nothing (null) (remove the key to leave it unset)"));
    let text = with("          consecutive: 3", "          consecutive: -1");
    assert_diag(
        &only_error(&text),
        line_of(&text, "consecutive"),
        "extensions.baton.health.gates[0].consecutive",
        "expected a whole number of at least 1",
    );
    let text = with("command: [\"sh\", \"deploy.sh\"]", "command: sh deploy.sh");
    assert_diag(&only_error(&text), line_of(&text, "sh deploy.sh"), "extensions.baton.deploy.command", "commands run without a shell");
}

#[test]
fn missing_required_fields_are_reported_at_the_enclosing_mapping() {
    let text = with("    environment: production\n", "");
    assert_diag(
        &only_error(&text),
        line_of(&text, "release-branch"),
        "extensions.baton.environment",
        "missing required field: expected a name of letters, digits",
    );
    let text = with("        - provider: http\n          url:", "        - url:");
    assert_diag(
        &only_error(&text),
        line_of(&text, "url: https://shop"),
        "extensions.baton.health.gates[0].provider",
        "expected one of `cloudwatch`, `datadog`, `http`, `command`",
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = with("release-branch: main", "release-branch: 3").replace("bake: 5s", "bake: soon").replace("interval: 10s", "interval: 0");
    let (_, diagnostics) = parse_catalog_documents(FILE, &text);
    let paths: Vec<&str> = diagnostics.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["extensions.baton.release-branch", "extensions.baton.deploy.waves[0].bake", "extensions.baton.health.interval",]);
}

#[test]
fn waves_must_exist() {
    let text = BASE.replace(
        "      waves:\n        - name: canary\n          targets: [c1]\n          bake: 5s\n        - name: rest\n          targets: [r1, r2]\n",
        "      waves: []\n",
    );
    assert_diag(&only_error(&text), line_of(&text, "waves: []"), "extensions.baton.deploy.waves", "expected at least one wave");
}

#[test]
fn wave_names_are_unique() {
    let text = with("- name: rest", "- name: canary\n          bake: 1m");
    let d = only_error(&text);
    assert_diag(
        &d,
        line_of(&text, "bake: 1m") - 1,
        "extensions.baton.deploy.waves[1].name",
        "duplicate wave name `canary`: already used by extensions.baton.deploy.waves[0]",
    );
}

#[test]
fn a_target_belongs_to_one_wave() {
    let text = with("targets: [r1, r2]", "targets: [c1, r2]");
    assert_diag(
        &only_error(&text),
        line_of(&text, "[c1, r2]"),
        "extensions.baton.deploy.waves[1].targets[0]",
        "target `c1` is already in wave `canary` (extensions.baton.deploy.waves[0]): a target belongs to one wave",
    );
    let text = with("targets: [r1, r2]", "targets: [r1, r1]");
    assert_diag(&only_error(&text), line_of(&text, "[r1, r1]"), "extensions.baton.deploy.waves[1].targets[1]", "listed twice in this wave");
    let text = with("targets: [r1, r2]", "targets: []");
    assert_diag(
        &only_error(&text),
        line_of(&text, "targets: []"),
        "extensions.baton.deploy.waves[1].targets",
        "a non-empty list of target names",
    );
}

#[test]
fn durations_are_checked() {
    let text = with("bake: 5s", "bake: 5d");
    assert_diag(
        &only_error(&text),
        line_of(&text, "bake: 5d"),
        "extensions.baton.deploy.waves[0].bake",
        "expected a duration such as 30s, 5m, 1h or 1h30m, found '5d' (unknown unit 'd': s, m or h)",
    );
    let text = with("bake: 5s", "bake: 500ms");
    let said = only_error(&text).message;
    assert!(said.contains("found '500ms'") && said.contains("whole seconds"), "{said}");
    let text = with("bake: 5s", "bake: -30s");
    let said = only_error(&text).message;
    assert!(said.contains("found '-30s' (a duration cannot be negative)"), "{said}");
}

#[test]
fn a_url_without_its_scheme_is_named_with_the_fix() {
    let text = with("url: https://shop.example.com/health", "url: localhost:8080/healthz");
    assert_diag(
        &only_error(&text),
        line_of(&text, "url: localhost:8080/healthz"),
        "extensions.baton.health.gates[0].url",
        "found 'localhost:8080/healthz' (with its scheme: http://localhost:8080/healthz)",
    );
    let text = with("bake: 5s", "bake: -5");
    assert_eq!(only_error(&text).message, "expected a duration that is not negative");
    let text = with("      command: [\"sh\", \"build.sh\"]", "      command: [\"sh\", \"build.sh\"]\n      timeout: 0s");
    assert_diag(&only_error(&text), line_of(&text, "timeout: 0s"), "extensions.baton.build.timeout", "expected a duration of at least 1s");
}

#[test]
fn gates_are_a_non_empty_list_each_with_its_provider_fields() {
    let text = BASE.replace(
        "      gates:\n        - provider: http\n          url: https://shop.example.com/health\n          consecutive: 3\n",
        "      gates: []\n",
    );
    assert_diag(&only_error(&text), line_of(&text, "gates: []"), "extensions.baton.health.gates", "expected at least one gate");
    let text = with("          consecutive: 3", "          consecutive: 3\n          expect-status: [200, 99]");
    assert_diag(
        &only_error(&text),
        line_of(&text, "expect-status"),
        "extensions.baton.health.gates[0].expect-status[1]",
        "expected an HTTP status code (100-599)",
    );
    let text = with("          consecutive: 3", "          consecutive: 3\n          alarms: [web-5xx]");
    let d = only_error(&text);
    assert_eq!(d.path, "extensions.baton.health.gates[0].alarms");
    assert!(d.message.starts_with("unknown field `alarms`"), "{}", d.message);
}

#[test]
fn a_cloudwatch_gate_names_its_alarms() {
    let gate = "        - provider: cloudwatch\n          region: eu-west-1\n";
    let text = with("      gates:\n", &format!("      gates:\n{gate}"));
    assert_diag(
        &only_error(&text),
        line_of(&text, "provider: cloudwatch"),
        "extensions.baton.health.gates[0]",
        "expected `alarms`, `alarm-prefix` or both",
    );
    for names in ["          alarms: [web-5xx]\n", "          alarm-prefix: web-\n"] {
        let text = with("      gates:\n", &format!("      gates:\n{gate}{names}"));
        assert_eq!(parse_catalog_documents(FILE, &text).1, vec![], "{names}");
    }
}

#[test]
fn a_datadog_gate_names_its_monitors_by_positive_whole_ids() {
    let gate = "        - provider: datadog\n          api-key: env:DD_API_KEY\n          app-key: env:DD_APP_KEY\n";
    let text = with("      gates:\n", &format!("      gates:\n{gate}          monitors: [1234, 5678]\n"));
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let spec: DatadogGate = services[0].delivery.health.gates[0].gate.decode().unwrap();
    assert_eq!(spec.monitors, [1234, 5678]);
    for (monitors, path, expected) in [
        ("[1234, web-5xx]", "monitors[1]", "expected an id (a positive whole number), found a string"),
        ("[0]", "monitors[0]", "expected an id (a positive whole number), found"),
        ("[]", "monitors", "expected a non-empty list of ids (positive whole numbers)"),
    ] {
        let text = with("      gates:\n", &format!("      gates:\n{gate}          monitors: {monitors}\n"));
        assert_diag(&only_error(&text), line_of(&text, "monitors:"), &format!("extensions.baton.health.gates[0].{path}"), expected);
    }
}

#[test]
fn aws_deploys_take_placements_of_their_own_targets() {
    let ecs = "      provider: ecs\n      cluster: prod\n      container: web\n      region: us-east-1\n      placements:\n        - {target: r2, region: eu-west-1, role-arn: \"arn:aws:iam::222222222222:role/deploy\"}\n";
    let text = with("      provider: command\n      command: [\"sh\", \"deploy.sh\"]\n", ecs);
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let spec: EcsDeploy = services[0].delivery.deploy.target.decode().unwrap();
    let eu = access_for("r2", &spec.access, &spec.placements);
    assert_eq!((eu.region.as_deref(), eu.role_arn.as_deref()), (Some("eu-west-1"), Some("arn:aws:iam::222222222222:role/deploy")));
    assert_eq!(access_for("c1", &spec.access, &spec.placements), AwsAccess { region: Some("us-east-1".into()), role_arn: None });

    let text = text.replace("target: r2,", "target: r3,");
    assert_diag(
        &only_error(&text),
        line_of(&text, "target: r3"),
        "extensions.baton.deploy.placements[0].target",
        "unknown target `r3` (did you mean `r1`?); expected one of `c1`, `r1`, `r2`",
    );
}

#[test]
fn a_lambda_canary_shifts_less_than_everything() {
    let lambda = "      provider: lambda\n      alias: live\n      canary: {weight: 100, hold: 5m}\n";
    let text = with("      provider: command\n      command: [\"sh\", \"deploy.sh\"]\n", lambda);
    assert_diag(
        &only_error(&text),
        line_of(&text, "weight: 100"),
        "extensions.baton.deploy.canary.weight",
        "expected a whole number from 1 to 99, found 100",
    );
    let text = text.replace("weight: 100", "weight: 10");
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let spec: LambdaDeploy = services[0].delivery.deploy.target.decode().unwrap();
    assert_eq!(spec.canary, Some(LambdaCanary { weight: 10, hold: Seconds(300) }));
}

#[test]
fn the_bakes_fit_in_the_history_and_samples_renew_the_lease_in_time() {
    // 10 s samples: 2000 samples cover about 5h33m of bakes (one more sample per wave).
    let text = with("bake: 5s", "bake: 6h");
    assert_diag(
        &only_error(&text),
        line_of(&text, "bake: 6h"),
        "extensions.baton.deploy.waves[0].bake",
        "expected bakes that 2000 samples of the gates cover at `health.interval` 10s (about 9 history events each, within the \
         execution's quota of 25000); up to this wave they take 2161",
    );
    let text = with("bake: 5s", "bake: 5h").replace("interval: 10s", "interval: 1m");
    assert_eq!(parse_catalog_documents(FILE, &text).1, vec![]);
    let text = with("interval: 10s", "interval: 7m31s");
    assert_diag(
        &only_error(&text),
        line_of(&text, "interval: 7m31s"),
        "extensions.baton.health.interval",
        "expected an interval of at most 450s: each sample renews the release lock, whose lease is 900s",
    );
    assert_eq!(baton_domain::support::LOCK_LEASE.as_secs(), 900, "the docs and this test say 15 minutes");
}

#[test]
fn schedules_follow_eventbridge_scheduler() {
    let text = with("    release-branch: main", "    release-branch: main\n    schedule: cron(0 10 * * * *)");
    assert_diag(
        &only_error(&text),
        line_of(&text, "schedule:"),
        "extensions.baton.schedule",
        "expected cron: `?` in day-of-month or day-of-week",
    );
    let text = with("    release-branch: main", "    release-branch: main\n    schedule: rate(1 hours)");
    assert_eq!(only_error(&text).message, "expected rate: a value of 1 takes the singular unit `hour`");
    let text = with("    release-branch: main", "    release-branch: main\n    schedule: rate(2 hours)");
    assert_eq!(parse_catalog_documents(FILE, &text).1, vec![]);
}

/// BASE with its build block replaced by `block` (lines at the build's indentation).
fn with_build(block: &str) -> String {
    with("      provider: command\n      command: [\"sh\", \"build.sh\"]\n", block)
}

#[test]
fn gitlab_ci_blocks_build_the_spec_with_an_id_or_a_path() {
    let text = with_build(
        "      provider: gitlab-ci\n      project: 1234\n      token: env:GITLAB_TOKEN\n      variables: {DEPLOY: \"yes\"}\n      \
         artifact: registry.gitlab.com/acme/web:{short-sha}-{pipeline-id}\n",
    );
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let gitlab: GitLabCiBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!(gitlab.project, GitLabProject("1234".into()));
    assert_eq!(gitlab.token, Some(SecretRef::Env("GITLAB_TOKEN".into())));
    assert_eq!((gitlab.trigger_token.as_ref(), gitlab.api_url.as_ref()), (None, None));
    assert_eq!(gitlab.variables["DEPLOY"], "yes");

    let text = with_build(
        "      provider: gitlab-ci\n      project: acme/platform/web\n      trigger-token: env:GITLAB_TRIGGER\n      \
         artifact: web:{sha}\n      api-url: https://gitlab.example.com/api/v4\n",
    );
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let gitlab: GitLabCiBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!(gitlab.project.0, "acme/platform/web");
    assert_eq!(gitlab.trigger_token, Some(SecretRef::Env("GITLAB_TRIGGER".into())));
}

#[test]
fn a_gitlab_project_is_an_id_or_a_path_and_a_token_is_named() {
    let block = |project: &str| {
        with_build(&format!(
            "      provider: gitlab-ci\n      project: {project}\n      token: env:GITLAB_TOKEN\n      artifact: web:{{sha}}\n"
        ))
    };
    let cases = [
        ("web", "found `web`, neither a number nor a path with a `/`"),
        ("acme%2Fweb", "found `%`: write the path as `group/name`, Baton encodes it"),
        ("acme//web", "found an empty part between `/`s"),
        ("acme/-web", "found a part starting with `-`"),
        ("\"acme/my web\"", "found ` `"),
        ("\"0\"", "found the id 0"),
    ];
    for (project, why) in cases {
        let text = block(project);
        let expected = format!("expected {}; {why}", GitLabProject::EXPECTED);
        assert_diag(&only_error(&text), line_of(&text, "project:"), "extensions.baton.build.project", &expected);
    }
    let text = block("0");
    assert_diag(&only_error(&text), line_of(&text, "project:"), "extensions.baton.build.project", GitLabProject::EXPECTED);

    let text = with_build("      provider: gitlab-ci\n      project: acme/web\n      artifact: web:{sha}\n");
    assert_diag(
        &only_error(&text),
        line_of(&text, "provider: gitlab-ci"),
        "extensions.baton.build",
        "expected `token`, `trigger-token` or both",
    );
}

#[test]
fn buildkite_blocks_name_their_pipeline_by_slugs() {
    let block = |organization: &str| {
        with_build(&format!(
            "      provider: buildkite\n      organization: {organization}\n      pipeline: web-release\n      \
             token: env:BUILDKITE_TOKEN\n      env: {{REGION: eu}}\n      artifact: web:{{build-number}}\n"
        ))
    };
    let (services, diagnostics) = parse_catalog_documents(FILE, &block("acme"));
    assert_eq!(diagnostics, vec![]);
    let buildkite: BuildkiteBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!((buildkite.organization.as_str(), buildkite.pipeline.as_str()), ("acme", "web-release"));
    assert_eq!(buildkite.token, SecretRef::Env("BUILDKITE_TOKEN".into()));
    assert_eq!(buildkite.env["REGION"], "eu");

    for (organization, why) in [("Acme", "found `A` first"), ("acme/web", "found `/`"), ("-acme", "found `-` first")] {
        let text = block(organization);
        assert_diag(&only_error(&text), line_of(&text, "organization:"), "extensions.baton.build.organization", why);
    }
    let text = with_build("      provider: buildkite\n      organization: acme\n      pipeline: web\n      artifact: web:{sha}\n");
    assert_diag(&only_error(&text), line_of(&text, "provider: buildkite"), "extensions.baton.build.token", "missing required field");
}

#[test]
fn circleci_blocks_name_their_project_by_slug_and_type_their_parameters() {
    let block = |project: &str, parameters: &str| {
        with_build(&format!(
            "      provider: circleci\n      project: {project}\n      token: env:CIRCLE_TOKEN\n      \
             parameters: {{{parameters}}}\n      artifact: web:{{pipeline-number}}\n"
        ))
    };
    let text = block("gh/acme/web.api", "deploy-env: eu, replicas: 3, dry_run: false");
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let circleci: CircleCiBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!(circleci.project, "gh/acme/web.api");
    assert_eq!(circleci.token, SecretRef::Env("CIRCLE_TOKEN".into()));
    let expected = BTreeMap::from([
        ("deploy-env".to_string(), PipelineParameter::String("eu".into())),
        ("replicas".to_string(), PipelineParameter::Integer(3)),
        ("dry_run".to_string(), PipelineParameter::Boolean(false)),
    ]);
    assert_eq!(circleci.parameters, expected);
    let uuids = "circleci/9f3a2c1e-0000-4000-8000-000000000001/6b1d7e2a-0000-4000-8000-000000000002";
    assert_eq!(parse_catalog_documents(FILE, &block(uuids, "")).1, vec![]);

    let slugs = [
        ("acme/web", "found 2 part(s) separated by `/`, not 3"),
        ("gitlab/acme/web", "found `gitlab` first, not one of gh, github, bb, bitbucket, circleci"),
        ("gh/acme/web/api", "found 4 part(s) separated by `/`, not 3"),
        ("gh//web", "found an empty part between `/`s"),
        ("gh/acme/..", "found the part `..`"),
        ("\"gh/acme/my web\"", "found ` `"),
        ("gh/acme/web%2Fx", "found `%`"),
    ];
    for (project, why) in slugs {
        let text = block(project, "");
        let d = only_error(&text);
        assert_diag(
            &d,
            line_of(&text, "project:"),
            "extensions.baton.build.project",
            "expected a CircleCI project slug `<vcs>/<org>/<project>`",
        );
        assert!(d.message.ends_with(why), "{project}: {d}");
    }

    let parameters = [
        ("baton-sha: abc", "extensions.baton.build.parameters.baton-sha", "`baton-sha` is set by Baton; choose another name"),
        ("baton-release-id: r", "extensions.baton.build.parameters.baton-release-id", "`baton-release-id` is set by Baton"),
        ("DEPLOY_ENV: eu", "extensions.baton.build.parameters.DEPLOY_ENV", "expected pipeline parameter names: a lowercase letter"),
        ("1st: x", "extensions.baton.build.parameters.1st", "expected pipeline parameter names"),
        (
            "regions: [eu, us]",
            "extensions.baton.build.parameters.regions",
            "expected a string, an integer or a boolean, as the provider's configuration declares it, found a list",
        ),
        ("ratio: 0.5", "extensions.baton.build.parameters.ratio", "expected a string, an integer or a boolean"),
    ];
    for (parameter, path, expected) in parameters {
        let text = block("gh/acme/web", parameter);
        assert_diag(&only_error(&text), line_of(&text, "parameters:"), path, expected);
    }

    let text = with_build("      provider: circleci\n      project: gh/acme/web\n      artifact: web:{sha}\n");
    assert_diag(&only_error(&text), line_of(&text, "provider: circleci"), "extensions.baton.build.token", "missing required field");
}

#[test]
fn codebuild_blocks_name_a_project_and_how_the_artifact_is_named() {
    let text = with_build(
        "      provider: codebuild\n      project: web-release\n      region: eu-west-1\n      \
         role-arn: \"arn:aws:iam::210987654321:role/baton-build\"\n      env: {STAGE: prod}\n      \
         artifact: \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:{short-sha}\"\n      artifact-variable: IMAGE_URI\n",
    );
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let codebuild: CodeBuildBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!(codebuild.project, "web-release");
    assert_eq!(
        codebuild.access,
        AwsAccess { region: Some("eu-west-1".into()), role_arn: Some("arn:aws:iam::210987654321:role/baton-build".into()) }
    );
    assert_eq!(codebuild.env["STAGE"], "prod");
    assert_eq!(codebuild.artifact.as_deref(), Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:{short-sha}"));
    assert_eq!(codebuild.artifact_variable.as_deref(), Some("IMAGE_URI"));

    // Either way of naming the artifact is enough on its own.
    let text = with_build("      provider: codebuild\n      project: web\n      artifact-variable: IMAGE_URI\n");
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let codebuild: CodeBuildBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!((codebuild.artifact.as_ref(), codebuild.access.clone()), (None, AwsAccess::default()));
}

#[test]
fn a_codebuild_block_is_refused_without_a_project_a_way_to_name_the_artifact_or_with_a_bad_variable() {
    let text = with_build("      provider: codebuild\n      project: web\n");
    assert_diag(
        &only_error(&text),
        line_of(&text, "provider: codebuild"),
        "extensions.baton.build",
        "expected `artifact`, `artifact-variable` or both",
    );
    let text = with_build("      provider: codebuild\n      artifact: web:{sha}\n");
    assert_diag(
        &only_error(&text),
        line_of(&text, "provider: codebuild"),
        "extensions.baton.build.project",
        "missing required field: expected a non-empty string",
    );
    let text = with_build("      provider: codebuild\n      project: web\n      artifact-variable: image-uri\n");
    assert_diag(
        &only_error(&text),
        line_of(&text, "artifact-variable:"),
        "extensions.baton.build.artifact-variable",
        "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
    );
    let text = with_build("      provider: codebuild\n      project: web\n      artifact: web:{sha}\n      env: {BATON_SHA: x}\n");
    assert_diag(
        &only_error(&text),
        line_of(&text, "BATON_SHA"),
        "extensions.baton.build.env.BATON_SHA",
        "`BATON_*` variables are set by Baton",
    );
    let text = with_build("      provider: codebuild\n      project: web\n      artifact: web:{sha}\n      placements: []\n");
    assert_diag(&only_error(&text), line_of(&text, "placements:"), "extensions.baton.build.placements", "unknown field");
}

#[test]
fn commands_need_a_program() {
    let text = with("command: [\"sh\", \"deploy.sh\"]", "command: []");
    assert_diag(
        &only_error(&text),
        line_of(&text, "command: []"),
        "extensions.baton.deploy.command",
        "an empty command: expected a command as a list of strings",
    );
    let text = with("command: [\"sh\", \"deploy.sh\"]", "command: [\"\", \"deploy.sh\"]");
    assert_diag(&only_error(&text), line_of(&text, "deploy.sh"), "extensions.baton.deploy.command[0]", "expected a program name");
    let text = with("command: [\"sh\", \"deploy.sh\"]", "command: [\"sh\", \"deploy.sh\\0--force\"]");
    assert_diag(&only_error(&text), line_of(&text, "deploy.sh"), "extensions.baton.deploy.command[1]", "found a NUL byte");
    let text = with("command: [\"sh\", \"deploy.sh\"]", "command: [sleep, 5]");
    assert_diag(&only_error(&text), line_of(&text, "sleep"), "extensions.baton.deploy.command[1]", "expected a string, found a number");
}

#[test]
fn env_maps_take_string_values_and_leave_baton_variables_alone() {
    let text = with(
        "      command: [\"sh\", \"build.sh\"]",
        "      command: [\"sh\", \"build.sh\"]\n      env: {PORT: 8080, BATON_SHA: x, bad-name: y}",
    );
    let (_, diagnostics) = parse_catalog_documents(FILE, &text);
    let got: Vec<(&str, &str)> = diagnostics.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("extensions.baton.build.env.PORT", "expected a string (quote numbers and booleans), found a number"),
            ("extensions.baton.build.env.BATON_SHA", "`BATON_*` variables are set by Baton; choose another name"),
            ("extensions.baton.build.env.bad-name", "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
        ]
    );
}

#[test]
fn pass_env_lists_names_of_variables_baton_does_not_set() {
    let text = with(
        "      command: [\"sh\", \"build.sh\"]",
        "      command: [\"sh\", \"build.sh\"]\n      pass-env: [DOCKER_CONFIG, BATON_SHA, bad-name, 7]",
    );
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    let got: Vec<(&str, &str)> = diagnostics.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("extensions.baton.build.pass-env[1]", "`BATON_*` variables are set by Baton; choose another name"),
            ("extensions.baton.build.pass-env[2]", "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ("extensions.baton.build.pass-env[3]", "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*), found a number"),
        ]
    );
    assert!(services.is_empty());
    let ok = with("      command: [\"sh\", \"build.sh\"]", "      command: [\"sh\", \"build.sh\"]\n      pass-env: [DOCKER_CONFIG]");
    let (services, diagnostics) = parse_catalog_documents(FILE, &ok);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let build: CommandBuild = services[0].delivery.build.decode().unwrap();
    assert_eq!(build.run.pass_env, ["DOCKER_CONFIG"]);
}

#[test]
fn inline_secrets_are_rejected_without_repeating_them() {
    let secret = "https://hooks.slack.com/services/T000/B000/s3cr3tXYZ";
    for (value, why) in [
        (secret.to_string(), "no `env:`, `ssm:` or `secrets-manager:` prefix"),
        (format!("\"{secret}\""), "no `env:`, `ssm:` or `secrets-manager:` prefix"),
        ("xoxb-1234-s3cr3tXYZ".to_string(), "no `env:`, `ssm:` or `secrets-manager:` prefix"),
        ("env:s3cr3t-XYZ".to_string(), "`env:` takes a variable name"),
    ] {
        let text = with(
            "          consecutive: 3\n",
            &format!("          consecutive: 3\n    notify:\n      slack:\n        channel: \"#shop\"\n        webhook: {value}\n"),
        );
        let d = only_error(&text);
        assert_diag(&d, line_of(&text, "webhook:"), "extensions.baton.notify.slack.webhook", "expected a secret reference");
        assert!(d.message.contains(why), "{}", d.message);
        assert!(d.message.contains("not the secret itself (value not shown)"));
        assert!(!d.message.contains("s3cr3t") && !d.message.contains("hooks.slack"), "the secret leaked: {}", d.message);
    }
}

#[test]
fn slack_needs_a_way_to_post() {
    let text = with("          consecutive: 3\n", "          consecutive: 3\n    notify:\n      slack:\n        channel: \"#shop\"\n");
    assert_diag(&only_error(&text), line_of(&text, "channel:"), "extensions.baton.notify.slack", "expected `webhook`, `token` or both");
}

#[test]
fn notifiers_read_the_same_as_a_list_of_provider_blocks_or_keyed_by_provider() {
    let keyed =
        "    notify:\n      slack: {channel: \"#shop\", token: \"env:SLACK_TOKEN\"}\n      pagerduty: {routing-key: \"env:PD_KEY\"}\n";
    let listed = "    notify:\n      - {provider: slack, channel: \"#shop\", token: \"env:SLACK_TOKEN\"}\n      - provider: pagerduty\n        routing-key: \"env:PD_KEY\"\n";
    let read = |notify: &str| {
        let (services, diagnostics) =
            parse_catalog_documents(FILE, &with("          consecutive: 3\n", &format!("          consecutive: 3\n{notify}")));
        assert_eq!(diagnostics, vec![]);
        services[0].delivery.notify.clone()
    };
    let notify = read(listed);
    assert_eq!(read(keyed), notify);
    let slack: SlackSpec = notify[0].decode().unwrap();
    assert_eq!((slack.channel.as_str(), slack.token), ("#shop", Some(SecretRef::Env("SLACK_TOKEN".into()))));
    let pagerduty: PagerDutySpec = notify[1].decode().unwrap();
    assert_eq!(pagerduty.routing_key, SecretRef::Env("PD_KEY".into()));
}

#[test]
fn a_notifier_is_checked_against_its_own_shape_in_either_form() {
    let keyed = with("          consecutive: 3\n", "          consecutive: 3\n    notify:\n      slak: {channel: \"#shop\"}\n");
    assert_diag(
        &only_error(&keyed),
        line_of(&keyed, "slak:"),
        "extensions.baton.notify.slak",
        "unknown notifier `slak` (did you mean `slack`?)",
    );
    let keyed = with(
        "          consecutive: 3\n",
        "          consecutive: 3\n    notify:\n      pagerduty: {routing-key: \"env:K\", provider: slack}\n",
    );
    assert_diag(
        &only_error(&keyed),
        line_of(&keyed, "pagerduty:"),
        "extensions.baton.notify.pagerduty.provider",
        "the key `pagerduty` already names the notifier",
    );
    let listed = with(
        "          consecutive: 3\n",
        "          consecutive: 3\n    notify:\n      - provider: opsgenie\n        api-key: \"env:K\"\n        region: APAC\n",
    );
    assert_diag(&only_error(&listed), line_of(&listed, "region:"), "extensions.baton.notify[0].region", "unknown value `APAC`");
    let listed = with("          consecutive: 3\n", "          consecutive: 3\n    notify:\n      - provider: pagerdooty\n");
    assert_diag(
        &only_error(&listed),
        line_of(&listed, "provider: pagerdooty"),
        "extensions.baton.notify[0].provider",
        "unknown provider `pagerdooty` (did you mean `pagerduty`?)",
    );
}

#[test]
fn service_names_must_be_safe_for_keys_and_paths() {
    let text = with("dd-service: shop", "dd-service: ../shop");
    let d = only_error(&text);
    assert_diag(&d, 2, "dd-service", "expected a name of letters, digits, `.`, `_` and `-`, starting with a letter or digit");
    assert!(d.message.ends_with("at most 63 characters (Baton uses service names in keys and paths); found `.` first"), "{d}");
}

#[test]
fn environment_wave_and_target_names_follow_their_grammar() {
    let text = with("environment: production", "environment: prod/eu");
    assert_diag(
        &only_error(&text),
        line_of(&text, "prod/eu"),
        "extensions.baton.environment",
        "expected a name of letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 63 characters; found `/`",
    );
    let text = with("- name: rest", &format!("- name: {}", "r".repeat(64)));
    assert_diag(&only_error(&text), line_of(&text, "rrr"), "extensions.baton.deploy.waves[1].name", "; found 64 characters");
    let text = with("- name: rest", "- name: -rest");
    assert_diag(&only_error(&text), line_of(&text, "-rest"), "extensions.baton.deploy.waves[1].name", "; found `-` first");

    for (target, why) in
        [("\"r1,r3\"", "found `,`"), ("../etc", "found `.` first"), ("\"a b\"", "found ` `"), ("\"\"", "found an empty string")]
    {
        let text = with("targets: [r1, r2]", &format!("targets: [r1, {target}]"));
        let d = only_error(&text);
        assert_diag(&d, line_of(&text, "targets: [r1, "), "extensions.baton.deploy.waves[1].targets[1]", why);
        assert!(d.message.starts_with("expected a target name of letters, digits, `.`, `_`, `:` and `-`, starting"), "{d}");
    }
    // What deploy tools call their targets reads as is: ECS services, Lambda ARNs, Argo CD apps.
    let targets = "[web-use1_blue, \"arn:aws:lambda:us-east-1:123456789012:function:checkout:live\", checkout.prod]";
    let (services, diagnostics) = parse_catalog_documents(FILE, &with("targets: [r1, r2]", &format!("targets: {targets}")));
    assert_eq!((services.len(), diagnostics), (1, vec![]));
}

#[test]
fn v3_entities_released_by_baton_must_be_services() {
    let text = "apiVersion: v3\nkind: system\nmetadata: {name: shop}\nextensions:\n  baton: {}\n";
    let (_, diagnostics) = parse_catalog_documents(FILE, text);
    assert_diag(&diagnostics[0], 2, "kind", "expected `kind: service`");
    let text = "apiVersion: v3\nkind: service\nmetadata: {nmae: shop}\nspec: {tier: \"1\", owner: x}\n";
    let (_, diagnostics) = parse_catalog_documents(FILE, text);
    let got: Vec<(&str, &str)> = diagnostics.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
    assert_eq!(got[0].0, "metadata.nmae");
    assert!(got[0].1.contains("(did you mean `name`?)"));
    assert_eq!(got[1], ("metadata.name", "missing required field: expected a non-empty string"));
    assert_eq!(got[2].0, "spec.owner");
}

#[test]
fn duplicate_names_within_one_text_name_both_places() {
    let text = format!("{BASE}---\n{BASE}");
    let second = BASE.lines().count() + 1 + 2;
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert!(services.is_empty());
    assert_eq!(diagnostics.len(), 2);
    assert_diag(&diagnostics[0], 2, "dd-service", &format!("service `shop` is also defined at {FILE}:{second}:"));
    assert_diag(&diagnostics[1], second, "dd-service", &format!("service `shop` is also defined at {FILE}:2:"));
}

#[test]
fn syntax_errors_carry_their_line() {
    let text = with("release-branch: main", "release-branch: main\n    release-branch: again");
    assert_diag(&only_error(&text), line_of(&text, "again"), "(document)", "expected well-formed YAML or JSON: duplicated key");
}

#[test]
fn secret_refs_deserialize_from_both_spellings_without_echo() {
    let env: SecretRef = serde_json::from_str("\"env:SLACK_TOKEN\"").unwrap();
    assert_eq!(env, SecretRef::Env("SLACK_TOKEN".into()));
    let ssm: SecretRef = serde_json::from_str(r#"{"ssm": "/a/b"}"#).unwrap();
    assert_eq!(serde_json::to_string(&ssm).unwrap(), r#"{"ssm":"/a/b"}"#, "serialises as before");
    let err = serde_json::from_str::<SecretRef>("\"xoxb-s3cr3t\"").unwrap_err().to_string();
    assert!(!err.contains("s3cr3t"), "{err}");
    let err = serde_json::from_str::<SecretRef>(r#"{"env": "s3cr3t value"}"#).unwrap_err().to_string();
    assert!(!err.contains("s3cr3t"), "{err}");
}

// ------------------------------------------------------------------ files and FsCatalog

fn catalog_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn duplicate_names_across_files_name_both_files() {
    let dir = catalog_dir(&[("a.yaml", BASE), ("team/b.yml", BASE), ("notes.txt", "not a catalog"), (".hidden/c.yaml", BASE)]);
    let catalog = load_catalog(dir.path()).unwrap();
    assert_eq!(catalog.files(), 2);
    let a = dir.path().join("a.yaml").display().to_string();
    let b = dir.path().join("team/b.yml").display().to_string();
    let diagnostics = catalog.diagnostics();
    assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
    assert_eq!((diagnostics[0].file.as_str(), diagnostics[0].line), (a.as_str(), Some(2)));
    assert!(diagnostics[0].message.contains(&format!("also defined at {b}:2")));
    assert_eq!(diagnostics[1].file, b);
    assert!(diagnostics[1].message.contains(&format!("also defined at {a}:2")));
    assert!(catalog.services().is_empty());
}

#[tokio::test]
async fn fs_catalog_serves_valid_invalid_unmanaged_and_missing_services() {
    let invalid = BASE.replace("dd-service: shop", "dd-service: cart").replace("bake: 5s", "bake: 5d");
    let unmanaged = "schema-version: v2.2\ndd-service: search\n";
    let dir = catalog_dir(&[("shop.yaml", BASE), ("cart.yaml", &invalid), ("search.json", unmanaged)]);
    let catalog = FsCatalog::open(registry(), dir.path()).unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();

    let shop = catalog.service("shop").await.unwrap();
    assert_eq!(shop.source, root.join("shop.yaml").display().to_string(), "sources are absolute");

    let Err(CatalogError::Invalid(diagnostics)) = catalog.service("cart").await else { panic!("cart is invalid") };
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].path, "extensions.baton.deploy.waves[0].bake");
    assert_eq!(diagnostics[0].file, root.join("cart.yaml").display().to_string());

    let Err(CatalogError::NotFound { service, searched }) = catalog.service("search").await else { panic!() };
    assert_eq!(service, "search");
    assert!(searched.contains("has no `extensions.baton` block"), "{searched}");

    let Err(CatalogError::NotFound { searched, .. }) = catalog.service("nope").await else { panic!() };
    assert_eq!(searched, format!("searched {} (3 files)", root.display()));

    assert!(matches!(FsCatalog::open(registry(), dir.path().join("missing")), Err(CatalogError::Unavailable { .. })));
}

#[test]
fn a_path_without_definitions_is_an_error() {
    let dir = catalog_dir(&[("notes.txt", "not a catalog")]);
    let catalog = load_catalog(dir.path()).unwrap();
    let [d] = catalog.diagnostics() else { panic!("{:#?}", catalog.diagnostics()) };
    assert_eq!((d.file.clone(), d.line), (dir.path().display().to_string(), None));
    assert_eq!(d.message, "expected Datadog service definitions, found no *.yaml, *.yml or *.json file");

    let dir = catalog_dir(&[("empty.yaml", ""), ("shop.yaml", BASE)]);
    let catalog = load_catalog(dir.path()).unwrap();
    assert_eq!(catalog.services().len(), 1);
    let [d] = catalog.diagnostics() else { panic!("{:#?}", catalog.diagnostics()) };
    assert_eq!(d.file, dir.path().join("empty.yaml").display().to_string());
    assert!(d.message.contains("found no YAML or JSON document"));
}

#[test]
fn a_single_file_is_a_catalog_too() {
    let dir = catalog_dir(&[("one.yaml", BASE)]);
    let catalog = load_catalog(&dir.path().join("one.yaml")).unwrap();
    assert_eq!(catalog.services().len(), 1);
    assert!(load_catalog(&dir.path().join("none.yaml")).is_err());
}

// ------------------------------------------------------------------ hostile input

/// Runs `f` on a thread with a 256 KiB stack (8 MiB is usual): reading a text with one
/// stack frame per nesting level would overflow it.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().expect("no stack overflow or panic")
}

/// The only diagnostic for a hostile `text`, read on a small stack within a time bound.
fn hostile(text: String) -> Diagnostic {
    let started = std::time::Instant::now();
    let diagnostic = on_small_stack(move || only_error(&text));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    diagnostic
}

#[test]
fn deep_nesting_is_refused_without_recursing() {
    let deep = [
        "- ".repeat(5_000) + "x\n",
        "[".repeat(5_000) + &"]".repeat(5_000) + "\n",
        "{a: ".repeat(200) + "1" + &"}".repeat(200) + "\n",
        "a:\n".to_string() + &(1..100).map(|i| format!("{}b{i}:\n", " ".repeat(i))).collect::<String>() + &" ".repeat(100) + "c: 1\n",
    ];
    for text in deep {
        let d = hostile(text);
        assert_eq!(d.path, "(document)");
        assert!(d.message.contains("nest more than 64 levels deep, the most a catalog document may have"), "{d}");
    }
    // The limit itself: 64 levels read (and are no catalog), 65 do not.
    assert!(hostile("- ".repeat(64) + "x\n").message.contains("expected a Datadog service definition"));
    assert_diag(&hostile("- ".repeat(65) + "x\n"), 1, "(document)", "nest more than 64 levels");
    // An alias counts the depth of what it copies.
    let anchored = "[".repeat(40) + &"]".repeat(40);
    let text = format!("a: &a {anchored}\nb:\n{}*a\n", "  - ".repeat(30));
    assert_diag(&hostile(text.clone()), line_of(&text, "*a"), "(document)", "nest more than 64 levels");
}

#[test]
fn alias_bombs_stop_at_the_expansion_budget() {
    // Billion laughs: each level is nine aliases of the one before.
    let levels = "abcdefghi".chars().collect::<Vec<_>>();
    let mut text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string();
    for pair in levels.windows(2) {
        let (prev, this) = (pair[0], pair[1]);
        text += &format!("{this}: &{this} [{}]\n", vec![format!("*{prev}"); 9].join(", "));
    }
    let d = hostile(text.clone());
    assert!(d.line.is_some_and(|line| line <= text.lines().count()), "{d}");
    assert!(d.message.contains("more than 200000 values with its aliases expanded"), "{d}");

    // Few nodes, much text: one long anchored string, aliased many times.
    let text = format!("a: &a \"{}\"\nb: [{}]\n", "x".repeat(64 * 1024), vec!["*a"; 100].join(", "));
    assert_diag(&hostile(text), 2, "(document)", "more than 4194304 bytes of text with its aliases expanded");

    // Aliases used as mapping keys (which saphyr's loader did not count) are refused outright.
    let text = "a: &a [lol, lol]\nb: &b {? [*a, 1] : 1, ? [*a, 2] : 2}\n".to_string();
    assert_diag(&hostile(text), 2, "(document)", "expected well-formed YAML or JSON: a plain mapping key, not a list or mapping");
    assert_diag(&hostile("a: &a [x]\nb: {*a : 1}\n".into()), 2, "(document)", "a plain mapping key");
    assert_diag(&hostile("a: *a\n".into()), 1, "(document)", "unknown anchor");
    assert_diag(&hostile("a: &a x\n---\nb: *a\n".into()), 3, "(document)", "an alias that names an earlier anchor of its document");
}

#[test]
fn oversized_texts_are_refused_before_parsing() {
    let text = format!("schema-version: v2.2\ndd-service: big\ndescription: \"{}\"\n", "x".repeat(MAX_TEXT_BYTES));
    let d = hostile(text);
    assert_eq!((d.line, d.path.as_str()), (None, "(document)"));
    assert!(d.message.ends_with("bytes; a catalog file may hold at most 1048576 (1 MiB)"), "{d}");

    // From a directory: the big file is reported without being read whole, the others still load.
    let dir = catalog_dir(&[("shop.yaml", BASE)]);
    let big = dir.path().join("big.yaml");
    std::fs::File::create(&big).unwrap().set_len(64 << 20).unwrap();
    let catalog = load_catalog(dir.path()).unwrap();
    assert_eq!(catalog.services().len(), 1);
    let [d] = catalog.diagnostics() else { panic!("{:#?}", catalog.diagnostics()) };
    assert_eq!(d.file, big.display().to_string());
    assert_eq!(d.message, "the text is 67108864 bytes; a catalog file may hold at most 1048576 (1 MiB)");
}

#[test]
fn a_hostile_file_does_not_stop_its_neighbours() {
    let bomb = "- ".repeat(50_000) + "x\n";
    let dir = catalog_dir(&[("shop.yaml", BASE), ("bomb.yaml", &bomb)]);
    let path = dir.path().to_path_buf();
    let catalog = on_small_stack(move || load_catalog(&path).unwrap());
    assert!(matches!(catalog.lookup("shop"), Lookup::Found(_)));
    assert_eq!(catalog.diagnostics().len(), 1);
    assert!(catalog.diagnostics()[0].message.contains("nest more than 64 levels"));
}

// ------------------------------------------------------------------ paths and programs (from files)

/// The diagnostics of `text` loaded as `catalog/shop.yaml` in `dir`, with `loader`.
fn load_in(dir: &std::path::Path, text: &str, loader: &CatalogLoader) -> (std::path::PathBuf, Vec<Diagnostic>) {
    let file = dir.join("catalog/shop.yaml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    let catalog = loader.load(&dir.join("catalog")).unwrap();
    (file, catalog.diagnostics().to_vec())
}

/// BASE whose build runs in `working_dir` (and writes `artifact`, when given).
fn build_in(working_dir: &str, artifact: Option<&str>) -> String {
    let artifact = artifact.map(|a| format!("\n      artifact-file: {a}")).unwrap_or_default();
    with(
        "      command: [\"sh\", \"build.sh\"]",
        &format!("      command: [\"sh\", \"build.sh\"]\n      working-dir: {working_dir}{artifact}"),
    )
}

#[test]
fn working_dirs_and_artifact_files_stay_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("services/shop")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    let catalog_root = root.join("catalog");
    let loader = rooted(&catalog_root);
    std::fs::create_dir_all(root.join("catalog/tools")).unwrap();

    // Inside: relative paths, `..` that stays in, an artifact file not written yet.
    let (_, diagnostics) = load_in(&root, &build_in("tools/../tools", Some("out/ref")), &loader);
    assert_eq!(diagnostics, vec![]);

    let cases = [
        ("../outside", None, "working-dir", format!("it leads to {}", root.join("outside").display())),
        ("/tmp", None, "working-dir", "it leads to /tmp".to_string()),
        ("tools", Some("../../../../../../../etc/passwd"), "artifact-file", "it leads to /etc/passwd".to_string()),
    ];
    for (working_dir, artifact, field, why) in cases {
        let text = build_in(working_dir, artifact);
        let (file, diagnostics) = load_in(&root, &text, &loader);
        let [d] = &diagnostics[..] else { panic!("{diagnostics:#?}") };
        assert_eq!((d.file.as_str(), d.line), (file.to_str().unwrap(), Some(line_of(&text, field))));
        assert_eq!(d.path, format!("extensions.baton.build.{field}"));
        assert!(d.message.starts_with("expected a path") && d.message.contains(&why), "{d}");
        let rule = "(the catalog root the operator set (`BATON_CATALOG_ROOT`, `--root`))";
        assert!(d.message.contains(&format!("{} {rule}", root.join("catalog").display())), "{d}");
    }

    // A symlink inside the root that points out of it.
    std::os::unix::fs::symlink(root.join("outside"), root.join("catalog/link")).unwrap();
    let (_, diagnostics) = load_in(&root, &build_in("link", None), &loader);
    assert!(
        diagnostics[0].message.contains(&format!("it leads through a symlink to {}", root.join("outside").display())),
        "{diagnostics:#?}"
    );

    // An operator's root may be wider, and then allows absolute paths inside it.
    let wide = rooted(&root);
    let text = build_in(&root.join("services/shop").display().to_string(), None);
    assert_eq!(load_in(&root, &text, &wide).1, vec![]);
    assert_eq!(load_in(&root, &build_in("../services/shop", None), &wide).1, vec![]);
    // A root that does not exist stops the load.
    assert!(rooted(&root.join("nope")).load(&root.join("catalog")).unwrap_err().to_string().contains("catalog root"));
}

#[test]
fn a_symlinked_catalog_file_leading_out_of_the_root_is_refused_and_one_inside_read() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let outside = std::fs::canonicalize(elsewhere.path()).unwrap().join("evil.yaml");
    std::fs::create_dir_all(root.join("catalog")).unwrap();
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::write(&outside, BASE.replace("dd-service: shop", "dd-service: evil")).unwrap();
    std::fs::write(root.join("shared/shop.yaml"), BASE).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("catalog/evil.yaml")).unwrap();
    std::os::unix::fs::symlink(root.join("shared/shop.yaml"), root.join("catalog/shop.yaml")).unwrap();

    let catalog = rooted(&root).load(&root.join("catalog")).unwrap();
    let [refused] = catalog.diagnostics() else { panic!("{:#?}", catalog.diagnostics()) };
    assert!(refused.file.ends_with("catalog/evil.yaml"), "{refused}");
    let why = format!("found a symlink to {}", outside.display());
    assert!(refused.message.starts_with("expected a file inside") && refused.message.contains(&why), "{refused}");
    assert!(catalog.services().iter().all(|s| s.name != "evil"), "the file outside was not read");
    assert!(catalog.services().iter().any(|s| s.name == "shop"), "a link inside the root is read");
}

#[test]
fn the_default_root_is_the_repository_holding_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("repo/services/shop")).unwrap();
    let loader = CatalogLoader::new(registry());
    // Without a repository, the catalog's directory.
    let (_, diagnostics) = load_in(&root.join("repo"), &build_in("../services/shop", None), &loader);
    assert!(diagnostics[0].message.contains("(the catalog's directory: no directory above it has a .git"), "{diagnostics:#?}");
    // In a repository, anywhere inside it, as the examples' `../services/common`.
    std::fs::create_dir(root.join("repo/.git")).unwrap();
    assert_eq!(load_in(&root.join("repo"), &build_in("../services/shop", None), &loader).1, vec![]);
    let (_, diagnostics) = load_in(&root.join("repo"), &build_in("../..", None), &loader);
    assert!(
        diagnostics[0].message.contains("(the repository holding the catalog: the nearest directory above it with a .git;"),
        "{diagnostics:#?}"
    );
    // Absolute paths only under an operator's root.
    let text = build_in(&root.join("repo/services/shop").display().to_string(), None);
    let (_, diagnostics) = load_in(&root.join("repo"), &text, &loader);
    assert_eq!(
        diagnostics[0].message,
        format!(
            "expected a path relative to the catalog file's directory, found an absolute path; paths must stay inside {} \
             (the repository holding the catalog: the nearest directory above it with a .git; `BATON_CATALOG_ROOT` sets another \
             root, inside which absolute paths are allowed too)",
            root.join("repo").display()
        )
    );
}

#[test]
fn working_dirs_exist_and_programs_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("catalog/bin")).unwrap();
    std::fs::write(root.join("catalog/bin/deploy.sh"), "exit 0\n").unwrap();
    let loader = rooted(&root);

    let text = build_in("missing", None);
    let (_, diagnostics) = load_in(&root, &text, &loader);
    let [d] = &diagnostics[..] else { panic!("{diagnostics:#?}") };
    assert_diag_in(d, line_of(&text, "working-dir"), "extensions.baton.build.working-dir");
    assert_eq!(d.message, format!("expected an existing directory: {} does not exist", root.join("catalog/missing").display()));

    let deploy = "      command: [\"sh\", \"deploy.sh\"]";
    let text = with(deploy, "      command: [./deploy.sh]\n      working-dir: bin\n      rollback-command: [./rollback.sh]");
    let (_, diagnostics) = load_in(&root, &text, &loader);
    let [d] = &diagnostics[..] else { panic!("{diagnostics:#?}") };
    assert_diag_in(d, line_of(&text, "rollback.sh"), "extensions.baton.deploy.rollback-command[0]");
    assert_eq!(d.message, format!("expected a program file: {} does not exist", root.join("catalog/bin/rollback.sh").display()));

    let text = with(deploy, "      command: [no-such-program-baton-test]");
    let (_, diagnostics) = load_in(&root, &text, &loader);
    let [d] = &diagnostics[..] else { panic!("{diagnostics:#?}") };
    assert_diag_in(d, line_of(&text, "no-such-program"), "extensions.baton.deploy.command[0]");
    assert!(d.message.starts_with("expected a program on PATH or a path to one (e.g. `./no-such-program-baton-test`"), "{d}");
    // The command's own PATH is where its program is looked up.
    let text = with(deploy, &format!("      command: [deploy.sh]\n      env: {{PATH: \"{}\"}}", root.join("catalog/bin").display()));
    assert_eq!(load_in(&root, &text, &loader).1, vec![]);

    // A text from elsewhere (the catalog table, Datadog) is not checked against this machine.
    assert_eq!(parse_catalog_documents(FILE, &build_in("/nowhere", None)).1, vec![]);
}

fn assert_diag_in(d: &Diagnostic, line: usize, path: &str) {
    assert!(d.file.ends_with("catalog/shop.yaml"), "{d}");
    assert_eq!((d.line, d.path.as_str()), (Some(line), path), "{d}");
}

#[test]
fn a_catalog_for_the_cloud_refuses_the_command_providers_naming_their_aws_alternatives() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let text = with(
        "        - provider: http\n",
        "        - provider: cloudwatch\n          alarms: [shop-5xx]\n        - provider:   command\n          command: [\"true\"]\n        - provider: http\n",
    );
    let local = rooted(&root);
    assert_eq!(load_in(&root, &text, &local).1, vec![], "a local catalog keeps its commands");

    let cloud = CatalogLoader { for_cloud: true, ..rooted(&root) };
    let (file, diagnostics) = load_in(&root, &text, &cloud);
    let file = file.display().to_string();
    let build_line = text.lines().position(|l| l == "      provider: command").unwrap() + 1;
    let expected = [
        (build_line, "extensions.baton.build.provider", "use `github-actions`, `gitlab-ci`, `buildkite`, `circleci` or `codebuild`"),
        (build_line + 3, "extensions.baton.deploy.provider", "use `ecs`, `lambda`, `argo-cd` or `webhook`"),
        (line_of(&text, "provider:   command"), "extensions.baton.health.gates[1].provider", "use `cloudwatch`, `datadog` or `http`"),
    ];
    assert_eq!(diagnostics.len(), expected.len(), "{diagnostics:#?}");
    for (diagnostic, (line, path, alternative)) in diagnostics.iter().zip(expected) {
        assert_eq!((diagnostic.file.as_str(), diagnostic.line, diagnostic.path.as_str()), (file.as_str(), Some(line), path));
        assert!(diagnostic.message.starts_with("`command` runs on the machine running Baton"), "{diagnostic}");
        assert!(diagnostic.message.ends_with(alternative), "{diagnostic}");
    }
}

#[test]
fn a_wave_approval_reads_into_the_model_with_its_defaults() {
    let text = with(
        "          targets: [r1, r2]\n",
        "          targets: [r1, r2]\n          approval: {required: true, approvers: [U0ANN, S0OPS], four-eyes: true}\n",
    );
    let (services, diagnostics) = parse_catalog_documents(FILE, &text);
    assert_eq!(diagnostics, vec![]);
    let approval = services[0].delivery.deploy.waves[1].approval.clone().expect("the block is kept");
    assert_eq!(
        approval,
        ApprovalSpec {
            required: true,
            approvers: vec!["U0ANN".into(), "S0OPS".into()],
            timeout: ApprovalSpec::DEFAULT_TIMEOUT,
            on_timeout: OnTimeout::Rollback,
            four_eyes: true,
        }
    );
}

#[test]
fn bad_approval_blocks_name_the_file_line_field_and_what_was_expected() {
    let cases = [
        ("approval: {required: true}", "extensions.baton.deploy.waves[1].approval.approvers", "a required approval names its approvers"),
        ("approval: {required: yes-please, approvers: [U1]}", "extensions.baton.deploy.waves[1].approval.required", "`true` or `false`"),
        (
            "approval: {required: true, approvers: []}",
            "extensions.baton.deploy.waves[1].approval.approvers",
            "a non-empty list of approvers",
        ),
        (
            "approval: {required: true, approvers: [U1], on-timeout: pause}",
            "extensions.baton.deploy.waves[1].approval.on-timeout",
            "`rollback`, `stop`",
        ),
        ("approval: {required: true, approvers: [U1], timeout: 2y}", "extensions.baton.deploy.waves[1].approval.timeout", "a duration"),
        ("approval: {required: true, approvers: [U1], for-eyes: true}", "extensions.baton.deploy.waves[1].approval.for-eyes", "four-eyes"),
    ];
    for (block, path, expected) in cases {
        let text = with("          targets: [r1, r2]\n", &format!("          targets: [r1, r2]\n          {block}\n"));
        let d = only_error(&text);
        assert_diag(&d, line_of(&text, "approval:"), path, expected);
    }
}

#[test]
fn the_organisation_default_gates_production_waves_the_catalog_leaves_open() {
    let default =
        ApprovalSpec::parse_default(r#"{"required": true, "approvers": ["S0OPS"], "timeout": "1h"}"#, APPROVAL_DEFAULT_ENV).unwrap();
    let text = with("          targets: [r1, r2]\n", "          targets: [r1, r2]\n          approval: {required: false}\n");
    let (services, _) = parse_catalog_documents(FILE, &text);
    let mut delivery = services[0].delivery.clone();
    ApprovalSpec::apply_default(&mut delivery, Some(&default));
    assert_eq!(delivery.deploy.waves[0].approval.as_ref(), Some(&default), "a wave that says nothing gets the default");
    assert_eq!(delivery.deploy.waves[1].approval.as_ref().map(|a| a.required), Some(false), "a wave's own block wins");
    let mut staging = Delivery { environment: "staging".into(), ..services[0].delivery.clone() };
    ApprovalSpec::apply_default(&mut staging, Some(&default));
    assert_eq!(staging.deploy.waves[0].approval, None, "only production waves");
    let refused = ApprovalSpec::parse_default(r#"{"required": true}"#, APPROVAL_DEFAULT_ENV).unwrap_err();
    assert_eq!(refused, "BATON_APPROVAL_DEFAULT: approvers: expected a non-empty list when `required` is true");
    let unreadable = ApprovalSpec::parse_default("yes", APPROVAL_DEFAULT_ENV).unwrap_err();
    assert!(unreadable.starts_with("BATON_APPROVAL_DEFAULT: expected a JSON approval block"), "{unreadable}");
}

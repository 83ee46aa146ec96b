//! The checked-in JSON Schema, the serde model and the example catalog agree.
//!
//! Regenerate the schema after changing the catalog shapes with
//! `BATON_BLESS=1 cargo test --workspace --test providers -- catalog_examples::`.

use baton_domain::catalog::shape::{Field, Kind};
use baton_domain::catalog::*;
use baton_providers::{CommandBuild, CommandDeploy, CommandRun, MODULES, registry};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema_path() -> PathBuf {
    repo().join("schema/baton-extension.schema.json")
}

fn checked_in_schema() -> Value {
    let text = std::fs::read_to_string(schema_path()).expect("schema/baton-extension.schema.json exists");
    serde_json::from_str(&text).expect("the schema is JSON")
}

#[test]
fn the_checked_in_schema_is_the_generated_one() {
    let generated = baton_extension_schema(registry());
    if std::env::var_os("BATON_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(schema_path(), text).unwrap();
    }
    assert_eq!(checked_in_schema(), generated, "schema is stale: rerun with BATON_BLESS=1");
    assert_eq!(generated["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

// ------------------------------------------------------------------ model <-> schema

/// The object schema that applies to `value`: the `provider` variant when the schema has variants.
fn object_schema<'s>(schema: &'s Value, value: &Value) -> &'s Value {
    match schema.get("oneOf").and_then(Value::as_array) {
        Some(variants) if schema["properties"].get("provider").is_some() => variants
            .iter()
            .find(|v| v["properties"]["provider"]["const"] == value["provider"])
            .unwrap_or_else(|| panic!("no variant for provider {}", value["provider"])),
        _ => schema,
    }
}

fn is_structural(schema: &Value) -> bool {
    schema.get("properties").is_some() || schema.get("items").is_some()
}

/// Every property path a fully populated model value produces, each checked to exist in the schema.
fn model_paths(schema: &Value, value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) if is_structural(schema) => {
            let schema = object_schema(schema, value);
            for (key, child) in map {
                let child_path = format!("{path}/{key}{}", provider_suffix(child));
                let child_schema =
                    schema["properties"].get(key).unwrap_or_else(|| panic!("model field {child_path} is missing from the schema"));
                out.insert(child_path.clone());
                model_paths(child_schema, child, &child_path, out);
            }
        }
        Value::Array(items) if is_structural(schema) => {
            for item in items {
                // Items of several providers (health gates) are told apart like fields: `/health/gates(http)`.
                let suffix = provider_suffix(item);
                let item_path = if suffix.is_empty() {
                    path.to_owned()
                } else {
                    out.remove(path);
                    let item_path = format!("{path}{suffix}");
                    out.insert(item_path.clone());
                    item_path
                };
                model_paths(&schema["items"], item, &item_path, out);
            }
        }
        _ => {}
    }
}

/// Variant fields are told apart by provider: `/health(http)/url`.
fn provider_suffix(child: &Value) -> String {
    child.get("provider").and_then(Value::as_str).map(|p| format!("({p})")).unwrap_or_default()
}

fn schema_paths(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    if let (Some(variants), true) = (schema.get("oneOf").and_then(Value::as_array), schema["properties"].get("provider").is_some()) {
        for variant in variants {
            let provider = variant["properties"]["provider"]["const"].as_str().unwrap();
            // The variant's path carries the provider, as in `model_paths`.
            let (parent, key) = path.rsplit_once('/').unwrap();
            let variant_path = format!("{parent}/{key}({provider})");
            out.remove(path);
            out.insert(variant_path.clone());
            schema_paths(&json!({"properties": variant["properties"]}), &variant_path, out);
        }
        return;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            let child_path = format!("{path}/{key}");
            out.insert(child_path.clone());
            schema_paths(child, &child_path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_paths(items, path, out);
    }
}

/// A value of `kind`, as a catalog would write it.
fn sample(kind: &Kind) -> Value {
    match kind {
        Kind::AnyText | Kind::Text | Kind::Checked(_) => json!("acme/web"),
        Kind::Name => json!("n"),
        Kind::Target | Kind::WaveTarget => json!("t"),
        Kind::Enum(values) => json!(values[values.len() - 1]),
        Kind::TextList => json!(["x"]),
        Kind::Targets => json!(["t"]),
        Kind::Url => json!("https://x.example.com"),
        Kind::CheckedScalars(_) => json!({ "word": "eu", "number": 3, "flag": false }),
        Kind::Duration { min, .. } | Kind::Count { min } | Kind::Between { min, .. } => json!(min.max(&1)),
        Kind::Argv => json!(["sh", "run.sh"]),
        Kind::WorkingDir | Kind::RelativePath => json!("dir"),
        Kind::Env => json!({ "A": "1" }),
        Kind::EnvNames => json!(["A"]),
        Kind::EnvName => json!("A"),
        Kind::Secret => json!({ "env": "S" }),
        Kind::Schedule => json!("rate(1 day)"),
        Kind::Object(shape) => fields_sample(shape.fields, false),
        Kind::List(shape) => json!([fields_sample(shape.fields, false)]),
        Kind::Mapping => json!({}),
        Kind::Waves | Kind::Gates | Kind::LabeledTargets | Kind::WaveOrder | Kind::Shares => unreachable!("not a provider field"),
        Kind::HttpStatuses => json!([200]),
        Kind::Ids => json!([1234]),
        Kind::Bool => json!(true),
        Kind::Approvers => json!(["U0ANN"]),
        Kind::Timestamp => json!("2026-12-24T18:00:00+01:00"),
        Kind::TimeZone => json!("Europe/Paris"),
        Kind::Cron => json!("0 16 * * FRI"),
        Kind::FreezeWindows | Kind::Notifiers => unreachable!("not a provider field"),
    }
}

/// A block with every field of `fields` set (only the required ones when `required_only`).
fn fields_sample(fields: &[Field], required_only: bool) -> Value {
    Value::Object(fields.iter().filter(|f| f.required || !required_only).map(|f| (f.name.to_owned(), sample(&f.kind))).collect())
}

/// The key paths of a JSON value (`/a/b`), lists looked into.
fn key_paths(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}/{key}");
                out.insert(child_path.clone());
                key_paths(child, &child_path, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| key_paths(item, path, out)),
        _ => {}
    }
}

/// Each provider's typed block reads every field its shape declares and writes it back, and
/// reads a block with only the required ones: the shape and the model name the same fields.
#[test]
fn every_provider_block_reads_exactly_the_fields_of_its_shape() {
    for module in MODULES {
        let shape = module.shape;
        let full = fields_sample(shape.fields, false);
        let back = (shape.through_model)(&full).unwrap_or_else(|err| panic!("{}: {err}", shape.name));
        let (mut written, mut read) = (BTreeSet::new(), BTreeSet::new());
        key_paths(&full, "", &mut written);
        key_paths(&back, "", &mut read);
        // Maps of free names (env, parameters) are data, not fields.
        let is_data = |path: &String| ["/A", "/word", "/number", "/flag"].iter().any(|leaf| path.ends_with(leaf));
        written.retain(|p| !is_data(p));
        read.retain(|p| !is_data(p));
        assert_eq!(read, written, "{}: fields the model and the shape do not share", shape.name);
        (shape.through_model)(&fields_sample(shape.fields, true))
            .unwrap_or_else(|err| panic!("{} with its required fields: {err}", shape.name));
    }
}

/// A delivery block with every optional field set, so serialisation shows every field.
fn full_delivery(build: ProviderBlock, target: ProviderBlock, health: HealthSpec) -> Delivery {
    Delivery {
        environment: "production".into(),
        release_branch: "main".into(),
        feature_branch: Some("next".into()),
        schedule: Some("rate(1 day)".into()),
        team: Some("t".into()),
        on_call: Some("o".into()),
        build,
        build_timeout: Seconds(5400),
        deploy: DeploySpec {
            target,
            waves: vec![WaveSpec {
                name: "w".into(),
                targets: vec!["t".into()],
                bake: Seconds(1),
                deploy_timeout: Seconds(60),
                approval: Some(ApprovalSpec {
                    required: true,
                    approvers: vec!["U0ANN".into()],
                    timeout: Seconds(600),
                    on_timeout: OnTimeout::Stop,
                    four_eyes: true,
                }),
            }],
            topology: None,
        },
        health,
        notify: registry().providers(Slot::Notify).map(|shape| ProviderBlock::new(shape.name, fields_sample(shape.fields, false))).collect(),
        telemetry: registry()
            .providers(Slot::Export)
            .map(|shape| ProviderBlock::new(shape.name, fields_sample(shape.fields, false)))
            .collect(),
        // One window of each kind: between them they set every field.
        freeze: serde_json::from_value(json!({
            "on-freeze": "refuse",
            "windows": [
                { "name": "launch", "reason": "r", "environments": ["production"], "start": "2026-12-20T00:00:00Z", "end": "2026-12-21T00:00:00Z" },
                { "name": "weekend", "reason": "r", "every": "0 16 * * FRI", "time-zone": "Europe/Paris", "duration": "64h" },
            ],
        }))
        .unwrap(),
        events: baton_domain::catalog::EventsSpec { wait: true, safety_net: Seconds(120) },
    }
}

/// Every provider of every slot, each with every field set.
fn full_variants() -> (Vec<ProviderBlock>, Vec<ProviderBlock>, HealthSpec) {
    let blocks = |slot: Slot| -> Vec<ProviderBlock> {
        registry().providers(slot).map(|shape| ProviderBlock::new(shape.name, fields_sample(shape.fields, false))).collect()
    };
    let gates = blocks(Slot::Gate).into_iter().map(|gate| GateSpec { gate, consecutive: 2, failures: 2 }).collect();
    (blocks(Slot::Build), blocks(Slot::Deploy), HealthSpec { interval: Seconds(10), gates })
}

#[test]
fn schema_properties_equal_the_model_fields() {
    let schema = checked_in_schema();
    let (builds, targets, health) = full_variants();
    let mut from_model = BTreeSet::new();
    for build in &builds {
        for target in &targets {
            let value = serde_json::to_value(full_delivery(build.clone(), target.clone(), health.clone())).unwrap();
            model_paths(&schema, &value, "", &mut from_model);
        }
    }
    let mut from_schema = BTreeSet::new();
    schema_paths(&schema, "", &mut from_schema);
    // `deploy.targets` (with `waves: {from: topology}`) is read into the model's `topology`, beside
    // the waves computed from it: catalog_topology.rs reads both.
    from_schema.retain(|path| !(path.starts_with("/deploy(") && (path.ends_with(")/targets") || path.ends_with(")/targets/name"))));
    // The keyed form of `notify` (`slack: {...}`) is read into the model's list of blocks, whose
    // paths (`/notify(slack)/channel`) the list form's schema gives.
    from_schema.retain(|path| !path.starts_with("/notify/"));
    let only_schema: Vec<_> = from_schema.difference(&from_model).collect();
    assert!(only_schema.is_empty(), "schema properties the model lacks: {only_schema:?}");
    assert_eq!(from_schema, from_model);
}

#[test]
fn each_keyed_notifier_in_the_schema_has_the_fields_of_its_listed_block() {
    let notify = &checked_in_schema()["properties"]["notify"];
    let names = |properties: &Value| -> BTreeSet<String> {
        properties.as_object().unwrap().keys().filter(|key| *key != "provider").cloned().collect()
    };
    for shape in registry().providers(Slot::Notify) {
        let listed = object_schema(&notify["items"], &json!({ "provider": shape.name }));
        assert_eq!(names(&notify["properties"][shape.name]["properties"]), names(&listed["properties"]), "{}", shape.name);
    }
}

#[test]
fn schema_defaults_are_the_model_defaults() {
    let schema = checked_in_schema();
    let health: HealthSpec = serde_json::from_value(json!({"gates": [{"provider": "http", "url": "http://x"}]})).unwrap();
    assert_eq!(schema["properties"]["health"]["properties"]["interval"]["default"], json!(health.interval.0));
    let gate = object_schema(&schema["properties"]["health"]["properties"]["gates"]["items"], &json!({"provider": "http"}));
    assert_eq!(gate["properties"]["consecutive"]["default"], json!(health.gates[0].consecutive));
    assert_eq!(gate["properties"]["failures"]["default"], json!(health.gates[0].failures));
    let wave: WaveSpec = serde_json::from_value(json!({"name": "w", "targets": ["t"]})).unwrap();
    let waves = &schema["properties"]["deploy"]["oneOf"][0]["properties"]["waves"]["oneOf"];
    assert_eq!(waves[0]["items"]["properties"]["bake"]["default"], json!(wave.bake.0));
    assert_eq!(waves[0]["items"]["properties"]["deploy-timeout"]["default"], json!(wave.deploy_timeout.0));
    let policy: topology::WavePolicy = serde_json::from_value(json!({"from": "topology", "order": ["rest"]})).unwrap();
    assert_eq!(waves[1]["properties"]["bake"]["default"], json!(policy.bake.0));
    assert_eq!(waves[1]["properties"]["deploy-timeout"]["default"], json!(policy.deploy_timeout.0));
}

// ------------------------------------------------------------------ a real JSON Schema validator

/// Applies the schema to each instance with Python's `jsonschema` (draft 2020-12: `pattern`,
/// `propertyNames`, `oneOf` and every other keyword), answering each one's violations as
/// `$.json.path: keyword`, sorted.
const VALIDATE: &str = r#"
import json, sys
try:
    from jsonschema import Draft202012Validator
except ImportError:
    sys.exit("python3 lacks the jsonschema package (4.x): pip install jsonschema")
given = json.load(sys.stdin)
Draft202012Validator.check_schema(given["schema"])
validator = Draft202012Validator(given["schema"])
print(json.dumps([sorted(f"{e.json_path}: {e.validator}" for e in validator.iter_errors(i)) for i in given["instances"]]))
"#;

/// Each of `instances`' violations of the checked-in schema (see [`VALIDATE`]).
fn schema_violations(instances: &[Value]) -> Vec<Vec<String>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut python = Command::new("python3")
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("the schema tests run python3 (with its jsonschema package): {err}"));
    let input = json!({ "schema": checked_in_schema(), "instances": instances });
    python.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success(), "python3's jsonschema did not run: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("python3 answered no list of violations ({err})"))
}

// ------------------------------------------------------------------ the examples

fn load(path: &Path) -> LoadedCatalog {
    CatalogLoader::new(registry()).load(path).unwrap_or_else(|err| panic!("{} is readable: {err}", path.display()))
}

fn examples() -> LoadedCatalog {
    load(&repo().join("examples/catalog"))
}

#[test]
fn examples_pass_the_validator_and_the_schema() {
    let catalog = examples();
    assert_eq!(catalog.diagnostics(), &[] as &[Diagnostic]);
    let mut names: Vec<(&str, SchemaVersion)> = catalog.services().iter().map(|s| (s.name.as_str(), s.schema)).collect();
    names.sort_by_key(|(name, _)| *name);
    assert_eq!(names, [("flaky-api", SchemaVersion::V3), ("hello-api", SchemaVersion::V2_2), ("hello-web", SchemaVersion::V2_2)]);

    let blocks: Vec<Value> = catalog.services().iter().map(|service| serde_json::to_value(&service.delivery).unwrap()).collect();
    assert_eq!(schema_violations(&blocks), vec![Vec::<String>::new(); blocks.len()]);
    for service in catalog.services() {
        let targets: Vec<usize> = service.delivery.deploy.waves.iter().map(|w| w.targets.len()).collect();
        assert_eq!(targets, [1, 2, 3], "{}: canary, one region, the rest", service.name);
    }
}

/// `examples/providers` shows every build and deploy provider, every health gate and every
/// telemetry exporter in a valid block.
#[test]
fn the_provider_examples_show_every_provider_and_pass_both_checks() {
    let catalog = load(&repo().join("examples/providers"));
    assert_eq!(catalog.diagnostics(), &[] as &[Diagnostic]);
    let schema = checked_in_schema();
    let blocks: Vec<Value> = catalog.services().iter().map(|service| serde_json::to_value(&service.delivery).unwrap()).collect();
    assert_eq!(schema_violations(&blocks), vec![Vec::<String>::new(); blocks.len()]);
    let (mut builds, mut deploys, mut gates, mut exporters) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for value in &blocks {
        builds.insert(value["build"]["provider"].as_str().unwrap().to_owned());
        deploys.insert(value["deploy"]["provider"].as_str().unwrap().to_owned());
        gates.extend(value["health"]["gates"].as_array().unwrap().iter().map(|g| g["provider"].as_str().unwrap().to_owned()));
        let telemetry = value.get("telemetry").and_then(Value::as_array).into_iter().flatten();
        exporters.extend(telemetry.map(|e| e["provider"].as_str().unwrap().to_owned()));
    }
    let providers = |shape: &Value| -> BTreeSet<String> {
        shape["properties"]["provider"]["enum"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
    };
    // examples/catalog shows the `command` ones, and runs them (and github-actions, against a stand-in).
    let without_command = |mut all: BTreeSet<String>| {
        all.remove("command");
        all
    };
    assert_eq!(builds, without_command(providers(&schema["properties"]["build"])));
    assert_eq!(deploys, without_command(providers(&schema["properties"]["deploy"])));
    assert_eq!(gates, without_command(providers(&schema["properties"]["health"]["properties"]["gates"]["items"])));
    assert_eq!(exporters, providers(&schema["properties"]["telemetry"]["items"]));
}

/// Each broken block, the schema's violations and the path Baton's own validator names.
#[test]
fn the_schema_rejects_what_the_validator_rejects() {
    let hello = examples().services().iter().find(|s| s.name == "hello-web").unwrap().clone();
    let valid = serde_json::to_value(&hello.delivery).unwrap();
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut value = valid.clone();
        change(&mut value);
        value
    };
    let circleci = json!({
        "provider": "circleci", "project": "gh/acme/web", "token": "env:CIRCLE_TOKEN", "artifact": "web:{sha}",
        "parameters": { "deploy-env": "eu", "replicas": 3, "dry-run": false },
    });
    let cases: Vec<(&str, Value, &[&str], &str)> = vec![
        ("valid", valid.clone(), &[], ""),
        ("no waves", broken(&|v| v["deploy"]["waves"] = json!([])), &["$.deploy: oneOf"], "deploy.waves"),
        ("misspelt field", broken(&|v| v["build"]["comand"] = json!(["sh"])), &["$.build: oneOf"], "build.comand"),
        (
            "unknown provider",
            broken(&|v| v["health"]["gates"][0]["provider"] = json!("htp")),
            &["$.health.gates[0].provider: enum", "$.health.gates[0]: oneOf"],
            "health.gates[0].provider",
        ),
        ("environment pattern", broken(&|v| v["environment"] = json!("prod env")), &["$.environment: pattern"], "environment"),
        ("schedule pattern", broken(&|v| v["schedule"] = json!("daily")), &["$.schedule: pattern"], "schedule"),
        (
            "wave name pattern",
            broken(&|v| v["deploy"]["waves"][0]["name"] = json!("-canary")),
            &["$.deploy: oneOf"],
            "deploy.waves[0].name",
        ),
        ("parameters of every type", broken(&|v| v["build"] = circleci.clone()), &[], ""),
        (
            "a parameter of no allowed type",
            broken(&|v| {
                v["build"] = circleci.clone();
                v["build"]["parameters"]["regions"] = json!(["eu", "us"]);
            }),
            &["$.build: oneOf"],
            "build.parameters.regions",
        ),
    ];
    let instances: Vec<Value> = cases.iter().map(|(_, value, _, _)| value.clone()).collect();
    for ((case, value, violations, field), found) in cases.iter().zip(schema_violations(&instances)) {
        assert_eq!(found, *violations, "{case}");
        // JSON is YAML: the same block, in a v2.2 definition, through Baton's parser.
        let document = json!({ "schema-version": "v2.2", "dd-service": "web", "team": "web-team", "extensions": { "baton": value } });
        let (_, diagnostics) = CatalogLoader::new(registry()).parse("web.yaml", &document.to_string());
        let paths: Vec<&str> = diagnostics.iter().map(|d| d.path.as_str()).collect();
        if field.is_empty() {
            assert_eq!(paths, Vec::<&str>::new(), "{case}: {diagnostics:#?}");
        } else {
            assert!(paths.contains(&format!("extensions.baton.{field}").as_str()), "{case}: {diagnostics:#?}");
        }
    }
}

/// Runs one example's scripts the way the local command providers do (argv in the
/// working directory, `BATON_*` variables) through build, every wave's deploys and
/// health checks. Returns the first wave whose health check failed.
fn release(service: &ServiceEntry, workspace: &Path) -> Option<String> {
    let catalog_dir = Path::new(&service.source).parent().unwrap();
    let run = |command: &[String], working_dir: &Option<String>, vars: &[(&str, &str)]| {
        let dir = catalog_dir.join(working_dir.as_deref().unwrap_or("."));
        let output = Command::new(&command[0])
            .args(&command[1..])
            .current_dir(&dir)
            .env("BATON_SERVICE", &service.name)
            .env("BATON_ENVIRONMENT", &service.delivery.environment)
            .env("BATON_RELEASE_ID", "rel-1")
            .env("BATON_BRANCH", &service.delivery.release_branch)
            .env("BATON_SHA", "0123abc")
            .env("BATON_WORKSPACE", workspace)
            .envs(vars.iter().copied())
            .output()
            .unwrap_or_else(|err| panic!("{} in {}: {err}", command[0], dir.display()));
        (output.status.success(), String::from_utf8(output.stdout).unwrap())
    };
    let build: CommandBuild = service.delivery.build.decode().expect("examples use command builds");
    let deploy: CommandDeploy = service.delivery.deploy.target.decode().expect("examples use command deploys");
    let [GateSpec { gate, .. }] = &service.delivery.health.gates[..] else { panic!("examples use one gate") };
    let health: CommandRun = gate.decode().expect("examples use a command gate");

    let (built, stdout) = run(&build.run.command, &build.run.working_dir, &[]);
    assert!(built, "{} build failed", service.name);
    let artifact = stdout.lines().last().expect("the build prints its artifact").to_string();
    for wave in &service.delivery.deploy.waves {
        for target in &wave.targets {
            let vars =
                [("BATON_WAVE", wave.name.as_str()), ("BATON_TARGET", target), ("BATON_ARTIFACT", &artifact), ("BATON_ROLLBACK", "false")];
            assert!(run(&deploy.run.command, &deploy.run.working_dir, &vars).0, "deploy {target}");
            let current = std::fs::read_to_string(workspace.join("targets").join(target).join("current")).unwrap();
            assert_eq!(current.trim(), artifact);
        }
        let targets = wave.targets.join(",");
        let vars = [("BATON_WAVE", wave.name.as_str()), ("BATON_TARGETS", &targets), ("BATON_ARTIFACT", &artifact)];
        if !run(&health.command, &health.working_dir, &vars).0 {
            return Some(wave.name.clone());
        }
    }
    None
}

#[test]
fn example_scripts_behave_as_documented() {
    let catalog = examples();
    let workspace = tempfile::tempdir().unwrap();
    let hello = catalog.services().iter().find(|s| s.name == "hello-web").unwrap();
    assert_eq!(release(hello, &workspace.path().join("hello-web")), None, "hello-web is healthy in every wave");
    let flaky = catalog.services().iter().find(|s| s.name == "flaky-api").unwrap();
    assert_eq!(release(flaky, &workspace.path().join("flaky-api")).as_deref(), Some("one-region"));
}

#[test]
fn the_examples_in_docs_catalog_md_are_valid() {
    let docs = std::fs::read_to_string(repo().join("docs/catalog.md")).unwrap();
    let blocks: Vec<&str> = docs.split("```yaml\n").skip(1).map(|rest| rest.split("```").next().unwrap()).collect();
    assert_eq!(blocks.len(), 3, "waves from a topology, a v2.2 and a v3 example");
    let mut services = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let (mut parsed, diagnostics) = CatalogLoader::new(registry()).parse(&format!("docs/catalog.md example {i}"), block);
        assert_eq!(diagnostics, vec![]);
        services.push(parsed.remove(0));
    }
    let versions: Vec<SchemaVersion> = services.iter().map(|service| service.schema).collect();
    assert_eq!(versions, [SchemaVersion::V2_2, SchemaVersion::V2_2, SchemaVersion::V3]);
    // The waves the page says the topology gives.
    let waves: Vec<String> = services[0].delivery.deploy.waves.iter().map(|w| format!("{}: {}", w.name, w.targets.join(", "))).collect();
    let said =
        ["one: edge-euw1-a1", "az: edge-euw1-a2", "region: edge-euw1-b1, edge-euw1-b2", "rest-1: edge-use1-a1", "rest-2: edge-use1-b1"];
    assert_eq!(waves, said);
}

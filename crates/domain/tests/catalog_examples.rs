//! The checked-in JSON Schema, the serde model and the example catalog agree.
//!
//! Regenerate the schema after changing the catalog shapes with
//! `BATON_BLESS=1 cargo test -p baton-domain --test catalog_examples`.

use baton_domain::catalog::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
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
    let generated = baton_extension_schema();
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

fn secret(name: &str) -> Option<SecretRef> {
    Some(SecretRef::Env(name.into()))
}

/// A command with every optional field set.
fn full_run(program: &str, env: &BTreeMap<String, String>) -> CommandRun {
    CommandRun {
        command: vec![program.into()],
        working_dir: Some(".".into()),
        env: env.clone(),
        pass_env: vec!["DOCKER_CONFIG".into()],
        timeout: Some(Seconds(60)),
    }
}

/// A delivery block with every optional field set, so serialisation shows every field.
fn full_delivery(build: BuildSpec, target: DeployTarget, health: HealthSpec) -> Delivery {
    Delivery {
        environment: "production".into(),
        release_branch: "main".into(),
        feature_branch: Some("next".into()),
        schedule: Some("rate(1 day)".into()),
        team: Some("t".into()),
        on_call: Some("o".into()),
        build,
        deploy: DeploySpec { target, waves: vec![WaveSpec { name: "w".into(), targets: vec!["t".into()], bake: Seconds(1) }] },
        health,
        notify: NotifySpec {
            slack: Some(SlackSpec { channel: "#c".into(), webhook: secret("W"), token: secret("T") }),
            pagerduty: Some(PagerDutySpec { routing_key: SecretRef::Env("PD".into()) }),
            opsgenie: Some(OpsgenieSpec { api_key: SecretRef::Env("OG".into()), region: OpsgenieRegion::Eu }),
        },
    }
}

fn full_access() -> AwsAccess {
    AwsAccess { region: Some("eu-west-1".into()), role_arn: Some("arn:aws:iam::1:role/r".into()) }
}

/// Every provider of every block, each with every optional field set.
fn full_variants() -> (Vec<BuildSpec>, Vec<DeployTarget>, HealthSpec) {
    let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
    let builds = vec![
        BuildSpec::Command(CommandBuild { run: full_run("make", &env), artifact_file: Some("ref".into()) }),
        BuildSpec::GithubActions(GitHubActionsBuild {
            repository: "acme/web".into(),
            workflow: "release.yml".into(),
            inputs: env.clone(),
            artifact: "ghcr.io/acme/web:{short-sha}".into(),
            api_url: Some("https://github.example.com/api/v3".into()),
            token: secret("GH"),
            app: Some(GitHubApp { app_id: "1".into(), installation_id: 2, private_key: SecretRef::Env("KEY".into()) }),
        }),
        BuildSpec::GitlabCi(GitLabCiBuild {
            project: GitLabProject("acme/web".into()),
            token: secret("GL"),
            trigger_token: secret("GL_TRIGGER"),
            variables: env.clone(),
            artifact: "registry.gitlab.com/acme/web:{short-sha}".into(),
            api_url: Some("https://gitlab.example.com/api/v4".into()),
        }),
        BuildSpec::Buildkite(BuildkiteBuild {
            organization: "acme".into(),
            pipeline: "web".into(),
            token: SecretRef::Env("BK".into()),
            env: env.clone(),
            artifact: "web:{build-number}".into(),
            api_url: Some("https://buildkite.example.com/v2".into()),
        }),
        BuildSpec::CircleCi(CircleCiBuild {
            project: "gh/acme/web".into(),
            token: SecretRef::Env("CIRCLE".into()),
            parameters: BTreeMap::from([
                ("deploy-env".to_string(), PipelineParameter::String("eu".into())),
                ("replicas".to_string(), PipelineParameter::Integer(3)),
                ("dry-run".to_string(), PipelineParameter::Boolean(false)),
            ]),
            artifact: "web:{pipeline-number}".into(),
            api_url: Some("https://circleci.example.com/api/v2".into()),
        }),
        BuildSpec::Codebuild(CodeBuildBuild {
            project: "web".into(),
            env: env.clone(),
            artifact: Some("web:{build-number}".into()),
            artifact_variable: Some("IMAGE_URI".into()),
            access: full_access(),
        }),
    ];
    let placements = vec![Placement { target: "t".into(), access: full_access() }];
    let targets = vec![
        DeployTarget::Command(CommandDeploy { run: full_run("deploy", &env), rollback_command: Some(vec!["rollback".into()]) }),
        DeployTarget::Ecs(EcsDeploy {
            cluster: "c".into(),
            container: "web".into(),
            access: full_access(),
            placements: placements.clone(),
        }),
        DeployTarget::Lambda(LambdaDeploy {
            alias: "live".into(),
            canary: Some(LambdaCanary { weight: 10, hold: Seconds(60) }),
            access: full_access(),
            placements,
        }),
        DeployTarget::ArgoCd(ArgoCdDeploy {
            server: "https://argocd.example.com".into(),
            token: SecretRef::Env("ARGO".into()),
            revision: "{sha}".into(),
        }),
        DeployTarget::Webhook(WebhookDeploy { url: "https://deploy.example.com".into(), secret: SecretRef::Env("HOOK".into()) }),
    ];
    let gate = |gate| GateSpec { gate, consecutive: 2, failures: 2 };
    let health = HealthSpec {
        interval: Seconds(10),
        gates: vec![
            gate(Gate::Cloudwatch(CloudWatchGate {
                alarms: vec!["a".into()],
                alarm_prefix: Some("web-".into()),
                insufficient_data: InsufficientData::Unhealthy,
                access: full_access(),
            })),
            gate(Gate::Datadog(DatadogGate {
                tags: vec!["team:web".into()],
                site: "datadoghq.eu".into(),
                api_url: Some("https://dd.example.com".into()),
                api_key: SecretRef::Env("DD_API".into()),
                app_key: SecretRef::Env("DD_APP".into()),
                unhealthy: vec!["Alert".into()],
            })),
            gate(Gate::Http(HttpGate { url: "http://x".into(), expect_status: vec![200], body_contains: Some("ok".into()) })),
            gate(Gate::Command(full_run("check", &env))),
        ],
    };
    (builds, targets, health)
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
    let only_schema: Vec<_> = from_schema.difference(&from_model).collect();
    assert!(only_schema.is_empty(), "schema properties the model lacks: {only_schema:?}");
    assert_eq!(from_schema, from_model);
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
    assert_eq!(
        schema["properties"]["deploy"]["oneOf"][0]["properties"]["waves"]["items"]["properties"]["bake"]["default"],
        json!(wave.bake.0)
    );
}

// ------------------------------------------------------------------ a small JSON Schema checker

/// Checks `value` against the keywords our schema uses. `pattern` and `propertyNames`
/// are left to Baton's own validator, which applies the same rules with better messages.
fn schema_errors(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let fail = |errors: &mut Vec<String>, why: String| errors.push(format!("{path}: {why}"));
    // `type` is one type or a list of them (pipeline parameters: string, integer or boolean).
    let types: Option<Vec<&str>> = schema.get("type").map(|types| match types {
        Value::Array(types) => types.iter().map(|t| t.as_str().unwrap()).collect(),
        one => vec![one.as_str().unwrap()],
    });
    if let Some(expected) = types {
        let is = |expected: &str| match expected {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            other => panic!("type {other} not used by our schema"),
        };
        if !expected.iter().any(|t| is(t)) {
            return fail(errors, format!("expected {}, found {value}", expected.join(" or ")));
        }
    }
    if let Some(constant) = schema.get("const").filter(|c| *c != value) {
        fail(errors, format!("expected {constant}"));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array).filter(|v| !v.contains(value)) {
        fail(errors, format!("expected one of {values:?}"));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_u64), value.as_i64())
        && n < min as i64
    {
        fail(errors, format!("below {min}"));
    }
    if let (Some(min), Some(s)) = (schema.get("minLength").and_then(Value::as_u64), value.as_str())
        && (s.chars().count() as u64) < min
    {
        fail(errors, "too short".into());
    }
    if let Some(items) = value.as_array() {
        if schema.get("minItems").and_then(Value::as_u64).is_some_and(|min| (items.len() as u64) < min) {
            fail(errors, "too few items".into());
        }
        for (i, item) in items.iter().enumerate() {
            schema_errors(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(map) = value.as_object() {
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !map.contains_key(name.as_str().unwrap()) {
                fail(errors, format!("missing {name}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, child) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(child_schema) => schema_errors(child_schema, child, &format!("{path}.{key}"), errors),
                None if schema["additionalProperties"] == json!(false) => fail(errors, format!("unexpected {key}")),
                // A map's values (`env`, `parameters`) have one schema for every key.
                None if schema["additionalProperties"].is_object() => {
                    schema_errors(&schema["additionalProperties"], child, &format!("{path}.{key}"), errors)
                }
                None => {}
            }
        }
    }
    let passes = |alternative: &Value| {
        let mut errors = Vec::new();
        schema_errors(alternative, value, path, &mut errors);
        errors.is_empty()
    };
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let passing = variants.iter().filter(|v| passes(v)).count();
        if passing != 1 {
            fail(errors, format!("matches {passing} of the oneOf alternatives, not exactly 1"));
        }
    }
    if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array)
        && !alternatives.iter().any(passes)
    {
        fail(errors, "matches none of the anyOf alternatives".into());
    }
}

// ------------------------------------------------------------------ the examples

fn examples() -> LoadedCatalog {
    load_catalog(&repo().join("examples/catalog")).expect("examples/catalog is readable")
}

#[test]
fn examples_pass_the_validator_and_the_schema() {
    let catalog = examples();
    assert_eq!(catalog.diagnostics(), &[] as &[Diagnostic]);
    let mut names: Vec<(&str, SchemaVersion)> = catalog.services().iter().map(|s| (s.name.as_str(), s.schema)).collect();
    names.sort_by_key(|(name, _)| *name);
    assert_eq!(names, [("flaky-api", SchemaVersion::V3), ("hello-web", SchemaVersion::V2_2)]);

    let schema = checked_in_schema();
    for service in catalog.services() {
        let mut errors = Vec::new();
        schema_errors(&schema, &serde_json::to_value(&service.delivery).unwrap(), &service.name, &mut errors);
        assert_eq!(errors, Vec::<String>::new());
        let targets: Vec<usize> = service.delivery.deploy.waves.iter().map(|w| w.targets.len()).collect();
        assert_eq!(targets, [1, 2, 3], "{}: canary, one region, the rest", service.name);
    }
}

/// `examples/providers` shows every build and deploy provider and every health gate in a valid block.
#[test]
fn the_provider_examples_show_every_provider_and_pass_both_checks() {
    let catalog = load_catalog(&repo().join("examples/providers")).expect("examples/providers is readable");
    assert_eq!(catalog.diagnostics(), &[] as &[Diagnostic]);
    let schema = checked_in_schema();
    let (mut builds, mut deploys, mut gates) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for service in catalog.services() {
        let value = serde_json::to_value(&service.delivery).unwrap();
        let mut errors = Vec::new();
        schema_errors(&schema, &value, &service.name, &mut errors);
        assert_eq!(errors, Vec::<String>::new());
        builds.insert(value["build"]["provider"].as_str().unwrap().to_owned());
        deploys.insert(value["deploy"]["provider"].as_str().unwrap().to_owned());
        gates.extend(value["health"]["gates"].as_array().unwrap().iter().map(|g| g["provider"].as_str().unwrap().to_owned()));
    }
    let providers = |shape: &Value| -> BTreeSet<String> {
        shape["properties"]["provider"]["enum"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
    };
    // examples/catalog shows the `command` ones, and runs them.
    let without_command = |mut all: BTreeSet<String>| {
        all.remove("command");
        all
    };
    assert_eq!(builds, without_command(providers(&schema["properties"]["build"])));
    assert_eq!(deploys, without_command(providers(&schema["properties"]["deploy"])));
    assert_eq!(gates, without_command(providers(&schema["properties"]["health"]["properties"]["gates"]["items"])));
}

#[test]
fn the_schema_checker_rejects_what_the_validator_rejects() {
    let schema = checked_in_schema();
    let hello = examples().services().iter().find(|s| s.name == "hello-web").unwrap().clone();
    let mut value = serde_json::to_value(&hello.delivery).unwrap();
    value["deploy"]["waves"] = json!([]);
    value["build"]["comand"] = json!(["sh"]);
    value["health"]["gates"][0]["provider"] = json!("htp");
    let mut errors = Vec::new();
    schema_errors(&schema, &value, "hello-web", &mut errors);
    let joined = errors.join("\n");
    assert!(joined.contains("hello-web.deploy: matches 0 of the oneOf"), "{joined}");
    assert!(joined.contains("hello-web.build: matches 0 of the oneOf"), "{joined}");
    assert!(joined.contains("hello-web.health.gates[0]: matches 0 of the oneOf"), "{joined}");

    let mut value = serde_json::to_value(&hello.delivery).unwrap();
    value["build"] = json!({
        "provider": "circleci", "project": "gh/acme/web", "token": "env:CIRCLE_TOKEN", "artifact": "web:{sha}",
        "parameters": { "deploy-env": "eu", "replicas": 3, "dry-run": false },
    });
    let mut errors = Vec::new();
    schema_errors(&schema, &value, "hello-web", &mut errors);
    assert_eq!(errors, Vec::<String>::new());
    value["build"]["parameters"]["regions"] = json!(["eu", "us"]);
    schema_errors(&schema, &value, "hello-web", &mut errors);
    assert_eq!(errors, ["hello-web.build: matches 0 of the oneOf alternatives, not exactly 1"]);
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
    let BuildSpec::Command(build) = &service.delivery.build else { panic!("examples use command builds") };
    let DeployTarget::Command(deploy) = &service.delivery.deploy.target else { panic!("examples use command deploys") };
    let [GateSpec { gate: Gate::Command(health), .. }] = &service.delivery.health.gates[..] else {
        panic!("examples use one command gate")
    };

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
    assert_eq!(blocks.len(), 2, "a v2.2 and a v3 example");
    let mut versions = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let (services, diagnostics) = parse_catalog_documents(&format!("docs/catalog.md example {i}"), block);
        assert_eq!(diagnostics, vec![]);
        versions.push(services[0].schema);
    }
    assert_eq!(versions, [SchemaVersion::V2_2, SchemaVersion::V3]);
}

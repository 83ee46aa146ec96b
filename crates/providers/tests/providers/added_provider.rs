//! A provider added from outside the crate, as docs/architecture.md says to add one: a block, a
//! shape, an adapter and a table entry for a build provider and for a notifier, all in this
//! module. The catalog's parser, validator, JSON Schema, cloud check and the local providers
//! take them from the table alone.

use async_trait::async_trait;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, required, through_model};
use baton_domain::catalog::{CatalogLoader, ServiceEntry, baton_extension_schema};
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, Notification, Notifier, ProviderError, Providers};
use baton_domain::release::RunHandle;
use baton_domain::template::{ArtifactTemplate, RunFacts};
use baton_providers::{LocalProviders, Make, Module, ProviderTable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

// ------------------------------------------------------------------ a build provider

/// A CI service whose runs are numbered `job-number`s and always succeed as job 7.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RelayBuild {
    artifact: String,
}

const RELAY_FIELDS: &[Field] = &[required("artifact", Kind::Text, "The artifact's name, with `{job-number}`.")];

const RELAY: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "relay-ci",
    doc: "Relay CI (a test's).",
    fields: RELAY_FIELDS,
    at_least_one: None,
    local_only: false,
    run_word: Some("job-number"),
    through_model: through_model::<RelayBuild>,
};

struct RelayBuilds {
    artifact: ArtifactTemplate,
}

#[async_trait]
impl BuildProvider for RelayBuilds {
    async fn start(&self, _request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        Ok(RunHandle { provider: RELAY.name.into(), id: "7".into(), url: None, state: serde_json::Value::Null })
    }

    async fn find(&self, _request: &BuildRequest, _since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        Ok(None)
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let facts = RunFacts { sha: "0123456789abcdef", branch: "main", run_id: &run.id, release_id: "rel-1" };
        Ok(BuildPoll { progress: self.artifact.built(&facts, None, "https://relay.example"), started_at: None, run: None })
    }

    async fn cancel(&self, _run: &RunHandle) -> Result<(), ProviderError> {
        Ok(())
    }
}

// ------------------------------------------------------------------ a notifier

/// Writes each headline to a file: the team's log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Logbook {
    file: String,
}

const LOGBOOK_FIELDS: &[Field] = &[required("file", Kind::Text, "The file headlines are appended to.")];

const LOGBOOK: ProviderShape = ProviderShape {
    slot: Slot::Notify,
    name: "logbook",
    doc: "Appends each headline to a file (a test's).",
    fields: LOGBOOK_FIELDS,
    at_least_one: None,
    local_only: true,
    run_word: None,
    through_model: through_model::<Logbook>,
};

struct LogbookNotifier {
    file: PathBuf,
}

#[async_trait]
impl Notifier for LogbookNotifier {
    fn name(&self) -> &str {
        LOGBOOK.name
    }

    async fn notify(
        &self,
        notification: &Notification,
        _state: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        std::fs::write(&self.file, format!("{}\n", notification.headline)).map_err(|e| ProviderError::rejected(e.to_string()))?;
        Ok(None)
    }
}

// ------------------------------------------------------------------ the table entries

static ADDED: [Module; 2] = [
    Module {
        shape: &RELAY,
        make: Make::Build(|_, block, _| {
            let relay: RelayBuild = block.decode()?;
            Ok(Box::new(RelayBuilds {
                artifact: ArtifactTemplate::parse(&relay.artifact, RELAY.run_word).map_err(ProviderError::rejected)?,
            }))
        }),
        receive: None,
    },
    Module {
        shape: &LOGBOOK,
        make: Make::Notify(|_, block, _| Ok(Box::new(LogbookNotifier { file: block.decode::<Logbook>()?.file.into() }))),
        receive: None,
    },
];

static TABLE: LazyLock<ProviderTable> = LazyLock::new(|| ProviderTable::with(&ADDED));

// ------------------------------------------------------------------ what they get

fn catalog(build: &str, notify: &str) -> String {
    format!(
        "schema-version: v2.2\ndd-service: web\nteam: web-team\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    \
         build: {build}\n    deploy:\n      provider: webhook\n      url: https://deploy.example/hooks\n      secret: env:DEPLOY_SECRET\n      \
         waves: [{{name: all, targets: [web-1]}}]\n    health: {{gates: [{{provider: http, url: https://web.example/health}}]}}\n    notify: {notify}\n"
    )
}

fn parse(text: &str) -> ServiceEntry {
    let (mut services, diagnostics) = CatalogLoader::new(TABLE.registry()).parse("web.yaml", text);
    assert_eq!(diagnostics, vec![], "{text}");
    services.remove(0)
}

#[test]
fn an_added_build_provider_and_notifier_are_read_checked_and_described_from_the_table() {
    let text = catalog("{provider: relay-ci, artifact: \"web:{job-number}\"}", "[{provider: logbook, file: /tmp/log}]");
    let entry = parse(&text);
    assert_eq!((entry.delivery.build.provider.as_str(), entry.delivery.notify[0].provider.as_str()), ("relay-ci", "logbook"));
    assert_eq!(parse(&catalog("{provider: relay-ci, artifact: \"web:{job-number}\"}", "{logbook: {file: /tmp/log}}")), entry);

    let typo = catalog("{provider: relay-ci, artifactt: web}", "[{provider: logbok, file: /tmp/log}]");
    let (_, diagnostics) = CatalogLoader::new(TABLE.registry()).parse("web.yaml", &typo);
    let messages: Vec<String> = diagnostics.iter().map(|d| format!("{}: {}", d.path, d.message)).collect();
    assert!(
        messages.iter().any(|m| m.starts_with("extensions.baton.build.artifactt: unknown field `artifactt` (did you mean `artifact`?)")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("extensions.baton.notify[0].provider: unknown provider `logbok` (did you mean `logbook`?)")),
        "{messages:#?}"
    );

    let schema = baton_extension_schema(TABLE.registry());
    assert!(schema["properties"]["build"]["properties"]["provider"]["enum"].as_array().unwrap().contains(&"relay-ci".into()));
    assert_eq!(schema["properties"]["notify"]["properties"]["logbook"]["required"], serde_json::json!(["file"]));

    // Pushed for the cloud, the local-only notifier is refused and `relay-ci` is offered instead of a command build.
    let cloud = CatalogLoader { for_cloud: true, ..CatalogLoader::new(TABLE.registry()) };
    let local_build = catalog("{provider: command, command: [make]}", "[{provider: logbook, file: /tmp/log}]");
    let (_, refusals) = cloud.parse("web.yaml", &local_build);
    let refusals: Vec<(&str, &str)> = refusals.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert!(
        refusals[0].0 == "extensions.baton.build.provider" && refusals[0].1.ends_with("`circleci`, `codebuild` or `relay-ci`"),
        "{refusals:#?}"
    );
    assert!(
        refusals[1].0 == "extensions.baton.notify[0].provider" && refusals[1].1.contains("use `slack`, `pagerduty` or `opsgenie`"),
        "{refusals:#?}"
    );
}

#[tokio::test]
async fn the_local_providers_build_the_added_providers_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let entry = parse(&catalog(
        "{provider: relay-ci, artifact: \"web:{job-number}\"}",
        &format!("[{{provider: logbook, file: {}}}]", log.display()),
    ));
    let secrets = Arc::new(baton_providers::EnvSecretResolver);
    let providers = LocalProviders::new(dir.path().into(), None, secrets, None).unwrap().with_table(&TABLE);

    let build = providers.build(&entry.delivery.build, &entry).unwrap();
    let run = build.start(&crate::support::build_request(None)).await.unwrap();
    let BuildProgress::Succeeded { artifact } = build.poll(&run).await.unwrap().progress else { panic!("relay builds succeed") };
    assert_eq!(artifact.reference, "web:7");

    let notifiers = providers.notifiers(&entry).unwrap();
    assert_eq!(notifiers.iter().map(|n| n.name()).collect::<Vec<_>>(), ["logbook"]);
    let release = baton_contract::release_at("rel-1", "web", "production", Utc::now());
    let notification = Notification { release, headline: "Deploying wave all".into(), action_needed: None, links: Vec::new() };
    notifiers[0].notify(&notification, None).await.unwrap();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "Deploying wave all\n");

    // Baton's own table knows neither.
    let standard = LocalProviders::new(dir.path().into(), None, Arc::new(baton_providers::EnvSecretResolver), None).unwrap();
    assert!(matches!(standard.build(&entry.delivery.build, &entry), Err(ProviderError::Rejected { .. })));
}

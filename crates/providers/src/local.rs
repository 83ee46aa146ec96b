//! [`Providers`] for a machine without AWS: commands, the CI services, Argo CD and webhooks,
//! HTTP and Datadog health, console and Slack.

use crate::changes::{GitHistory, GitHubHistory, GitLabHistory};
use crate::ci::GitHubAppTokens;
use crate::command::CommandContext;
use crate::command::catalog::CommandBuild;
use crate::export::emf::EmfSink;
use crate::http::RateLimits;
use crate::notify::console::ConsoleNotifier;
use crate::notify::slack::DEFAULT_SLACK_API_BASE;
use crate::registry::{Make, ProviderTable, Receive};
use crate::secrets::Secret;
use baton_aws::AwsClients;
use baton_domain::catalog::{GateSpec, ProviderBlock, SecretRef, ServiceEntry, Slot};
use baton_domain::ports::{
    BuildProvider, ChangeHistory, Deployer, EventReceiver, HealthGate, Notifier, ProviderError, Providers, SecretResolver,
    TelemetryExporter,
};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Builds the local adapters for a catalog entry's specs.
pub struct LocalProviders {
    workspace_root: PathBuf,
    console: Option<ConsoleNotifier>,
    pub(crate) secrets: Arc<dyn SecretResolver>,
    pub(crate) slack_api_base: String,
    pub(crate) http: reqwest::Client,
    /// GitHub App installation tokens, kept for the process (one Lambda container, one CLI run).
    pub(crate) github_tokens: GitHubAppTokens,
    /// AWS SDK configurations per region and assumed role, loaded on first use and kept for the
    /// process, for the CodeBuild builds, the ECS and Lambda deployers and the CloudWatch gate.
    pub(crate) aws: AwsClients,
    /// Where the `cloudwatch-emf` exporter writes its lines: stdout (Lambda's log stream) unless set.
    pub(crate) emf_sink: EmfSink,
    /// The organisation's exporters, which every service gets unless it names the exporter itself.
    telemetry_defaults: Vec<ProviderBlock>,
    /// The rate-limit holds every HTTP provider it builds minds: the process's
    /// ([`RateLimits::shared`]) unless set.
    pub(crate) limits: Arc<RateLimits>,
    /// The providers it builds: Baton's own ([`ProviderTable::standard`]) unless set.
    table: &'static ProviderTable,
    /// The provider-events URL, when Baton receives provider events: the `webhook` deployer
    /// tells its endpoint to report there.
    pub(crate) events_url: Option<String>,
}

impl LocalProviders {
    /// `workspace_root` holds each service's scratch directory (`BATON_WORKSPACE`); `console`
    /// receives one line per notification (stderr in the CLI); `slack_api_base` defaults to
    /// [`DEFAULT_SLACK_API_BASE`]. Fails only if the TLS stack cannot be set up.
    pub fn new(
        workspace_root: PathBuf,
        console: Option<Box<dyn Write + Send>>,
        secrets: Arc<dyn SecretResolver>,
        slack_api_base: Option<String>,
    ) -> Result<LocalProviders, ProviderError> {
        Ok(LocalProviders {
            workspace_root,
            console: console.map(ConsoleNotifier::new),
            secrets,
            slack_api_base: slack_api_base.unwrap_or_else(|| DEFAULT_SLACK_API_BASE.to_owned()),
            http: crate::http_client()?,
            github_tokens: GitHubAppTokens::new(),
            aws: AwsClients::new(),
            emf_sink: EmfSink::Stdout,
            telemetry_defaults: Vec::new(),
            limits: RateLimits::shared(),
            table: ProviderTable::standard(),
            events_url: None,
        })
    }

    /// Every service also gets these exporters, unless its own `telemetry` names the exporter
    /// (see [`crate::telemetry_defaults`]).
    pub fn with_telemetry_defaults(self, defaults: Vec<ProviderBlock>) -> LocalProviders {
        LocalProviders { telemetry_defaults: defaults, ..self }
    }

    /// [`LocalProviders::with_telemetry_defaults`] with the list [`crate::TELEMETRY_DEFAULTS_ENV`]
    /// holds, when it is set and not empty; an invalid list is refused.
    pub fn with_telemetry_defaults_from_env(self) -> Result<LocalProviders, ProviderError> {
        match std::env::var(crate::TELEMETRY_DEFAULTS_ENV).ok().filter(|text| !text.trim().is_empty()) {
            Some(text) => Ok(self.with_telemetry_defaults(crate::telemetry_defaults(&text, crate::TELEMETRY_DEFAULTS_ENV)?)),
            None => Ok(self),
        }
    }

    /// The `cloudwatch-emf` exporter writes to `sink` instead of stdout (a local run's file).
    pub fn with_emf_sink(self, sink: EmfSink) -> LocalProviders {
        LocalProviders { emf_sink: sink, ..self }
    }

    /// The AWS providers call AWS through `clients` (tests point them at emulators this way).
    pub fn with_aws_clients(self, clients: AwsClients) -> LocalProviders {
        LocalProviders { aws: clients, ..self }
    }

    /// Rate-limit holds other than the process's, on a clock of their own (a test whose
    /// handlers run on scaled time: a provider's window passes as the definition's waits do).
    pub fn with_rate_limits(self, limits: Arc<RateLimits>) -> LocalProviders {
        LocalProviders { limits, ..self }
    }

    /// Builds its adapters from `table` (Baton's providers and a test's or an extension's).
    pub fn with_table(self, table: &'static ProviderTable) -> LocalProviders {
        LocalProviders { table, ..self }
    }

    /// Baton receives provider events at `url` (the provider-events function's URL, or `baton`'s
    /// loopback listener): the providers that can be told where to report, are.
    pub fn with_events_url(self, url: impl Into<String>) -> LocalProviders {
        LocalProviders { events_url: Some(url.into()), ..self }
    }

    /// The receiver of `provider`'s callbacks (the `/{provider}` path of the provider-events URL),
    /// accepting what any secret that a block of `entries` naming the provider gives for them
    /// authenticates. Refused for a provider whose callbacks Baton does not receive, and when no
    /// block names a secret (its releases poll).
    pub async fn receiver(&self, provider: &str, entries: &[ServiceEntry]) -> Result<Box<dyn EventReceiver>, ProviderError> {
        let Some((slot, receive)) = self.table.receive(provider) else {
            return Err(ProviderError::rejected(format!(
                "Baton receives no events from `{provider}`: expected one of {}",
                self.table.receiving().join(", ")
            )));
        };
        let mut references: Vec<SecretRef> = Vec::new();
        for entry in entries {
            for reference in events_secrets(slot, receive, provider, entry)? {
                if !references.contains(&reference) {
                    references.push(reference);
                }
            }
        }
        if references.is_empty() {
            return Err(ProviderError::rejected(format!(
                "no catalog entry's `{provider}` block names the secret of its events (`events-secret`): its releases poll"
            )));
        }
        let mut secrets = Vec::with_capacity(references.len());
        for reference in &references {
            secrets.push(crate::resolve_secret(self.secrets.as_ref(), reference).await?);
        }
        (receive.make)(secrets).map_err(ProviderError::rejected)
    }

    /// A receiver for each provider whose callbacks Baton receives and that a block of `entries`
    /// names a secret for, as [`LocalProviders::receiver`] builds it, except that an entry whose
    /// block or secret does not read is left out (its releases poll) rather than failing its
    /// provider's receiver: each such entry's error comes back beside the receivers.
    pub async fn receivers(&self, entries: &[ServiceEntry]) -> (Vec<Box<dyn EventReceiver>>, Vec<ProviderError>) {
        let (mut receivers, mut problems) = (Vec::new(), Vec::new());
        for provider in self.table.receiving() {
            let Some((slot, receive)) = self.table.receive(provider) else { continue };
            let (mut resolved, mut secrets): (Vec<SecretRef>, Vec<Secret>) = (Vec::new(), Vec::new());
            for entry in entries {
                match self.entry_secrets(slot, receive, provider, entry, &resolved).await {
                    Ok(found) => found.into_iter().for_each(|(reference, secret)| {
                        resolved.push(reference);
                        secrets.push(secret);
                    }),
                    Err(err) => problems.push(err),
                }
            }
            if secrets.is_empty() {
                continue;
            }
            match (receive.make)(secrets) {
                Ok(receiver) => receivers.push(receiver),
                Err(err) => problems.push(ProviderError::rejected(format!("the `{provider}` receiver: {err}"))),
            }
        }
        (receivers, problems)
    }

    /// The secrets of `entry`'s `provider` blocks not among `resolved`, all of them or its error
    /// (naming the entry's file): an entry is received with every secret it names, or not at all.
    async fn entry_secrets(
        &self,
        slot: Slot,
        receive: &Receive,
        provider: &str,
        entry: &ServiceEntry,
        resolved: &[SecretRef],
    ) -> Result<Vec<(SecretRef, Secret)>, ProviderError> {
        let mut found = Vec::new();
        for reference in events_secrets(slot, receive, provider, entry)? {
            if !resolved.contains(&reference) && !found.iter().any(|(known, _)| known == &reference) {
                let secret = crate::resolve_secret(self.secrets.as_ref(), &reference)
                    .await
                    .map_err(|err| ProviderError::rejected(format!("{}: the `{provider}` events secret: {err}", entry.source)))?;
                found.push((reference, secret));
            }
        }
        Ok(found)
    }

    pub(crate) fn context(&self, entry: &ServiceEntry) -> Result<CommandContext, ProviderError> {
        CommandContext::new(entry, &self.workspace_root)
    }
}

/// The secrets `entry`'s blocks naming `provider` (in its `slot`) give for its events.
fn events_secrets(slot: Slot, receive: &Receive, provider: &str, entry: &ServiceEntry) -> Result<Vec<SecretRef>, ProviderError> {
    let delivery = &entry.delivery;
    let blocks: Vec<&ProviderBlock> = match slot {
        Slot::Build => vec![&delivery.build],
        Slot::Deploy => vec![&delivery.deploy.target],
        Slot::Gate => delivery.health.gates.iter().map(|gate| &gate.gate).collect(),
        Slot::Export | Slot::Notify => Vec::new(),
    };
    let mut references = Vec::new();
    for block in blocks.into_iter().filter(|block| block.provider == provider) {
        let reference = (receive.secret)(block).map_err(|err| ProviderError::rejected(format!("{}: {err}", entry.source)))?;
        references.extend(reference);
    }
    Ok(references)
}

/// Each provider is built by its entry in the registry's table.
impl Providers for LocalProviders {
    fn build(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
        let make = self.table.maker(Slot::Build, &spec.provider, |make| if let Make::Build(f) = make { Some(*f) } else { None })?;
        make(self, spec, entry)
    }

    fn deployer(&self, spec: &ProviderBlock, entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
        let make = self.table.maker(Slot::Deploy, &spec.provider, |make| if let Make::Deploy(f) = make { Some(*f) } else { None })?;
        make(self, spec, entry)
    }

    fn gate(&self, spec: &GateSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthGate>, ProviderError> {
        let make = self.table.maker(Slot::Gate, &spec.gate.provider, |make| if let Make::Gate(f) = make { Some(*f) } else { None })?;
        make(self, &spec.gate, entry)
    }

    /// The console (when given), then each of the entry's `notify` blocks.
    fn notifiers(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
        let console = self.console.iter().map(|console| Ok(Box::new(console.clone()) as Box<dyn Notifier>));
        let pick = |make: &Make| if let Make::Notify(f) = make { Some(*f) } else { None };
        let blocks = entry.delivery.notify.iter().map(|block| self.table.maker(Slot::Notify, &block.provider, pick)?(self, block, entry));
        console.chain(blocks).collect()
    }

    /// Where the build reads its source: `git` in a `command` build's working directory, the
    /// repository of a `github-actions` or `gitlab-ci` build with the block's credentials.
    fn changes(&self, entry: &ServiceEntry) -> Result<Option<Box<dyn ChangeHistory>>, ProviderError> {
        let build = &entry.delivery.build;
        Ok(match build.provider.as_str() {
            "command" => {
                let spec: CommandBuild = build.decode()?;
                let dir = self.context(entry)?.working_dir(spec.run.working_dir.as_deref()).unwrap_or_else(|| PathBuf::from("."));
                Some(Box::new(GitHistory::new(dir)))
            }
            "github-actions" => {
                let github =
                    GitHubHistory::new(&build.decode()?, Arc::clone(&self.secrets), self.http.clone(), self.github_tokens.clone())?;
                Some(Box::new(github.with_rate_limits(Arc::clone(&self.limits))))
            }
            "gitlab-ci" => {
                let gitlab = GitLabHistory::new(&build.decode()?, &entry.source, Arc::clone(&self.secrets), self.http.clone())?;
                Some(Box::new(gitlab.with_rate_limits(Arc::clone(&self.limits))))
            }
            _ => None,
        })
    }

    fn exporters(&self, entry: &ServiceEntry) -> Result<Vec<Box<dyn TelemetryExporter>>, ProviderError> {
        let pick = |make: &Make| if let Make::Export(f) = make { Some(*f) } else { None };
        let blocks = crate::export::with_defaults(&entry.delivery.telemetry, &self.telemetry_defaults);
        blocks.iter().map(|block| self.table.maker(Slot::Export, &block.provider, pick)?(self, block, entry)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argo_cd::ArgoCdDeploy;
    use crate::ci::buildkite::BuildkiteBuild;
    use crate::ci::circleci::CircleCiBuild;
    use crate::ci::gitlab_ci::{GitLabCiBuild, GitLabProject};
    use crate::command::catalog::{CommandBuild, CommandDeploy, CommandRun};
    use crate::datadog_monitors::DatadogGate;
    use crate::health::HttpGate;
    use crate::notify::slack::SlackSpec;
    use crate::notify::tests::notification;
    use crate::test_support::{FixedSecrets, entry_in, release_id, script};
    use crate::webhook::WebhookDeploy;
    use baton_aws::codebuild::CodeBuildBuild;
    use baton_domain::catalog::{HealthSpec, SecretRef};
    use baton_domain::ports::{BuildProgress, BuildRequest, DeployProgress, DeployRequest, GateReading, HealthRequest};
    use std::path::Path;

    fn providers(root: &Path, console: bool) -> LocalProviders {
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("SLACK_BOT_TOKEN".into()), "xoxb-test"));
        let console: Option<Box<dyn Write + Send>> = if console { Some(Box::new(std::io::sink())) } else { None };
        LocalProviders::new(root.join("workspaces"), console, secrets, Some("http://127.0.0.1:9/api".into())).unwrap()
    }

    #[tokio::test]
    async fn a_release_builds_deploys_and_checks_through_the_catalog_specs() {
        let dir = tempfile::tempdir().unwrap();
        let mut entry = entry_in(dir.path());
        let traces = dir.path().display();
        let build = script(
            dir.path(),
            "build.sh",
            &format!("printf %s \"$TRACEPARENT\" > {traces}/build.trace\necho \"web-$BATON_RELEASE_ID.tar\""),
        );
        let deploy = script(
            dir.path(),
            "deploy.sh",
            &format!("printf %s \"$TRACEPARENT\" > {traces}/deploy.trace\ncp /dev/null \"$BATON_WORKSPACE/$BATON_TARGET-$BATON_ARTIFACT\""),
        );
        let health = script(dir.path(), "health.sh", "test -e \"$BATON_WORKSPACE/$BATON_TARGETS-$BATON_ARTIFACT\"");
        entry.delivery.build = ProviderBlock::of("command", &CommandBuild { run: CommandRun::new(build), artifact_file: None });
        entry.delivery.deploy.target =
            ProviderBlock::of("command", &CommandDeploy { run: CommandRun::new(deploy), rollback_command: None });
        entry.delivery.health = HealthSpec::single(ProviderBlock::of("command", &CommandRun::new(health)));
        let providers = providers(dir.path(), false);

        let builder = providers.build(&entry.delivery.build, &entry).unwrap();
        let request = BuildRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            branch: "main".into(),
            sha: Some("abc".into()),
        };
        let run = builder.start(&request).await.unwrap();
        let BuildProgress::Succeeded { artifact } = builder.poll(&run).await.unwrap().progress else { panic!("build failed") };
        assert_eq!(artifact.reference, format!("web-{}.tar", release_id()));

        let deployer = providers.deployer(&entry.delivery.deploy.target, &entry).unwrap();
        let request = DeployRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            wave: "canary".into(),
            target: "host-1".into(),
            artifact: artifact.clone(),
            rollback: false,
            undoes: None,
        };
        let run = deployer.start(&request).await.unwrap();
        assert_eq!(deployer.poll(&run).await.unwrap(), DeployProgress::Succeeded);
        // Each command is handed its span of the release's trace.
        let handed = |what: &str| std::fs::read_to_string(dir.path().join(format!("{what}.trace"))).unwrap();
        assert_eq!(handed("build"), crate::traceparent(&release_id(), "build"));
        assert_eq!(handed("deploy"), crate::traceparent(&release_id(), "wave/canary/deploy/host-1"));

        let gate = providers.gate(&entry.delivery.health.gates[0], &entry).unwrap();
        let mut request = HealthRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            wave: "canary".into(),
            targets: vec!["host-1".into()],
            artifact,
        };
        assert!(matches!(gate.sample(&request).await.unwrap(), GateReading::Healthy { .. }));
        request.targets = vec!["host-2".into()];
        assert!(matches!(gate.sample(&request).await.unwrap(), GateReading::Unhealthy { .. }));
    }

    #[test]
    fn notifiers_are_the_console_and_the_best_slack_the_spec_allows() {
        let dir = tempfile::tempdir().unwrap();
        let notifiers = |providers: &LocalProviders, slack: Option<SlackSpec>| {
            let mut entry = entry_in(dir.path());
            entry.delivery.notify = slack.iter().map(|slack| ProviderBlock::of("slack", slack)).collect();
            providers.notifiers(&entry)
        };
        let names = |providers: &LocalProviders, slack: Option<SlackSpec>| {
            notifiers(providers, slack).unwrap().iter().map(|n| n.name().to_owned()).collect::<Vec<_>>()
        };
        let token = Some(SecretRef::Env("SLACK_BOT_TOKEN".into()));
        let webhook = Some(SecretRef::Env("SLACK_WEBHOOK".into()));
        let slack = |webhook: &Option<SecretRef>, token: &Option<SecretRef>| SlackSpec {
            channel: "#deploys".into(),
            webhook: webhook.clone(),
            token: token.clone(),
        };

        let with_console = providers(dir.path(), true);
        assert_eq!(names(&with_console, None), ["console"]);
        assert_eq!(names(&with_console, Some(slack(&webhook, &token))), ["console", "slack"]);
        assert_eq!(names(&with_console, Some(slack(&webhook, &None))), ["console", "slack-webhook"]);
        // The parser refuses such a block; one made otherwise is refused here rather than dropped.
        assert!(matches!(notifiers(&with_console, Some(slack(&None, &None))), Err(ProviderError::Rejected { .. })));
        let quiet = providers(dir.path(), false);
        assert_eq!(names(&quiet, Some(slack(&None, &token))), ["slack"]);
        assert!(names(&quiet, None).is_empty());
    }

    #[tokio::test]
    async fn the_slack_api_base_is_configurable() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path("/api/chat.postMessage"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({ "ok": true, "channel": "C9", "ts": "1.2" })),
            )
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(FixedSecrets::one(SecretRef::Env("SLACK_BOT_TOKEN".into()), "xoxb-test"));
        let providers = LocalProviders::new(dir.path().into(), None, secrets, Some(format!("{}/api", server.uri()))).unwrap();
        let slack = SlackSpec { channel: "#deploys".into(), webhook: None, token: Some(SecretRef::Env("SLACK_BOT_TOKEN".into())) };
        let mut entry = entry_in(dir.path());
        entry.delivery.notify = vec![ProviderBlock::of("slack", &slack)];
        let notifiers = providers.notifiers(&entry).unwrap();
        let mut quiet = notification();
        quiet.action_needed = None;
        assert_eq!(notifiers[0].notify(&quiet, None).await.unwrap(), Some(serde_json::json!({ "channel": "C9", "ts": "1.2" })));
    }

    #[tokio::test]
    async fn argo_cd_webhook_and_datadog_blocks_build_their_providers() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path("/deploy"))
            .respond_with(wiremock::ResponseTemplate::new(202).set_body_json(serde_json::json!({ "status_url": "/runs/1", "id": "1" })))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let entry = entry_in(dir.path());
        let secret = SecretRef::Env("WEBHOOK_SECRET".into());
        let secrets = Arc::new(FixedSecrets::one(secret.clone(), "whsec"));
        let providers = LocalProviders::new(dir.path().into(), None, secrets, None).unwrap();

        let webhook = ProviderBlock::of("webhook", &WebhookDeploy { url: format!("{}/deploy", server.uri()), secret });
        let request = DeployRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            wave: "canary".into(),
            target: "host-1".into(),
            artifact: baton_domain::release::Artifact {
                reference: "web:2".into(),
                sha: "abc".into(),
                branch: "main".into(),
                build_url: None,
            },
            rollback: false,
            undoes: None,
        };
        let run = providers.deployer(&webhook, &entry).unwrap().start(&request).await.unwrap();
        assert_eq!((run.provider.as_str(), run.id.as_str()), ("webhook", "1"));

        let token = SecretRef::Env("ARGOCD_TOKEN".into());
        let argo_cd = |server: &str| {
            ProviderBlock::of(
                "argo-cd",
                &ArgoCdDeploy { server: server.into(), token: token.clone(), revision: "{sha}".into(), events_secret: None },
            )
        };
        assert!(providers.deployer(&argo_cd("https://argocd.example.com"), &entry).is_ok());
        let refused = providers.deployer(&argo_cd("argocd.example.com"), &entry).err().unwrap();
        assert!(
            matches!(&refused, ProviderError::Rejected { message: m, .. } if m.starts_with(&entry.source) && m.contains("argo-cd server")),
            "{refused}"
        );

        let datadog = DatadogGate {
            monitors: vec![],
            tags: vec!["team:payments".into()],
            site: "datadoghq.eu".into(),
            api_url: None,
            api_key: SecretRef::Env("DD_API_KEY".into()),
            app_key: SecretRef::Env("DD_APP_KEY".into()),
            unhealthy: vec!["Alert".into()],
            events_secret: None,
        };
        let gate = providers.gate(&HealthSpec::single(ProviderBlock::of("datadog", &datadog)).gates[0], &entry).unwrap();
        assert_eq!(gate.describe(), "Datadog monitors tagged service:web, env:production, team:payments");
    }

    #[tokio::test]
    async fn gitlab_buildkite_and_circleci_blocks_build_their_providers() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::path("/api/v4/projects/acme%2Fweb/pipeline"))
            .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({
                "id": 9, "sha": "abc", "status": "created", "web_url": "https://gitlab.example.com/acme/web/-/pipelines/9",
            })))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let entry = entry_in(dir.path());
        let token = SecretRef::Env("GITLAB_TOKEN".into());
        let providers = LocalProviders::new(dir.path().into(), None, Arc::new(FixedSecrets::one(token.clone(), "glpat")), None).unwrap();
        let gitlab = |project: &str| {
            ProviderBlock::of(
                "gitlab-ci",
                &GitLabCiBuild {
                    project: GitLabProject(project.into()),
                    token: Some(token.clone()),
                    trigger_token: None,
                    variables: Default::default(),
                    artifact: "web:{pipeline-id}".into(),
                    api_url: Some(format!("{}/api/v4", server.uri())),
                    events_secret: None,
                },
            )
        };
        let request = BuildRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            branch: "main".into(),
            sha: None,
        };
        let run = providers.build(&gitlab("acme/web"), &entry).unwrap().start(&request).await.unwrap();
        assert_eq!((run.provider.as_str(), run.id.as_str()), ("gitlab-ci", "9"));
        let refused = providers.build(&gitlab("web"), &entry).err().unwrap();
        assert!(
            matches!(&refused, ProviderError::Rejected { message: m, .. } if m.starts_with(&entry.source) && m.contains("gitlab-ci project")),
            "{refused}"
        );

        let buildkite = |pipeline: &str| {
            ProviderBlock::of(
                "buildkite",
                &BuildkiteBuild {
                    organization: "acme".into(),
                    pipeline: pipeline.into(),
                    token: SecretRef::Env("BUILDKITE_TOKEN".into()),
                    env: Default::default(),
                    artifact: "web:{build-number}".into(),
                    api_url: None,
                    events_secret: None,
                },
            )
        };
        assert!(providers.build(&buildkite("web"), &entry).is_ok());
        let refused = providers.build(&buildkite("Web"), &entry).err().unwrap();
        assert!(matches!(&refused, ProviderError::Rejected { message: m, .. } if m.contains("buildkite pipeline")), "{refused}");

        let circleci = |project: &str| {
            ProviderBlock::of(
                "circleci",
                &CircleCiBuild {
                    project: project.into(),
                    token: SecretRef::Env("CIRCLE_TOKEN".into()),
                    parameters: Default::default(),
                    traceparent: false,
                    artifact: "web:{pipeline-number}".into(),
                    api_url: None,
                    events_secret: None,
                },
            )
        };
        assert!(providers.build(&circleci("gh/acme/web"), &entry).is_ok());
        let refused = providers.build(&circleci("acme/web"), &entry).err().unwrap();
        assert!(matches!(&refused, ProviderError::Rejected { message: m, .. } if m.contains("circleci project")), "{refused}");

        let codebuild = |artifact: &str| {
            ProviderBlock::of(
                "codebuild",
                &CodeBuildBuild {
                    project: "web".into(),
                    env: Default::default(),
                    artifact: Some(artifact.into()),
                    artifact_variable: None,
                    access: Default::default(),
                },
            )
        };
        assert!(providers.build(&codebuild("web:{build-number}"), &entry).is_ok());
        let refused = providers.build(&codebuild("web:{pipeline-id}"), &entry).err().unwrap();
        assert!(
            matches!(&refused, ProviderError::Rejected { message: m, .. } if m.starts_with(&entry.source) && m.contains("unknown placeholder {pipeline-id}")),
            "{refused}"
        );
    }

    #[test]
    fn bad_specs_fail_when_the_provider_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let entry = entry_in(dir.path());
        let providers = providers(dir.path(), false);
        let http = HealthSpec::single(ProviderBlock::of(
            "http",
            &HttpGate { url: "not a url".into(), expect_status: vec![], body_contains: None },
        ));
        assert!(
            matches!(providers.gate(&http.gates[0], &entry), Err(ProviderError::Rejected { message: m, .. }) if m.starts_with(&entry.source))
        );
        let empty = ProviderBlock::of("command", &CommandBuild { run: CommandRun::new(vec![]), artifact_file: None });
        assert!(
            matches!(providers.build(&empty, &entry), Err(ProviderError::Rejected { message: m, .. }) if m.contains("extensions.baton.build.command is empty"))
        );
    }

    #[test]
    fn every_service_gets_the_default_exporters_unless_it_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = crate::telemetry_defaults(
            r#"[{"provider": "datadog", "api-key": "env:DD_API_KEY"}, {"provider": "cloudwatch-emf", "namespace": "Org"}]"#,
            "test",
        )
        .unwrap();
        let with_defaults = providers(dir.path(), false).with_telemetry_defaults(defaults);
        let names = |entry: &ServiceEntry| -> Vec<String> {
            with_defaults.exporters(entry).unwrap().iter().map(|exporter| exporter.name().to_owned()).collect()
        };
        let mut entry = entry_in(dir.path());
        assert_eq!(names(&entry), ["datadog", "cloudwatch-emf"]);
        entry.delivery.telemetry = vec![ProviderBlock::new("cloudwatch-emf", serde_json::json!({"namespace": "Team"}))];
        assert_eq!(names(&entry), ["cloudwatch-emf", "datadog"], "the service's own block first, the other default after");
        let bare = providers(dir.path(), false);
        assert!(bare.exporters(&entry_in(dir.path())).unwrap().is_empty());
    }
}

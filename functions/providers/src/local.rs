//! [`Providers`] for a machine without AWS: commands, HTTP health, console and Slack.

use crate::build::CommandBuildProvider;
use crate::command::CommandContext;
use crate::deploy::CommandDeployer;
use crate::health::{CommandHealthChecker, HttpHealthChecker};
use crate::notify::console::ConsoleNotifier;
use crate::notify::slack::{DEFAULT_SLACK_API_BASE, SlackWebApiNotifier, SlackWebhookNotifier};
use baton_core::catalog::{BuildSpec, DeployTarget, HealthSpec, ServiceEntry, SlackSpec};
use baton_core::ports::{BuildProvider, Deployer, HealthChecker, Notifier, ProviderError, Providers, SecretResolver};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Builds the local adapters for a catalog entry's specs.
pub struct LocalProviders {
    workspace_root: PathBuf,
    console: Option<ConsoleNotifier>,
    secrets: Arc<dyn SecretResolver>,
    slack_api_base: String,
    http: reqwest::Client,
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
        })
    }

    fn context(&self, entry: &ServiceEntry) -> Result<CommandContext, ProviderError> {
        CommandContext::new(entry, &self.workspace_root)
    }
}

impl Providers for LocalProviders {
    fn build(&self, spec: &BuildSpec, entry: &ServiceEntry) -> Result<Box<dyn BuildProvider>, ProviderError> {
        match spec {
            BuildSpec::Command(command) => Ok(Box::new(CommandBuildProvider::new(command, self.context(entry)?)?)),
        }
    }

    fn deployer(&self, spec: &DeployTarget, entry: &ServiceEntry) -> Result<Box<dyn Deployer>, ProviderError> {
        match spec {
            DeployTarget::Command(command) => Ok(Box::new(CommandDeployer::new(command, self.context(entry)?)?)),
        }
    }

    fn health(&self, spec: &HealthSpec, entry: &ServiceEntry) -> Result<Box<dyn HealthChecker>, ProviderError> {
        match spec {
            HealthSpec::Http(http) => Ok(Box::new(HttpHealthChecker::new(http, &entry.source, self.http.clone())?)),
            HealthSpec::Command(command) => Ok(Box::new(CommandHealthChecker::new(command, self.context(entry)?)?)),
        }
    }

    /// The console (when given), then Slack: the Web API when a bot token is set (one live
    /// message), else the webhook when one is set.
    fn notifiers(&self, slack: Option<&SlackSpec>, _entry: &ServiceEntry) -> Result<Vec<Box<dyn Notifier>>, ProviderError> {
        let mut notifiers: Vec<Box<dyn Notifier>> = Vec::new();
        if let Some(console) = &self.console {
            notifiers.push(Box::new(console.clone()));
        }
        if let Some(slack) = slack {
            let secrets = Arc::clone(&self.secrets);
            let http = self.http.clone();
            if let Some(token) = &slack.token {
                notifiers.push(Box::new(SlackWebApiNotifier::new(&slack.channel, token.clone(), secrets, http, &self.slack_api_base)));
            } else if let Some(webhook) = &slack.webhook {
                notifiers.push(Box::new(SlackWebhookNotifier::new(&slack.channel, webhook.clone(), secrets, http)));
            }
        }
        Ok(notifiers)
    }
}

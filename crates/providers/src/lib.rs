//! CI, deploy, health and notification adapters: local commands, GitHub Actions, GitLab CI,
//! Buildkite, CircleCI, Argo CD, webhooks, HTTP and Datadog health, Slack.
//!
//! Everything here implements a port of [`baton_domain::ports`]. Command providers run an
//! argv on this machine (Unix only: they own a process group so a timeout can kill a whole
//! build); the GitHub Actions, GitLab CI, Buildkite and CircleCI builds, the Argo CD and webhook deploys, the HTTP and Datadog
//! gates and the Slack notifiers speak HTTPS through one shared [`reqwest::Client`], the
//! process's one (see [`http_client`]).
//!
//! Decisions worth knowing:
//! - Command builds and deploys run detached: `start` returns once the command runs, and the
//!   [`RunHandle`](baton_domain::ports::RunHandle) is all `poll` needs, in any process (see
//!   `command::detached`'s module documentation).
//! - Commands do not inherit Baton's environment: a small base, the variables their `pass-env`
//!   names (never a secret of the entry), the spec's `env`, then `BATON_*`, which it cannot override.
//! - A build's sha is the request's, else `git rev-parse HEAD` where it ran, else [`UNKNOWN_SHA`].
//! - The Slack webhook cannot update a message (no `ts`): each notification is a new message.
//!   The Web API notifier (name `slack`) keeps one message per release, updated in place.

mod argo_cd;
pub mod catalog_datadog;
mod changes;
mod ci;
mod command;
pub mod datadog_dashboards;
mod datadog_monitors;
mod export;
mod health;
mod http;
mod inbound;
mod local;
mod notify;
mod registry;
mod secrets;
mod webhook;

pub use argo_cd::{ArgoCdDeploy, ArgoCdDeployer};
pub use baton_domain::release::UNKNOWN_SHA;
pub use baton_domain::trace::{span_id, trace_id, traceparent};
pub use changes::{GitHistory, GitHubHistory, GitLabHistory};
pub use ci::GitHubAppTokens;
pub use ci::buildkite::{BuildkiteBuild, BuildkiteBuildProvider, DEFAULT_BUILDKITE_API_URL};
pub use ci::circleci::{CircleCiBuild, CircleCiBuildProvider, DEFAULT_CIRCLECI_API_URL, PipelineParameter};
pub use ci::from_catalog::{GitHubActionsBuild, GitHubApp};
pub use ci::github_actions::{DEFAULT_GITHUB_API_URL, GitHubActionsBuildProvider, GitHubActionsConfig, GitHubAuth};
pub use ci::gitlab_ci::{DEFAULT_GITLAB_API_URL, GitLabCiBuild, GitLabCiBuildProvider, GitLabProject};
pub use command::build::CommandBuildProvider;
pub use command::catalog::{CommandBuild, CommandDeploy, CommandRun};
pub use command::deploy::CommandDeployer;
pub use command::gate::CommandGate;
pub use command::{BASE_ENV, CommandContext, poll_patience};
pub use datadog_monitors::{DATADOG_MONITOR, DatadogGate, DatadogMonitorsGate, monitor_key};
pub use export::datadog::{DORA_SITES, DatadogExport, DatadogExporter, DatadogSend, ci_pipeline, dora_deployment, dora_failure, marker};
pub use export::emf::{CLOUDWATCH_EMF, EmfExport, EmfExporter, EmfSink, emf_line};
pub use export::otlp::{OtlpExport, OtlpExporter, release_trace};
pub use export::{EXPORT_REQUEST_TIMEOUT, TELEMETRY_DEFAULTS_ENV, telemetry_defaults};
pub use health::{HttpGate, HttpGateSampler};
pub use http::{CREATE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, RateLimits, http_client};
pub use inbound::argo_cd::ArgoCdNotifications;
pub use inbound::buildkite::BuildkiteBuildEvents;
pub use inbound::circleci::CircleCiWorkflowEvents;
pub use inbound::datadog::DatadogMonitorEvents;
pub use inbound::github::workflow_run_events;
pub use inbound::gitlab::GitLabPipelineEvents;
pub use inbound::webhook::{SIGNATURE_HEADER as CALLBACK_SIGNATURE_HEADER, WebhookCallbacks, callback_signature};
pub use inbound::{MAX_AGE_SECONDS as EVENT_MAX_AGE_SECONDS, TOKEN_HEADER as EVENT_TOKEN_HEADER};
pub use local::LocalProviders;
pub use notify::console::ConsoleNotifier;
pub use notify::pager::{
    DEFAULT_PAGERDUTY_EVENTS_URL, OPSGENIE_EU_API, OPSGENIE_US_API, OpsgenieNotifier, OpsgenieRegion, OpsgenieSpec, PagerDutyNotifier,
    PagerDutySpec,
};
pub use notify::slack::{DEFAULT_SLACK_API_BASE, SlackSpec, SlackWebApiNotifier, SlackWebhookNotifier};
pub use notify::slack_directory::{DIRECTORY_TTL, SlackDirectory};
pub use notify::slack_interactions::{SLACK_MAX_AGE_SECONDS, SlackInteractions};
pub use notify::{APPROVE_ACTION, REJECT_ACTION};
pub use registry::{MODULES, Make, MakeReceiver, Maker, Module, ProviderTable, Receive, gate_parks_bake, registry};
pub use secrets::{EnvSecretResolver, Secret, resolve_secret};
pub use webhook::{WebhookDeploy, WebhookDeployer};

#[cfg(test)]
mod test_support;

//! Every provider a catalog may name, in one table: its catalog block's shape (which the parser,
//! the validator and the JSON Schema read) and how its adapter is built from a checked block.
//! Adding a provider is a module with its block, its shape and its adapter, plus one entry here
//! (or, for a test or an extension, a [`ProviderTable::with`] its own modules). A provider whose
//! callbacks Baton receives (provider events: a CI webhook, a deploy notification) also says, in
//! its [`Receive`], which secret of its block authenticates them and how its receiver is built.

use crate::argo_cd::{ARGO_CD, ArgoCdDeployer};
use crate::ci::buildkite::{BUILDKITE, BuildkiteBuildProvider};
use crate::ci::circleci::{CIRCLECI, CircleCiBuildProvider};
use crate::ci::from_catalog::{GITHUB_ACTIONS, GitHubActionsFromCatalog};
use crate::ci::gitlab_ci::{GITLAB_CI, GitLabCiBuildProvider};
use crate::command::build::CommandBuildProvider;
use crate::command::catalog::{COMMAND_BUILD, COMMAND_DEPLOY, COMMAND_GATE};
use crate::command::deploy::CommandDeployer;
use crate::command::gate::CommandGate;
use crate::datadog_monitors::{DATADOG, DatadogMonitorsGate};
use crate::export::datadog::{DATADOG_EXPORT, DatadogExporter};
use crate::export::emf::{CLOUDWATCH_EMF, EmfExporter};
use crate::export::otlp::{OTLP, OtlpExporter};
use crate::health::{HTTP_GATE, HttpGateSampler};
use crate::inbound::argo_cd::ArgoCdNotifications;
use crate::inbound::buildkite::BuildkiteBuildEvents;
use crate::inbound::circleci::CircleCiWorkflowEvents;
use crate::inbound::datadog::DatadogMonitorEvents;
use crate::inbound::gitlab::GitLabPipelineEvents;
use crate::inbound::webhook::WebhookCallbacks;
use crate::local::LocalProviders;
use crate::notify::pager::{OPSGENIE, OpsgenieNotifier, PAGERDUTY, PagerDutyNotifier};
use crate::notify::slack::{SLACK, SlackSpec, SlackWebApiNotifier, SlackWebhookNotifier};
use crate::secrets::Secret;
use crate::webhook::{WEBHOOK, WebhookDeployer};
use crate::{ArgoCdDeploy, BuildkiteBuild, CircleCiBuild, DatadogGate, GitLabCiBuild, WebhookDeploy};
use baton_aws::cloudwatch::{CLOUDWATCH, CloudWatchGate};
use baton_aws::codebuild::CODEBUILD;
use baton_aws::ecs::ECS;
use baton_aws::lambda::LAMBDA;
use baton_aws::{CloudWatchGateSampler, CodeBuildProvider, EcsDeployer, LambdaDeployer};
use baton_domain::catalog::{ProviderBlock, ProviderShape, Registry, SecretRef, ServiceEntry, Slot};
use baton_domain::ports::{BuildProvider, Deployer, EventReceiver, HealthGate, Notifier, ProviderError, TelemetryExporter};
use std::sync::{Arc, LazyLock};

/// Builds a provider's adapter from its checked block, for the entry that names it.
pub type Maker<T> = fn(&LocalProviders, &ProviderBlock, &ServiceEntry) -> Result<Box<T>, ProviderError>;

/// How a provider's adapter is built, by slot.
pub enum Make {
    Build(Maker<dyn BuildProvider>),
    Deploy(Maker<dyn Deployer>),
    Gate(Maker<dyn HealthGate>),
    Export(Maker<dyn TelemetryExporter>),
    Notify(Maker<dyn Notifier>),
}

impl Make {
    /// The slot whose adapters it builds.
    pub fn slot(&self) -> Slot {
        match self {
            Make::Build(_) => Slot::Build,
            Make::Deploy(_) => Slot::Deploy,
            Make::Gate(_) => Slot::Gate,
            Make::Export(_) => Slot::Export,
            Make::Notify(_) => Slot::Notify,
        }
    }
}

pub struct Module {
    pub shape: &'static ProviderShape,
    pub make: Make,
    /// How its callbacks are received, when Baton receives them.
    pub receive: Option<Receive>,
}

/// How a provider's callbacks are received.
pub struct Receive {
    /// The secret a checked block names for them, if it names one.
    pub secret: fn(&ProviderBlock) -> Result<Option<SecretRef>, ProviderError>,
    /// The receiver accepting what any of these secrets authenticates (pure: no network).
    pub make: MakeReceiver,
}

/// Builds a provider's event receiver from the secrets of its blocks; refuses none, or an empty one.
pub type MakeReceiver = fn(Vec<Secret>) -> Result<Box<dyn EventReceiver>, String>;

pub static MODULES: &[Module] = &[
    Module {
        shape: &COMMAND_BUILD,
        make: Make::Build(|providers, block, entry| Ok(Box::new(CommandBuildProvider::new(&block.decode()?, providers.context(entry)?)?))),
        receive: None,
    },
    Module {
        shape: &GITHUB_ACTIONS,
        make: Make::Build(|providers, block, _| {
            let secrets = Arc::clone(&providers.secrets);
            let tokens = providers.github_tokens.clone();
            let github = GitHubActionsFromCatalog::new(&block.decode()?, secrets, providers.http.clone(), tokens)?;
            Ok(Box::new(github.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: None,
    },
    Module {
        shape: &GITLAB_CI,
        make: Make::Build(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            let gitlab = GitLabCiBuildProvider::new(&block.decode()?, &entry.source, secrets, providers.http.clone())?;
            Ok(Box::new(gitlab.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: Some(Receive {
            secret: |block| Ok(block.decode::<GitLabCiBuild>()?.events_secret),
            make: |secrets| Ok(Box::new(GitLabPipelineEvents::new(secrets)?)),
        }),
    },
    Module {
        shape: &BUILDKITE,
        make: Make::Build(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            let buildkite = BuildkiteBuildProvider::new(&block.decode()?, &entry.source, secrets, providers.http.clone())?;
            Ok(Box::new(buildkite.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: Some(Receive {
            secret: |block| Ok(block.decode::<BuildkiteBuild>()?.events_secret),
            make: |secrets| Ok(Box::new(BuildkiteBuildEvents::new(secrets)?)),
        }),
    },
    Module {
        shape: &CIRCLECI,
        make: Make::Build(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            let circleci = CircleCiBuildProvider::new(&block.decode()?, &entry.source, secrets, providers.http.clone())?;
            Ok(Box::new(circleci.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: Some(Receive {
            secret: |block| Ok(block.decode::<CircleCiBuild>()?.events_secret),
            make: |secrets| Ok(Box::new(CircleCiWorkflowEvents::new(secrets)?)),
        }),
    },
    Module {
        shape: &CODEBUILD,
        make: Make::Build(|providers, block, entry| {
            Ok(Box::new(CodeBuildProvider::new(&block.decode()?, &entry.source, providers.aws.clone())?))
        }),
        receive: None,
    },
    Module {
        shape: &COMMAND_DEPLOY,
        make: Make::Deploy(|providers, block, entry| Ok(Box::new(CommandDeployer::new(&block.decode()?, providers.context(entry)?)?))),
        receive: None,
    },
    Module {
        shape: &ECS,
        make: Make::Deploy(|providers, block, _| Ok(Box::new(EcsDeployer::new(&block.decode()?, providers.aws.clone())))),
        receive: None,
    },
    Module {
        shape: &LAMBDA,
        make: Make::Deploy(|providers, block, _| Ok(Box::new(LambdaDeployer::new(&block.decode()?, providers.aws.clone())))),
        receive: None,
    },
    Module {
        shape: &ARGO_CD,
        make: Make::Deploy(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            let argo = ArgoCdDeployer::new(&block.decode()?, &entry.source, secrets, providers.http.clone())?;
            Ok(Box::new(argo.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: Some(Receive {
            secret: |block| Ok(block.decode::<ArgoCdDeploy>()?.events_secret),
            make: |secrets| Ok(Box::new(ArgoCdNotifications::new(secrets)?)),
        }),
    },
    Module {
        shape: &WEBHOOK,
        make: Make::Deploy(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            let mut webhook = WebhookDeployer::new(&block.decode()?, &entry.source, secrets, providers.http.clone())?;
            if let Some(events_url) = &providers.events_url {
                webhook = webhook.with_events_url(events_url);
            }
            Ok(Box::new(webhook.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: Some(Receive {
            secret: |block| Ok(Some(block.decode::<WebhookDeploy>()?.secret)),
            make: |secrets| Ok(Box::new(WebhookCallbacks::new(secrets)?)),
        }),
    },
    Module {
        shape: &CLOUDWATCH,
        make: Make::Gate(|providers, block, _| Ok(Box::new(CloudWatchGateSampler::new(&block.decode()?, providers.aws.clone())))),
        receive: None,
    },
    Module {
        shape: &DATADOG,
        make: Make::Gate(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            let (service, environment) = (&entry.name, &entry.delivery.environment);
            let gate = DatadogMonitorsGate::new(&block.decode()?, service, environment, &entry.source, secrets, providers.http.clone())?;
            Ok(Box::new(gate.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: Some(Receive {
            secret: |block| Ok(block.decode::<DatadogGate>()?.events_secret),
            make: |secrets| Ok(Box::new(DatadogMonitorEvents::new(secrets)?)),
        }),
    },
    Module {
        shape: &HTTP_GATE,
        make: Make::Gate(|providers, block, entry| {
            Ok(Box::new(HttpGateSampler::new(&block.decode()?, &entry.source, providers.http.clone())?))
        }),
        receive: None,
    },
    Module {
        shape: &COMMAND_GATE,
        make: Make::Gate(|providers, block, entry| Ok(Box::new(CommandGate::new(&block.decode()?, providers.context(entry)?)?))),
        receive: None,
    },
    Module {
        shape: &DATADOG_EXPORT,
        make: Make::Export(|providers, block, entry| {
            let secrets = Arc::clone(&providers.secrets);
            Ok(Box::new(DatadogExporter::new(&block.decode()?, &entry.source, secrets, providers.http.clone())?))
        }),
        receive: None,
    },
    Module {
        shape: &CLOUDWATCH_EMF,
        make: Make::Export(|providers, block, _| Ok(Box::new(EmfExporter::new(&block.decode()?, providers.emf_sink.clone())))),
        receive: None,
    },
    Module {
        shape: &OTLP,
        make: Make::Export(|providers, block, entry| {
            Ok(Box::new(OtlpExporter::new(&block.decode()?, &entry.source, providers.http.clone())?))
        }),
        receive: None,
    },
    Module {
        shape: &SLACK,
        // The Web API when a bot token is set (one live message, its thread replies mentioning
        // the on-call), else the webhook.
        make: Make::Notify(|providers, block, entry| {
            let slack: SlackSpec = block.decode()?;
            let (secrets, http, limits) = (Arc::clone(&providers.secrets), providers.http.clone(), Arc::clone(&providers.limits));
            match (slack.token, slack.webhook) {
                (Some(token), _) => {
                    let web_api = SlackWebApiNotifier::new(&slack.channel, token, secrets, http, &providers.slack_api_base);
                    Ok(Box::new(web_api.with_on_call(entry.delivery.on_call.as_deref()).with_rate_limits(limits)))
                }
                (None, Some(webhook)) => {
                    Ok(Box::new(SlackWebhookNotifier::new(&slack.channel, webhook, secrets, http).with_rate_limits(limits)))
                }
                (None, None) => Err(ProviderError::rejected("the `slack` block names neither a `token` nor a `webhook`")),
            }
        }),
        receive: None,
    },
    Module {
        shape: &PAGERDUTY,
        make: Make::Notify(|providers, block, entry| {
            let pager = PagerDutyNotifier::new(
                &block.decode()?,
                entry.delivery.on_call.as_deref(),
                Arc::clone(&providers.secrets),
                providers.http.clone(),
            );
            Ok(Box::new(pager.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: None,
    },
    Module {
        shape: &OPSGENIE,
        make: Make::Notify(|providers, block, entry| {
            let pager = OpsgenieNotifier::new(
                &block.decode()?,
                entry.delivery.on_call.as_deref(),
                Arc::clone(&providers.secrets),
                providers.http.clone(),
            );
            Ok(Box::new(pager.with_rate_limits(Arc::clone(&providers.limits))))
        }),
        receive: None,
    },
];

/// The providers a process knows: their modules, and the registry of their shapes that the
/// catalog's parser, validator and schema read.
pub struct ProviderTable {
    modules: Vec<&'static Module>,
    registry: Registry,
}

impl ProviderTable {
    /// Baton's own providers, [`MODULES`].
    pub fn standard() -> &'static ProviderTable {
        static STANDARD: LazyLock<ProviderTable> = LazyLock::new(|| ProviderTable::of(MODULES.iter()));
        &STANDARD
    }

    /// Baton's providers and `more` (a test's or an extension's), which may not reuse a name
    /// of their slot: panics if one does, as two providers of one name would make a catalog
    /// mean two things.
    pub fn with(more: &'static [Module]) -> ProviderTable {
        ProviderTable::of(MODULES.iter().chain(more))
    }

    fn of(modules: impl Iterator<Item = &'static Module>) -> ProviderTable {
        let modules: Vec<&'static Module> = modules.collect();
        let mut seen = std::collections::HashSet::new();
        for module in &modules {
            assert_eq!(module.make.slot(), module.shape.slot, "`{}` builds for another slot than its shape's", module.shape.name);
            assert!(
                seen.insert((module.shape.slot.describe(), module.shape.name)),
                "two {} providers named `{}`",
                module.shape.slot.describe(),
                module.shape.name
            );
        }
        let registry = Registry::new(modules.iter().map(|module| module.shape));
        ProviderTable { modules, registry }
    }

    /// The catalog's providers, for [`baton_domain::catalog::CatalogLoader`].
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The maker of the provider `name` that `pick` takes (the one of a slot), for a block the
    /// parser accepted (so it is registered).
    pub(crate) fn maker<T: ?Sized>(&self, slot: Slot, name: &str, pick: fn(&Make) -> Option<Maker<T>>) -> Result<Maker<T>, ProviderError> {
        self.modules.iter().filter(|module| module.shape.name == name).find_map(|module| pick(&module.make)).ok_or_else(|| {
            let known: Vec<&str> = self.registry.providers(slot).map(|shape| shape.name).collect();
            ProviderError::rejected(format!("no {} provider `{name}`: expected one of {}", slot.describe(), known.join(", ")))
        })
    }
}

impl ProviderTable {
    /// How `provider`'s callbacks are received (the `/{provider}` path of the provider-events
    /// URL), with the slot of the blocks naming it; `None` when Baton receives none of its.
    pub fn receive(&self, provider: &str) -> Option<(Slot, &Receive)> {
        self.modules.iter().find_map(|module| Some((module.shape.slot, module.receive.as_ref()?)).filter(|_| module.shape.name == provider))
    }

    /// The providers whose callbacks Baton receives, for messages.
    pub fn receiving(&self) -> Vec<&'static str> {
        self.modules.iter().filter(|module| module.receive.is_some()).map(|module| module.shape.name).collect()
    }
}

/// Whether a bake watched by the gate `block` declares can park on events: its provider's rule
/// read from the block alone, no call made (`baton plan` asks it without credentials), the same
/// rule the built gate's `HealthGate::bake_keys` applies. A provider without one samples.
pub fn gate_parks_bake(block: &ProviderBlock) -> bool {
    match block.provider.as_str() {
        name if name == CLOUDWATCH.name => block.decode::<CloudWatchGate>().is_ok_and(|gate| gate.parks_bake()),
        name if name == DATADOG.name => block.decode::<DatadogGate>().is_ok_and(|gate| gate.parks_bake()),
        _ => false,
    }
}

/// The catalog's providers (Baton's own), for [`baton_domain::catalog::CatalogLoader`].
pub fn registry() -> &'static Registry {
    ProviderTable::standard().registry()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_table_builds_each_provider_for_the_slot_of_its_shape_under_a_unique_name() {
        let table = ProviderTable::standard();
        assert_eq!(table.modules.len(), MODULES.len());
        for slot in [Slot::Build, Slot::Deploy, Slot::Gate, Slot::Export, Slot::Notify] {
            assert!(table.registry().providers(slot).next().is_some(), "no {} provider", slot.describe());
        }
    }

    #[test]
    #[should_panic(expected = "two notifier providers named `slack`")]
    fn a_table_refuses_a_second_provider_of_a_name_in_its_slot() {
        static AGAIN: [Module; 1] =
            [Module { shape: &SLACK, make: Make::Notify(|_, _, _| Err(ProviderError::rejected(String::new()))), receive: None }];
        ProviderTable::with(&AGAIN);
    }
}

//! Deploys to ECS services: a new revision of the service's task definition with one
//! container's image replaced, then the service updated to it; ECS runs the rollout (and its
//! circuit breaker), and polling reads the rollout state of that revision's deployment. The
//! deployment ECS created for the update is kept too: its "ECS Deployment State Change" events
//! name it, so a wave can park on them ([`deployment_key`]).

use crate::clients::{AwsAccess, Placement, access_for};
use crate::clients::{AwsClients, region_of};
use crate::error::AwsError;
use async_trait::async_trait;
use aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder;
use aws_sdk_ecs::types::{ContainerDefinition, DeploymentRolloutState, Service, Tag, TaskDefinition, TaskDefinitionField};
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle};
use baton_domain::waits::{WaitKey, WaitKind};
use serde::{Deserialize, Serialize};

const PROVIDER: &str = "ecs";

pub struct EcsDeployer {
    cluster: String,
    container: String,
    access: AwsAccess,
    placements: Vec<Placement>,
    clients: AwsClients,
}

/// What a run keeps in its handle: enough for `poll` to find the deployment, and for a rollback
/// to put back the revision this run replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EcsRun {
    cluster: String,
    service: String,
    region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    /// The revision this run put on the service (ARN).
    task_definition: String,
    /// The revision the service ran before (ARN).
    previous_task_definition: String,
    /// Absent from the handles of Baton versions before events, and when UpdateService's answer
    /// did not list the deployment: such a run is polled, never parked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deployment: Option<EcsDeployment>,
}

/// The deployment ECS created for a run's UpdateService, as its events name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EcsDeployment {
    service_arn: String,
    id: String,
}

/// The key a wait on an ECS deployment is parked under, and that an "ECS Deployment State
/// Change" event (`resources[0]`, `detail.deploymentId`) is delivered to: one spelling for both.
/// The service's ARN keeps deployments of services in other clusters, accounts and regions apart.
pub fn deployment_key(service_arn: &str, deployment_id: &str) -> WaitKey {
    WaitKey::new(WaitKind::Rollout, PROVIDER, format!("{service_arn}/{deployment_id}"))
}

impl EcsDeployer {
    /// Deploys to services (the deploy targets) of `spec.cluster`, each with its own region and
    /// role when a placement names one.
    pub fn new(spec: &EcsDeploy, clients: AwsClients) -> EcsDeployer {
        EcsDeployer {
            cluster: spec.cluster.clone(),
            container: spec.container.clone(),
            access: spec.access.clone(),
            placements: spec.placements.clone(),
            clients,
        }
    }

    /// A revision of `current` with the container's image set to `image`; returns its ARN.
    async fn register_with_image(&self, ecs: &aws_sdk_ecs::Client, current: &str, image: &str) -> Result<String, ProviderError> {
        let described =
            ecs.describe_task_definition().task_definition(current).include(TaskDefinitionField::Tags).send().await.map_err(|e| {
                AwsError::from_sdk("DescribeTaskDefinition", e).for_provider(&format!("task definition {}", short(current)))
            })?;
        let tags = described.tags.clone();
        let definition = described
            .task_definition
            .ok_or_else(|| ProviderError::rejected(format!("DescribeTaskDefinition returned no task definition for {}", short(current))))?;
        let definition = with_image(definition, &self.container, image)?;
        let family = definition.family.clone().unwrap_or_default();
        let registered = registration(ecs.register_task_definition(), definition, tags).send().await.map_err(|e| {
            AwsError::from_sdk("RegisterTaskDefinition", e).for_provider(&format!("a revision of task definition family {family}"))
        })?;
        registered
            .task_definition
            .and_then(|d| d.task_definition_arn)
            .ok_or_else(|| ProviderError::rejected(format!("RegisterTaskDefinition returned no task definition ARN for family {family}")))
    }
}

#[async_trait]
impl Deployer for EcsDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let access = access_for(&request.target, &self.access, &self.placements);
        let config = self.clients.config_for(&access).await?;
        let region = region_of(&config);
        let ecs = aws_sdk_ecs::Client::new(&config);
        let service = describe_service(&ecs, &self.cluster, &request.target, &region).await?;
        let current = service.task_definition.clone().ok_or_else(|| {
            ProviderError::rejected(format!("ECS service {} in cluster {} ({region}) has no task definition", request.target, self.cluster))
        })?;

        let previous = request.undoes.as_ref().and_then(|run| replaced_revision(run, &self.cluster, &request.target));
        let next = match previous {
            // Put back exactly the revision the forward run replaced: no new revision.
            Some(previous) if request.rollback => previous,
            _ if request.artifact.reference.trim().is_empty() => {
                return Err(ProviderError::rejected(if request.rollback {
                    format!(
                        "cannot roll back ECS service {} in cluster {}: no earlier artifact, and ECS cannot remove a service's \
                         task definition (delete or scale down the service by hand)",
                        request.target, self.cluster
                    )
                } else {
                    format!("no image to deploy to ECS service {}: the artifact reference is empty", request.target)
                }));
            }
            _ => self.register_with_image(&ecs, &current, &request.artifact.reference).await?,
        };

        let updated =
            ecs.update_service().cluster(&self.cluster).service(&request.target).task_definition(&next).send().await.map_err(|e| {
                AwsError::from_sdk("UpdateService", e).for_provider(&format!("ECS service {} in cluster {}", request.target, self.cluster))
            })?;
        let deployment = updated.service().and_then(|service| deployment_of(service, &next));
        if deployment.is_none() {
            tracing::info!(
                service = request.target,
                task_definition = next,
                "UpdateService's answer names no deployment of the revision: its rollout is polled"
            );
        }

        let run = EcsRun {
            cluster: self.cluster.clone(),
            service: request.target.clone(),
            region: region.clone(),
            role: access.role_arn.clone(),
            task_definition: next.clone(),
            previous_task_definition: current,
            deployment,
        };
        Ok(RunHandle {
            provider: PROVIDER.into(),
            id: next,
            url: Some(console_url(&run)),
            state: serde_json::to_value(&run).expect("an EcsRun is plain JSON"),
        })
    }

    async fn poll(&self, handle: &RunHandle) -> Result<DeployProgress, ProviderError> {
        let run: EcsRun = serde_json::from_value(handle.state.clone()).map_err(|err| {
            ProviderError::rejected(format!("run {} is not an ECS deploy this version of Baton started", handle.id)).caused_by(err)
        })?;
        let access = AwsAccess { region: Some(run.region.clone()), role_arn: run.role.clone() };
        let config = self.clients.config_for(&access).await?;
        let ecs = aws_sdk_ecs::Client::new(&config);
        let service = describe_service(&ecs, &run.cluster, &run.service, &run.region).await?;
        Ok(progress(&service, &run.task_definition))
    }

    fn wait_key(&self, run: &RunHandle) -> Option<WaitKey> {
        let deployment = serde_json::from_value::<EcsRun>(run.state.clone()).ok()?.deployment?;
        Some(deployment_key(&deployment.service_arn, &deployment.id))
    }
}

/// The deployment ECS created for an UpdateService to `ours`, from its answer: the PRIMARY one
/// running that revision.
fn deployment_of(service: &Service, ours: &str) -> Option<EcsDeployment> {
    let deployment = service.deployments().iter().find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(ours))?;
    Some(EcsDeployment { service_arn: service.service_arn()?.to_owned(), id: deployment.id()?.to_owned() })
}

/// The service, or Rejected when the cluster or the service does not exist (or was deleted).
async fn describe_service(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str, region: &str) -> Result<Service, ProviderError> {
    let context = format!("ECS service {service} in cluster {cluster} ({region})");
    let described = ecs
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeServices", e).for_provider(&context))?;
    if let Some(failure) = described.failures().first() {
        return Err(ProviderError::rejected(format!(
            "{context}: DescribeServices says {}{}",
            failure.reason().unwrap_or("it failed"),
            failure.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        )));
    }
    let found = described.services.unwrap_or_default().into_iter().next();
    match found {
        Some(found) if found.status() == Some("INACTIVE") => Err(ProviderError::rejected(format!("{context} is INACTIVE (deleted)"))),
        Some(found) => Ok(found),
        None => Err(ProviderError::rejected(format!("{context}: not found"))),
    }
}

/// The forward run's replaced revision, when `run` is an ECS run of the same service.
fn replaced_revision(run: &RunHandle, cluster: &str, service: &str) -> Option<String> {
    if run.provider != PROVIDER {
        return None;
    }
    let run: EcsRun = serde_json::from_value(run.state.clone()).ok()?;
    (run.cluster == cluster && run.service == service && !run.previous_task_definition.is_empty()).then_some(run.previous_task_definition)
}

/// Where the run stands, from the service's deployments. ECS gives each UpdateService a
/// deployment: PRIMARY while it is the one being rolled out; when the circuit breaker or an
/// alarm stops it, its rollout state is FAILED and a new PRIMARY rolls the old revision back.
fn progress(service: &Service, ours: &str) -> DeployProgress {
    let deployments = service.deployments();
    let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"));
    let Some(deployment) = deployments.iter().find(|d| d.task_definition() == Some(ours)) else {
        return match service.task_definition() {
            // The deployment list can lag an UpdateService for a moment.
            Some(current) if current == ours => DeployProgress::Running,
            current => DeployProgress::Failed {
                reason: format!(
                    "the deployment of {} is gone: the service now runs {} (another deployment replaced it)",
                    short(ours),
                    current.map(short).unwrap_or("no task definition")
                ),
            },
        };
    };
    if deployment.rollout_state() == Some(&DeploymentRolloutState::Failed) {
        return DeployProgress::Failed {
            reason: format!(
                "ECS stopped the deployment of {}: {}",
                short(ours),
                deployment.rollout_state_reason().unwrap_or("rollout failed (no reason given)")
            ),
        };
    }
    if deployment.status() != Some("PRIMARY") {
        return DeployProgress::Failed {
            reason: format!(
                "the deployment of {} is no longer the service's primary one: {} replaced it",
                short(ours),
                primary.and_then(|p| p.task_definition()).map(short).unwrap_or("another deployment")
            ),
        };
    }
    match deployment.rollout_state() {
        Some(DeploymentRolloutState::Completed) => DeployProgress::Succeeded,
        Some(DeploymentRolloutState::InProgress) => DeployProgress::Running,
        // No rollout state (older services, other deployment controllers): done once the new
        // tasks all run and no other deployment is left draining.
        _ if deployments.len() == 1 && deployment.running_count == deployment.desired_count => DeployProgress::Succeeded,
        _ => DeployProgress::Running,
    }
}

/// `definition` with `container`'s image set to `image`: Rejected, naming the containers there
/// are, when it has no such container.
fn with_image(mut definition: TaskDefinition, container: &str, image: &str) -> Result<TaskDefinition, ProviderError> {
    let revision = definition.task_definition_arn().map(short).unwrap_or("?").to_string();
    let containers: &mut Vec<ContainerDefinition> = definition.container_definitions.get_or_insert_default();
    match containers.iter_mut().find(|c| c.name() == Some(container)) {
        Some(found) => {
            found.image = Some(image.to_string());
            Ok(definition)
        }
        None => {
            let names: Vec<&str> = containers.iter().filter_map(|c| c.name()).collect();
            Err(ProviderError::rejected(format!(
                "task definition {} has no container {container:?} (its containers: {})",
                revision,
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )))
        }
    }
}

/// RegisterTaskDefinition with every field a task definition can be registered with, as
/// `definition` has it (the read-only ones, ARN, revision, status, registration times and the
/// derived compatibilities and required attributes, are not registrable; nor are inference
/// accelerators any more, which ECS retired).
fn registration(
    call: RegisterTaskDefinitionFluentBuilder,
    definition: TaskDefinition,
    tags: Option<Vec<Tag>>,
) -> RegisterTaskDefinitionFluentBuilder {
    call.set_family(definition.family)
        .set_task_role_arn(definition.task_role_arn)
        .set_execution_role_arn(definition.execution_role_arn)
        .set_network_mode(definition.network_mode)
        .set_container_definitions(definition.container_definitions)
        .set_volumes(definition.volumes)
        .set_placement_constraints(definition.placement_constraints)
        .set_requires_compatibilities(definition.requires_compatibilities)
        .set_cpu(definition.cpu)
        .set_memory(definition.memory)
        // RegisterTaskDefinition refuses an empty tag list.
        .set_tags(tags.filter(|t| !t.is_empty()))
        .set_pid_mode(definition.pid_mode)
        .set_ipc_mode(definition.ipc_mode)
        .set_proxy_configuration(definition.proxy_configuration)
        .set_ephemeral_storage(definition.ephemeral_storage)
        .set_runtime_platform(definition.runtime_platform)
        .set_enable_fault_injection(definition.enable_fault_injection)
}

/// `family:revision` of a task definition ARN, for messages.
fn short(task_definition: &str) -> &str {
    task_definition.rsplit('/').next().unwrap_or(task_definition)
}

fn console_url(run: &EcsRun) -> String {
    let cluster = run.cluster.rsplit('/').next().unwrap_or(&run.cluster);
    format!(
        "https://{region}.console.aws.amazon.com/ecs/v2/clusters/{cluster}/services/{service}/deployments?region={region}",
        region = run.region,
        service = run.service
    )
}

// ------------------------------------------------------------------ catalog block

use crate::clients::{PLACEMENTS, REGION, ROLE_ARN};
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, required, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EcsDeploy {
    /// The cluster holding the services.
    pub cluster: String,
    /// The container, in the service's task definition, whose image becomes the artifact.
    pub container: String,
    #[serde(flatten)]
    pub access: AwsAccess,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
}

const DEPLOY_ECS: &[Field] = &[
    required("cluster", Kind::Text, "The ECS cluster of the services (the wave targets)."),
    required("container", Kind::Text, "The container, in each service's task definition, that runs the artifact (an image)."),
    REGION,
    ROLE_ARN,
    PLACEMENTS,
];

pub const ECS: ProviderShape = ProviderShape {
    slot: Slot::Deploy,
    name: "ecs",
    doc: "Rolls out Amazon ECS services.",
    fields: DEPLOY_ECS,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<EcsDeploy>,
};

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Deployment, NetworkMode, RuntimePlatform, Volume};

    const OURS: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:8";
    const OLD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7";
    const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

    fn container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition::builder().name(name).image(image).memory(256).build()
    }

    fn definition() -> TaskDefinition {
        TaskDefinition::builder()
            .task_definition_arn(OLD)
            .family("web")
            .revision(7)
            .task_role_arn("arn:aws:iam::123456789012:role/web-task")
            .execution_role_arn("arn:aws:iam::123456789012:role/web-exec")
            .network_mode(NetworkMode::Awsvpc)
            .container_definitions(container("app", "repo/web:old"))
            .container_definitions(container("sidecar", "repo/envoy:1"))
            .volumes(Volume::builder().name("scratch").build())
            .cpu("256")
            .memory("512")
            .runtime_platform(RuntimePlatform::builder().cpu_architecture("ARM64".into()).build())
            .enable_fault_injection(false)
            .build()
    }

    #[test]
    fn the_image_of_the_named_container_is_replaced_and_nothing_else() {
        let swapped = with_image(definition(), "app", "repo/web:new").unwrap();
        let images: Vec<_> = swapped.container_definitions().iter().map(|c| (c.name().unwrap(), c.image().unwrap())).collect();
        assert_eq!(images, [("app", "repo/web:new"), ("sidecar", "repo/envoy:1")]);
        let mut expected = definition();
        expected.container_definitions.as_mut().unwrap()[0].image = Some("repo/web:new".into());
        assert_eq!(swapped, expected);
    }

    #[test]
    fn a_missing_container_is_rejected_naming_the_ones_there_are() {
        match with_image(definition(), "api", "repo/web:new") {
            Err(ProviderError::Rejected { message, .. }) => {
                assert!(message.contains("\"api\"") && message.contains("app, sidecar") && message.contains("web:7"), "{message}")
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn registration_copies_every_registrable_field() {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let ecs = aws_sdk_ecs::Client::new(&config);
        let tags = vec![Tag::builder().key("team").value("web").build()];
        let call = registration(ecs.register_task_definition(), definition(), Some(tags.clone()));
        let input = call.as_input();
        assert_eq!(input.get_family().as_deref(), Some("web"));
        assert_eq!(input.get_task_role_arn().as_deref(), Some("arn:aws:iam::123456789012:role/web-task"));
        assert_eq!(input.get_execution_role_arn().as_deref(), Some("arn:aws:iam::123456789012:role/web-exec"));
        assert_eq!(input.get_network_mode(), &Some(NetworkMode::Awsvpc));
        assert_eq!(input.get_container_definitions().as_ref().map(Vec::len), Some(2));
        assert_eq!(input.get_volumes().as_ref().map(Vec::len), Some(1));
        assert_eq!((input.get_cpu().as_deref(), input.get_memory().as_deref()), (Some("256"), Some("512")));
        assert_eq!(input.get_tags(), &Some(tags));
        assert!(input.get_runtime_platform().is_some());
        assert_eq!(input.get_enable_fault_injection(), &Some(false));

        let call = registration(ecs.register_task_definition(), definition(), Some(vec![]));
        assert_eq!(call.as_input().get_tags(), &None, "an empty tag list is left out");
    }

    fn deployment(status: &str, task_definition: &str, rollout: Option<DeploymentRolloutState>, reason: Option<&str>) -> Deployment {
        Deployment::builder()
            .id(format!("ecs-svc/{status}"))
            .status(status)
            .task_definition(task_definition)
            .set_rollout_state(rollout)
            .set_rollout_state_reason(reason.map(str::to_string))
            .desired_count(2)
            .running_count(1)
            .build()
    }

    fn service(task_definition: &str, deployments: Vec<Deployment>) -> Service {
        Service::builder().service_name("web").status("ACTIVE").task_definition(task_definition).set_deployments(Some(deployments)).build()
    }

    #[test]
    fn progress_follows_the_rollout_state_of_our_deployment() {
        use DeploymentRolloutState::*;
        let running =
            service(OURS, vec![deployment("PRIMARY", OURS, Some(InProgress), None), deployment("ACTIVE", OLD, Some(Completed), None)]);
        assert_eq!(progress(&running, OURS), DeployProgress::Running);

        let done = service(OURS, vec![deployment("PRIMARY", OURS, Some(Completed), None)]);
        assert_eq!(progress(&done, OURS), DeployProgress::Succeeded);

        let breaker = "ECS deployment circuit breaker: tasks failed to start.";
        let failed =
            service(OLD, vec![deployment("PRIMARY", OLD, Some(InProgress), None), deployment("ACTIVE", OURS, Some(Failed), Some(breaker))]);
        match progress(&failed, OURS) {
            DeployProgress::Failed { reason } => assert!(reason.contains(breaker) && reason.contains("web:8"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_replaced_or_vanished_deployment_fails_saying_what_replaced_it() {
        use DeploymentRolloutState::*;
        let newer = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:9";
        let replaced =
            service(newer, vec![deployment("PRIMARY", newer, Some(InProgress), None), deployment("ACTIVE", OURS, Some(InProgress), None)]);
        match progress(&replaced, OURS) {
            DeployProgress::Failed { reason } => {
                assert!(reason.contains("no longer the service's primary") && reason.contains("web:9"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let gone = service(newer, vec![deployment("PRIMARY", newer, Some(Completed), None)]);
        match progress(&gone, OURS) {
            DeployProgress::Failed { reason } => assert!(reason.contains("is gone") && reason.contains("web:9"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // The service already names our revision, its deployment list not yet.
        let lagging = service(OURS, vec![deployment("PRIMARY", OLD, Some(InProgress), None)]);
        assert_eq!(progress(&lagging, OURS), DeployProgress::Running);
    }

    #[test]
    fn without_a_rollout_state_it_is_done_when_the_tasks_run_and_nothing_drains() {
        let mut only = deployment("PRIMARY", OURS, None, None);
        assert_eq!(progress(&service(OURS, vec![only.clone()]), OURS), DeployProgress::Running);
        only.running_count = 2;
        assert_eq!(progress(&service(OURS, vec![only.clone()]), OURS), DeployProgress::Succeeded);
        let draining = service(OURS, vec![only, deployment("ACTIVE", OLD, None, None)]);
        assert_eq!(progress(&draining, OURS), DeployProgress::Running);
    }

    /// A run of service `web` in cluster `prod` that put OURS in place of OLD in deployment `deployment`.
    fn run(deployment: &str) -> EcsRun {
        EcsRun {
            cluster: "prod".into(),
            service: "web".into(),
            region: "us-east-1".into(),
            role: None,
            task_definition: OURS.into(),
            previous_task_definition: OLD.into(),
            deployment: Some(EcsDeployment { service_arn: SERVICE_ARN.into(), id: deployment.into() }),
        }
    }

    #[test]
    fn a_rollback_takes_the_replaced_revision_only_from_an_ecs_run_of_the_same_service() {
        let run = run("ecs-svc/1234567890123456789");
        let handle = RunHandle { provider: "ecs".into(), id: OURS.into(), url: None, state: serde_json::to_value(&run).unwrap() };
        assert_eq!(replaced_revision(&handle, "prod", "web").as_deref(), Some(OLD));
        assert_eq!(replaced_revision(&handle, "prod", "api"), None);
        assert_eq!(replaced_revision(&RunHandle { provider: "lambda".into(), ..handle.clone() }, "prod", "web"), None);
        assert_eq!(
            console_url(&run),
            "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/prod/services/web/deployments?region=us-east-1"
        );
        // The state stays small: it travels in Step Functions state.
        assert!(handle.state.to_string().len() < 400, "{}", handle.state);
    }

    fn deployer() -> EcsDeployer {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let spec = EcsDeploy { cluster: "prod".into(), container: "app".into(), access: AwsAccess::default(), placements: vec![] };
        EcsDeployer::new(&spec, AwsClients::with_base(config))
    }

    #[test]
    fn the_run_keeps_the_primary_deployment_update_service_created_for_its_revision() {
        use DeploymentRolloutState::*;
        let answer = |deployments| {
            let mut answer = service(OURS, deployments);
            answer.service_arn = Some(SERVICE_ARN.into());
            answer
        };
        let updated = answer(vec![deployment("PRIMARY", OURS, Some(InProgress), None), deployment("ACTIVE", OLD, Some(Completed), None)]);
        assert_eq!(deployment_of(&updated, OURS), Some(EcsDeployment { service_arn: SERVICE_ARN.into(), id: "ecs-svc/PRIMARY".into() }));
        // moto's answer: its one PRIMARY deployment still names the revision the service ran.
        let stale = answer(vec![deployment("PRIMARY", OLD, Some(InProgress), None)]);
        assert_eq!(deployment_of(&stale, OURS), None);
        let draining = answer(vec![deployment("PRIMARY", OLD, Some(InProgress), None), deployment("ACTIVE", OURS, Some(InProgress), None)]);
        assert_eq!(deployment_of(&draining, OURS), None, "ours, but no longer the one rolling out");
        let no_arn = service(OURS, vec![deployment("PRIMARY", OURS, Some(InProgress), None)]);
        assert_eq!(deployment_of(&no_arn, OURS), None);
    }

    #[test]
    fn a_run_is_parked_on_its_deployment_s_events_and_an_older_handle_on_none() {
        let run = run("ecs-svc/42");
        let handle = RunHandle { provider: "ecs".into(), id: OURS.into(), url: None, state: serde_json::to_value(&run).unwrap() };
        let key = deployer().wait_key(&handle).expect("a key");
        assert_eq!(key, deployment_key(SERVICE_ARN, "ecs-svc/42"));
        assert_eq!(key.to_string(), format!("rollout:ecs:{SERVICE_ARN}/ecs-svc/42"));

        // A handle kept before runs knew their deployment: it still reads, and is polled.
        let older = serde_json::json!({
            "cluster": "prod", "service": "web", "region": "us-east-1",
            "task_definition": OURS, "previous_task_definition": OLD,
        });
        let read: EcsRun = serde_json::from_value(older.clone()).expect("an older handle reads");
        assert_eq!(read, EcsRun { deployment: None, ..run });
        assert_eq!(deployer().wait_key(&RunHandle { state: older, ..handle }), None);
    }
}

//! Resources the build, deploy and gate tests start from: CodeBuild projects and ECS services on
//! moto, alarms on LocalStack.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_ecs::types::{ContainerDefinition, Tag};

/// A cluster with one service running revision 1 of family `<service>` (containers `app` and
/// `envoy`); returns the revision's ARN.
pub async fn service_on_moto(ecs: &aws_sdk_ecs::Client, cluster: &str, service: &str) -> String {
    ecs.create_cluster().cluster_name(cluster).send().await.expect("create a cluster on moto");
    let registered = ecs
        .register_task_definition()
        .family(service)
        .task_role_arn("arn:aws:iam::123456789012:role/web-task")
        .container_definitions(ContainerDefinition::builder().name("app").image("repo/web:1").memory(256).build())
        .container_definitions(ContainerDefinition::builder().name("envoy").image("repo/envoy:1.30").memory(128).build())
        .cpu("256")
        .memory("512")
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .expect("register a task definition on moto");
    let arn = registered.task_definition.unwrap().task_definition_arn.unwrap();
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(&arn)
        .desired_count(1)
        .send()
        .await
        .expect("create a service on moto");
    arn
}

/// A metric alarm that starts INSUFFICIENT_DATA, as on AWS; returns its ARN.
pub async fn metric_alarm(cloudwatch: &aws_sdk_cloudwatch::Client, name: &str) -> String {
    cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("Baton/Test")
        .metric_name("Errors")
        .statistic(Statistic::Sum)
        // LocalStack evaluates an alarm when it is created, then every period: without data the
        // evaluation would undo a state the test forces (racing it, at creation). `ignore` keeps
        // the state without data, as on AWS; the day-long period keeps data out of it.
        .period(86_400)
        .treat_missing_data("ignore")
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("create a metric alarm on LocalStack");
    let described = cloudwatch.describe_alarms().alarm_names(name).send().await.expect("describe the alarm");
    described.metric_alarms()[0].alarm_arn().unwrap().to_string()
}

pub async fn set_state(cloudwatch: &aws_sdk_cloudwatch::Client, name: &str, state: StateValue, reason: &str) {
    cloudwatch.set_alarm_state().alarm_name(name).state_value(state).state_reason(reason).send().await.expect("set the alarm state");
}

/// A CodeBuild project building a GitHub repository, as a team's release project would, with a
/// service role of `account` (the project's: moto checks it).
pub async fn project_on_moto(codebuild: &aws_sdk_codebuild::Client, name: &str, account: &str) {
    use aws_sdk_codebuild::types::{
        ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment, ProjectSource, SourceType,
    };
    codebuild
        .create_project()
        .name(name)
        .source(ProjectSource::builder().r#type(SourceType::Github).location("https://github.com/acme/web").build().unwrap())
        .artifacts(ProjectArtifacts::builder().r#type(ArtifactsType::NoArtifacts).build().unwrap())
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/standard:7.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .unwrap(),
        )
        .service_role(format!("arn:aws:iam::{account}:role/codebuild-web"))
        .send()
        .await
        .expect("create a CodeBuild project on moto");
}

//! `CloudWatchGateSampler` against LocalStack's CloudWatch: alarm states (forced with
//! SetAlarmState on alarms whose long period keeps LocalStack from re-evaluating them during a
//! test), INSUFFICIENT_DATA both ways, prefixes, composite alarms and missing alarms.

use crate::common;

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::StateValue;
use baton_aws::clients::AwsAccess;
use baton_aws::cloudwatch::{CloudWatchGate, InsufficientData, alarm_key};
use baton_aws::{AwsClients, CloudWatchGateSampler};
use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError};
use baton_domain::release::{Artifact, ReleaseId};
use common::fixtures::{metric_alarm, set_state};
use std::time::Duration;

async fn config() -> SdkConfig {
    common::sdk_config_for(&["CLOUDWATCH"]).await
}

fn gate(alarms: &[&str], prefix: Option<&str>, insufficient_data: InsufficientData, config: &SdkConfig) -> CloudWatchGateSampler {
    let spec = CloudWatchGate {
        alarms: alarms.iter().map(|a| a.to_string()).collect(),
        alarm_prefix: prefix.map(str::to_string),
        insufficient_data,
        access: AwsAccess::default(),
    };
    CloudWatchGateSampler::new(&spec, AwsClients::with_base(config.clone()))
}

fn health_request() -> HealthRequest {
    HealthRequest {
        service: "web".into(),
        environment: "prod".into(),
        release_id: ReleaseId(common::unique("rel")),
        wave: "all".into(),
        targets: vec!["web".into()],
        artifact: Artifact { reference: "repo/web:2".into(), sha: "abc123".into(), branch: "main".into(), build_url: None },
    }
}

#[tokio::test]
async fn alarms_in_ok_are_healthy_and_one_in_alarm_is_unhealthy_with_its_name_and_reason() {
    let config = config().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let (errors, latency) = (common::unique("web-5xx"), common::unique("web-latency"));
    for name in [&errors, &latency] {
        metric_alarm(&cloudwatch, name).await;
        set_state(&cloudwatch, name, StateValue::Ok, "back to normal").await;
    }
    let gate = gate(&[&errors, &latency], None, InsufficientData::Healthy, &config);
    assert_eq!(gate.sample(&health_request()).await.unwrap(), GateReading::Healthy { saw: format!("{errors} OK, {latency} OK") });

    set_state(&cloudwatch, &latency, StateValue::Alarm, "p99 above 800 ms").await;
    match gate.sample(&health_request()).await.unwrap() {
        GateReading::Unhealthy { saw } => assert_eq!(saw, format!("{latency} ALARM (p99 above 800 ms), {errors} OK")),
        other => panic!("expected Unhealthy, got {other:?}"),
    }
}

#[tokio::test]
async fn insufficient_data_counts_as_configured() {
    let config = config().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let fresh = common::unique("web-new");
    metric_alarm(&cloudwatch, &fresh).await;
    let saw = format!("{fresh} INSUFFICIENT_DATA");
    let lenient = gate(&[&fresh], None, InsufficientData::Healthy, &config);
    assert_eq!(lenient.sample(&health_request()).await.unwrap(), GateReading::Healthy { saw: saw.clone() });
    let strict = gate(&[&fresh], None, InsufficientData::Unhealthy, &config);
    assert_eq!(strict.sample(&health_request()).await.unwrap(), GateReading::Unhealthy { saw });
}

#[tokio::test]
async fn a_prefix_covers_every_alarm_under_it_and_names_add_to_it() {
    let config = config().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let prefix = format!("{}-", common::unique("svc"));
    let under: Vec<String> = ["a", "b", "c"].iter().map(|s| format!("{prefix}{s}")).collect();
    for name in &under {
        metric_alarm(&cloudwatch, name).await;
        set_state(&cloudwatch, name, StateValue::Ok, "fine").await;
    }
    let named = common::unique("other");
    metric_alarm(&cloudwatch, &named).await;
    set_state(&cloudwatch, &named, StateValue::Ok, "fine").await;

    let gate = gate(&[&named, &under[0]], Some(&prefix), InsufficientData::Healthy, &config);
    match gate.sample(&health_request()).await.unwrap() {
        GateReading::Healthy { saw } => {
            for name in under.iter().chain([&named]) {
                assert_eq!(saw.matches(name.as_str()).count(), 1, "{name} once in {saw}");
            }
        }
        other => panic!("expected Healthy, got {other:?}"),
    }
    set_state(&cloudwatch, &under[2], StateValue::Alarm, "errors").await;
    match gate.sample(&health_request()).await.unwrap() {
        GateReading::Unhealthy { saw } => assert!(saw.starts_with(&format!("{} ALARM (errors)", under[2])), "{saw}"),
        other => panic!("expected Unhealthy, got {other:?}"),
    }

    let empty = format!("{}-", common::unique("none"));
    match self::gate(&[], Some(&empty), InsufficientData::Healthy, &config).sample(&health_request()).await {
        Err(ProviderError::Rejected { message, .. }) => assert!(message.contains(&empty), "{message}"),
        other => panic!("expected Rejected for a prefix without alarms, got {other:?}"),
    }
}

#[tokio::test]
async fn a_composite_alarm_in_alarm_is_unhealthy() {
    let config = config().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let (child_a, child_b) = (common::unique("web-5xx"), common::unique("web-latency"));
    let arn_a = metric_alarm(&cloudwatch, &child_a).await;
    let arn_b = metric_alarm(&cloudwatch, &child_b).await;
    set_state(&cloudwatch, &child_a, StateValue::Ok, "fine").await;
    set_state(&cloudwatch, &child_b, StateValue::Ok, "fine").await;
    let composite = common::unique("web-health");
    // LocalStack evaluates a composite rule only when it names its children by ARN.
    cloudwatch
        .put_composite_alarm()
        .alarm_name(&composite)
        .alarm_rule(format!("ALARM(\"{arn_a}\") OR ALARM(\"{arn_b}\")"))
        .send()
        .await
        .expect("create a composite alarm on LocalStack");
    set_state(&cloudwatch, &child_b, StateValue::Alarm, "p99 above 800 ms").await;

    let gate = gate(&[&composite], None, InsufficientData::Healthy, &config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match gate.sample(&health_request()).await.unwrap() {
            GateReading::Unhealthy { saw } => {
                assert!(saw.starts_with(&format!("{composite} ALARM")), "{saw}");
                break;
            }
            healthy => assert!(tokio::time::Instant::now() < deadline, "the composite never went to ALARM: {healthy:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_missing_named_alarm_is_rejected_with_its_name_and_region() {
    let config = config().await;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let present = common::unique("web-5xx");
    metric_alarm(&cloudwatch, &present).await;
    let missing = common::unique("web-typo");
    match gate(&[&present, &missing], None, InsufficientData::Healthy, &config).sample(&health_request()).await {
        Err(ProviderError::Rejected { message, .. }) => {
            assert_eq!(message, format!("CloudWatch alarm {missing} not found in {}", config.region().unwrap()))
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gate_naming_its_alarms_parks_on_keys_of_the_process_s_own_account_and_region() {
    let config = common::sdk_config_for(&["CLOUDWATCH", "STS"]).await;
    let identity = aws_sdk_sts::Client::new(&config).get_caller_identity().send().await.unwrap();
    let (account, region) = (identity.account.unwrap(), config.region().unwrap().to_string());
    let gate = gate(&["web-5xx", "web-p99"], None, InsufficientData::Healthy, &config);

    let keys = gate.bake_keys().await.unwrap().expect("named alarms park");

    assert_eq!(keys, [alarm_key(&account, &region, "web-5xx"), alarm_key(&account, &region, "web-p99")]);
    assert_eq!(gate.bake_keys().await.unwrap().unwrap(), keys, "asked again: the same keys");
}

//! Shared set-up of the emulator tests: SDK configuration from the standard environment
//! (`eval "$(scripts/emulators.sh env)"`), checked to point at a live local emulator.

#![allow(dead_code)] // each test file uses its own subset

pub mod fixtures;
pub mod moto_proxy;

use aws_config::SdkConfig;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const HINT: &str = "run scripts/emulators.sh start, then eval \"$(scripts/emulators.sh env)\" before cargo test (scripts/test.sh does both)";

/// Fails the test (never skips it) unless `variable` names a local endpoint that accepts connections.
fn require_local_endpoint(variable: &str) {
    let url = std::env::var(variable).unwrap_or_else(|_| panic!("{variable} is not set: {HINT}"));
    let authority = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{variable}={url}: expected http://127.0.0.1:<port> (these tests never call real AWS)"));
    let authority = authority.trim_end_matches('/');
    let addr: SocketAddr =
        authority.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).unwrap_or_else(|| panic!("{variable}={url}: not a host:port"));
    assert!(addr.ip().is_loopback(), "{variable}={url}: emulator tests only talk to 127.0.0.1 ({HINT})");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|err| panic!("no emulator answers at {url} ({variable}): {err}; {HINT}"));
}

/// The SDK configuration every test uses: LocalStack for everything, DynamoDB Local for DynamoDB,
/// over Baton's HTTPS client. One client per test, not the process's shared one: each test has
/// its own tokio runtime, and a connection pooled by a finished test's runtime is dead.
pub async fn sdk_config() -> SdkConfig {
    require_local_endpoint("AWS_ENDPOINT_URL");
    require_local_endpoint("AWS_ENDPOINT_URL_DYNAMODB");
    baton_aws::sdk_http::sdk_config_with(baton_http_client::Https::new(None).expect("Baton's HTTPS client")).await
}

/// The SDK configuration of the build, deploy and gate tests, whose services (`CODEBUILD`, `ECS`,
/// `LAMBDA`, `STS`, `CLOUDWATCH`) each need their `AWS_ENDPOINT_URL_<SERVICE>` pointing at a live emulator.
pub async fn sdk_config_for(services: &[&str]) -> SdkConfig {
    for service in services {
        require_local_endpoint(&format!("AWS_ENDPOINT_URL_{service}"));
    }
    baton_aws::sdk_http::sdk_config_with(baton_http_client::Https::new(None).expect("Baton's HTTPS client")).await
}

/// An SDK configuration whose every call goes to `endpoint` (a proxy in front of moto), whatever
/// the environment's per-service endpoints say.
pub async fn config_through(endpoint: &str) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(baton_aws::ReqwestHttpClient::new(baton_http_client::Https::new(None).expect("Baton's HTTPS client")))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// `AWS_ENDPOINT_URL_<service>`, checked as [`sdk_config_for`] does.
pub fn endpoint(service: &str) -> String {
    let variable = format!("AWS_ENDPOINT_URL_{service}");
    require_local_endpoint(&variable);
    std::env::var(variable).unwrap().trim_end_matches('/').to_string()
}

/// A name no other test (in this or a concurrent run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos:09}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A role that `service` (events, scheduler, states) may assume, created on LocalStack's IAM.
/// LocalStack does not enforce IAM, but the resources referring to the role are only valid
/// with an ARN IAM handed out.
pub async fn service_role(config: &SdkConfig, service: &str) -> String {
    let iam = aws_sdk_iam::Client::new(config);
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": format!("{service}.amazonaws.com")}, "Action": "sts:AssumeRole"}]
    });
    let role = iam
        .create_role()
        .role_name(unique(&format!("baton-{service}")))
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("create an IAM role on LocalStack");
    role.role().expect("CreateRole returns the role").arn().to_string()
}

/// Creates a standard state machine from `definition` and returns its ARN.
pub async fn state_machine(config: &SdkConfig, name: &str, definition: serde_json::Value) -> String {
    let role = service_role(config, "states").await;
    aws_sdk_sfn::Client::new(config)
        .create_state_machine()
        .name(name)
        .definition(definition.to_string())
        .role_arn(role)
        .send()
        .await
        .expect("create a state machine on LocalStack")
        .state_machine_arn
}

/// ARNs of a state machine's executions.
pub async fn executions(config: &SdkConfig, state_machine_arn: &str) -> Vec<String> {
    aws_sdk_sfn::Client::new(config)
        .list_executions()
        .state_machine_arn(state_machine_arn)
        .send()
        .await
        .expect("list executions")
        .executions()
        .iter()
        .map(|e| e.execution_arn().to_string())
        .collect()
}

/// Polls DescribeExecution until the execution has ended; fails the test after `limit`.
pub async fn finished_execution(
    client: &aws_sdk_sfn::Client,
    execution_arn: &str,
    limit: Duration,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let execution = client.describe_execution().execution_arn(execution_arn).send().await.expect("describe the execution");
        if execution.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            return execution;
        }
        assert!(std::time::Instant::now() < deadline, "{execution_arn} still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

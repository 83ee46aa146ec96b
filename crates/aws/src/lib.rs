//! AWS adapters: DynamoDB store and catalog, Step Functions, EventBridge, Scheduler, and the
//! ECS and Lambda deployers, the CodeBuild build provider and the CloudWatch alarm gate.
//!
//! Every client comes from [`aws_config`]'s standard chain, so endpoints (real AWS or an
//! emulator) are chosen by `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`, never here;
//! and every client sends through the process's one HTTPS client ([`sdk_http::sdk_config`]).

pub mod catalog;
pub mod clients;
pub mod cloudwatch;
pub mod codebuild;
pub mod deliveries;
pub mod dynamo;
pub mod ecs;
pub mod error;
pub mod events;
pub mod lambda;
mod names;
pub mod record;
pub mod scheduler;
pub mod sdk_http;
pub mod secrets;
pub mod stepfunctions;

pub use catalog::DynamoCatalog;
pub use clients::AwsClients;
pub use cloudwatch::CloudWatchGateSampler;
pub use codebuild::CodeBuildProvider;
pub use dynamo::DynamoStore;
pub use ecs::EcsDeployer;
pub use error::AwsError;
pub use lambda::LambdaDeployer;
pub use sdk_http::{ReqwestHttpClient, sdk_config};
pub use secrets::AwsSecretResolver;

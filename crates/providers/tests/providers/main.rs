//! The providers' contract tests against local servers, and the catalog tests. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.

mod added_provider;
mod argo_cd;
mod buildkite;
mod catalog_examples;
mod catalog_properties;
mod catalog_topology;
mod catalog_validation;
mod changes;
mod circleci;
mod datadog_dashboards;
mod datadog_monitors;
mod github_actions;
mod gitlab_ci;
mod inbound;
mod support;
mod telemetry;
mod webhook;

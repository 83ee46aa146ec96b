//! End-to-end releases through the real release definition on the embedded executor. One binary
//! for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is
//! most of a clean test build.

mod approval;
mod budget;
mod cost;
mod events;
mod faults;
mod freeze;
mod github_actions;
mod large_entry;
mod lead_time;
mod load;
mod plan;
mod provider_faults;
mod releases;
mod slack;
mod telemetry;
mod topology;

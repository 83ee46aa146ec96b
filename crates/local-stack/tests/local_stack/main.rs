//! The local stack's integration tests. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.
//! Tests under `emulator::` need DynamoDB Local.

mod lambda;
mod stepfunctions;
mod template;

/// Tests that talk to the emulators (`scripts/emulators.sh start`; `scripts/test.sh --quick` skips `emulator::`).
mod emulator {
    mod approval;
    mod cancel;
    mod cloud;
    mod events;
    mod runbook;
    mod stack;
}

/// crates/aws's test resources and moto proxy, shared as files: the cloud release test needs the
/// same projects, alarms and scripted ECS rollouts.
#[allow(dead_code)]
#[path = "../../../aws/tests/aws/common/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../../../aws/tests/aws/common/moto_proxy.rs"]
mod moto_proxy;

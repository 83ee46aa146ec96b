//! baton-aws's integration tests. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.
//! Tests under `emulator::` need the emulators (DynamoDB Local, LocalStack, moto).

mod common;
mod parity;

/// Tests that talk to the emulators (`scripts/emulators.sh start`; `scripts/test.sh --quick` skips `emulator::`).
mod emulator {
    mod catalog;
    mod cloudwatch;
    mod codebuild;
    mod deliveries;
    mod ecs;
    mod ecs_events;
    mod ecs_release;
    mod lambda;
    mod merge_events;
    mod release_cost;
    mod schedules;
    mod secrets;
    mod stepfunctions;
    mod store;
}

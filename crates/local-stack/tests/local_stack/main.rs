//! The local stack's integration tests. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.
//! Tests under `emulator::` need DynamoDB Local.

mod lambda;
mod template;

/// Tests that talk to the emulators (`scripts/emulators.sh start`; `scripts/test.sh --quick` skips `emulator::`).
mod emulator {
    mod cancel;
    mod stack;
}

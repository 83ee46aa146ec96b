//! The `baton` binary, run as a user runs it. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.

mod approve;
mod asl;
mod callbacks;
mod crash;
mod dora_scale;
mod durable;
mod github_actions_example;
mod ownership;
mod plan;
mod pty;
mod release;
mod secrets;
mod shell;
mod support;

/// Tests that need what `scripts/emulators.sh start` starts or installs: the emulators, and
/// headless Chromium for the dashboard.
mod emulator {
    mod cancel_remote;
    mod dashboard;
    mod freezes_remote;
    mod plan_remote;
}

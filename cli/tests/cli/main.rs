//! The `baton` binary, run as a user runs it. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.

mod asl;
mod crash;
mod dora_scale;
mod durable;
/// Tests that need what `scripts/emulators.sh start` installs (here: headless Chromium).
mod emulator {
    mod dashboard;
}
mod github_actions_example;
mod ownership;
mod release;
mod secrets;
mod support;

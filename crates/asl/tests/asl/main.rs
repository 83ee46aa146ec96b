//! The executor's integration tests. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.

mod executor;
mod fuzz_corpus;

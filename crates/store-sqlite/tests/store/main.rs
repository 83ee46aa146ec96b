//! The SQLite store: the store contract suite and its own tests. One binary for all of them: each test binary links the workspace (and the AWS SDK) again, and linking is most of a clean test build.

mod contract;
mod sqlite;

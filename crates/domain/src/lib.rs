//! Baton's domain. Everything here is plain data and traits: adapters for AWS,
//! HTTP providers and local commands live in other crates and implement the
//! ports declared in [`ports`].

pub mod approvals;
pub mod catalog;
pub mod changes;
pub mod error;
pub mod flow;
pub mod ports;
pub mod redact;
pub mod refname;
pub mod release;
pub mod reports;
pub mod retry;
pub mod rules;
pub mod signing;
pub mod sketch;
pub mod support;
pub mod telemetry;
pub mod template;
pub mod text;
pub mod trace;
pub mod waits;

pub use error::{ErrorName, TaskError};

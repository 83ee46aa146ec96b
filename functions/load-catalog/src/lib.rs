//! The load-catalog Lambda handler.

//! The check-health Lambda handler.

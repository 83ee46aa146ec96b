//! The poll-build Lambda handler.

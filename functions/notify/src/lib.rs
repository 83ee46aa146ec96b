//! The notify Lambda handler.

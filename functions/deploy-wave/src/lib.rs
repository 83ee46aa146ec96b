//! The deploy-wave Lambda handler.

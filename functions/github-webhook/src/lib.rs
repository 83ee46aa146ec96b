//! The github-webhook Lambda handler.

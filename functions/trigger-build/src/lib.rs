//! The trigger-build Lambda handler.

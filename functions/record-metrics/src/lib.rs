//! The record-metrics Lambda handler.

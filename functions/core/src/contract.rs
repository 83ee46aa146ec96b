//! Contract suite for [`crate::ports::ReleaseStore`]: every implementation runs it.

//! The embedded release store: SQLite, implementing baton-core's ReleaseStore.

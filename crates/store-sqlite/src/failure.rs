//! How SQLite's errors become [`StoreError`]s.

use baton_domain::ports::StoreError;
use rusqlite::ErrorCode;

/// What the blocking side of a store call can fail with: a raw SQLite error, given its
/// context and variant once the call returns, or an already classified store error.
#[derive(Debug)]
pub(crate) enum Failure {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        Failure::Sqlite(err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

impl Failure {
    /// `context` names the database and the operation, so the message says where it failed.
    pub(crate) fn into_store_error(self, context: &str) -> StoreError {
        match self {
            Failure::Store(err) => err,
            Failure::Sqlite(err) => classify(context, err),
        }
    }
}

fn classify(context: &str, err: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    let failed = match &err {
        E::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::corrupt(context),
            ErrorCode::ConstraintViolation => StoreError::conflict(context),
            // Busy and locked above all, but also I/O errors, a full disk, a read-only file or a
            // missing directory: conditions outside the process that may clear, so worth retrying.
            _ => StoreError::unavailable(context),
        },
        E::FromSqlConversionFailure(..) | E::IntegralValueOutOfRange(..) | E::InvalidColumnType(..) | E::Utf8Error(..) => {
            StoreError::corrupt(context)
        }
        _ => StoreError::unavailable(context),
    };
    failed.caused_by(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> Failure {
        Failure::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some("detail".into())))
    }

    #[test]
    fn busy_and_locked_are_worth_retrying() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            match sqlite(code).into_store_error("db: create_release") {
                error @ StoreError::Unavailable { .. } => {
                    assert_eq!(error.message(), "db: create_release");
                    assert!(
                        baton_domain::error::chain_text(&error).starts_with("release store unavailable: db: create_release: "),
                        "{error}"
                    );
                }
                other => panic!("code {code} became {other:?}"),
            }
        }
    }

    #[test]
    fn corruption_and_constraints_are_not() {
        assert!(matches!(sqlite(rusqlite::ffi::SQLITE_CORRUPT).into_store_error("db"), StoreError::Corrupt { .. }));
        assert!(matches!(sqlite(rusqlite::ffi::SQLITE_NOTADB).into_store_error("db"), StoreError::Corrupt { .. }));
        assert!(matches!(sqlite(rusqlite::ffi::SQLITE_CONSTRAINT).into_store_error("db"), StoreError::Conflict { .. }));
        let out_of_range = Failure::Sqlite(rusqlite::Error::IntegralValueOutOfRange(3, -1));
        assert!(matches!(out_of_range.into_store_error("db"), StoreError::Corrupt { .. }));
    }

    #[test]
    fn classified_errors_pass_through() {
        let conflict = StoreError::conflict("release rel-1 does not exist");
        assert_eq!(Failure::Store(conflict.clone()).into_store_error("db"), conflict);
    }
}

//! Failures of the embedded stores (redb, and SQLite for events) the stateful services keep
//! their data in, sorted by
//! what a caller can do about them: a full or failing disk is `UNAVAILABLE` (retry later), an
//! unreadable file is `DATA_LOSS`, a value over the store's size limit `RESOURCE_EXHAUSTED`,
//! anything else `INTERNAL` — not all of them `INTERNAL`.

use crate::error::{ErrorCode, ServiceError};

/// A store operation that failed, with the code its callers answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreFailure {
    code: ErrorCode,
    message: String,
}

impl StoreFailure {
    pub fn new<E: Into<redb::Error>>(error: E) -> Self {
        let error: redb::Error = error.into();
        let code = match &error {
            redb::Error::Io(_)
            | redb::Error::PreviousIo
            | redb::Error::DatabaseClosed
            | redb::Error::DatabaseAlreadyOpen
            | redb::Error::WouldBlock => ErrorCode::Unavailable,
            redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => ErrorCode::DataLoss,
            redb::Error::ValueTooLarge(_) => ErrorCode::ResourceExhausted,
            _ => ErrorCode::Internal,
        };
        StoreFailure {
            code,
            message: error.to_string(),
        }
    }
}

impl StoreFailure {
    /// A failure of another engine, its code chosen by the caller on the same rules.
    pub fn with_code(code: ErrorCode, message: impl std::fmt::Display) -> Self {
        StoreFailure {
            code,
            message: message.to_string(),
        }
    }

    /// A stored record that does not decode: the store holds what this version cannot read.
    pub fn unreadable(what: impl std::fmt::Display) -> Self {
        StoreFailure {
            code: ErrorCode::DataLoss,
            message: format!("unreadable record: {what}"),
        }
    }
}

impl ServiceError for StoreFailure {
    fn code(&self) -> ErrorCode {
        self.code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_by_what_a_caller_can_do() {
        let disk = StoreFailure::new(redb::StorageError::Io(std::io::Error::other("disk full")));
        assert_eq!(disk.code(), ErrorCode::Unavailable);
        assert_eq!(disk.to_string(), "I/O error: disk full");
        let corrupt = StoreFailure::new(redb::StorageError::Corrupted("bad page".into()));
        assert_eq!(corrupt.code(), ErrorCode::DataLoss);
        let large = StoreFailure::new(redb::StorageError::ValueTooLarge(1 << 40));
        assert_eq!(large.code(), ErrorCode::ResourceExhausted);
    }
}

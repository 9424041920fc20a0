//! How alert and incident operations fail.

use xdr_mesh::{
    error::{ErrorCode, Invalid, ServiceError},
    quote::quoted,
    store::StoreFailure,
};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{what} {}: not found", quoted(.id))]
    NotFound { what: &'static str, id: String },
    #[error("tenant {} holds {max} {what}, the most it may", quoted(.tenant))]
    TooMany {
        what: &'static str,
        tenant: String,
        max: usize,
    },
    #[error("the history is full ({0} entries or 3 MiB at most): open an incident for more work")]
    HistoryFull(usize),
    #[error(transparent)]
    Store(#[from] StoreFailure),
}

impl ServiceError for AlertError {
    fn code(&self) -> ErrorCode {
        match self {
            AlertError::Invalid(_) => ErrorCode::InvalidArgument,
            AlertError::NotFound { .. } => ErrorCode::NotFound,
            AlertError::TooMany { .. } => ErrorCode::ResourceExhausted,
            AlertError::HistoryFull(_) => ErrorCode::FailedPrecondition,
            AlertError::Store(e) => e.code(),
        }
    }
}

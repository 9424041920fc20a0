//! What a catalog change or read can fail with, and the mesh error code of each.

use xdr_mesh::{
    error::{ErrorCode, ServiceError},
    quote::quoted,
    store::StoreFailure,
};

use crate::rule::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no {kind} {}", quoted(.id))]
    NotFound { kind: &'static str, id: String },
    #[error("tenant {} already has a {kind} named {}", quoted(.tenant), quoted(.name))]
    NameTaken {
        kind: &'static str,
        tenant: String,
        name: String,
    },
    #[error("a {kind} {} exists already", quoted(.id))]
    IdTaken { kind: &'static str, id: String },
    #[error("{} is used by {user}", quoted(.id))]
    InUse { id: String, user: String },
    #[error("tenant {} would have {count} {what}; at most {max}", quoted(.tenant))]
    Quota {
        /// What is counted, in the plural.
        what: &'static str,
        tenant: String,
        count: usize,
        max: usize,
    },
    #[error("the rule store: {0}")]
    Store(#[from] StoreFailure),
}

pub fn store_error(error: impl Into<redb::Error>) -> CatalogError {
    CatalogError::Store(StoreFailure::new(error))
}

impl ServiceError for CatalogError {
    fn code(&self) -> ErrorCode {
        match self {
            CatalogError::Invalid(_) => ErrorCode::InvalidArgument,
            CatalogError::NotFound { .. } => ErrorCode::NotFound,
            CatalogError::NameTaken { .. } | CatalogError::IdTaken { .. } => {
                ErrorCode::AlreadyExists
            }
            CatalogError::InUse { .. } => ErrorCode::FailedPrecondition,
            CatalogError::Quota { .. } => ErrorCode::ResourceExhausted,
            CatalogError::Store(failure) => failure.code(),
        }
    }
}

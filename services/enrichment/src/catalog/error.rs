//! What a catalog change or read can fail with; `grpc.rs` maps each to a status.

use xdr_mesh::quote::quoted;

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
    Store(String),
}

pub fn store_error(error: impl std::fmt::Display) -> CatalogError {
    CatalogError::Store(error.to_string())
}

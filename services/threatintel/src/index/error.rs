//! Why a value is not an indicator of its kind: one type every parser of the index returns,
//! in a module of its own so the parsers do not import each other through `parse.rs`.

use xdr_mesh::quote::quoted;

/// Longer values are refused: no indicator or log field worth matching is this long.
pub(super) const MAX_VALUE_LEN: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndicatorError {
    #[error("empty value")]
    Empty,
    #[error("value of {0} bytes is longer than {MAX_VALUE_LEN}")]
    TooLong(usize),
    #[error("{} is not an IP address or network: {reason}", quoted(.value))]
    BadIp { value: String, reason: String },
    #[error("{} is not a URL: {reason}", quoted(.value))]
    BadUrl { value: String, reason: String },
    /// Not a web URL (another scheme, or no host): refused as an indicator or a lookup, and
    /// skipped (counted, reported) in a feed.
    #[error("{} is not a web URL: {reason}", quoted(.value))]
    NotWebUrl { value: String, reason: String },
    #[error("{} is not a domain: {reason}", quoted(.value))]
    BadDomain { value: String, reason: String },
    #[error("{} is not a file hash: {reason}", quoted(.value))]
    BadHash { value: String, reason: String },
    #[error("{} is not an IP, URL, domain or hash", quoted(.0))]
    Unrecognized(String),
    #[error(transparent)]
    Full(#[from] super::arena::IndexFull),
}

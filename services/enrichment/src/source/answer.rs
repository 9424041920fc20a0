//! What a source answers: one result per object, in order, or why it could not.

use xdr_proto::wire::WireLookupResult;

/// Objects in one lookup batch at most (the service takes far more; smaller batches spread
/// over the connections and come back sooner).
pub const MAX_BATCH_OBJECTS: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
#[error("threat-intel source unavailable: {0}")]
pub struct Unavailable(pub String);

/// One result per object, its matches as the encoded `TiMatch`es the source answered.
pub type Answer = Result<Vec<WireLookupResult>, Unavailable>;

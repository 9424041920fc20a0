//! Where a rule looks values up: our ThreatIntel service over the mesh, or a CyberTrace over
//! its TCP protocol. Either is [`Lanes`], one per connection, answering one result per
//! object in order, so the enrichment that follows is the same for both; a rule's
//! [`Gatherer`] shares its values across batches and holds them to its RPS.

pub(crate) mod cybertrace;
mod gather;
mod lanes;
pub(crate) mod threatintel;

use xdr_proto::wire::WireLookupResult;

pub use gather::Gatherer;
pub use lanes::Lanes;

/// Objects in one lookup batch at most (the service takes far more; smaller batches spread
/// over the connections and come back sooner).
pub const MAX_BATCH_OBJECTS: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
#[error("threat-intel source unavailable: {0}")]
pub struct Unavailable(pub String);

/// One result per object, its matches as the encoded `TiMatch`es the source answered.
pub type Answer = Result<Vec<WireLookupResult>, Unavailable>;

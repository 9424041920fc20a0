//! Where a rule looks values up: our ThreatIntel service over the mesh, or a CyberTrace over
//! its TCP protocol. Both answer one result per object, in order, so the enrichment that
//! follows is the same for either.

mod cybertrace;
mod threatintel;

use xdr_proto::pb::{LookupObject, LookupResult};

pub use cybertrace::CyberTraceSource;
pub use threatintel::ThreatIntelSource;

/// Objects in one lookup batch at most (the service takes far more; smaller batches spread
/// over the connections and come back sooner).
pub const MAX_BATCH_OBJECTS: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
#[error("threat-intel source unavailable: {0}")]
pub struct Unavailable(pub String);

pub type Answer = Result<Vec<LookupResult>, Unavailable>;

pub enum Source {
    ThreatIntel(ThreatIntelSource),
    CyberTrace(CyberTraceSource),
}

impl Source {
    /// Looks `objects` up (at most [`MAX_BATCH_OBJECTS`]); one result per object, in order.
    pub async fn lookup(&self, objects: Vec<LookupObject>) -> Answer {
        match self {
            Source::ThreatIntel(source) => source.lookup(objects).await,
            Source::CyberTrace(source) => source.lookup(objects).await,
        }
    }
}

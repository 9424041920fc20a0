//! Where a rule looks values up: our ThreatIntel service over the mesh, or a CyberTrace over
//! its TCP protocol. Both answer one result per object, in order, so the enrichment that
//! follows is the same for either.

pub(crate) mod cybertrace;
mod gather;
mod threatintel;

use std::{future::Future, pin::Pin, sync::Arc};

use tokio::time::Instant;

use xdr_proto::{pb::LookupObject, wire::WireLookupResult};

pub use cybertrace::CyberTraceSource;
pub use gather::Gatherer;
pub use threatintel::ThreatIntelSource;

/// Objects in one lookup batch at most (the service takes far more; smaller batches spread
/// over the connections and come back sooner).
pub const MAX_BATCH_OBJECTS: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
#[error("threat-intel source unavailable: {0}")]
pub struct Unavailable(pub String);

/// One result per object, its matches as the encoded `TiMatch`es the source answered.
pub type Answer = Result<Vec<WireLookupResult>, Unavailable>;

pub enum Source {
    ThreatIntel(ThreatIntelSource),
    CyberTrace(CyberTraceSource),
}

impl Source {
    /// Looks `objects` up (at most [`MAX_BATCH_OBJECTS`]); one result per object, in order,
    /// or unavailable once `deadline` has passed.
    pub async fn lookup(&self, objects: Vec<LookupObject>, deadline: Instant) -> Answer {
        match self {
            Source::ThreatIntel(source) => source.lookup(objects, deadline).await,
            Source::CyberTrace(source) => source.lookup(objects, deadline).await,
        }
    }

    /// The source behind a [`Gatherer`], which every rule using it shares.
    pub fn gathered(self) -> Gatherer {
        Gatherer::new(Arc::new(Shared(Arc::new(self))))
    }
}

/// A source the gathering task can send batches to from its own tasks.
struct Shared(Arc<Source>);

impl gather::Backend for Shared {
    fn lookup(
        &self,
        objects: Vec<LookupObject>,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send>> {
        let source = self.0.clone();
        Box::pin(async move { source.lookup(objects, deadline).await })
    }
}

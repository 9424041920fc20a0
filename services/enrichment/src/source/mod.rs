//! Where a rule looks values up: our ThreatIntel service over the mesh, or a CyberTrace over
//! its TCP protocol. Either is [`Lanes`], one per connection, answering one result per
//! object in order, so the enrichment that follows is the same for both; a rule's
//! [`Gatherer`] shares its values across batches and holds them to its RPS.

mod answer;
pub(crate) mod cybertrace;
mod gather;
mod lanes;
pub(crate) mod threatintel;

pub use answer::{Answer, MAX_BATCH_OBJECTS, Unavailable};
pub use gather::Gatherer;
pub use lanes::Lanes;

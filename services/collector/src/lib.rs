//! The collector service: events in, normalized, enriched, stored and searchable with KUMA's
//! SQL. `main.rs` wires the gRPC service; the search checker is here for it and its tests.

pub mod buffer;
pub mod collectors;
pub mod enrich_link;
pub mod ingest;
mod loader;
mod metrics;
pub mod normalize;
pub mod retention;
pub mod search;
pub mod stats;
pub mod store;
pub mod writer;

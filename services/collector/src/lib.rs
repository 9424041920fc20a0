//! The collector service: events in, normalized, enriched, stored and searchable with KUMA's
//! SQL. The path of a batch: `ingest` (admission, parsing by `normalize`, enrichment by
//! `enrich_link`) → `writer` (the disk `buffer`, acknowledged) → `loader` → `store`.
//! `collectors` are the resources; `search` checks and renders SQL. `main.rs` wires the gRPC
//! service.

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

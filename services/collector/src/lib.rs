//! The collector service: events in, normalized, enriched, stored and searchable with KUMA's
//! SQL. The path of a batch: `ingest` (admission, parsing by `normalize`, enrichment by
//! `enrich_link`) → `writer` (the disk `buffer`, acknowledged) → `loader` → `store`.
//! Events that pass a collector's alert filter also leave through `alerts` for the playbook
//! service. `collectors` are the resources; `search` checks and renders SQL. `main.rs` wires the gRPC
//! service.

pub mod alerts;
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

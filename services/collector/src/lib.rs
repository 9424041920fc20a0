//! The collector service: events in, normalized, enriched, stored and searchable with KUMA's
//! SQL. `main.rs` wires the gRPC service; the search checker is here for it and its tests.

pub mod search;
pub mod store;

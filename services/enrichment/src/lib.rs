//! The enrichment service: rules, saved filters and resources (the catalog), the sources
//! rules look values up in, and the `Enrich` stream. The filter language is `xdr_filter`. `main.rs` wires
//! them; the fuzz targets reach the request checks through [`fuzzing`].

pub mod access;
pub mod catalog;
pub mod enrich;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod metrics;
pub mod resources;
pub mod rule;
pub mod source;
pub mod stats;

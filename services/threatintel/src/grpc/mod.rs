//! The `xdr.v1.ThreatIntel` gRPC adapter: requests in, domain calls, replies out.

pub(crate) mod convert;
mod service;

pub use service::ThreatIntelService;
pub(crate) use service::wire_results;

//! The `xdr.v1.ThreatIntel` gRPC adapter: requests in, domain calls, replies out.

mod convert;
mod service;

pub use service::ThreatIntelService;

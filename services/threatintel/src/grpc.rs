//! The `xdr.v1.ThreatIntel` gRPC adapter.

use xdr_proto::pb::threat_intel_server::ThreatIntel;

/// Its RPCs land with issue #3; until then each answers UNIMPLEMENTED from the
/// generated defaults.
pub struct ThreatIntelService;

#[tonic::async_trait]
impl ThreatIntel for ThreatIntelService {}

//! The `xdr.v1.Enrichment` gRPC adapter.

use xdr_proto::pb::enrichment_server::Enrichment;

/// Its RPCs land with issue #4; until then each answers UNIMPLEMENTED from the
/// generated defaults.
pub struct EnrichmentService;

#[tonic::async_trait]
impl Enrichment for EnrichmentService {}

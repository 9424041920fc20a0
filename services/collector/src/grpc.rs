//! The `xdr.v1.Collector` gRPC adapter.

use xdr_proto::pb::collector_server::Collector;

/// Its RPCs land with issue #5; until then each answers UNIMPLEMENTED from the
/// generated defaults.
pub struct CollectorService;

#[tonic::async_trait]
impl Collector for CollectorService {}

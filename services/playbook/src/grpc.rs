//! The `xdr.v1.Playbook` gRPC adapter.

use xdr_proto::pb::playbook_server::Playbook;

/// Its RPCs land with issue #6; until then each answers UNIMPLEMENTED from the
/// generated defaults.
pub struct PlaybookService;

#[tonic::async_trait]
impl Playbook for PlaybookService {}

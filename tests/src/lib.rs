//! Test harness for the workspace integration tests: real binaries, real mTLS, real clients.
//!
//! - [`pki::TestPki`]: a throw-away mesh PKI plus the certificates a refusal test needs;
//! - [`process::ServiceProcess`]: one service binary, its JSON log captured, stopped on drop;
//! - [`grpcurl::Grpcurl`]: the real grpcurl binary with a chosen client certificate;
//! - [`client`]: a tonic channel, for streams driven message by message;
//! - [`raw_grpc`]: calls whose request frames the test writes byte by byte;
//! - [`metrics`]: a service's `/metrics`, scraped with curl;
//! - [`clickhouse`]: real ClickHouse servers, the shards of one cluster;
//! - [`taxii`]: a real TAXII 2.1 server (OASIS's medallion).
//!
//! Every wait is bounded and ends on an observed event (a log line, an exit), never a sleep.

pub mod clickhouse;
pub mod client;
pub mod collector;
pub mod compose;
pub mod enrichment;
pub mod grpcurl;
pub mod mesh_up;
pub mod metrics;
pub mod paths;
pub mod pki;
pub mod playbook;
pub mod process;
pub mod raw_grpc;
pub mod taxii;
pub mod threatintel;
pub mod traces;

pub use grpcurl::{Cert, Grpcurl};
pub use pki::TestPki;
pub use process::ServiceProcess;

//! Mesh plumbing shared by every xdr binary: configuration, mTLS and identities, the access
//! policy layer, the server builder, client channels, telemetry and the development PKI.
//!
//! Domain code never needs this crate's tonic types beyond the server builder and channels.

pub mod access;
pub mod allocator;
pub mod call_limit;
pub mod caller;
pub mod channel;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod diagnostics;
pub mod directory;
pub mod error;
#[doc(hidden)]
pub mod fuzz_corpus;
pub mod http;
pub mod http_client;
pub mod id;
pub mod identity;
pub mod lines;
pub mod listener;
pub mod log_limit;
pub mod metrics;
pub mod page;
pub mod pki;
pub mod quote;
pub mod replicas;
pub mod reply;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod trace;
mod write_deadline;

pub use access::AccessPolicy;

/// What the mesh's tower services return from `call`.
pub(crate) type BoxFuture<T, E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;
pub use identity::Identity;
pub use server::MeshServer;

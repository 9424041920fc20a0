//! A tonic client of a running service, for what grpcurl cannot do: bytes a well-behaved
//! client never sends, or a stream driven message by message.

use tonic::transport::Channel;
use xdr_mesh::config::TlsArgs;

use crate::{ServiceProcess, TestPki};

/// A connected mTLS channel to `server` (whose certificates name it `service`) with the
/// identity `cert` (`operator`, `collector`, ...) of the test PKI.
pub async fn channel(pki: &TestPki, cert: &str, server: &ServiceProcess, service: &str) -> Channel {
    xdr_mesh::tls::install_crypto_provider();
    let tls = TlsArgs::in_dir(&pki.certs())
        .load(cert)
        .expect("the test PKI has the certificate");
    xdr_mesh::channel::endpoint(&server.listening_addr().to_string(), service, &tls)
        .expect("a valid endpoint")
        .connect()
        .await
        .expect("the service accepts the connection")
}

/// A single-threaded runtime for a test's client calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

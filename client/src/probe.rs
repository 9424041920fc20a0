//! Readiness probes of a running mesh: gRPC health over mTLS with the operator certificate,
//! and the gateway's HTTP `/healthz`.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::Context;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tonic_health::pb::health_check_response::ServingStatus;
use xdr_mesh::{channel, config::TlsArgs, identity::Identity, tls::TlsMaterial};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The operator's TLS material from a certificate folder.
pub fn operator_tls(certs: &Path) -> anyhow::Result<TlsMaterial> {
    TlsArgs::in_dir(certs)
        .load(Identity::OPERATOR)
        .with_context(|| format!("loading the operator certificate from {}", certs.display()))
}

/// The overall health of the gRPC server of `service` at `addr`.
pub async fn grpc_health(
    addr: SocketAddr,
    service: &str,
    tls: &TlsMaterial,
) -> Result<ServingStatus, String> {
    let endpoint = channel::endpoint(&addr.to_string(), service, tls).map_err(|e| e.to_string())?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    channel::health_check(channel, "", PROBE_TIMEOUT)
        .await
        .map_err(|s| s.message().to_owned())
}

/// The HTTP status of `GET /healthz` on the gateway at `addr`.
pub async fn gateway_health(addr: SocketAddr) -> Result<u16, String> {
    let probe = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/healthz")
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status().as_u16())
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| "no answer".to_owned())?
}

//! The one way to dial a mesh service: mTLS with the caller's own certificate, the server's
//! name checked against its certificate, bounded connect time and HTTP/2 keep-alive.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::tls::TlsMaterial;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("no address given for {0}")]
    NoTarget(String),
    #[error("`{target}` is not a valid address: {source}")]
    BadTarget {
        target: String,
        source: tonic::transport::Error,
    },
    #[error("TLS for {target}: {source}")]
    Tls {
        target: String,
        source: tonic::transport::Error,
    },
}

/// An endpoint for `target` (`host:port`) whose certificate must name `server_name` (the
/// service's name, which every mesh certificate carries as a DNS SAN).
pub fn endpoint(
    target: &str,
    server_name: &str,
    tls: &TlsMaterial,
) -> Result<Endpoint, ChannelError> {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(server_name);
    let uri = if target.contains("://") {
        target.to_owned()
    } else {
        format!("https://{target}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|source| ChannelError::BadTarget {
            target: target.to_owned(),
            source,
        })?
        .tls_config(config)
        .map_err(|source| ChannelError::Tls {
            target: target.to_owned(),
            source,
        })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// A channel that connects on first use and reconnects after failures, so a service can
/// start before the services it calls.
pub fn lazy(target: &str, server_name: &str, tls: &TlsMaterial) -> Result<Channel, ChannelError> {
    Ok(endpoint(target, server_name, tls)?.connect_lazy())
}

/// `grpc.health.v1.Health/Check` of `service` ("" for the whole server) within `timeout`,
/// over a channel or a balanced service (`replicas`).
pub async fn health_check<T>(
    channel: T,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tower::BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tower::BoxError> + Send,
{
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(timeout);
    let mut client = HealthClient::new(channel);
    let call = client.check(request);
    let reply = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}")))??;
    Ok(reply.into_inner().status())
}

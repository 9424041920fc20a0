//! The mTLS listener: accepts TCP connections, completes each TLS handshake on its own task
//! (bounded in time and in number), resolves the peer's mesh identity once per connection and
//! hands tonic ready connections. A refused handshake is logged and never stops the server.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::identity::{Identity, IdentityError};

/// Handshakes in progress at once; beyond this, new connections wait in the accept backlog.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// What the server knows about the other end of a connection. Tonic puts it in the extensions
/// of every request on that connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// The caller's mesh identity, or why its (CA-signed) certificate has none.
    pub identity: Result<Identity, IdentityError>,
}

/// One accepted mTLS connection.
pub struct MeshConnection {
    stream: TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl Connected for MeshConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

/// Accepts on `listener` until the returned stream is dropped (tonic drops it when shutdown
/// begins), which closes the listening socket.
pub fn accept_mtls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    handshake_timeout: Duration,
) -> ReceiverStream<io::Result<MeshConnection>> {
    let (ready_tx, ready_rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(
        listener,
        TlsAcceptor::from(tls),
        handshake_timeout,
        ready_tx,
    ));
    ReceiverStream::new(ready_rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    ready: mpsc::Sender<io::Result<MeshConnection>>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = ready.closed() => return,
            permit = handshakes.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (tcp, remote_addr) = tokio::select! {
            _ = ready.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let identity = peer_identity(&stream);
                    let peer = PeerInfo {
                        remote_addr,
                        identity,
                    };
                    tracing::debug!(remote = %remote_addr, identity = ?peer.identity, "mTLS connection established");
                    let _ = ready.send(Ok(MeshConnection { stream, peer })).await;
                }
                Ok(Err(error)) => {
                    tracing::warn!(remote = %remote_addr, %error, "TLS handshake refused")
                }
                Err(_) => {
                    tracing::warn!(remote = %remote_addr, ?handshake_timeout, "TLS handshake timed out")
                }
            }
        });
    }
}

fn peer_identity(stream: &TlsStream<TcpStream>) -> Result<Identity, IdentityError> {
    let (_, session) = stream.get_ref();
    // The verifier already required a CA-signed certificate; the leaf is the first one.
    let leaf = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or(IdentityError::Missing)?;
    Identity::from_certificate(leaf)
}

impl AsyncRead for MeshConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for MeshConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    };
    use time::{Duration as Span, OffsetDateTime};
    use tokio::io::AsyncReadExt;
    use tokio_rustls::TlsConnector;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::{
        pki::{self, CertificateAuthority, IssuedCert, Usage, Validity},
        tls::{TlsFiles, TlsMaterial},
    };

    struct Mesh {
        ca: CertificateAuthority,
        _dir: tempfile::TempDir,
        server: Arc<ServerConfig>,
    }

    fn mesh() -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test").unwrap();
        pki::write_pki_of(dir.path(), &ca).unwrap();
        let file = |name: String| dir.path().join(name);
        let files = TlsFiles {
            ca: file(pki::CA_CERT_FILE.to_owned()),
            cert: file(pki::cert_file("threatintel")),
            key: file(pki::key_file("threatintel")),
        };
        let server = TlsMaterial::load(&files).unwrap().server_config().unwrap();
        Mesh {
            ca,
            _dir: dir,
            server,
        }
    }

    /// A rustls client that presents `cert` whatever CAs the server asks for (unlike Go's).
    fn client(trusted_ca: &CertificateAuthority, cert: &IssuedCert) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(trusted_ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .unwrap();
        TlsConnector::from(Arc::new(config))
    }

    fn operator_cert(ca: &CertificateAuthority, validity: Validity) -> IssuedCert {
        ca.issue(
            Some(&Identity::operator()),
            &[],
            &[],
            Usage::Client,
            validity,
        )
        .unwrap()
    }

    /// Connects with `cert` and returns what the client sees after the handshake, plus the
    /// listener's stream of accepted connections.
    async fn connect(
        mesh: &Mesh,
        cert: &IssuedCert,
    ) -> (
        io::Result<usize>,
        ReceiverStream<io::Result<MeshConnection>>,
    ) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let incoming = accept_mtls(tcp, mesh.server.clone(), Duration::from_secs(5));
        let stream = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("threatintel").unwrap();
        let outcome = match client(&mesh.ca, cert).connect(name, stream).await {
            // With TLS 1.3 the server judges the client certificate after the client thinks
            // the handshake is done: the refusal arrives as an alert on the first read.
            Ok(mut tls) => tls.read(&mut [0u8; 1]).await,
            Err(error) => Err(error),
        };
        (outcome, incoming)
    }

    #[tokio::test]
    async fn mesh_certificate_is_accepted_with_its_identity() {
        let mesh = mesh();
        let cert = operator_cert(&mesh.ca, Validity::days_from_now(1));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut incoming = accept_mtls(tcp, mesh.server.clone(), Duration::from_secs(5));
        let stream = TcpStream::connect(addr).await.unwrap();
        let _tls = client(&mesh.ca, &cert)
            .connect(ServerName::try_from("threatintel").unwrap(), stream)
            .await
            .unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert_eq!(accepted.connect_info().identity, Ok(Identity::operator()));
    }

    #[tokio::test]
    async fn certificate_from_another_ca_is_refused_in_the_handshake() {
        let mesh = mesh();
        let other = CertificateAuthority::generate("other").unwrap();
        let (outcome, _) = connect(&mesh, &operator_cert(&other, Validity::days_from_now(1))).await;
        let error = outcome.expect_err("a foreign certificate was accepted");
        assert!(error.to_string().contains("UnknownCA"), "{error}");
    }

    #[tokio::test]
    async fn expired_certificate_is_refused_in_the_handshake() {
        let mesh = mesh();
        let now = OffsetDateTime::now_utc();
        let expired = Validity {
            not_before: now - Span::days(10),
            not_after: now - Span::days(1),
        };
        let (outcome, _) = connect(&mesh, &operator_cert(&mesh.ca, expired)).await;
        let error = outcome.expect_err("an expired certificate was accepted");
        assert!(error.to_string().contains("CertificateExpired"), "{error}");
    }
}

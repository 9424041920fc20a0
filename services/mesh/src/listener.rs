//! The mTLS listener: accepts TCP connections, completes each TLS handshake on its own task
//! (bounded in time), resolves the peer's mesh identity once per connection and hands tonic
//! ready connections. A refused handshake is logged (at a bounded rate) and never stops the
//! server.
//!
//! The accept loop never waits for a handshake: a peer that opens connections and stays
//! silent must not keep live clients out. Handshakes in progress are bounded; when the bound
//! is reached the oldest one is dropped, and a silent connection is always older than the
//! handshake of a client that is really talking. Established connections are bounded too; a
//! connection past that bound is closed at once.

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use crate::{
    identity::{Identity, IdentityError},
    log_limit::LogLimiter,
};

/// What the listener holds at most, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct ListenerLimits {
    /// Longest a client may take to complete its TLS handshake.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; past this, the oldest is dropped.
    pub max_handshakes: usize,
    /// Established connections at once; past this, a newly established one is closed.
    pub max_connections: usize,
}

/// What the server knows about the other end of a connection. Tonic puts it in the extensions
/// of every request on that connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// The caller's mesh identity, or why its (CA-signed) certificate has none.
    pub identity: Result<Identity, IdentityError>,
}

/// One accepted mTLS connection; it holds its place among the established connections until
/// tonic drops it.
pub struct MeshConnection {
    stream: TlsStream<TcpStream>,
    peer: PeerInfo,
    _slot: OwnedSemaphorePermit,
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
    limits: ListenerLimits,
) -> ReceiverStream<io::Result<MeshConnection>> {
    let (ready_tx, ready_rx) = mpsc::channel(64);
    let acceptor = Acceptor {
        tls: TlsAcceptor::from(tls),
        limits,
        handshakes: Arc::new(Handshakes::default()),
        connections: Arc::new(Semaphore::new(limits.max_connections)),
        warnings: Arc::new(LogLimiter::default()),
    };
    tokio::spawn(acceptor.run(listener, ready_tx));
    ReceiverStream::new(ready_rx)
}

/// Handshakes in progress, oldest first, each with the token that drops it.
#[derive(Default)]
struct Handshakes {
    in_progress: Mutex<(u64, BTreeMap<u64, CancellationToken>)>,
}

impl Handshakes {
    /// Registers a new handshake; when that makes more than `max`, the oldest is dropped.
    fn begin(&self, max: usize) -> (u64, CancellationToken) {
        let mut guard = self
            .in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (next, in_progress) = &mut *guard;
        let id = *next;
        *next += 1;
        let token = CancellationToken::new();
        in_progress.insert(id, token.clone());
        while in_progress.len() > max {
            if let Some((_, oldest)) = in_progress.pop_first() {
                oldest.cancel();
            }
        }
        (id, token)
    }

    fn end(&self, id: u64) {
        self.in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .remove(&id);
    }
}

#[derive(Clone)]
struct Acceptor {
    tls: TlsAcceptor,
    limits: ListenerLimits,
    handshakes: Arc<Handshakes>,
    connections: Arc<Semaphore>,
    /// Peers choose how many handshakes fail: their warnings are rate-limited.
    warnings: Arc<LogLimiter>,
}

impl Acceptor {
    async fn run(self, listener: TcpListener, ready: mpsc::Sender<io::Result<MeshConnection>>) {
        loop {
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
            tokio::spawn(self.clone().handshake(tcp, remote_addr, ready.clone()));
        }
    }

    async fn handshake(
        self,
        tcp: TcpStream,
        remote_addr: SocketAddr,
        ready: mpsc::Sender<io::Result<MeshConnection>>,
    ) {
        let (id, dropped) = self.handshakes.begin(self.limits.max_handshakes);
        let timeout = self.limits.handshake_timeout;
        let outcome = tokio::select! {
            _ = dropped.cancelled() => Err("dropped for newer handshakes".to_owned()),
            done = tokio::time::timeout(timeout, self.tls.accept(tcp)) => match done {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("not completed within {timeout:?}")),
            },
        };
        self.handshakes.end(id);
        let outcome = outcome.and_then(|stream| {
            // Counted once established: handshakes in progress have their own bound.
            let slot = self.connections.clone().try_acquire_owned().map_err(|_| {
                format!(
                    "{} connections are open, the limit",
                    self.limits.max_connections
                )
            })?;
            Ok((stream, slot))
        });
        match outcome {
            Ok((stream, slot)) => {
                let peer = PeerInfo {
                    remote_addr,
                    identity: peer_identity(&stream),
                };
                tracing::debug!(remote = %remote_addr, identity = ?peer.identity, "mTLS connection established");
                let connection = MeshConnection {
                    stream,
                    peer,
                    _slot: slot,
                };
                let _ = ready.send(Ok(connection)).await;
            }
            Err(reason) => {
                if let Some(suppressed) = self.warnings.admit() {
                    tracing::warn!(remote = %remote_addr, error = %reason, suppressed, "TLS handshake refused");
                }
            }
        }
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

    const LIMITS: ListenerLimits = ListenerLimits {
        handshake_timeout: Duration::from_secs(5),
        max_handshakes: 16,
        max_connections: 16,
    };

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
        let incoming = accept_mtls(tcp, mesh.server.clone(), LIMITS);
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
        let mut incoming = accept_mtls(tcp, mesh.server.clone(), LIMITS);
        let stream = TcpStream::connect(addr).await.unwrap();
        let _tls = client(&mesh.ca, &cert)
            .connect(ServerName::try_from("threatintel").unwrap(), stream)
            .await
            .unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert_eq!(accepted.connect_info().identity, Ok(Identity::operator()));
    }

    #[tokio::test]
    async fn silent_connections_do_not_keep_a_real_client_out() {
        let mesh = mesh();
        let cert = operator_cert(&mesh.ca, Validity::days_from_now(1));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let limits = ListenerLimits {
            // Silent peers would hold their handshakes for the whole test.
            handshake_timeout: Duration::from_secs(3600),
            ..LIMITS
        };
        let mut incoming = accept_mtls(tcp, mesh.server.clone(), limits);
        let mut silent = Vec::new();
        for _ in 0..limits.max_handshakes * 3 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let stream = TcpStream::connect(addr).await.unwrap();
        let _tls = client(&mesh.ca, &cert)
            .connect(ServerName::try_from("threatintel").unwrap(), stream)
            .await
            .expect("the handshake completes beside the silent connections");
        let accepted = incoming.next().await.unwrap().unwrap();
        assert_eq!(accepted.connect_info().identity, Ok(Identity::operator()));
        // The oldest silent connections were dropped to make room: the server closed them.
        let mut first = silent.remove(0);
        let read = tokio::time::timeout(Duration::from_secs(30), first.read(&mut [0u8; 1]))
            .await
            .expect("the server closes the oldest silent connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
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

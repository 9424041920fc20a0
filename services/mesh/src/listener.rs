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

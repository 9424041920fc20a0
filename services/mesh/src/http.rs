//! The mesh's plain-HTTP servers — the gateway's JSON API and every service's `/metrics` —
//! started, bounded and drained one way: HTTP/1.1, connections capped (one past the cap is
//! closed at once), the first byte and every request head within a deadline (an idle
//! kept-alive connection is closed at it), every request within a deadline, and on shutdown
//! each connection finishes the request it is serving and closes.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tower::{ServiceBuilder, ServiceExt};

use crate::{log_limit::LogLimiter, shutdown::CancellationToken, write_deadline::WriteDeadline};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How much one HTTP server lets its clients make it hold.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Open connections; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Longest a client may take to send a request head (and longest an idle connection waits
    /// for the next one).
    pub header_timeout: Duration,
    /// Longest one request may take, body and handler included; past it the reply is 408.
    pub request_timeout: Duration,
    /// After shutdown begins, how long requests in flight may still run.
    pub shutdown_grace: Duration,
}

impl HttpLimits {
    /// Limits for a scrape endpoint: a few Prometheus servers and an operator's curl.
    pub fn metrics() -> Self {
        HttpLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Binds `addr` for an HTTP server; usable outside async code, so a service can bind its
/// `/metrics` before anything else and report a taken port as a start-up error.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    let bound = std::net::TcpListener::bind(addr)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .and_then(TcpListener::from_std);
    bound.map_err(|source| HttpError::Bind { addr, source })
}

/// Serves `router` on `listener` until `shutdown` is cancelled and the requests in flight
/// have finished or `limits.shutdown_grace` has passed. `announce` is the message of the
/// log line that carries the bound address (`listening`, `metrics listening`); the server's
/// other log lines carry it as `server`.
pub async fn serve(
    announce: &'static str,
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{announce}");
    }
    let router = router.layer(
        ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(timed_out))
            .timeout(limits.request_timeout),
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = LogLimiter::default();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        // Reap finished connections so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(suppressed) = refusals.admit() {
                tracing::warn!(server = announce, %peer, max = limits.max_connections, suppressed, "HTTP connection refused: at the connection limit");
            }
            continue;
        };
        // Handlers may ask who is on the other end (`ConnectInfo`), e.g. to limit a client.
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let stopping = shutdown.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let _slot = slot;
            // hyper's head deadline starts at the first byte: a client that sends nothing
            // would hold its slot for ever.
            let mut first = [0u8; 1];
            let first_byte = stream.peek(&mut first);
            if !matches!(
                tokio::time::timeout(limits.header_timeout, first_byte).await,
                Ok(Ok(1))
            ) {
                return;
            }
            match acceptor {
                None => serve_connection(stream, service, limits, stopping).await,
                // The handshake is bounded as a request head is.
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(limits.header_timeout, handshake).await
                    {
                        serve_connection(stream, service, limits, stopping).await;
                    }
                }
            }
        });
    }
    // Connections drain on their own (each got the shutdown); wait for them, bounded.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!(server = announce, grace = ?limits.shutdown_grace, "HTTP requests still in flight after the shutdown grace");
    }
}

/// One connection, HTTP/1.1 only: curl and Prometheus speak it, and its head deadline also
/// closes a kept-alive connection that sends nothing more (an idle HTTP/2 connection answering
/// pings would hold its slot for ever). A write the client does not read within the same
/// deadline closes it too. On shutdown it finishes the request it is serving.
async fn serve_connection<I, S>(io: I, service: S, limits: HttpLimits, stopping: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<axum::body::Body>,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(
            TokioIo::new(WriteDeadline::new(io, limits.header_timeout)),
            service,
        );
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stopping.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    let _ = tokio::time::timeout(limits.shutdown_grace, connection).await;
}

async fn timed_out(_: tower::BoxError) -> (http::StatusCode, &'static str) {
    (
        http::StatusCode::REQUEST_TIMEOUT,
        "the request took longer than the server allows\n",
    )
}

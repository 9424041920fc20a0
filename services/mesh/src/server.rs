//! The one way to build a mesh gRPC server: mTLS only, the caller's identity checked against
//! the service's access policy, health, reflection (v1 and v1alpha), diagnostics, request
//! timeout, a global limit on calls in progress (streams included) that sheds load, bounded
//! handshakes, connections and streams per connection, checked reply statuses, a span per
//! call, and a graceful shutdown that lets calls in flight finish.

use std::{convert::Infallible, net::SocketAddr};

use tonic::{body::Body, server::NamedService, service::RoutesBuilder, transport::Server};
use tonic_health::ServingStatus;
use tower::ServiceBuilder;
use xdr_proto::pb::diagnostics_server::DiagnosticsServer;

use crate::{
    access::{AccessLayer, AccessPolicy, PolicyError},
    call_limit::CallLimitLayer,
    config::ServerArgs,
    diagnostics::DiagnosticsService,
    listener::{self, ListenerLimits},
    metrics::CallMetricsLayer,
    reply::checked_reply,
    service::ServiceRuntime,
    shutdown::{self, CancellationToken},
    tls::{TlsError, TlsMaterial},
};

const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";
/// The RPCs of health and reflection, as the metrics label them.
const MESH_RPCS: [&str; 4] = [
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];
/// HTTP/2 streams one connection may have open at once.
const STREAMS_PER_CONNECTION: u32 = 256;
const KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("building reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A mesh server under construction: add the service's gRPC services, then `serve`.
pub struct MeshServer {
    name: &'static str,
    listen: SocketAddr,
    settings: ServerArgs,
    tls: TlsMaterial,
    shutdown: CancellationToken,
    policy: AccessPolicy,
    routes: RoutesBuilder,
    /// gRPC service names added by the binary (`xdr.v1.ThreatIntel`).
    services: Vec<&'static str>,
}

impl MeshServer {
    /// The server of the service `runtime` was started for; `policy` is its allow lists.
    pub fn new(runtime: &ServiceRuntime, policy: AccessPolicy) -> Self {
        MeshServer {
            name: runtime.service.name,
            listen: runtime.listen,
            settings: runtime.server.clone(),
            tls: runtime.tls.clone(),
            shutdown: runtime.shutdown.clone(),
            policy,
            routes: RoutesBuilder::default(),
            services: Vec::new(),
        }
    }

    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Binds, reports `listening` with the bound address, and serves until the service's
    /// shutdown and the calls in flight have finished (or the shutdown grace has passed).
    pub async fn serve(mut self) -> Result<(), ServeError> {
        let shutdown = self.shutdown.clone();
        let diagnostics = DiagnosticsService::new(self.name);
        self = self.add_service(DiagnosticsServer::new(diagnostics));
        let policy = self
            .policy
            .clone()
            .allow_service_to_mesh(DiagnosticsServer::<DiagnosticsService>::NAME);
        let served = self.served_rpcs();
        policy.validate(served.iter().map(String::as_str))?;

        let (health, health_service) = tonic_health::server::health_reporter();
        for service in &self.services {
            health
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        let mut routes = self.routes;
        routes
            .add_service(health_service)
            .add_service(
                reflection(
                    &self.services,
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
                .build_v1()?,
            )
            .add_service(
                reflection(
                    &self.services,
                    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                )
                .build_v1alpha()?,
            );

        let tcp = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = tcp.local_addr().map_err(|source| ServeError::Bind {
            addr: self.listen,
            source,
        })?;
        let limits = ListenerLimits {
            handshake_timeout: self.settings.handshake_timeout,
            max_handshakes: self.settings.max_handshakes as usize,
            max_connections: self.settings.max_connections as usize,
        };
        let incoming = listener::accept_mtls(tcp, self.tls.server_config()?, limits);

        // Outermost first: every reply's status is checked, whichever layer made it.
        let layers = ServiceBuilder::new()
            .layer(CallMetricsLayer::new(
                served.into_iter().chain(MESH_RPCS.map(String::from)),
            ))
            .map_response(checked_reply)
            .layer(CallLimitLayer::new(
                self.settings.concurrency_limit as usize,
            ))
            .layer(AccessLayer::new(policy))
            .into_inner();
        let router = Server::builder()
            .timeout(self.settings.request_timeout)
            // hyper's default is no limit: one connection could open streams without end.
            .max_concurrent_streams(STREAMS_PER_CONNECTION)
            // A peer that vanished without closing is noticed and its connection dropped.
            .http2_keepalive_interval(Some(KEEP_ALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEP_ALIVE_TIMEOUT))
            .trace_fn(|request| {
                let path = request.uri().path();
                // Health checks come every few seconds from probes and balancers: they get no
                // span, so they neither crowd the traces nor cost one each.
                if path.starts_with("/grpc.health.") {
                    return tracing::Span::none();
                }
                let span = tracing::info_span!(
                    "rpc",
                    path,
                    otel.name = path.trim_start_matches('/'),
                    otel.kind = "server",
                    rpc.system = "grpc"
                );
                crate::trace::continued_from(span, request.headers())
            })
            .layer(layers)
            .add_routes(routes.routes());

        // Stop advertising SERVING first, so balancers and `xdrctl` see the drain begin.
        let stopping = shutdown.clone();
        let drain_signal = async move {
            stopping.cancelled().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            for service in &self.services {
                health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
        };
        tracing::info!(service = self.name, %addr, "listening");
        let serve = router.serve_with_incoming_shutdown(incoming, drain_signal);
        let grace = self.settings.shutdown_grace;
        tokio::select! {
            served = serve => served?,
            _ = shutdown::drain_deadline(shutdown.clone(), grace) => tracing::warn!(?grace, "calls still in flight after the shutdown grace; stopping anyway"),
        }
        tracing::info!(service = self.name, "stopped");
        Ok(())
    }

    fn served_rpcs(&self) -> Vec<String> {
        let mut rpcs = xdr_proto::rpc_paths(&self.services);
        // Health and reflection are not in the xdr descriptor set; their service names are
        // all a policy can name of them.
        rpcs.extend([HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA].map(|s| format!("{s}/*")));
        rpcs
    }
}

/// Reflection advertising exactly what this server serves: `grpcurl list` on the threat-intel
/// server must not show the collector's RPCs. Both protocol versions are served because the
/// grpcurl on PyPI speaks only v1alpha; each lists both, so each also holds the descriptors of
/// the other version (`other_reflection`), or `describe` could not resolve every name `list`
/// gives (each builder adds its own version's descriptors itself).
fn reflection(
    services: &[&'static str],
    other_reflection: &'static [u8],
) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(xdr_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(other_reflection);
    for service in services
        .iter()
        .copied()
        .chain([HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA])
    {
        builder = builder.with_service_name(service);
    }
    builder
}

//! What every service binary does before serving: crypto provider, logs, TLS material, its
//! data directory, the shutdown signal and its `/metrics` endpoint, in that order, each
//! failure naming what failed.

use std::net::SocketAddr;

use crate::{
    config::{ServerArgs, ServiceArgs},
    data_dir::{DataDir, DataDirError},
    directory::ServiceEntry,
    http::{self, HttpError, HttpLimits},
    metrics,
    shutdown::{self, CancellationToken},
    telemetry,
    tls::{self, TlsError, TlsMaterial},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("data directory: {0}")]
    DataDir(#[from] DataDirError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] HttpError),
}

/// The pieces a service needs to run, made ready by [`start`].
pub struct ServiceRuntime {
    pub service: ServiceEntry,
    /// Where its gRPC server listens.
    pub listen: SocketAddr,
    pub server: ServerArgs,
    pub tls: TlsMaterial,
    pub data_dir: DataDir,
    pub shutdown: CancellationToken,
    /// Flushes the spans still queued when the service's `main` returns.
    pub telemetry: telemetry::Telemetry,
}

/// Prepares the process to run the mesh service `service`, and serves its `/metrics` until
/// shutdown. Call inside the tokio runtime.
pub fn start(service: ServiceEntry, args: &ServiceArgs) -> Result<ServiceRuntime, StartError> {
    tls::install_crypto_provider();
    let telemetry = telemetry::init(&args.log, &format!("xdr-{}", service.name))?;
    let tls = args.tls.load(service.name)?;
    let data_dir = DataDir::open(&args.data_dir(service.name))?;
    let shutdown = shutdown::on_signal().map_err(StartError::Signals)?;
    tracing::info!(service = service.name, version = env!("CARGO_PKG_VERSION"), data_dir = %data_dir.path().display(), "starting");
    metrics::recorder();
    let scrape = http::bind(args.metrics_listen)?;
    tokio::spawn(http::serve(
        "metrics listening",
        scrape,
        metrics::router(),
        HttpLimits::metrics(),
        shutdown.clone(),
        None,
    ));
    Ok(ServiceRuntime {
        service,
        listen: args.listen,
        server: args.server.clone(),
        tls,
        data_dir,
        shutdown,
        telemetry,
    })
}

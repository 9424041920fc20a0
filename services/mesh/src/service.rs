//! What every service binary does before serving: crypto provider, logs, TLS material, its
//! data directory and the shutdown signal, in that order, each failure naming what failed.

use crate::{
    config::ServiceArgs,
    data_dir::{DataDir, DataDirError},
    shutdown::{self, CancellationToken},
    telemetry,
    tls::{self, TlsError, TlsMaterial},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("log filter: {0}")]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("data directory: {0}")]
    DataDir(#[from] DataDirError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// The pieces a service needs to run, made ready by [`start`].
pub struct ServiceRuntime {
    pub tls: TlsMaterial,
    pub data_dir: DataDir,
    pub shutdown: CancellationToken,
}

/// Prepares the process to run the mesh service `name`. Call inside the tokio runtime.
pub fn start(name: &str, args: &ServiceArgs) -> Result<ServiceRuntime, StartError> {
    tls::install_crypto_provider();
    telemetry::init(&args.log)?;
    let tls = args.tls.load(name)?;
    let data_dir = DataDir::open(&args.data_dir(name))?;
    let shutdown = shutdown::on_signal().map_err(StartError::Signals)?;
    tracing::info!(service = name, version = env!("CARGO_PKG_VERSION"), data_dir = %data_dir.path().display(), "starting");
    Ok(ServiceRuntime {
        tls,
        data_dir,
        shutdown,
    })
}

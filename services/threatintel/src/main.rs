//! `xdr-threatintel`: the threat-intelligence indicator engine: lookups over gRPC and the CyberTrace protocol.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs};
use xdr_proto::pb::threat_intel_server::ThreatIntelServer;

use xdr_threatintel::{access, cybertrace, grpc, log_feed_reports, store::IndicatorStore};

const NAME: &str = "threatintel";

/// The index is millions of small allocations: mimalloc packs them tighter and faster than
/// glibc's malloc (measured in the issue note with `xdrctl bench threatintel`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-threatintel",
    version,
    about = "The threat-intelligence indicator engine: lookups over gRPC and the CyberTrace protocol."
)]
struct Config {
    /// Address of the gRPC server (mTLS only). Port 0 picks a free port, logged as `listening`.
    #[arg(long, env = "XDR_LISTEN", default_value = "127.0.0.1:7203")]
    listen: SocketAddr,
    /// Address of the CyberTrace-compatible TCP service (plain TCP, as CyberTrace's).
    #[arg(long, env = "XDR_CYBERTRACE_LISTEN", default_value = "127.0.0.1:9999")]
    cybertrace_listen: SocketAddr,
    #[command(flatten)]
    formats: cybertrace::OutputFormats,
    /// Folder of supplier feeds (`<Supplier>.json` / `<Supplier>.csv`) [default: <data-dir>/feeds].
    #[arg(long, env = "XDR_FEEDS_DIR", value_name = "DIR")]
    feeds_dir: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    let runtime =
        xdr_mesh::service::start(NAME, &config.service).context("starting xdr-threatintel")?;
    let feeds_dir = config
        .feeds_dir
        .unwrap_or_else(|| runtime.data_dir.path().join("feeds"));
    let internal_ti = runtime.data_dir.path().join("internal-ti.redb");
    let (store, reload) =
        tokio::task::spawn_blocking(move || IndicatorStore::open(feeds_dir, &internal_ti))
            .await?
            .context("opening the indicator store")?;
    log_feed_reports(&reload);
    let store = Arc::new(store);

    let cybertrace = tokio::net::TcpListener::bind(config.cybertrace_listen)
        .await
        .with_context(|| {
            format!(
                "binding the CyberTrace service to {}",
                config.cybertrace_listen
            )
        })?;
    tracing::info!(addr = %cybertrace.local_addr()?, "cybertrace listening");
    tokio::spawn(cybertrace::serve(
        cybertrace,
        store.clone(),
        Arc::new(config.formats),
        runtime.shutdown.clone(),
    ));

    MeshServer::new(
        NAME,
        config.listen,
        &config.service.server,
        runtime.tls,
        access::policy(),
    )
    .add_service(ThreatIntelServer::new(grpc::ThreatIntelService::new(store)))
    .serve(runtime.shutdown)
    .await
    .context("serving")
}

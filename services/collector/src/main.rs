//! `xdr-collector`: Receives events over gRPC, normalizes them, has them enriched, stores them and makes them searchable.

mod access;
mod grpc;

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs};
use xdr_proto::pb::collector_server::CollectorServer;

const NAME: &str = "collector";

#[derive(Parser, Debug)]
#[command(
    name = "xdr-collector",
    version,
    about = "Receives events over gRPC, normalizes them, has them enriched, stores them and makes them searchable."
)]
struct Config {
    /// Address of the gRPC server (mTLS only). Port 0 picks a free port, logged as `listening`.
    #[arg(long, env = "XDR_LISTEN", default_value = "127.0.0.1:7201")]
    listen: SocketAddr,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    let runtime =
        xdr_mesh::service::start(NAME, &config.service).context("starting xdr-collector")?;
    MeshServer::new(
        NAME,
        config.listen,
        &config.service.server,
        runtime.tls,
        access::policy(),
    )
    .add_service(CollectorServer::new(grpc::CollectorService))
    .serve(runtime.shutdown)
    .await
    .context("serving")
}

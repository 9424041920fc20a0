//! `xdr-enrichment`: Owns enrichment rules and filters and enriches event streams with threat intelligence.

mod access;
mod filter;
mod grpc;
mod rule;

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs};
use xdr_proto::pb::enrichment_server::EnrichmentServer;

const NAME: &str = "enrichment";

#[derive(Parser, Debug)]
#[command(
    name = "xdr-enrichment",
    version,
    about = "Owns enrichment rules and filters and enriches event streams with threat intelligence."
)]
struct Config {
    /// Address of the gRPC server (mTLS only). Port 0 picks a free port, logged as `listening`.
    #[arg(long, env = "XDR_LISTEN", default_value = "127.0.0.1:7202")]
    listen: SocketAddr,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    let runtime =
        xdr_mesh::service::start(NAME, &config.service).context("starting xdr-enrichment")?;
    MeshServer::new(
        NAME,
        config.listen,
        &config.service.server,
        runtime.tls,
        access::policy(),
    )
    .add_service(EnrichmentServer::new(grpc::EnrichmentService))
    .serve(runtime.shutdown)
    .await
    .context("serving")
}

//! `xdr-threatintel`: The threat-intelligence indicator engine: lookups over gRPC and the CyberTrace protocol.

mod access;
mod grpc;
mod index;

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs};
use xdr_proto::pb::threat_intel_server::ThreatIntelServer;

const NAME: &str = "threatintel";

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
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    let runtime =
        xdr_mesh::service::start(NAME, &config.service).context("starting xdr-threatintel")?;
    MeshServer::new(
        NAME,
        config.listen,
        &config.service.server,
        runtime.tls,
        access::policy(),
    )
    .add_service(ThreatIntelServer::new(grpc::ThreatIntelService))
    .serve(runtime.shutdown)
    .await
    .context("serving")
}

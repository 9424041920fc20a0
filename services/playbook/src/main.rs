//! `xdr-playbook`: Alerts and response playbooks acting on UserGate UTM.

mod access;
mod grpc;

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs};
use xdr_proto::pb::playbook_server::PlaybookServer;

const NAME: &str = "playbook";

#[derive(Parser, Debug)]
#[command(
    name = "xdr-playbook",
    version,
    about = "Alerts and response playbooks acting on UserGate UTM."
)]
struct Config {
    /// Address of the gRPC server (mTLS only). Port 0 picks a free port, logged as `listening`.
    #[arg(long, env = "XDR_LISTEN", default_value = "127.0.0.1:7204")]
    listen: SocketAddr,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    let runtime =
        xdr_mesh::service::start(NAME, &config.service).context("starting xdr-playbook")?;
    MeshServer::new(
        NAME,
        config.listen,
        &config.service.server,
        runtime.tls,
        access::policy(),
    )
    .add_service(PlaybookServer::new(grpc::PlaybookService))
    .serve(runtime.shutdown)
    .await
    .context("serving")
}

//! `xdr-playbook`: Alerts and response playbooks acting on UserGate UTM.

mod access;
mod grpc;

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs, directory::PLAYBOOK};
use xdr_proto::pb::playbook_server::PlaybookServer;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-playbook",
    version,
    about = "Alerts and response playbooks acting on UserGate UTM."
)]
struct Config {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse_service(&PLAYBOOK);
    let runtime =
        xdr_mesh::service::start(PLAYBOOK, &config.service).context("starting xdr-playbook")?;
    MeshServer::new(&runtime, access::policy())
        .add_service(PlaybookServer::new(grpc::PlaybookService))
        .serve()
        .await
        .context("serving")
}

//! `xdr-collector`: Receives events over gRPC, normalizes them, has them enriched, stores them and makes them searchable.

mod access;
mod grpc;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use xdr_collector::store::SqliteStore;
use xdr_mesh::{MeshServer, config::ServiceArgs, directory::COLLECTOR};
use xdr_proto::pb::collector_server::CollectorServer;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-collector",
    version,
    about = "Receives events over gRPC, normalizes them, has them enriched, stores them and makes them searchable."
)]
struct Config {
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse_service(&COLLECTOR);
    let runtime =
        xdr_mesh::service::start(COLLECTOR, &config.service).context("starting xdr-collector")?;
    let path = runtime.data_dir.path().join("events.sqlite");
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await?
        .context("opening the event store")?;
    MeshServer::new(&runtime, access::policy())
        .add_service(CollectorServer::new(grpc::CollectorService::new(Arc::new(
            store,
        ))))
        .serve()
        .await
        .context("serving")
}

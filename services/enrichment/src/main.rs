//! `xdr-enrichment`: Owns enrichment rules and filters and enriches event streams with threat intelligence.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use xdr_enrichment::{access, catalog, enrich, grpc};
use xdr_mesh::{
    MeshServer,
    config::ServiceArgs,
    directory::{ENRICHMENT, THREATINTEL},
};
use xdr_proto::wire_servers::enrichment_server::EnrichmentServer;

/// The largest `Enrich` batch taken, encoded.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// Every event is dozens of small strings decoded and looked at, then dropped: mimalloc
/// halved the time glibc's malloc took here (`xdr-bench enrichment`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-enrichment",
    version,
    about = "Owns enrichment rules and filters and enriches event streams with threat intelligence."
)]
struct Config {
    /// The ThreatIntel service rules with no server URL of their own look values up in;
    /// replicas as `HOST:PORT,HOST:PORT` (lanes spread over them, a failed lookup tried on
    /// another).
    #[arg(long, env = "XDR_THREATINTEL_ADDR", default_value_t = THREATINTEL.dial_addr())]
    threatintel_addr: String,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Events are allocated and freed in bulk seconds apart: keep freed pages for reuse.
    xdr_mesh::allocator::keep_freed_memory();
    let config: Config = xdr_mesh::config::parse_service(&ENRICHMENT);
    let runtime =
        xdr_mesh::service::start(ENRICHMENT, &config.service).context("starting xdr-enrichment")?;
    let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let store = runtime.data_dir.path().join("enrichment.redb");
    let catalog = Arc::new(
        tokio::task::spawn_blocking(move || catalog::SharedCatalog::open(&store, vcpus))
            .await?
            .context("opening the rule store")?,
    );
    tracing::info!(
        rules = catalog.active().rules.len(),
        "enrichment rules active"
    );
    let enricher = enrich::Enricher::start(
        catalog.clone(),
        runtime.tls.clone(),
        config.threatintel_addr,
    );
    MeshServer::new(&runtime, access::policy())
        .add_service(
            EnrichmentServer::new(grpc::EnrichmentService::new(
                catalog,
                enricher,
                config.service.server.stream_idle,
            ))
            // A collector's batch of tens of thousands of events is more than tonic's 4 MiB.
            .max_decoding_message_size(MAX_BATCH_BYTES),
        )
        .serve()
        .await
        .context("serving")
}

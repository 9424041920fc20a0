//! `xdr-collector`: Receives events over gRPC, normalizes them, has them enriched, stores them and makes them searchable.

mod access;
mod grpc;
mod linked_rules;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use xdr_collector::{
    alerts::AlertOutbox,
    collectors::CollectorCatalog,
    enrich_link::EnrichmentLink,
    ingest::{Ingest, Limits},
    retention,
    store::{ClickHouseStore, ClickHouseTarget, EventStore, SqliteStore},
    writer::Writer,
};
use xdr_mesh::{
    MeshServer,
    config::ServiceArgs,
    directory::{COLLECTOR, ENRICHMENT, PLAYBOOK},
    replicas::Replicas,
};
use xdr_proto::pb::collector_server::CollectorServer;

/// The largest request taken: a batch of raw events, up to the largest event a collector
/// may be set to take (16 MiB) and more.
const MAX_REQUEST_BYTES: usize = 24 << 20;

/// Every event is a few dozen small strings and maps, parsed, encoded, decoded and dropped on
/// several threads: glibc's malloc and free were a third of the collector's time under load
/// (`perf` during `xdr-bench collector`), as they were in enrichment before mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-collector",
    version,
    about = "Receives events over gRPC, normalizes them, has them enriched, stores them and makes them searchable."
)]
struct Config {
    /// The enrichment service collectors stream their events through: `host:port`, or
    /// several replicas' `host:port,host:port` (streams go to the ones that serve).
    #[arg(long, env = "XDR_ENRICHMENT_ADDR", default_value_t = ENRICHMENT.dial_addr())]
    enrichment_addr: String,
    /// Longest a batch waits for enrichment; past it, its events are stored `TIMED_OUT`
    /// (a rule's own timeout counts only up to this).
    #[arg(long, env = "XDR_ENRICHMENT_TIMEOUT", default_value = "35s", value_parser = humantime::parse_duration)]
    enrichment_timeout: Duration,
    /// Bytes of events the collector holds between receiving and storing them (as decoded
    /// in memory, several times their size on the wire); past it,
    /// batches wait a little, then are refused with RESOURCE_EXHAUSTED and a retry hint.
    #[arg(long, env = "XDR_INGEST_BUDGET_BYTES", default_value_t = Limits::default().budget_bytes)]
    ingest_budget_bytes: usize,
    /// The playbook service that collectors with an "alerts" destination send events to (or
    /// its replicas, `A,B`).
    #[arg(long, env = "XDR_PLAYBOOK_ADDR", default_value_t = PLAYBOOK.dial_addr())]
    playbook_addr: String,
    /// Where events are stored: `embedded` (SQLite in the data folder), or ClickHouse as
    /// `clickhouse+http://HOST:PORT[,HOST:PORT…]/DATABASE` (the hosts are the shards of
    /// `--event-store-cluster`).
    #[arg(long, env = "XDR_EVENT_STORE", default_value = "embedded")]
    event_store: String,
    /// The ClickHouse cluster (`<remote_servers>`) whose shards hold the events: a local
    /// table on each, written and searched through a `Distributed` table.
    #[arg(long, env = "XDR_EVENT_STORE_CLUSTER")]
    event_store_cluster: Option<String>,
    /// The ClickHouse user.
    #[arg(long, env = "XDR_EVENT_STORE_USER", default_value = "default")]
    event_store_user: String,
    /// The ClickHouse user's password (prefer the file or the variable: a flag shows in `ps`).
    #[arg(long, env = "XDR_EVENT_STORE_PASSWORD", hide_env_values = true)]
    event_store_password: Option<Secret>,
    /// A file whose first line is the ClickHouse user's password.
    #[arg(long, env = "XDR_EVENT_STORE_PASSWORD_FILE")]
    event_store_password_file: Option<std::path::PathBuf>,
    /// Delete events older than this (`30d`, `12h`); none: keep every event.
    #[arg(long, env = "XDR_RETENTION", value_parser = humantime::parse_duration)]
    retention: Option<Duration>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Events are allocated and freed in bulk seconds apart: keep freed pages for reuse.
    xdr_mesh::allocator::keep_freed_memory();
    let config: Config = xdr_mesh::config::parse_service(&COLLECTOR);
    let runtime =
        xdr_mesh::service::start(COLLECTOR, &config.service).context("starting xdr-collector")?;
    let data = runtime.data_dir.path().to_owned();
    let clickhouse = clickhouse_target(&config)?;
    let (store, collectors) = tokio::task::spawn_blocking(move || {
        let store: Arc<dyn EventStore> = match clickhouse {
            None => Arc::new(
                SqliteStore::open(&data.join("events.sqlite"))
                    .context("opening the event store")?,
            ),
            Some(target) => {
                tracing::info!(?target, "events are stored in ClickHouse");
                Arc::new(
                    ClickHouseStore::open(target, &data)
                        .context("opening the ClickHouse event store")?,
                )
            }
        };
        let collectors = CollectorCatalog::open(&data.join("collectors.redb"))
            .context("opening the collector store")?;
        anyhow::Ok((store, collectors))
    })
    .await??;
    let enrichment = Replicas::new(&config.enrichment_addr, ENRICHMENT.name, &runtime.tls)
        .context("the enrichment address")?;
    let alerts = Arc::new(
        AlertOutbox::open(&runtime.data_dir.path().join("alerts-buffer"))
            .context("opening the alert buffer")?,
    );
    let playbook = Replicas::new(&config.playbook_addr, PLAYBOOK.name, &runtime.tls)
        .context("the playbook address")?;
    tokio::spawn(
        alerts
            .clone()
            .deliver_forever(playbook.service(), runtime.shutdown.clone()),
    );
    let ingest = Ingest::new(
        Arc::new(collectors),
        EnrichmentLink::new(enrichment.clone(), config.enrichment_timeout),
        Writer::start(store.clone(), &runtime.data_dir.path().join("buffer"))
            .context("opening the disk buffer")?,
        alerts.clone(),
        Limits {
            budget_bytes: config.ingest_budget_bytes,
            ..Limits::default()
        },
    );
    let ingest = Arc::new(ingest);
    if let Some(retention) = config.retention {
        // After the batches of the disk buffer are stored: they are aged like the rest.
        let (ingest, store) = (ingest.clone(), store.clone());
        tokio::spawn(async move {
            ingest.caught_up(Duration::from_secs(600)).await;
            retention::run(store, retention).await;
        });
    }
    let service = grpc::CollectorService::new(
        store,
        ingest,
        enrichment.service(),
        config.service.server.stream_idle,
    );
    MeshServer::new(&runtime, access::policy())
        .add_service(CollectorServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES))
        .serve()
        .await
        .context("serving")
}

/// The ClickHouse store the flags name, or none for the embedded one.
fn clickhouse_target(config: &Config) -> anyhow::Result<Option<ClickHouseTarget>> {
    if config.event_store == "embedded" {
        return Ok(None);
    }
    let password = match (
        &config.event_store_password,
        &config.event_store_password_file,
    ) {
        (Some(_), Some(_)) => {
            anyhow::bail!(
                "give the ClickHouse password by --event-store-password or its file, not both"
            )
        }
        (Some(password), None) => password.0.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading --event-store-password-file {}", file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => String::new(),
    };
    let target = ClickHouseTarget::parse(
        &config.event_store,
        config.event_store_cluster.as_deref(),
        &config.event_store_user,
        &password,
    )?;
    Ok(Some(target))
}

/// A value kept out of logs and debug output.
#[derive(Clone)]
struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

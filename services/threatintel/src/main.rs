//! `xdr-threatintel`: the threat-intelligence indicator engine: lookups over gRPC and the CyberTrace protocol.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{MeshServer, config::ServiceArgs, directory::THREATINTEL};
use xdr_proto::wire_servers::threat_intel_server::ThreatIntelServer;

use xdr_threatintel::{
    access,
    cybertrace::{self, EventSink, events},
    feeds::{FeedCategories, FeedOptions},
    grpc, remote, report_reload,
    store::IndicatorStore,
};

/// The index is millions of small allocations: mimalloc packs them tighter and faster than
/// glibc's malloc (measured in the issue note with `xdr-bench threatintel`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-threatintel",
    version,
    about = "The threat-intelligence indicator engine: lookups over gRPC and the CyberTrace protocol."
)]
struct Config {
    /// Address of the CyberTrace-compatible TCP service (plain TCP, as CyberTrace's).
    #[arg(long, env = "XDR_CYBERTRACE_LISTEN", default_value = "127.0.0.1:9999")]
    cybertrace_listen: SocketAddr,
    /// Where service alerts, and detections of connections without ReplyBack, are sent, one
    /// per line over TCP (a SIEM collector's `host:port`, as CyberTrace's event target)
    /// [default: the log].
    #[arg(long, env = "XDR_EVENT_TARGET", value_name = "HOST:PORT")]
    event_target: Option<String>,
    #[command(flatten)]
    cybertrace: cybertrace::ListenerSettings,
    #[command(flatten)]
    formats: cybertrace::OutputFormats,
    /// Folder of supplier feeds (`<Supplier>.json`, `<Supplier>.csv`, `<Supplier>.stix.json`,
    /// `<Supplier>.misp/`) [default: <data-dir>/feeds].
    #[arg(long, env = "XDR_FEEDS_DIR", value_name = "DIR")]
    feeds_dir: Option<PathBuf>,
    /// A JSON object naming the category of STIX indicators and MISP attributes by their type
    /// or tag and the kind of value, over the defaults: `{"phishing/url": "KL_Phishing_URL",
    /// "*/ipv4": "KL_IP_Reputation"}` (kinds: url, domain, ipv4, ipv6, md5, sha1, sha256; `*`
    /// is any type).
    #[arg(long, env = "XDR_FEED_CATEGORIES", value_name = "FILE")]
    feed_categories: Option<PathBuf>,
    /// Remote suppliers to poll (TOML): `[[taxii]]` tables with `supplier`, `api_root`,
    /// `collection`, and optionally `credentials` and `ca` (names of files in
    /// <data-dir>/credentials/: `<name>.toml` with `user` and `password`, `<name>.pem`) and
    /// `poll_interval` (default 10m).
    #[arg(long, env = "XDR_SUPPLIERS", value_name = "FILE")]
    suppliers: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse_service(&THREATINTEL);
    let runtime = xdr_mesh::service::start(THREATINTEL, &config.service)
        .context("starting xdr-threatintel")?;
    xdr_threatintel::metrics::describe();
    let feeds_dir = config
        .feeds_dir
        .unwrap_or_else(|| runtime.data_dir.path().join("feeds"));
    let internal_ti = runtime.data_dir.path().join("internal-ti.redb");
    let remote_dir = runtime.data_dir.path().join("remote-feeds");
    let credentials_dir = runtime.data_dir.path().join("credentials");
    let remote_sources = match &config.suppliers {
        Some(file) => remote::config::read(file, &credentials_dir)?,
        None => Vec::new(),
    };
    let feed_options = FeedOptions {
        categories: match &config.feed_categories {
            Some(file) => FeedCategories::from_file(file)?,
            None => FeedCategories::default(),
        },
        remote_dir: Some(remote_dir.clone()),
    };
    let formats = Arc::new(config.formats);
    let (events, event_writer) = match config.event_target {
        Some(target) => {
            let (sink, writer) = EventSink::to_target(formats, target);
            (sink, Some(writer))
        }
        None => (EventSink::log_only(formats), None),
    };
    let (store, reload) = tokio::task::spawn_blocking(move || {
        IndicatorStore::open(feeds_dir, feed_options, &internal_ti)
    })
    .await?
    .context("opening the indicator store")?;
    report_reload(&reload, &events);
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
        config.cybertrace,
        store.clone(),
        events.clone(),
        runtime.shutdown.clone(),
    ));

    let pollers = remote::Pollers::start(
        remote_sources,
        remote::PollerDirs {
            remote: remote_dir,
            credentials: credentials_dir,
        },
        store.clone(),
        events.clone(),
        runtime.shutdown.clone(),
    );
    let server = MeshServer::new(&runtime, access::policy()).add_service(ThreatIntelServer::new(
        grpc::ThreatIntelService::new(
            store,
            pollers,
            events.clone(),
            config.service.server.stream_idle,
        ),
    ));
    events.alert(events::SERVICE_STARTED, &[]);
    let served = server.serve().await;
    events.alert(events::SERVICE_STOPPED, &[]);
    if let Some(writer) = event_writer {
        writer.close(EVENT_FLUSH_GRACE).await;
    }
    served.context("serving")
}

/// How long a stopping service waits for the event target to take its last events.
const EVENT_FLUSH_GRACE: Duration = Duration::from_secs(2);

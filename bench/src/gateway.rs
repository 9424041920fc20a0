//! The gateway scenario: events acknowledged per second through the gateway's HTTP input —
//! one event per request over many keep-alive connections (the micro-batching case), and
//! 1,000 per request — next to the collector's `IngestStream` taking 1,000-event batches
//! directly, in the same run, against the same collector (no rule: the figures are the
//! transport's, not enrichment's).

use std::{
    ffi::OsStr,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;
use xdr_proto::pb::{CollectorConfig, Transport, collector_client::CollectorClient};

use super::{
    collector::{collector_config, ingest, raw_batches},
    dataset,
    enrichment::{self, Load},
    server::{BenchServer, bin_dir, operator_tls},
    threatintel::start_threatintel,
};

const COLLECTOR: &str = "http-bench";

#[derive(clap::Args)]
pub struct Args {
    /// Indicators in the generated feed (the collector has no rule; threat intel only runs).
    #[arg(long, default_value_t = 10_000)]
    indicators: u64,
    /// Work folder: the feed, certificates, the servers' data.
    #[arg(long, default_value = "target/bench/gateway")]
    dir: PathBuf,
    /// Folder with the service binaries [default: xdr-bench's own]; use release builds.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// HTTP connections posting one event per request (each waits for its answer: the
    /// posts in flight).
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// How long each measurement runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (feeds, _) = dataset::generated_feed(&args.dir, args.indicators)?;
    let bins = bin_dir(args.bin_dir.as_deref())?;
    let mut threatintel = start_threatintel(&args.dir, Some(&bins), &feeds, |_| {}).await?;
    let certs = args.dir.join("certs");
    let mut enrichment = enrichment::start_enrichment(&bins, &args.dir, &threatintel.addr).await?;
    let mut collector = BenchServer::start(
        &bins,
        "xdr-collector",
        &certs,
        &args.dir.join("collector-data"),
        &[
            OsStr::new("--enrichment-addr"),
            OsStr::new(&enrichment.addr),
        ],
        |_| {},
    )
    .await?;
    let upstreams = [
        ("--collector-addr", collector.addr.clone()),
        ("--enrichment-addr", enrichment.addr.clone()),
        ("--threatintel-addr", threatintel.addr.clone()),
        // Not started: the gateway dials lazily and input never calls it.
        ("--playbook-addr", "127.0.0.1:9".to_owned()),
    ];
    let mut gateway_args: Vec<String> = upstreams
        .iter()
        .flat_map(|(flag, addr)| [flag.to_string(), addr.clone()])
        .collect();
    gateway_args.extend(["--input-client-rate".into(), "0".into()]);
    let mut gateway = BenchServer::start(
        &bins,
        "xdr-gateway",
        &certs,
        &args.dir.join("gateway-data"),
        &gateway_args,
        |_| {},
    )
    .await?;
    let gateway_addr: SocketAddr = gateway.addr.parse()?;

    let tls = operator_tls(&certs)?;
    let channel = xdr_mesh::channel::endpoint(&collector.addr, "collector", &tls)?
        .connect()
        .await?;
    CollectorClient::new(channel.clone())
        .create_collector(CollectorConfig {
            transport: Transport::Http as i32,
            ..collector_config(COLLECTOR, vec![])
        })
        .await?;

    let batches = raw_batches(args.indicators, 1000);
    let singles: Vec<Bytes> = batches[0]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    let path = format!("/collectors/{COLLECTOR}/input");
    println!("events acknowledged through the gateway's HTTP input (no rule):");
    let one = post_for(
        gateway_addr,
        &path,
        &singles,
        args.connections,
        args.duration,
    )
    .await?;
    println!(
        "  1 event per request, {} connections: {:.0} posts/s (p50 {:.2?}, p99 {:.2?})",
        args.connections, one.events_per_second, one.p50, one.p99
    );
    let thousand = post_for(gateway_addr, &path, &batches, 8, args.duration).await?;
    println!(
        "  1,000 events per request, 8 connections: {:.0} events/s (p50 {:.2?}, p99 {:.2?})",
        thousand.events_per_second, thousand.p50, thousand.p99
    );
    let load = Load {
        batch: 1000,
        window: 8,
        duration: args.duration,
    };
    let direct = ingest(&channel, COLLECTOR, &batches, &load).await?;
    println!(
        "  IngestStream directly, 1,000-event batches, 8 in flight: {:.0} events/s",
        direct.rate
    );
    println!(
        "  ratios: 1 per request {:.0}% and 1,000 per request {:.0}% of IngestStream directly",
        100.0 * one.events_per_second / direct.rate,
        100.0 * thousand.events_per_second / direct.rate
    );

    gateway.stop().await?;
    collector.stop().await?;
    enrichment.stop().await?;
    threatintel.stop().await?;
    Ok(())
}

pub(crate) struct Posted {
    pub events_per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Posts `bodies` (cycled) over `connections` keep-alive connections for `duration`; every
/// answer must be a 200 accepting every event of its body.
pub(crate) async fn post_for(
    addr: SocketAddr,
    path: &str,
    bodies: &[Bytes],
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Posted> {
    let bodies: Arc<[Bytes]> = bodies.into();
    let started = Instant::now();
    let mut posters = JoinSet::new();
    for c in 0..connections {
        let (bodies, path) = (bodies.clone(), path.to_owned());
        posters.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(connection);
            let (mut events, mut latencies) = (0_u64, Vec::new());
            let mut k = c;
            while started.elapsed() < duration {
                let body = bodies[k % bodies.len()].clone();
                k += connections;
                let sent = body.iter().filter(|&&b| b == b'\n').count().max(1) as u64;
                let request = hyper::Request::post(path.as_str())
                    .header(hyper::header::HOST, addr.to_string())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))?;
                let at = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let answer = response.into_body().collect().await?.to_bytes();
                latencies.push(at.elapsed());
                anyhow::ensure!(
                    status == 200,
                    "{status}: {}",
                    String::from_utf8_lossy(&answer)
                );
                let taken: serde_json::Value = serde_json::from_slice(&answer)?;
                anyhow::ensure!(taken["accepted"] == sent, "{taken}");
                events += sent;
            }
            anyhow::Ok((events, latencies))
        });
    }
    let (mut events, mut latencies) = (0, Vec::new());
    while let Some(joined) = posters.join_next().await {
        let (sent, times) = joined??;
        events += sent;
        latencies.extend(times);
    }
    let elapsed = started.elapsed();
    let (p50, p99) = super::percentiles(&mut latencies);
    Ok(Posted {
        events_per_second: events as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
    })
}

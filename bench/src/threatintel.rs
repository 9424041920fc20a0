//! The threat-intel scenario: a generated feed of mixed indicators, loaded in-process (load
//! time, lookups per second on one core) and by the real binary (load time, resident memory
//! against the feed's size, LookupStream over mTLS per batch size with batch latency).

use std::{
    collections::HashMap,
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use xdr_proto::pb::{
    LookupBatch, LookupObject, StatsRequest, threat_intel_client::ThreatIntelClient,
};
use xdr_threatintel::store::now_ms;

use super::{
    dataset,
    server::{BenchServer, bin_dir as bin_dir_of, operator_tls},
};

/// Batches a client keeps in flight on one stream (the server works on 8 at a time).
const WINDOW: usize = 16;

#[derive(clap::Args)]
pub struct Args {
    /// Indicators in the generated feed.
    #[arg(long, default_value_t = 10_000_000)]
    indicators: u64,
    /// Work folder: the feed, certificates and the server's data.
    #[arg(long, default_value = "target/bench/threatintel")]
    dir: PathBuf,
    /// Folder with `xdr-threatintel` [default: xdr-bench's own]; use release builds for figures.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// LookupStream batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,64,512,4096")]
    batches: Vec<usize>,
    /// How long each batch size runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// In-process lookups timed on one core (half hits, half misses).
    #[arg(long, default_value_t = 2_000_000)]
    lookups: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (feeds, raw_bytes) = dataset::generated_feed(&args.dir, args.indicators)?;
    println!("feed {}: {:.1} MiB", feeds.display(), mib(raw_bytes));

    let in_process = in_process(&feeds, args.indicators, args.lookups)?;
    println!(
        "in-process: load {:.2} s, {:.2} M lookups/s on one core ({} lookups, {} matched)",
        in_process.load.as_secs_f64(),
        in_process.rate / 1e6,
        args.lookups,
        in_process.matched
    );

    let mut server = start_threatintel(&args.dir, args.bin_dir.as_deref(), &feeds, |ms| {
        println!(
            "xdr-threatintel: load {:.2} s (index ready)",
            ms as f64 / 1000.0
        )
    })
    .await?;
    let tls = operator_tls(&args.dir.join("certs"))?;
    let channel = xdr_mesh::channel::endpoint(&server.addr, "threatintel", &tls)?
        .connect()
        .await?;
    let mut client = ThreatIntelClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let stats = client.stats(StatsRequest {}).await?.into_inner();
    println!(
        "resident memory {:.1} MiB = {:.2}x the feed's {:.1} MiB",
        mib(stats.resident_bytes),
        stats.resident_bytes as f64 / raw_bytes as f64,
        mib(raw_bytes)
    );

    let pool = dataset::lookups(args.indicators, 65_536);
    println!(
        "LookupStream over mTLS, {WINDOW} batches in flight, {:?} per size:",
        args.duration
    );
    for &size in &args.batches {
        let run = stream(&mut client, &pool, size, args.duration).await?;
        println!(
            "  batch {size:>5}: {:>6.3} M lookups/s ({:.0}% of in-process)  batch latency p50 {:>8.2?} p99 {:>8.2?}",
            run.rate / 1e6,
            100.0 * run.rate / in_process.rate,
            run.p50,
            run.p99
        );
    }
    server.stop().await
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

struct InProcess {
    load: Duration,
    rate: f64,
    matched: usize,
}

fn in_process(feeds: &Path, indicators: u64, lookups: usize) -> anyhow::Result<InProcess> {
    let started = Instant::now();
    let view = dataset::indexed(feeds)?;
    let load = started.elapsed();
    let queries = dataset::lookups(indicators, lookups);
    let (now, mut found, mut matched) = (now_ms(), Vec::new(), 0);
    let started = Instant::now();
    for query in &queries {
        found.clear();
        view.lookup(query, None, now, &mut found)
            .with_context(|| format!("looking up {query}"))?;
        matched += usize::from(!found.is_empty());
    }
    let rate = lookups as f64 / started.elapsed().as_secs_f64();
    Ok(InProcess {
        load,
        rate,
        matched,
    })
}

struct StreamRun {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// Streams batches of `size` for `duration`, `WINDOW` in flight, timing each batch.
async fn stream(
    client: &mut ThreatIntelClient<tonic::transport::Channel>,
    pool: &[String],
    size: usize,
    duration: Duration,
) -> anyhow::Result<StreamRun> {
    let objects: Vec<LookupObject> = pool
        .iter()
        .cycle()
        .take(size.max(1) * 16)
        .map(|v| LookupObject {
            r#type: 0,
            value: v.clone(),
        })
        .collect();
    let (batches, outbound) = mpsc::channel(WINDOW);
    let window = Arc::new(Semaphore::new(WINDOW));
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut replies = client
        .lookup_stream(ReceiverStream::new(outbound))
        .await?
        .into_inner();
    let started = Instant::now();
    let mut sender = {
        let (window, sent) = (window.clone(), sent.clone());
        tokio::spawn(async move {
            let mut id = 0u64;
            while started.elapsed() < duration {
                let Ok(permit) = window.clone().acquire_owned().await else {
                    break;
                };
                permit.forget();
                let offset = (id as usize * size) % (objects.len() - size.min(objects.len()) + 1);
                let batch = LookupBatch {
                    batch_id: id,
                    objects: objects[offset..offset + size].to_vec(),
                    ..Default::default()
                };
                sent.lock()
                    .expect("not poisoned")
                    .insert(id, Instant::now());
                if batches.send(batch).await.is_err() {
                    break;
                }
                id += 1;
            }
            id
        })
    };
    let mut latencies = Vec::new();
    let mut looked_up = 0u64;
    let mut expected = None;
    while expected.is_none_or(|n| (latencies.len() as u64) < n) {
        if expected.is_none() && sender.is_finished() {
            expected = Some((&mut sender).await?);
            continue;
        }
        let reply = tokio::select! {
            reply = replies.message() => reply?.context("the stream ended early")?,
            _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
        };
        let sent_at = sent
            .lock()
            .expect("not poisoned")
            .remove(&reply.batch_id)
            .context("a reply to a batch never sent")?;
        latencies.push(sent_at.elapsed());
        looked_up += reply.results.len() as u64;
        window.add_permits(1);
    }
    let elapsed = started.elapsed();
    let (p50, p99) = super::percentiles(&mut latencies);
    Ok(StreamRun {
        rate: looked_up as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
    })
}

/// The real `xdr-threatintel` with the generated feed and a fresh dev PKI in `dir/certs`;
/// `loaded(ms)` is told how long its index took.
pub(super) async fn start_threatintel(
    dir: &Path,
    bin_dir: Option<&Path>,
    feeds: &Path,
    mut loaded: impl FnMut(u64),
) -> anyhow::Result<BenchServer> {
    let certs = dir.join("certs");
    xdr_mesh::pki::write_dev_pki(&certs, true)?;
    let feeds_arg = feeds.as_os_str();
    BenchServer::start(
        &bin_dir_of(bin_dir)?,
        "xdr-threatintel",
        &certs,
        &dir.join("data"),
        &[
            OsStr::new("--cybertrace-listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--feeds-dir"),
            feeds_arg,
        ],
        |event| {
            if event["message"] == "indicator index ready"
                && let Some(ms) = event["took_ms"].as_u64()
            {
                loaded(ms);
            }
        },
    )
    .await
}

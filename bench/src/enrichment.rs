//! The enrichment scenario: events with a URL and an address field, one rule mapping both,
//! against a ThreatIntel holding a generated feed. The same work in-process (both lookups and
//! the matches written into the event, on one core) against `Enrich` over mTLS through the
//! real binaries: events per second at full speed, then batch latency at half that rate.
//!
//! The load generator shares the two cores with the services, so it does as little as it can:
//! events are encoded once, batches are sent as those bytes, and answers are read only as far
//! as each event's status and match count.

use std::{
    collections::HashMap,
    ffi::OsStr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{client::Grpc, transport::Channel};
use xdr_proto::{
    codec::XdrCodec,
    pb::{
        EnrichmentRule, EnrichmentStatus, Event, FieldMapping, FieldValue, IndicatorType, TiMatch,
        enrichment_client::EnrichmentClient, field_value,
    },
    wire::WireEnrichBatch,
};
use xdr_threatintel::{index::IndicatorKind, store::now_ms};

use super::{
    dataset,
    server::{BenchServer, bin_dir, operator_tls},
    threatintel::start_threatintel,
};

const URL_FIELD: &str = "RequestUrl";
const IP_FIELD: &str = "SourceAddress";
/// Distinct events cycled through (their values repeat across batches, not within one).
const POOL: u64 = 65_536;

#[derive(clap::Args)]
pub struct Args {
    /// Indicators in the generated feed.
    #[arg(long, default_value_t = 1_000_000)]
    indicators: u64,
    /// Work folder: the feed, certificates and the servers' data.
    #[arg(long, default_value = "target/bench/enrichment")]
    dir: PathBuf,
    /// Folder with the service binaries [default: xdr-bench's own]; use release builds for figures.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Events per `Enrich` batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Batches in flight on the stream.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// How long each measurement runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Events enriched in-process.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (feeds, raw_bytes) = dataset::generated_feed(&args.dir, args.indicators)?;
    println!(
        "feed {}: {:.1} MiB, {} indicators",
        feeds.display(),
        raw_bytes as f64 / (1024.0 * 1024.0),
        args.indicators
    );
    let pool: Vec<Event> = (0..POOL).map(|k| event(args.indicators, k)).collect();
    let in_process = in_process(&feeds, &pool, args.events)?;
    println!(
        "in-process: {:.0} events/s on one core (2 lookups each)",
        in_process
    );

    let bins = bin_dir(args.bin_dir.as_deref())?;
    let mut threatintel = start_threatintel(&args.dir, Some(&bins), &feeds, |_| {}).await?;
    let certs = args.dir.join("certs");
    let mut enrichment = start_enrichment(&bins, &args.dir, &threatintel.addr).await?;
    let tls = operator_tls(&certs)?;
    let channel = xdr_mesh::channel::endpoint(&enrichment.addr, "enrichment", &tls)?
        .connect()
        .await?;
    EnrichmentClient::new(channel.clone())
        .create_rule(rule())
        .await?;
    let mut client = Grpc::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let encoded: Vec<Bytes> = pool.iter().map(|e| e.encode_to_vec().into()).collect();

    let load = Load {
        batch: args.batch,
        window: args.window,
        duration: args.duration,
    };
    let full = stream(&mut client, &encoded, &load, None).await?;
    println!(
        "Enrich over mTLS, batches of {} events, {} in flight: {:.0} events/s ({:.0}% of in-process); {:.0}% matched; {} timed out or unavailable",
        args.batch,
        args.window,
        full.rate,
        100.0 * full.rate / in_process,
        100.0 * full.matched as f64 / full.events.max(1) as f64,
        full.degraded
    );
    anyhow::ensure!(full.matched > 0, "no event came back with a match");
    let half = stream(&mut client, &encoded, &load, Some(full.rate / 2.0)).await?;
    println!(
        "at half that rate ({:.0} events/s): batch latency p50 {:.2?} p99 {:.2?}",
        half.rate, half.p50, half.p99
    );
    enrichment.stop().await?;
    threatintel.stop().await
}

/// `xdr-enrichment` from `bins`, its data under `dir`, looking values up in the threat intel
/// at `threatintel`.
pub(super) async fn start_enrichment(
    bins: &std::path::Path,
    dir: &std::path::Path,
    threatintel: &str,
) -> anyhow::Result<BenchServer> {
    BenchServer::start(
        bins,
        "xdr-enrichment",
        &dir.join("certs"),
        &dir.join("enrichment-data"),
        &[OsStr::new("--threatintel-addr"), OsStr::new(threatintel)],
        |_| {},
    )
    .await
}

fn text(value: String) -> FieldValue {
    FieldValue {
        kind: Some(field_value::Kind::Text(value)),
    }
}

pub(super) fn event(indicators: u64, k: u64) -> Event {
    Event {
        id: format!("e{k}"),
        tenant: "Shared".to_owned(),
        fields: [
            (
                URL_FIELD.to_owned(),
                text(dataset::url_value(indicators, k)),
            ),
            (IP_FIELD.to_owned(), text(dataset::ip_value(indicators, k))),
        ]
        .into(),
        ..Default::default()
    }
}

fn rule() -> EnrichmentRule {
    let mapping = |field: &str, kind: IndicatorType| FieldMapping {
        field: field.to_owned(),
        indicator_type: kind as i32,
    };
    EnrichmentRule {
        name: "bench".to_owned(),
        mapping: vec![
            mapping(URL_FIELD, IndicatorType::Url),
            mapping(IP_FIELD, IndicatorType::Ip),
        ],
        // No ceiling: the figure is the mesh's, not the rule's.
        rps: u32::MAX,
        ..Default::default()
    }
}

/// Events per second on one core doing what a rule does to an event: look both fields up and
/// write every match into it.
fn in_process(feeds: &std::path::Path, pool: &[Event], events: u64) -> anyhow::Result<f64> {
    let view = dataset::indexed(feeds)?;
    let (now, mut found) = (now_ms(), Vec::new());
    let mut matched = 0usize;
    let started = Instant::now();
    for k in 0..events {
        let mut event = pool[(k % pool.len() as u64) as usize].clone();
        for (field, kind) in [
            (URL_FIELD, IndicatorKind::Url),
            (IP_FIELD, IndicatorKind::Ip),
        ] {
            let Some(Some(field_value::Kind::Text(value))) =
                event.fields.get(field).map(|v| v.kind.clone())
            else {
                continue;
            };
            found.clear();
            view.lookup(&value, Some(kind), now, &mut found)
                .with_context(|| format!("looking up {value}"))?;
            for hit in &found {
                event.ti.push(TiMatch {
                    field: field.to_owned(),
                    value: value.clone(),
                    indicator_type: 0,
                    category: hit.category.to_owned(),
                    matched_indicator: hit.matched.to_owned(),
                    supplier: hit.supplier.to_owned(),
                    context: hit
                        .context
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                });
            }
        }
        matched += usize::from(!event.ti.is_empty());
        std::hint::black_box(&event);
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(matched > 0, "no generated event matched the feed");
    Ok(rate)
}

/// How a stream is driven: events per batch, batches in flight, for how long.
pub(super) struct Load {
    pub batch: usize,
    pub window: usize,
    pub duration: Duration,
}

pub(super) struct StreamRun {
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub events: usize,
    pub matched: usize,
    pub degraded: usize,
}

/// What the bench reads of an enriched event: its matches, undecoded, and its status.
#[derive(Clone, PartialEq, prost::Message)]
struct EventOutcome {
    #[prost(bytes = "bytes", repeated, tag = "7")]
    ti: Vec<Bytes>,
    #[prost(enumeration = "EnrichmentStatus", tag = "8")]
    enrichment_status: i32,
}

/// Streams batches for `load.duration`, `load.window` in flight, or paced to `pace` events a
/// second; times each batch from sending to its answer.
pub(super) async fn stream(
    client: &mut Grpc<Channel>,
    pool: &[Bytes],
    args: &Load,
    pace: Option<f64>,
) -> anyhow::Result<StreamRun> {
    let (batches, outbound) = mpsc::channel(args.window);
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let (window, size, duration) = (
        Arc::new(tokio::sync::Semaphore::new(args.window)),
        args.batch,
        args.duration,
    );
    client.ready().await?;
    let mut answers = client
        .streaming(
            tonic::Request::new(ReceiverStream::new(outbound)),
            tonic::codegen::http::uri::PathAndQuery::from_static("/xdr.v1.Enrichment/Enrich"),
            XdrCodec::<WireEnrichBatch, WireEnrichBatch>::default(),
        )
        .await?
        .into_inner();
    let started = Instant::now();
    let sender = {
        let (window, sent, pool) = (window.clone(), sent.clone(), pool.to_vec());
        tokio::spawn(async move {
            let interval = pace.map(|rate| Duration::from_secs_f64(size as f64 / rate));
            let mut id = 0u64;
            while started.elapsed() < duration {
                if let Some(interval) = interval {
                    tokio::time::sleep_until((started + interval * id as u32).into()).await;
                }
                let Ok(permit) = window.clone().acquire_owned().await else {
                    break;
                };
                permit.forget();
                let first = (id as usize * size) % pool.len();
                let events = (0..size)
                    .map(|j| pool[(first + j) % pool.len()].clone())
                    .collect();
                sent.lock()
                    .expect("not poisoned")
                    .insert(id, Instant::now());
                if batches
                    .send(WireEnrichBatch {
                        batch_id: id,
                        events,
                        rules: None,
                        traceparent: String::new(),
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                id += 1;
            }
            // Dropping `batches` ends the stream once every answer is in.
        })
    };
    let (mut latencies, mut events, mut matched, mut degraded) =
        (Vec::new(), 0usize, 0usize, 0usize);
    while let Some(answer) = answers.message().await? {
        let sent_at = sent
            .lock()
            .expect("not poisoned")
            .remove(&answer.batch_id)
            .context("an answer to a batch never sent")?;
        latencies.push(sent_at.elapsed());
        events += answer.events.len();
        for event in answer.events {
            let outcome = EventOutcome::decode(event)?;
            matched += usize::from(!outcome.ti.is_empty());
            degraded += usize::from(matches!(
                outcome.enrichment_status(),
                EnrichmentStatus::TimedOut | EnrichmentStatus::SourceUnavailable
            ));
        }
        window.add_permits(1);
    }
    sender.await?;
    let elapsed = started.elapsed();
    let (p50, p99) = super::percentiles(&mut latencies);
    Ok(StreamRun {
        rate: events as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
        events,
        matched,
        degraded,
    })
}

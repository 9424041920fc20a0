//! The collector scenario: events acknowledged per second through `IngestStream` (raw NDJSON,
//! 1,000-event batches) by a collector with no rule and by one with the seed's rule over a
//! generated feed, next to `Enrich` alone in the same run; then the seed's SELECT and a
//! `count() … GROUP BY` over a store prepared with millions of events.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{client::Grpc, transport::Channel};
use xdr_collector::store::{ClickHouseStore, ClickHouseTarget, EventStore, SqliteStore};
use xdr_proto::pb::{
    CollectorConfig, EnrichmentRule, Event, FieldMap, FieldMapping, FieldValue, IndicatorType,
    IngestRequest, Normalizer, SearchEventsRequest, TiMatch, cell,
    collector_client::CollectorClient, enrichment_client::EnrichmentClient, field_value,
};
use xdr_tests::clickhouse::{CLUSTER, ClickHouse};

use super::{
    cpu::CpuMeter,
    dataset,
    enrichment::{self, Load},
    server::{BenchServer, bin_dir, operator_tls},
    threatintel::start_threatintel,
};

const SEED_URL: &str = "http://fakess123bn.nu";
const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";
const GROUP_BY: &str = "SELECT DestinationPort, count() AS n FROM events GROUP BY DestinationPort ORDER BY n DESC LIMIT 10";
/// The same over the last day (a thirtieth of the prepared events): what an analyst's
/// dashboard asks.
const GROUP_BY_DAY: &str = "SELECT DestinationPort, count() AS n FROM events WHERE Timestamp > {day_ago} GROUP BY DestinationPort ORDER BY n DESC LIMIT 10";
/// Distinct events cycled through.
const POOL: u64 = 65_536;
/// Searches timed, each; the median is reported.
const SEARCHES: usize = 5;

#[derive(clap::Args)]
pub struct Args {
    /// Indicators in the generated feed.
    #[arg(long, default_value_t = 1_000_000)]
    indicators: u64,
    /// Events in the store searched (prepared once, kept in `--dir`).
    #[arg(long, default_value_t = 10_000_000)]
    stored: u64,
    /// Work folder: the feed, certificates, the servers' data, the prepared store.
    #[arg(long, default_value = "target/bench/collector")]
    dir: PathBuf,
    /// Folder with the service binaries [default: xdr-bench's own]; use release builds.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Events per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Batches in flight on a stream.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Loopback addresses for a ClickHouse shard each (Debian's clickhouse-server, started
    /// by the bench with its data in `--dir`): the same figures are then measured with the
    /// events in that two-shard cluster, in the same run.
    #[arg(long, value_delimiter = ',')]
    clickhouse_shards: Vec<String>,
    /// Measure only the ClickHouse cluster of `--clickhouse-shards`, not the embedded store.
    #[arg(long, requires = "clickhouse_shards")]
    only_clickhouse: bool,
    /// How long each ingest measurement runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (feeds, _) = dataset::generated_feed(&args.dir, args.indicators)?;
    // Named for how it was filled: stores of events spread at random over the days
    // (before the events were in time order) are not reused.
    let data = args
        .dir
        .join(format!("collector-in-time-order-{}", args.stored));
    if !args.only_clickhouse {
        prepare_store(&data, args.stored, args.indicators)?;
    }
    // The cluster lives as long as the run: its shards stop when it is dropped. The store's
    // calls block (its callers in the collector are blocking threads).
    let cluster = tokio::task::block_in_place(|| {
        (!args.clickhouse_shards.is_empty())
            .then(|| {
                let shards: Vec<&str> = args.clickhouse_shards.iter().map(String::as_str).collect();
                let cluster = ClickHouse::start(&args.dir.join("clickhouse"), &shards);
                prepare_clickhouse(&cluster, &args).map(|()| cluster)
            })
            .transpose()
    })?;

    let bins = bin_dir(args.bin_dir.as_deref())?;
    let mut threatintel = start_threatintel(&args.dir, Some(&bins), &feeds, |_| {}).await?;
    let certs = args.dir.join("certs");
    let mut enrichment = enrichment::start_enrichment(&bins, &args.dir, &threatintel.addr).await?;
    let tls = operator_tls(&certs)?;
    let enrichment_channel = xdr_mesh::channel::endpoint(&enrichment.addr, "enrichment", &tls)?
        .connect()
        .await?;
    let rule = EnrichmentClient::new(enrichment_channel.clone())
        .create_rule(seed_rule())
        .await?
        .into_inner();
    let load = Load {
        batch: args.batch,
        window: args.window,
        duration: args.duration,
    };
    let pool: Vec<Bytes> = (0..POOL)
        .map(|k| enrichment::event(args.indicators, k).encode_to_vec().into())
        .collect();
    let mut enrich_client = Grpc::new(enrichment_channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20);
    let enriched = enrichment::stream(&mut enrich_client, &pool, &load, None).await?;
    println!(
        "Enrich alone (the enrichment bench's stream, 2 lookups per event): {:.0} events/s",
        enriched.rate
    );

    let mut stores = Vec::new();
    if !args.only_clickhouse {
        stores.push(("the embedded store (SQLite)", data, Vec::new(), None));
    }
    if let Some(cluster) = &cluster {
        stores.push((
            "ClickHouse, two shards",
            args.dir
                .join(format!("collector-clickhouse-{}", args.stored)),
            vec![
                "--event-store".to_owned(),
                cluster.url(CLICKHOUSE_DATABASE),
                "--event-store-cluster".to_owned(),
                CLUSTER.to_owned(),
            ],
            Some(cluster),
        ));
    }
    for (what, data, flags, merging) in stores {
        println!("\nevents in {what}:");
        let mut extra: Vec<&OsStr> = vec![
            OsStr::new("--enrichment-addr"),
            OsStr::new(&enrichment.addr),
        ];
        extra.extend(flags.iter().map(OsStr::new));
        let mut collector =
            BenchServer::start_on(&bins, "xdr-collector", &certs, &data, &extra, |_| {}).await?;
        let channel = xdr_mesh::channel::endpoint(&collector.addr, "collector", &tls)?
            .connect()
            .await?;
        let mesh = [
            ("collector", &collector),
            ("enrichment", &enrichment),
            ("threatintel", &threatintel),
        ];
        let mut processes: Vec<(String, u32)> = (mesh.iter())
            .filter_map(|(name, server)| Some(((*name).to_owned(), server.pid()?)))
            .collect();
        for shard in merging.iter().flat_map(|cluster| &cluster.shards) {
            processes.extend(
                shard
                    .pid()
                    .map(|pid| (format!("ClickHouse {}", shard.ip), pid)),
            );
        }
        let phase = Phase {
            rule: &rule.id,
            enriched_rate: enriched.rate,
            merging,
            processes,
        };
        measure_store(&channel, &phase, &args, &load).await?;
        println!(
            "the collector's peak resident memory: {:.0} MiB",
            collector.peak_resident_bytes()? as f64 / f64::from(1 << 20)
        );
        collector.stop().await?;
    }
    enrichment.stop().await?;
    threatintel.stop().await
}

/// What the ingest phases of one store are measured with.
struct Phase<'a> {
    /// The seed's rule.
    rule: &'a str,
    /// `Enrich` alone, events/s.
    enriched_rate: f64,
    /// The store's ClickHouse cluster, whose merges are waited for.
    merging: Option<&'a ClickHouse>,
    /// The processes whose CPU time the seed rule's phase is measured by.
    processes: Vec<(String, u32)>,
}

/// Ingest with no rule and with the seed's, then the searches, through `channel`'s collector.
async fn measure_store(
    channel: &Channel,
    phase: &Phase<'_>,
    args: &Args,
    load: &Load,
) -> anyhow::Result<()> {
    let (rule, enriched_rate, merging) = (phase.rule, phase.enriched_rate, phase.merging);
    let mut collectors = CollectorClient::new(channel.clone());
    for (name, rules) in [("no-rule", vec![]), ("seed-rule", vec![rule.to_owned()])] {
        let existing = collectors
            .get_collector(xdr_proto::pb::GetCollectorRequest {
                id: name.into(),
                tenant: String::new(),
            })
            .await;
        let config = collector_config(name, rules);
        match existing {
            Ok(found) => {
                let id = found.into_inner().id;
                collectors
                    .update_collector(CollectorConfig { id, ..config })
                    .await?;
            }
            Err(_) => {
                collectors.create_collector(config).await?;
            }
        }
    }
    let payloads = raw_batches(args.indicators, args.batch);
    // Said as each phase starts, so a profiler can be pointed at one.
    println!("  ingesting through a collector with no rule…");
    let plain = ingest(channel, "no-rule", &payloads, load).await?;
    println!("  ingesting through a collector with the seed's rule…");
    let cpu = CpuMeter::start(phase.processes.iter().cloned());
    let seeded = ingest(channel, "seed-rule", &payloads, load).await?;
    println!(
        "IngestStream, batches of {} raw events, {} in flight (acknowledged: in the disk buffer; stored: searchable):",
        args.batch, args.window
    );
    println!(
        "  no rule:       acknowledged {:.0} events/s, stored {:.0} events/s (all searchable {:.1?} after the last acknowledgement)",
        plain.rate, plain.stored_rate, plain.drain
    );
    println!(
        "  the seed rule: acknowledged {:.0} events/s, stored {:.0} events/s ({:.0}% of no rule; {:.0}% of Enrich alone; all searchable {:.1?} after the last acknowledgement)",
        seeded.rate,
        seeded.stored_rate,
        100.0 * seeded.stored_rate / plain.stored_rate,
        100.0 * seeded.stored_rate / enriched_rate,
        seeded.drain
    );
    println!(
        "  batch latency (seed rule, full speed): p50 {:.2?} p99 {:.2?}",
        seeded.p50, seeded.p99
    );

    if let Some(cluster) = merging {
        // The searches are timed on a store at rest: ClickHouse merges the parts the ingest
        // made for a while after it, on the same two cores.
        let waited = tokio::task::block_in_place(|| merges_done(cluster));
        println!("  (searched once ClickHouse's merges were done: {waited:.1?} after the ingest)");
    }
    // Until the phase's events are stored and (ClickHouse) merged: the work they cost.
    println!("  the seed rule's work: {}", cpu.per_event(seeded.events));
    let mut search = CollectorClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let day_ago = (xdr_threatintel::store::now_ms() - 86_400_000).to_string();
    let group_by_day = GROUP_BY_DAY.replace("{day_ago}", &day_ago);
    // The prepared events and those the ingest runs (this one's and earlier ones') stored.
    // A count past the store's time limit (a busy machine) leaves the figures standing.
    let stored = match stored_events(&mut search).await {
        Ok(stored) => stored.to_string(),
        Err(error) => format!("? ({error})"),
    };
    for (what, sql) in [
        ("the seed's SELECT", SEED_SELECT),
        ("count() GROUP BY", GROUP_BY),
        ("count() GROUP BY over the last day", group_by_day.as_str()),
    ] {
        let mut times = Vec::new();
        let mut outcome = String::new();
        for _ in 0..SEARCHES {
            let started = Instant::now();
            let reply = search
                .search_events(SearchEventsRequest {
                    sql: sql.into(),
                    ..Default::default()
                })
                .await;
            times.push(started.elapsed());
            outcome = match reply {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    format!("{} rows", reply.events.len() + reply.rows.len())
                }
                // A search past the store's time limit is a figure too.
                Err(status) => format!("{:?}: {}", status.code(), status.message()),
            };
        }
        // The first run reads from disk or the page cache, later ones from the store's caches.
        let first = times[0];
        let (p50, _) = super::percentiles(&mut times);
        println!(
            "{what} over {stored} stored events: median {p50:.2?} of {SEARCHES}, first {first:.2?} ({outcome})"
        );
    }
    Ok(())
}

/// What the collector acknowledged over a run's streams.
#[derive(Default)]
struct Acked {
    accepted: u64,
    latencies: Vec<Duration>,
    last_id: String,
}

/// One `IngestStream` until `load.duration` from `started` is over: its failure, if it ends
/// with one.
async fn stream_once(
    client: &mut CollectorClient<Channel>,
    collector: &str,
    payloads: &[Bytes],
    load: &Load,
    started: Instant,
    acked: &mut Acked,
) -> Result<(), tonic::Status> {
    let (requests, outbound) = mpsc::channel(load.window);
    let window = Arc::new(Semaphore::new(load.window));
    let sent = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let sender = {
        let (window, sent, payloads) = (window.clone(), sent.clone(), payloads.to_vec());
        let (collector, duration) = (collector.to_owned(), load.duration);
        tokio::spawn(async move {
            let mut id = 0_u64;
            while started.elapsed() < duration {
                let Ok(permit) = window.clone().acquire_owned().await else {
                    break;
                };
                permit.forget();
                sent.lock().expect("not poisoned").push_back(Instant::now());
                let request = IngestRequest {
                    collector: collector.clone(),
                    raw: payloads[id as usize % payloads.len()].to_vec(),
                    batch_id: id,
                    ..Default::default()
                };
                if requests.send(request).await.is_err() {
                    break;
                }
                id += 1;
            }
        })
    };
    let outcome = async {
        let mut replies = client
            .ingest_stream(ReceiverStream::new(outbound))
            .await?
            .into_inner();
        while let Some(reply) = replies.message().await? {
            if reply.refused != 0 {
                return Err(tonic::Status::internal(format!(
                    "events refused: {:?}",
                    reply.errors.first()
                )));
            }
            acked.accepted += u64::from(reply.accepted);
            if let Some(id) = reply.ids.last() {
                acked.last_id.clone_from(id);
            }
            if let Some(at) = sent.lock().expect("not poisoned").pop_front() {
                acked.latencies.push(at.elapsed());
            }
            window.add_permits(1);
        }
        Ok(())
    }
    .await;
    // A failed stream's sender finds its requests' channel closed, or the window shut.
    window.close();
    sender.abort();
    outcome
}

/// How many events the store holds, as `count()` answers.
async fn stored_events(search: &mut CollectorClient<Channel>) -> anyhow::Result<i64> {
    let reply = search
        .search_events(SearchEventsRequest {
            sql: "SELECT count() FROM events".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let cell = reply
        .rows
        .first()
        .and_then(|row| row.cells.first())
        .and_then(|cell| cell.kind.clone());
    match cell {
        Some(cell::Kind::Integer(n)) => Ok(n),
        other => anyhow::bail!("count() answered {other:?}"),
    }
}

fn text(value: impl Into<String>) -> FieldValue {
    FieldValue {
        kind: Some(field_value::Kind::Text(value.into())),
    }
}

/// The seed's "Test CT enrichment" without its RPS ceiling: the figure is the mesh's.
fn seed_rule() -> EnrichmentRule {
    EnrichmentRule {
        name: format!("Test CT enrichment {}", xdr_mesh::id::new_uuid()),
        tenant: "Shared".into(),
        mapping: vec![FieldMapping {
            field: "RequestUrl".into(),
            indicator_type: IndicatorType::Url as i32,
        }],
        rps: u32::MAX,
        ..Default::default()
    }
}

pub(crate) fn collector_config(name: &str, rule_ids: Vec<String>) -> CollectorConfig {
    CollectorConfig {
        name: name.into(),
        tenant: "Main".into(),
        normalizer: Some(Normalizer {
            mapping: ["RequestUrl", "SourceAddress"]
                .map(|source| FieldMap {
                    source: source.into(),
                    ..Default::default()
                })
                .to_vec(),
            ..Default::default()
        }),
        rule_ids,
        ..Default::default()
    }
}

/// Batches of `batch` NDJSON events cycling through the generated values.
pub(crate) fn raw_batches(indicators: u64, batch: usize) -> Vec<Bytes> {
    let batches = (POOL as usize / batch).max(1);
    (0..batches)
        .map(|b| {
            let mut raw = String::new();
            for j in 0..batch {
                let k = (b * batch + j) as u64;
                raw.push_str(&format!(
                    "{{\"RequestUrl\":\"{}\",\"SourceAddress\":\"{}\"}}\n",
                    dataset::url_value(indicators, k),
                    dataset::ip_value(indicators, k)
                ));
            }
            Bytes::from(raw)
        })
        .collect()
}

pub(crate) struct IngestRun {
    /// Events acknowledged.
    events: u64,
    /// Events acknowledged a second while the stream ran (durable in the disk buffer).
    pub rate: f64,
    /// Events a second from the first sent to the last searchable in the store.
    stored_rate: f64,
    /// From the last acknowledgement to the last event searchable: the store's last load
    /// (a part of every short run's stored rate).
    drain: Duration,
    p50: Duration,
    p99: Duration,
}

/// Streams `payloads` to `collector` for `load.duration`, `load.window` batches in flight. A
/// stream the collector ends with `RESOURCE_EXHAUSTED` (its budget full: the store is
/// behind) is opened again after the hint it gives, as an agent would; what it had not
/// acknowledged is not counted.
pub(crate) async fn ingest(
    channel: &Channel,
    collector: &str,
    payloads: &[Bytes],
    load: &Load,
) -> anyhow::Result<IngestRun> {
    let mut client = CollectorClient::new(channel.clone()).max_encoding_message_size(64 << 20);
    // The collector stamps each event as it takes it, on this machine's clock: every event
    // of this run is at or after this (a second spare for the clock's steps).
    let started_ms = xdr_threatintel::store::now_ms() - 1_000;
    let started = Instant::now();
    let mut acked = Acked::default();
    let mut refusals = 0_u32;
    while started.elapsed() < load.duration {
        let Err(status) =
            stream_once(&mut client, collector, payloads, load, started, &mut acked).await
        else {
            continue;
        };
        anyhow::ensure!(
            status.code() == tonic::Code::ResourceExhausted,
            "the ingest stream failed: {status}"
        );
        refusals += 1;
        let hint = (status.metadata().get("retry-after-ms"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(hint)).await;
    }
    if refusals > 0 {
        println!(
            "  ({refusals} streams ended RESOURCE_EXHAUSTED and were opened again after the hint)"
        );
    }
    let Acked {
        accepted,
        mut latencies,
        last_id,
    } = acked;
    let acknowledged = started.elapsed();
    // The store takes batches in order: once the last is searchable, all are. Looked for
    // among this run's events only: an id is in no index, and a scan of every stored event's
    // id (some 18 M) took 1.2-1.6 s a shard, counted in the drain as if the store were slow.
    let sql =
        format!("SELECT count() FROM events WHERE Timestamp >= {started_ms} AND Id = '{last_id}'");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let found = client
            .search_events(SearchEventsRequest {
                sql: sql.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let one = found
            .rows
            .first()
            .and_then(|r| r.cells.first())
            .and_then(|c| c.kind.clone());
        if one == Some(xdr_proto::pb::cell::Kind::Integer(1)) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the store did not take the events in 10 minutes"
        );
    }
    let (p50, p99) = super::percentiles(&mut latencies);
    Ok(IngestRun {
        events: accepted,
        rate: accepted as f64 / acknowledged.as_secs_f64(),
        stored_rate: accepted as f64 / started.elapsed().as_secs_f64(),
        drain: started.elapsed() - acknowledged,
        p50,
        p99,
    })
}

/// A store of `count` events in `data` (kept between runs): generated fields, one in 10,000
/// events the seed's URL with its match, written in large batches in-process.
const THIRTY_DAYS_MS: u128 = 30 * 86_400_000;

fn prepare_store(data: &Path, count: u64, indicators: u64) -> anyhow::Result<()> {
    let done = data.join("prepared");
    if done.exists() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(data);
    std::fs::create_dir_all(data)?;
    let store = SqliteStore::open(&data.join("events.sqlite"))?;
    fill_all(&store, count, indicators)?;
    std::fs::write(done, b"")?;
    Ok(())
}

/// Waits (two minutes at most) until no shard of `cluster` merges parts; how long it waited.
fn merges_done(cluster: &ClickHouse) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let merging = (0..cluster.shards.len()).any(|shard| {
            cluster
                .query(shard, "SELECT count() FROM system.merges")
                .trim()
                != "0"
        });
        if !merging {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    started.elapsed()
}

/// The database the ClickHouse figures use.
const CLICKHOUSE_DATABASE: &str = "xdr_bench";

/// The same prepared events in the ClickHouse cluster (kept between runs in `--dir`; the
/// marker names the tables' layout — packed rows without the columns read beside them,
/// granules of 512 — so a store prepared with another one is prepared again, and holds the
/// time the events were prepared up to).
fn prepare_clickhouse(cluster: &ClickHouse, args: &Args) -> anyhow::Result<()> {
    let done = args.dir.join(format!(
        "clickhouse-prepared-packed-beside-512-{}",
        args.stored
    ));
    let prepared_until = std::fs::read_to_string(&done)
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok());
    if prepared_until.is_none() {
        // A store left from a run that stopped, or prepared another way, goes first.
        for shard in 0..cluster.shards.len() {
            cluster.query(
                shard,
                &format!("DROP DATABASE IF EXISTS {CLICKHOUSE_DATABASE}"),
            );
        }
    }
    let url = cluster.url(CLICKHOUSE_DATABASE);
    let target = ClickHouseTarget::parse(&url, Some(CLUSTER), "default", "")?;
    let state = args.dir.join("clickhouse-prepare-state");
    std::fs::create_dir_all(&state)?;
    let tables = [target.local_table(), target.lookup_table()];
    let store = ClickHouseStore::open(target, &state)?;
    match prepared_until {
        Some(until) => forget_earlier_ingests(cluster, &tables, &store, args, until),
        None => {
            let now = fill_all(&store, args.stored, args.indicators)?;
            std::fs::write(done, now.to_string())?;
            Ok(())
        }
    }
}

/// Drops what earlier runs ingested — on every shard, each day's partition from the last
/// prepared day on — and puts that day's prepared events back, so every run measures the
/// same store: piled up, earlier runs' events made each run merge and search more than the
/// one before.
/// `tables`: each server's own tables of the store (`database.table`).
fn forget_earlier_ingests(
    cluster: &ClickHouse,
    tables: &[String],
    store: &ClickHouseStore,
    args: &Args,
    prepared_until: i64,
) -> anyhow::Result<()> {
    let last_day = format!("toDate(toDateTime(intDiv({prepared_until}, 1000)))");
    for shard in 0..cluster.shards.len() {
        for table in tables {
            let (database, name) = table
                .split_once('.')
                .expect("a table named with its database");
            let partitions = cluster.query(
                shard,
                &format!(
                    "SELECT DISTINCT partition_id FROM system.parts WHERE active AND \
                     database = '{database}' AND table = '{name}' AND \
                     partition_id >= toString(toYYYYMMDD({last_day}))"
                ),
            );
            for partition in partitions.lines() {
                cluster.query(
                    shard,
                    &format!("ALTER TABLE {table} DROP PARTITION ID '{partition}'"),
                );
            }
        }
    }
    // The day's start as the shards part events into days.
    let day_start: i64 = cluster
        .query(0, &format!("SELECT toInt64(toDateTime({last_day})) * 1000"))
        .trim()
        .parse()?;
    let count = args.stored;
    // The first prepared event of that day (their times rise with `k`).
    let (mut first, mut past) = (0, count);
    while first < past {
        let middle = first + (past - first) / 2;
        if prepared_time(middle, count, prepared_until) < day_start {
            first = middle + 1;
        } else {
            past = middle;
        }
    }
    let started = Instant::now();
    fill(store, count, args.indicators, prepared_until, first)?;
    println!(
        "put back the last prepared day's {} events in {:.1?}, dropping what earlier runs \
         ingested, and waited {:.1?} for the merges after",
        count - first,
        started.elapsed(),
        merges_done(cluster),
    );
    Ok(())
}

/// Prepares a store of `count` events until now; when that is.
fn fill_all(store: &dyn EventStore, count: u64, indicators: u64) -> anyhow::Result<i64> {
    let started = Instant::now();
    let now = xdr_threatintel::store::now_ms();
    fill(store, count, indicators, now, 0)?;
    println!(
        "prepared a store of {count} events in {:.1?}",
        started.elapsed()
    );
    Ok(now)
}

/// Inserts the generated events `from..count` of a store prepared until `now`, in large
/// batches.
fn fill(
    store: &dyn EventStore,
    count: u64,
    indicators: u64,
    now: i64,
    from: u64,
) -> anyhow::Result<()> {
    const BATCH: u64 = 50_000;
    for first in (from..count).step_by(BATCH as usize) {
        let events: Vec<Event> = (first..(first + BATCH).min(count))
            .map(|k| stored_event(k, count, now, indicators))
            .collect();
        store.insert(&events)?;
    }
    Ok(())
}

/// When the `k`th of `count` events prepared until `now` happened: in time order over the
/// last 30 days (as a store fills: an insert holds a few minutes of events, not some of
/// every day).
fn prepared_time(k: u64, count: u64, now: i64) -> i64 {
    now - ((count - k) as u128 * THIRTY_DAYS_MS / u128::from(count)) as i64
}

/// The `k`th of `count` events prepared until `now`.
fn stored_event(k: u64, count: u64, now: i64, indicators: u64) -> Event {
    let seed = k.is_multiple_of(10_000);
    let url = if seed {
        SEED_URL.to_owned()
    } else {
        dataset::url_value(indicators, k)
    };
    Event {
        id: format!("prepared-{k}"),
        timestamp_ms: prepared_time(k, count, now),
        tenant: "Main".into(),
        collector: "http-input".into(),
        fields: [
            ("RequestUrl".to_owned(), text(url.clone())),
            (
                "SourceAddress".to_owned(),
                text(dataset::ip_value(indicators, k)),
            ),
            (
                "DestinationPort".to_owned(),
                FieldValue {
                    kind: Some(field_value::Kind::Integer((k % 1024) as i64)),
                },
            ),
        ]
        .into(),
        ti: if seed {
            vec![TiMatch {
                field: "RequestUrl".into(),
                value: url,
                category: "KL_BotnetCnC_URL".into(),
                matched_indicator: "fakess123bn.nu".into(),
                supplier: "Demo".into(),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        enrichment_status: 2,
        ..Default::default()
    }
}

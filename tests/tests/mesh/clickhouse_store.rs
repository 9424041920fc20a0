//! Events in a real two-shard ClickHouse cluster (`xdr_tests::clickhouse`): the SQL table
//! every engine must answer alike, the seed's story through the `Distributed` table on a
//! fresh `xdrctl up`, and a shard stopped and started in the middle of a stream with no
//! acknowledged event lost or stored twice.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use xdr_collector::store::{ClickHouseStore, ClickHouseTarget, EventStore, known_answers};
use xdr_mesh::error::{ErrorCode, ServiceError};
use xdr_proto::pb::{IngestRequest, collector_client::CollectorClient};
use xdr_tests::{
    ServiceProcess, TestPki,
    clickhouse::{CLUSTER, ClickHouse},
    client, collector, mesh_up,
};

/// Rows of the local tables of both shards.
fn rows_per_shard(cluster: &ClickHouse, table: &str) -> Vec<u64> {
    (0..cluster.shards.len())
        .map(|shard| {
            cluster
                .query(shard, &format!("SELECT count() FROM {table}"))
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

/// The store over both shards of `cluster`, database `xdr`, keeping its state in `dir`.
fn open_store(cluster: &ClickHouse, dir: &std::path::Path) -> ClickHouseStore {
    let target =
        ClickHouseTarget::parse(&cluster.url("xdr"), Some(CLUSTER), "default", "").unwrap();
    ClickHouseStore::open(target, dir).unwrap()
}

#[test]
fn the_sql_table_answers_as_the_embedded_store_does_over_two_shards() {
    let scratch = tempfile::tempdir().unwrap();
    let cluster = ClickHouse::start(scratch.path(), &["127.0.0.100", "127.0.0.101"]);
    let store = open_store(&cluster, scratch.path());
    store.load(&[&known_answers::events()], Some(7)).unwrap();
    assert_eq!(store.loaded_through().unwrap(), 7);

    let rows = rows_per_shard(&cluster, "xdr.events_local");
    assert_eq!(rows.iter().sum::<u64>(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| *r > 0), "rows on both shards: {rows:?}");
    for (sql, expected) in known_answers::CASES {
        assert_eq!(known_answers::answer(&store, sql), *expected, "{sql}");
    }

    // The same events again (a replay after a crash, as the store sees it: uncertain
    // after a start) store nothing twice.
    let reopened = open_store(&cluster, scratch.path());
    reopened.load(&[&known_answers::events()], Some(8)).unwrap();
    assert_eq!(
        rows_per_shard(&cluster, "xdr.events_local")
            .iter()
            .sum::<u64>(),
        5
    );

    // Each event's URL and source address have a lookup row on its event's shard, which a
    // search naming a value reads; the replay wrote none again.
    let lookups: u64 = rows_per_shard(&cluster, "xdr.events_lookup").iter().sum();
    assert_eq!(lookups, 10);
    for shard in 0..2 {
        let lookups = cluster.query(
            shard,
            "SELECT count() FROM xdr.events_lookup WHERE (Tenant, Timestamp) NOT IN (SELECT Tenant, Timestamp FROM xdr.events_local)",
        );
        assert_eq!(
            lookups.trim(),
            "0",
            "lookup rows without their event on shard {shard}"
        );
    }
    // A store made before the lookup table has its events' rows written when it opens.
    for shard in 0..2 {
        cluster.query(shard, "DROP TABLE xdr.events_lookup");
    }
    let upgraded = open_store(&cluster, scratch.path());
    assert_eq!(
        rows_per_shard(&cluster, "xdr.events_lookup")
            .iter()
            .sum::<u64>(),
        10
    );
    for (sql, expected) in known_answers::CASES {
        assert_eq!(known_answers::answer(&upgraded, sql), *expected, "{sql}");
    }

    // A literal that tries to end its quotes is a value, and the search runs read-only.
    for attempt in [
        "x' OR 1=1 --",
        "x') OR (1=1",
        "'; DROP TABLE xdr.events_local; --",
    ] {
        let sql = format!(
            "SELECT * FROM events WHERE Name = '{}'",
            attempt.replace('\'', "''")
        );
        assert!(known_answers::answer(&store, &sql).is_empty(), "{sql}");
    }
    assert_eq!(
        rows_per_shard(&cluster, "xdr.events_local")
            .iter()
            .sum::<u64>(),
        5
    );
    let total = || -> u64 { rows_per_shard(&cluster, "xdr.events_local").iter().sum() };
    // Retention drops the days wholly past it, on every shard.
    let mut old = known_answers::events();
    for (i, event) in old.iter_mut().enumerate() {
        event.id = format!("old{i}");
        event.timestamp_ms = 1_577_836_800_000 + i as i64; // 2020-01-01
    }
    store.load(&[&old], Some(9)).unwrap();
    assert_eq!(total(), 10);
    // Before 2025-12-31: the known events (2026-01-01 on) stay.
    assert_eq!(store.delete_older_than(1_767_139_200_000).unwrap(), 5);
    assert_eq!(total(), 5);
    // Their lookup rows went with them: those of the known events stay.
    let lookups: u64 = rows_per_shard(&cluster, "xdr.events_lookup").iter().sum();
    assert_eq!(lookups, 10);
    assert_eq!(store.delete_older_than(1_767_139_200_000).unwrap(), 0);

    // A shard whose table is gone (made anew) refuses the next load, which waits in the
    // disk buffer; the tables are made again and the load after it is stored.
    cluster.query(1, "DROP TABLE xdr.events_local");
    let mut again = known_answers::events();
    for event in &mut again {
        event.id = format!("again-{}", event.id);
    }
    let refused = store.load(&[&again], Some(10)).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unavailable, "{refused}");
    store.load(&[&again], Some(10)).unwrap();
    assert_eq!(store.loaded_through().unwrap(), 10);
    assert!(total() >= 5, "the remade shard holds its share");
    let doubled = cluster.query(
        0,
        "SELECT Id FROM xdr.events WHERE Id LIKE 'again-%' GROUP BY Id HAVING count() > 1",
    );
    assert_eq!(doubled.trim(), "", "stored twice after the refused load");

    // The first events naming a value are read from their packed rows, and read back as
    // their columns hold them: fields, extra fields and matches alike.
    let rich = known_answers::rich_event();
    store.load(&[std::slice::from_ref(&rich)], None).unwrap();
    let by_value = "SELECT * FROM events WHERE RequestUrl = 'http://rich.example/é' \
                    ORDER BY Timestamp DESC LIMIT 10";
    let by_id = "SELECT * FROM events WHERE Id = 'rich'";
    assert_eq!(
        known_answers::events_found(&store, by_value),
        std::slice::from_ref(&rich)
    );
    assert_eq!(
        known_answers::events_found(&store, by_id),
        std::slice::from_ref(&rich)
    );
    // A row whose packed row says otherwise than its columns shows which one a search read;
    // a row at the same time with another URL is no answer, whichever is read.
    cluster.query(
        0,
        "INSERT INTO xdr.events_local (Id, Timestamp, Tenant, Collector, Raw, RequestUrl, PackedRow) \
         VALUES ('columns', 1767226200000, 'Main', 'c', '', 'http://two.example/', \
         '{\"Id\":\"packed\",\"Timestamp\":1767226200000,\"Tenant\":\"Main\",\"RequestUrl\":\"http://two.example/\"}'), \
         ('another', 1767226200000, 'Main', 'c', '', 'http://three.example/', \
         '{\"Id\":\"another\",\"Timestamp\":1767226200000,\"Tenant\":\"Main\",\"RequestUrl\":\"http://three.example/\"}')",
    );
    cluster.query(
        0,
        "INSERT INTO xdr.events_lookup VALUES ('Main', 'RequestUrl', 'http://two.example/', 1767226200000)",
    );
    let two = "SELECT * FROM events WHERE RequestUrl = 'http://two.example/' ORDER BY Timestamp";
    assert_eq!(
        known_answers::answer(&store, &format!("{two} LIMIT 10")),
        ["packed"]
    );
    assert_eq!(
        known_answers::answer(&store, &format!("{two} LIMIT 1001")),
        ["columns"],
        "more than the first thousand: through the Distributed table"
    );
    // A store from before packed rows has the column added, empty in the rows it holds:
    // those are read from their columns.
    for shard in 0..2 {
        cluster.query(shard, "ALTER TABLE xdr.events_local DROP COLUMN PackedRow");
    }
    let upgraded = open_store(&cluster, scratch.path());
    assert_eq!(known_answers::events_found(&upgraded, by_value), [rich]);
    assert_eq!(
        known_answers::answer(&upgraded, &format!("{two} LIMIT 10")),
        ["columns"]
    );
}

const HOST: &str = "127.0.0.102";
const SEED_EVENT: &str = r#"{"RequestUrl":"http://fakess123bn.nu"}"#;
const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";

#[test]
fn the_seeds_story_runs_on_a_fresh_mesh_storing_into_clickhouse() {
    let home = tempfile::tempdir().unwrap();
    let cluster = ClickHouse::start(home.path(), &["127.0.0.103", "127.0.0.104"]);
    let url = cluster.url("xdr");
    let _up = mesh_up::up_with_env(
        home.path(),
        HOST,
        &[
            ("XDR_EVENT_STORE", &url),
            ("XDR_EVENT_STORE_CLUSTER", CLUSTER),
        ],
    );

    let grpcurl =
        |method: &str, request: &Value| mesh_up::collector_call(home.path(), HOST, method, request);
    let ingested = grpcurl(
        "Ingest",
        &json!({"collector": "http-input", "raw": collector::bytes(SEED_EVENT)}),
    );
    assert_eq!(ingested["accepted"], 1, "{ingested}");
    // Searchable once loaded from the disk buffer (moments after the acknowledgement).
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = grpcurl("SearchEvents", &json!({"sql": SEED_SELECT}));
        if found["events"][0].is_object() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let event = &found["events"][0];
    assert_eq!(event["id"], ingested["ids"][0], "{found}");
    assert_eq!(event["tenant"], "Main");
    assert_eq!(event["raw"], SEED_EVENT);
    assert_eq!(
        event["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE",
        "{found}"
    );
    assert_eq!(event["ti"][0]["category"], "KL_BotnetCnC_URL", "{found}");
    assert_eq!(
        event["ti"][0]["matchedIndicator"], "fakess123bn.nu",
        "{found}"
    );

    // More events spread over both shards, and every one is found through the cluster.
    let raw: String = (0..200)
        .map(|i| format!("{{\"RequestUrl\":\"http://example.com/{i}\"}}\n"))
        .collect();
    let more = grpcurl(
        "Ingest",
        &json!({"collector": "http-input", "raw": collector::bytes(&raw)}),
    );
    assert_eq!(more["accepted"], 200, "{more}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows_per_shard(&cluster, "xdr.events_local")
        .iter()
        .sum::<u64>()
        < 201
    {
        assert!(Instant::now() < deadline, "the events were not stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = rows_per_shard(&cluster, "xdr.events_local");
    assert!(rows.iter().all(|r| *r > 0), "rows on both shards: {rows:?}");
    let counted = grpcurl(
        "SearchEvents",
        &json!({"sql": "SELECT count() FROM events"}),
    );
    assert_eq!(
        counted["rows"][0]["cells"][0]["integer"], "201",
        "{counted}"
    );
}

/// Events per batch, and events acknowledged before the shard is stopped and after.
const BATCH: usize = 200;
const BEFORE_STOP: usize = 2_000;
const WHILE_STOPPED: usize = 2_000;

fn batch(number: u64) -> IngestRequest {
    collector::numbered_batch("bulk", number, BATCH)
}

#[test]
fn a_shard_stopped_mid_stream_loses_no_acknowledged_event() {
    let pki = TestPki::new();
    let mut cluster = ClickHouse::start(pki.scratch(), &["127.0.0.105", "127.0.0.106"]);
    let url = cluster.url("xdr");
    let data = pki.scratch().join("collector-data");
    let server = ServiceProcess::start_in(
        "collector",
        &pki,
        &data,
        &["--event-store", &url, "--event-store-cluster", CLUSTER],
    );
    collector::create(&pki, &server, "bulk", "Main", &["RequestUrl"], &[]);

    let acknowledged: Vec<String> = client::runtime().block_on(async {
        let channel = client::channel(&pki, "operator", &server, "collector").await;
        let mut collector = CollectorClient::new(channel);
        let (batches, to_send) = mpsc::channel(4);
        let mut replies = collector
            .ingest_stream(tokio_stream::wrappers::ReceiverStream::new(to_send))
            .await
            .expect("the stream opens")
            .into_inner();
        let mut acknowledged = Vec::new();
        let mut number = 0;
        let mut stopped_at = None;
        while acknowledged.len() < BEFORE_STOP + WHILE_STOPPED {
            batches.send(batch(number)).await.unwrap();
            number += 1;
            let reply = replies
                .message()
                .await
                .expect("acknowledged")
                .expect("open");
            assert_eq!(reply.accepted as usize, BATCH, "{:?}", reply.errors);
            acknowledged.extend(reply.ids);
            if stopped_at.is_none() && acknowledged.len() >= BEFORE_STOP {
                // Inserts in flight fail; the batches wait in the disk buffer.
                cluster.kill_shard(1);
                stopped_at = Some(acknowledged.len());
            }
        }
        // Only once an insert failed for the stopped shard is it started again.
        server.wait_for_log("the event store unavailable", |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("event store is unavailable"))
        });
        cluster.start_shard(1);
        acknowledged
    });

    let wanted = acknowledged.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = |sql: &str| -> Option<i64> {
        let outcome = collector::rpc(&pki, &server, "SearchEvents", &json!({"sql": sql}));
        let found: Value = serde_json::from_str(&outcome.stdout).ok()?;
        found["rows"][0]["cells"][0]["integer"]
            .as_str()?
            .parse()
            .ok()
    };
    while count("SELECT count() FROM events") != Some(wanted) {
        assert!(
            Instant::now() < deadline,
            "{:?} of {wanted} acknowledged events stored",
            count("SELECT count() FROM events")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        count("SELECT count(DISTINCT Id) FROM events"),
        Some(wanted),
        "no event stored twice"
    );
    let found = collector::search(&pki, &server, "SELECT Id FROM events LIMIT 10000");
    let ids: HashSet<&str> = (found["rows"].as_array().unwrap().iter())
        .map(|row| row["cells"][0]["text"].as_str().unwrap())
        .collect();
    assert!(acknowledged.iter().all(|id| ids.contains(id.as_str())));
    let rows = rows_per_shard(&cluster, "xdr.events_local");
    assert!(rows.iter().all(|r| *r > 0), "rows on both shards: {rows:?}");
}

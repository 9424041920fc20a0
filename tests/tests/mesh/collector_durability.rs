//! Acknowledged means durable: a collector killed with SIGKILL in the middle of a stream of
//! batches, started again on the same data, holds every event it acknowledged, once.

use std::{collections::HashSet, time::Duration};

use tokio::sync::mpsc;
use xdr_proto::pb::{IngestRequest, collector_client::CollectorClient};
use xdr_tests::{ServiceProcess, TestPki, client, collector};

/// Events per batch, and events acknowledged before the kill.
const BATCH: usize = 200;
const ACKNOWLEDGED_BEFORE_KILL: usize = 4000;

fn batch(number: u64) -> IngestRequest {
    collector::numbered_batch("bulk", number, BATCH)
}

#[test]
fn a_collector_killed_mid_stream_keeps_every_acknowledged_event_once() {
    let pki = TestPki::new();
    let data = pki.scratch().join("collector-data");
    let mut server = ServiceProcess::start_in("collector", &pki, &data, &[]);
    collector::create(&pki, &server, "bulk", "Main", &["RequestUrl"], &[]);

    let acknowledged: Vec<String> = client::runtime().block_on(async {
        let channel = client::channel(&pki, "operator", &server, "collector").await;
        let mut collector = CollectorClient::new(channel);
        let (batches, to_send) = mpsc::channel(4);
        tokio::spawn(async move {
            for number in 0.. {
                if batches.send(batch(number)).await.is_err() {
                    break;
                }
            }
        });
        let mut replies = collector
            .ingest_stream(tokio_stream::wrappers::ReceiverStream::new(to_send))
            .await
            .expect("the stream opens")
            .into_inner();
        let mut acknowledged = Vec::new();
        let mut killed = false;
        loop {
            match replies.message().await {
                Ok(Some(reply)) => {
                    assert_eq!(reply.accepted as usize, BATCH, "{:?}", reply.errors);
                    acknowledged.extend(reply.ids);
                    if !killed && acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL {
                        // Batches are in flight behind this one: some mid-write.
                        server.signal(libc::SIGKILL);
                        killed = true;
                    }
                }
                Ok(None) => panic!("the stream ended with OK"),
                Err(status) => {
                    assert!(killed, "the stream failed before the kill: {status}");
                    break;
                }
            }
        }
        acknowledged
    });
    assert!(!server.wait_exit(Duration::from_secs(10)).success());

    let server = ServiceProcess::start_in("collector", &pki, &data, &[]);
    let stored = collector::count(&pki, &server, "SELECT count() FROM events");
    let distinct = collector::count(&pki, &server, "SELECT count(DISTINCT Id) FROM events");
    assert_eq!(stored, distinct, "no event stored twice");
    assert!(
        stored as usize >= acknowledged.len(),
        "{stored} stored, {} acknowledged",
        acknowledged.len()
    );
    assert_eq!(
        stored as usize % BATCH,
        0,
        "batches are stored whole: {stored}"
    );
    let found = collector::search(&pki, &server, "SELECT Id FROM events LIMIT 10000");
    let ids: HashSet<&str> = (found["rows"].as_array().unwrap().iter())
        .map(|row| row["cells"][0]["text"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = (acknowledged.iter())
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged and lost: {} of {}",
        missing.len(),
        acknowledged.len()
    );
}

#[test]
fn events_past_the_retention_are_deleted_and_the_rest_kept() {
    let pki = TestPki::new();
    let data = pki.scratch().join("collector-data");
    let server = ServiceProcess::start_in("collector", &pki, &data, &[]);
    collector::create(&pki, &server, "aged", "Main", &[], &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hours_ago = |h: i64| serde_json::json!({"timestampMs": (now - h * 3_600_000).to_string()});
    let ingested = collector::ok(
        &pki,
        &server,
        "Ingest",
        &serde_json::json!({"collector": "aged", "events": [hours_ago(0), hours_ago(3), hours_ago(50)]}),
    );
    assert_eq!(ingested["accepted"], 3, "{ingested}");
    drop(server);

    // Two hours of retention: at start the two older events go.
    let server = ServiceProcess::start_in("collector", &pki, &data, &["--retention", "2h"]);
    let deleted = server.wait_for_log("the retention pass", |l| {
        l["message"] == "events past retention deleted"
    });
    assert_eq!(deleted["deleted"], 2, "{deleted}");
    assert_eq!(
        collector::count(&pki, &server, "SELECT count() FROM events"),
        1
    );
}

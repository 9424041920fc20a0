//! Two of every lookup hop: two threatintel replicas serving the same feed, two enrichment
//! replicas each using both (`--threatintel-addr A,B`), and a collector streaming through
//! both enrichment replicas (`--enrichment-addr A,B`). The enrichment replicas' stores are not
//! shared yet, so the rule is created on each under one id. One replica of each hop — the
//! ones in use — is killed in the middle of a stream: every acknowledged event is stored
//! once, and enriched.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use xdr_proto::pb::{IngestRequest, collector_client::CollectorClient};
use xdr_tests::{
    ServiceProcess, TestPki, client, collector, metrics::scrape, threatintel::start_with_demo_feed,
};

/// Events per batch (every other one a URL of the demo feed), and events acknowledged
/// before the kills and after.
const BATCH: usize = 50;
const BEFORE_KILL: usize = 1_000;
const AFTER_KILL: usize = 1_000;
const RULE_ID: &str = "0b6f3c52-6a8e-4d07-9d1e-3f2a5c7e9b10";

fn batch(number: u64) -> IngestRequest {
    let raw: String = (0..BATCH)
        .map(|i| {
            let url = if i % 2 == 0 {
                "http://fakess123.nu".to_owned()
            } else {
                format!("http://clean{number}-{i}.example")
            };
            format!("{{\"RequestUrl\":\"{url}\"}}\n")
        })
        .collect();
    IngestRequest {
        collector: "replicated".into(),
        raw: raw.into_bytes(),
        batch_id: number,
        ..Default::default()
    }
}

/// The sum of `name`'s samples on `process`'s `/metrics` (every label set).
fn counted(process: &ServiceProcess, name: &str) -> f64 {
    scrape(process.metrics_addr())
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn killing_the_replicas_in_use_mid_stream_loses_no_event_and_no_enrichment() {
    let pki = TestPki::new();
    let threatintel = [
        start_with_demo_feed(&pki, &[]),
        start_with_demo_feed(&pki, &[]),
    ];
    let threatintel_addrs = format!(
        "{},{}",
        threatintel[0].listening_addr(),
        threatintel[1].listening_addr()
    );
    let enrichment: Vec<ServiceProcess> = (0..2)
        .map(|_| {
            ServiceProcess::start_with(
                "enrichment",
                &pki,
                &["--threatintel-addr", &threatintel_addrs],
            )
        })
        .collect();
    for replica in &enrichment {
        let created = xdr_tests::enrichment::ok(
            &pki,
            replica,
            "CreateRule",
            &json!({
                "id": RULE_ID,
                "name": "Test CT enrichment",
                "tenant": "Shared",
                "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}],
                "connections": 2,
                "rps": 1000000,
            }),
        );
        assert_eq!(created["id"], RULE_ID, "{created}");
    }
    let enrichment_addrs = format!(
        "{},{}",
        enrichment[0].listening_addr(),
        enrichment[1].listening_addr()
    );
    let server =
        ServiceProcess::start_with("collector", &pki, &["--enrichment-addr", &enrichment_addrs]);
    collector::create(
        &pki,
        &server,
        "replicated",
        "Main",
        &["RequestUrl"],
        &[RULE_ID],
    );

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
        let mut killed = false;
        // Four batches in flight, so some are at the replicas when they die.
        for _ in 0..4 {
            batches.send(batch(number)).await.unwrap();
            number += 1;
        }
        while acknowledged.len() < BEFORE_KILL + AFTER_KILL {
            let reply = replies
                .message()
                .await
                .expect("acknowledged")
                .expect("open");
            assert_eq!(reply.accepted as usize, BATCH, "{:?}", reply.errors);
            acknowledged.extend(reply.ids);
            batches.send(batch(number)).await.unwrap();
            number += 1;
            if !killed && acknowledged.len() >= BEFORE_KILL {
                // The enrichment replica the collector's stream uses, and a threatintel
                // replica that answered lookups.
                let in_use = |replicas: &[ServiceProcess], metric: &str| {
                    (0..replicas.len())
                        .find(|i| counted(&replicas[*i], metric) > 0.0)
                        .expect("a replica in use")
                };
                let e = in_use(&enrichment, "xdr_enrichment_events_total");
                let t = in_use(&threatintel, "xdr_threatintel_lookups_total");
                enrichment[e].signal(libc::SIGKILL);
                threatintel[t].signal(libc::SIGKILL);
                killed = true;
            }
        }
        drop(batches);
        while let Ok(Some(reply)) = replies.message().await {
            acknowledged.extend(reply.ids);
        }
        acknowledged
    });

    let wanted = acknowledged.len() as i64;
    let count = |sql: &str| collector::count(&pki, &server, sql);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("SELECT count() FROM events") < wanted {
        assert!(
            Instant::now() < deadline,
            "acknowledged events were not stored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count("SELECT count() FROM events"), wanted);
    assert_eq!(
        count("SELECT count(DISTINCT Id) FROM events"),
        wanted,
        "none stored twice"
    );
    let not_enriched = collector::search(
        &pki,
        &server,
        "SELECT EnrichmentStatus, count() AS n FROM events WHERE EnrichmentStatus != 'COMPLETE' GROUP BY EnrichmentStatus",
    );
    assert_eq!(not_enriched["rows"], Value::Null, "{not_enriched}");
    assert_eq!(
        count("SELECT count() FROM events WHERE TI.category = 'KL_Malicious_URL'"),
        wanted / 2,
        "every demo-feed URL matched"
    );
}

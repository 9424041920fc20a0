//! A collector's "alerts" destination: the seed's event, enriched by the real threat-intel
//! path, becomes an alert carrying its observables; events without a match do not; and while
//! the playbook service is down the alert events wait in the collector's buffer — through a
//! collector restart too — and arrive once it is back.

use std::net::SocketAddr;

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki, collector, enrichment,
    playbook::{self, As},
    threatintel,
};

const ALICE: As<'static> = As::Person("alice", "Main", "tier1-analyst");

/// A free loopback port (the playbook service must come back where the collector dials).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn start_playbook(pki: &TestPki, addr: SocketAddr, data: &std::path::Path) -> ServiceProcess {
    ServiceProcess::start_in("playbook", pki, data, &["--listen", &addr.to_string()])
}

fn start_collector(
    pki: &TestPki,
    data: &std::path::Path,
    enrichment: &str,
    playbook: SocketAddr,
) -> ServiceProcess {
    ServiceProcess::start_in(
        "collector",
        pki,
        data,
        &[
            "--enrichment-addr",
            enrichment,
            "--playbook-addr",
            &playbook.to_string(),
        ],
    )
}

fn alerts(pki: &TestPki, server: &ServiceProcess) -> Vec<Value> {
    playbook::ok(pki, server, ALICE, "ListAlerts", &json!({}))["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_matched_event_becomes_an_alert_and_waits_while_the_playbook_service_is_down() {
    let pki = TestPki::new();
    let ti = threatintel::start_with_demo_feed(&pki, &[]);
    let enrichment = enrichment::start(&pki, &ti.listening_addr().to_string());
    let rule = enrichment::ok(
        &pki,
        &enrichment,
        "CreateRule",
        &json!({"name": "urls", "tenant": "Main", "timeoutSeconds": 5,
                "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}]}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let playbook_addr = free_addr();
    let playbook_data = pki.scratch().join("playbook-data");
    let collector_data = pki.scratch().join("collector-data");
    let enrichment_addr = enrichment.listening_addr().to_string();
    let playbook = start_playbook(&pki, playbook_addr, &playbook_data);
    let server = start_collector(&pki, &collector_data, &enrichment_addr, playbook_addr);
    collector::ok(
        &pki,
        &server,
        "CreateCollector",
        &json!({"name": "web", "tenant": "Main", "ruleIds": [rule],
                "normalizer": {"mapping": [{"source": "RequestUrl"}, {"source": "DestinationAddress"}]},
                "destinations": [{"kind": "DESTINATION_KIND_STORAGE"}, {"kind": "DESTINATION_KIND_ALERTS"}]}),
    );

    // The seed's event matches; the other does not and raises nothing.
    let raw = "{\"RequestUrl\":\"http://fakess123bn.nu\",\"DestinationAddress\":\"198.51.100.4\"}\n{\"RequestUrl\":\"http://harmless.example/\"}\n";
    let ingested = collector::ingest_raw(&pki, &server, "web", raw);
    assert_eq!(ingested["accepted"], 2, "{ingested}");
    playbook.wait_for_log("the alert", |l| l["message"] == "events raised");
    let raised = alerts(&pki, &playbook);
    assert_eq!(raised.len(), 1, "{raised:?}");
    let alert = &raised[0];
    assert_eq!(alert["eventIds"], json!([ingested["ids"][0]]), "{alert}");
    assert_eq!(
        alert["severity"], "SEVERITY_CRITICAL",
        "KL_BotnetCnC_URL: {alert}"
    );
    let observables: Vec<(&str, &str)> = alert["observables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap(),
                o["category"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        observables,
        [
            ("http://fakess123bn.nu", "KL_BotnetCnC_URL"),
            ("fakess123bn.nu", "KL_BotnetCnC_URL"),
            ("198.51.100.4", ""),
        ]
    );

    // The playbook service stops: events still go in, their alert events wait.
    drop(playbook);
    let waiting = "{\"RequestUrl\":\"http://fakess123bn.nu\"}\n";
    let second = collector::ingest_raw(&pki, &server, "web", waiting);
    assert_eq!(second["accepted"], 1, "{second}");
    server.wait_for_log("a failed delivery", |l| {
        l["message"] == "alerts not delivered yet"
    });
    // ...through a restart of the collector as well.
    drop(server);
    let server = start_collector(&pki, &collector_data, &enrichment_addr, playbook_addr);
    server.wait_for_log("the kept events", |l| {
        l["message"] == "alert events kept from before the stop are sent again"
    });
    let playbook = start_playbook(&pki, playbook_addr, &playbook_data);
    playbook.wait_for_log("the late alert's event", |l| {
        l["message"] == "events raised"
    });
    let alert = &alerts(&pki, &playbook)[0];
    // Same matches within the window: the event joined the open alert.
    assert_eq!(alert["eventCount"], "2", "{alert}");
    assert_eq!(alert["eventIds"][1], second["ids"][0], "{alert}");
    // The collector counts the delivery once the answer is back: look until it has (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let scraped = xdr_tests::metrics::scrape(server.metrics_addr());
        let delivered = xdr_tests::metrics::sample(
            &scraped,
            "xdr_collector_alert_events_total",
            &["outcome=\"delivered\""],
        );
        if delivered == Some(1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted collector sent the kept one: {scraped}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

//! Events into a collector through grpcurl: raw JSON split by the delimiter and normalized,
//! malformed events refused alone with their index and reason, the linked rules (and only
//! they) enriching each batch — a change of links from the next batch — and threat intel
//! stopping mid-stream costing the events their TI, never the events.

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki, collector,
    enrichment::{self},
    threatintel,
};

/// The collector service streaming through `enrichment`.
fn start_collector(pki: &TestPki, enrichment: &ServiceProcess) -> ServiceProcess {
    let addr = enrichment.listening_addr().to_string();
    ServiceProcess::start_with("collector", pki, &["--enrichment-addr", &addr])
}

/// A rule in Main looking `field` up as `kind` (URL, IP), answering within 5 s.
fn rule(pki: &TestPki, enrichment: &ServiceProcess, name: &str, field: &str, kind: &str) -> String {
    let created = enrichment::ok(
        pki,
        enrichment,
        "CreateRule",
        &json!({"name": name, "tenant": "Main", "mapping": [{"field": field, "indicatorType": kind}],
                "timeoutSeconds": 5}),
    );
    created["id"].as_str().unwrap().to_owned()
}

/// The rule "urls" in Main: `RequestUrl` looked up as a URL.
fn url_rule(pki: &TestPki, enrichment: &ServiceProcess) -> String {
    rule(pki, enrichment, "urls", "RequestUrl", "INDICATOR_TYPE_URL")
}

/// The collector "web" in Main, mapping `RequestUrl` and `SourceUserName`, linking `rule`.
fn web_collector(pki: &TestPki, server: &ServiceProcess, rule: &str) {
    collector::create(
        pki,
        server,
        "web",
        "Main",
        &["RequestUrl", "SourceUserName"],
        &[rule],
    );
}

/// The seed's event, marked with `marker` in `SourceUserName` to be found again.
fn seed_event(marker: &str) -> String {
    format!("{{\"RequestUrl\":\"http://fakess123bn.nu\",\"SourceUserName\":\"{marker}\"}}")
}

fn fields_matched(event: &Value) -> Vec<String> {
    let mut fields: Vec<String> = (event["ti"].as_array().into_iter().flatten())
        .map(|m| m["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    fields
}

/// The one event whose `SourceUserName` is `marker`.
fn event_marked(pki: &TestPki, server: &ServiceProcess, marker: &str) -> Value {
    let found = collector::search(
        pki,
        server,
        &format!("SELECT * FROM events WHERE SourceUserName = '{marker}'"),
    );
    let events = found["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "one event marked {marker}: {found}");
    events[0].clone()
}

#[test]
fn a_batch_with_malformed_events_keeps_the_good_ones_and_says_why_for_each() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    let created = collector::ok(
        &pki,
        &server,
        "CreateCollector",
        &json!({"name": "strict", "maxEventBytes": 200, "normalizer": {"mapping": [
            {"source": "url", "field": "RequestUrl"}, {"source": "port", "field": "SourcePort"}
        ]}}),
    );
    assert_eq!(created["tenant"], "Main", "{created}");
    let big = format!("{{\"url\":\"{}\"}}", "x".repeat(300));
    let raw = format!(
        "{{\"url\":\"http://a.example/\",\"port\":\"8080\"}}\nnot json\n{{\"port\":\"https\"}}\n{big}\n[1]\n{{\"url\":\"http://b.example/\"}}\n"
    );
    let reply = collector::ok(
        &pki,
        &server,
        "Ingest",
        &json!({"collector": "strict", "raw": collector::bytes(&raw), "batchId": "9",
                "events": [{"tenant": "Acme", "fields": {}}, {"fields": {"Name": {"text": "structured"}}}]}),
    );
    assert_eq!(reply["accepted"], 3, "{reply}");
    assert_eq!(reply["refused"], 5, "{reply}");
    assert_eq!(reply["batchId"], "9", "{reply}");
    let errors: Vec<(u64, String)> = (reply["errors"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["index"].as_u64().unwrap_or(0),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let says = [
        (1, "not JSON"),
        (2, "SourcePort: `\"https\"` is not an integer"),
        (3, "the collector takes events of at most 200"),
        (4, "not a JSON object"),
        (6, "the collector's events belong to `Main`"),
    ];
    assert_eq!(errors.len(), says.len(), "{errors:?}");
    for ((index, reason), (want_index, want)) in errors.iter().zip(says) {
        assert_eq!(*index, want_index, "{errors:?}");
        assert!(
            reason.contains(want),
            "event {index}: {reason:?} should say {want:?}"
        );
    }

    let stored = collector::search(
        &pki,
        &server,
        "SELECT RequestUrl, SourcePort, Name FROM events ORDER BY RequestUrl",
    );
    assert_eq!(stored["rows"].as_array().unwrap().len(), 3, "{stored}");
    assert_eq!(
        stored["rows"][1]["cells"][0]["text"], "http://a.example/",
        "{stored}"
    );
    assert_eq!(
        stored["rows"][1]["cells"][1]["integer"], "8080",
        "typed by the schema: {stored}"
    );

    let stats = collector::ok(&pki, &server, "Stats", &json!({}));
    let strict = &stats["collectors"][0];
    assert_eq!(strict["collectorName"], "strict", "{stats}");
    assert_eq!(
        (
            &strict["received"],
            &strict["accepted"],
            &strict["refused"],
            &strict["notEnriched"]
        ),
        (&json!("8"), &json!("3"), &json!("5"), &json!("3")),
        "{stats}"
    );

    let scraped = xdr_tests::metrics::scrape(server.metrics_addr());
    let events = |outcome: &str| {
        xdr_tests::metrics::sample(
            &scraped,
            "xdr_collector_events_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
    };
    assert_eq!(
        (events("refused"), events("not_enriched")),
        (Some(5.0), Some(3.0)),
        "{scraped}"
    );

    // A request naming no collector, or one that is not there, is refused whole.
    let nameless = collector::rpc(
        &pki,
        &server,
        "Ingest",
        &json!({"raw": collector::bytes("{}")}),
    );
    assert!(
        nameless.stderr.contains("InvalidArgument") && nameless.stderr.contains("collector: empty"),
        "{}",
        nameless.stderr
    );
    let unknown = collector::rpc(
        &pki,
        &server,
        "Ingest",
        &json!({"collector": "nope", "raw": collector::bytes("{}")}),
    );
    assert!(unknown.stderr.contains("NotFound"), "{}", unknown.stderr);
}

#[test]
fn only_the_linked_rules_enrich_and_a_change_of_links_applies_to_the_next_batch() {
    let pki = TestPki::new();
    let threatintel = threatintel::start_with_demo_feed(&pki, &[]);
    let enrichment = enrichment::start(&pki, &threatintel.listening_addr().to_string());
    let urls = url_rule(&pki, &enrichment);
    let ips = rule(
        &pki,
        &enrichment,
        "ips",
        "SourceAddress",
        "INDICATOR_TYPE_IP",
    );
    let server = start_collector(&pki, &enrichment);
    let id = collector::create(
        &pki,
        &server,
        "fw",
        "Main",
        &["RequestUrl", "SourceAddress", "SourceUserName"],
        &[&urls],
    );
    let event = |marker: &str| {
        format!(
            "{{\"RequestUrl\":\"http://fakess123bn.nu\",\"SourceAddress\":\"192.0.2.1\",\"SourceUserName\":\"{marker}\"}}"
        )
    };
    collector::ingest_raw(&pki, &server, "fw", &event("first"));
    let first = event_marked(&pki, &server, "first");
    assert_eq!(fields_matched(&first), ["RequestUrl"], "{first}");
    assert_eq!(
        first["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE",
        "{first}"
    );

    collector::ok(
        &pki,
        &server,
        "UpdateCollector",
        &json!({"id": id, "name": "fw", "normalizer": {"mapping": [
            {"source": "RequestUrl"}, {"source": "SourceAddress"}, {"source": "SourceUserName"}
        ]}, "ruleIds": [ips, urls]}),
    );
    collector::ingest_raw(&pki, &server, "fw", &event("second"));
    let second = event_marked(&pki, &server, "second");
    assert_eq!(
        fields_matched(&second),
        ["RequestUrl", "SourceAddress"],
        "{second}"
    );

    // A rule that is not there, or another tenant's, is refused when linked.
    let missing = collector::rpc(
        &pki,
        &server,
        "UpdateCollector",
        &json!({"id": id, "name": "fw", "ruleIds": [urls, "no-such-rule"]}),
    );
    assert!(
        missing.stderr.contains("InvalidArgument")
            && missing.stderr.contains("rule_ids[1]: no enrichment rule"),
        "{}",
        missing.stderr
    );
    let acme = enrichment::ok(
        &pki,
        &enrichment,
        "CreateRule",
        &json!({"name": "acme urls", "tenant": "Acme", "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}]}),
    );
    let foreign = collector::rpc(
        &pki,
        &server,
        "UpdateCollector",
        &json!({"id": id, "name": "fw", "ruleIds": [acme["id"]]}),
    );
    assert!(
        foreign.stderr.contains("belongs to tenant `Acme`"),
        "{}",
        foreign.stderr
    );
}

#[test]
fn threat_intel_stopping_mid_stream_costs_events_their_ti_never_the_events() {
    let pki = TestPki::new();
    // A fixed port, so the threat intel started again is where enrichment dials.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let data = pki.scratch().join("threatintel-data");
    let threatintel =
        || threatintel::start_with_demo_feed_in(&pki, Some(&data), &["--listen", &listen]);
    let first_threatintel = threatintel();
    let enrichment = enrichment::start(&pki, &listen);
    let urls = url_rule(&pki, &enrichment);
    let server = start_collector(&pki, &enrichment);
    web_collector(&pki, &server, &urls);

    collector::ingest_raw(&pki, &server, "web", &seed_event("before"));
    assert_eq!(
        event_marked(&pki, &server, "before")["ti"][0]["category"],
        "KL_BotnetCnC_URL"
    );

    drop(first_threatintel);
    let during = collector::ingest_raw(&pki, &server, "web", &seed_event("during"));
    assert_eq!(during["accepted"], 1, "{during}");
    let during = event_marked(&pki, &server, "during");
    assert_eq!(
        during["enrichmentStatus"], "ENRICHMENT_STATUS_SOURCE_UNAVAILABLE",
        "{during}"
    );
    assert!(during["ti"].is_null(), "{during}");

    // Back without restarting enrichment or the collector: TI again, within a bounded
    // number of batches (the enrichment service redials its source).
    let _second_threatintel = threatintel();
    let mut after = Value::Null;
    for attempt in 0..40 {
        let marker = format!("after-{attempt}");
        collector::ingest_raw(&pki, &server, "web", &seed_event(&marker));
        after = event_marked(&pki, &server, &marker);
        if after["enrichmentStatus"] == "ENRICHMENT_STATUS_COMPLETE" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(after["ti"][0]["category"], "KL_BotnetCnC_URL", "{after}");
    let stored = collector::count(&pki, &server, "SELECT count() FROM events");
    let statuses = collector::search(
        &pki,
        &server,
        "SELECT EnrichmentStatus, count() AS n FROM events GROUP BY EnrichmentStatus ORDER BY EnrichmentStatus",
    );
    assert!(stored >= 3, "every event kept: {statuses}");
    assert_eq!(
        statuses["rows"][0]["cells"][0]["text"], "COMPLETE",
        "{statuses}"
    );
}

#[test]
fn with_the_enrichment_service_down_events_are_stored_marked_and_counted() {
    let pki = TestPki::new();
    let threatintel = threatintel::start_with_demo_feed(&pki, &[]);
    let enrichment = enrichment::start(&pki, &threatintel.listening_addr().to_string());
    let urls = url_rule(&pki, &enrichment);
    let server = start_collector(&pki, &enrichment);
    web_collector(&pki, &server, &urls);
    drop(enrichment);

    let reply = collector::ingest_raw(&pki, &server, "web", &seed_event("alone"));
    assert_eq!(reply["accepted"], 1, "{reply}");
    let stored = event_marked(&pki, &server, "alone");
    assert_eq!(
        stored["enrichmentStatus"], "ENRICHMENT_STATUS_SOURCE_UNAVAILABLE",
        "{stored}"
    );
    let stats = collector::ok(&pki, &server, "Stats", &json!({}));
    assert_eq!(stats["collectors"][0]["sourceUnavailable"], "1", "{stats}");
}

#[test]
fn an_enrichment_service_that_never_answers_costs_a_batch_the_collectors_wait_and_no_more() {
    let pki = TestPki::new();
    let threatintel = threatintel::start_with_demo_feed(&pki, &[]);
    let enrichment = enrichment::start(&pki, &threatintel.listening_addr().to_string());
    let urls = url_rule(&pki, &enrichment);
    let data = pki.scratch().join("collector-data");
    let enrichment_addr = enrichment.listening_addr().to_string();
    let server = ServiceProcess::start_in(
        "collector",
        &pki,
        &data,
        &["--enrichment-addr", &enrichment_addr],
    );
    web_collector(&pki, &server, &urls);
    drop(server);

    // Takes connections and never says a word: not even TLS.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept() {
            held.push(socket);
        }
    });
    let server = ServiceProcess::start_in(
        "collector",
        &pki,
        &data,
        &[
            "--enrichment-addr",
            &hole_addr,
            "--enrichment-timeout",
            "1s",
        ],
    );
    let reply = collector::ingest_raw(&pki, &server, "web", &seed_event("waited"));
    assert_eq!(reply["accepted"], 1, "{reply}");
    let stored = event_marked(&pki, &server, "waited");
    assert_eq!(
        stored["enrichmentStatus"], "ENRICHMENT_STATUS_TIMED_OUT",
        "{stored}"
    );
}

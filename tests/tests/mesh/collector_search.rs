//! The collector's store and search through grpcurl: structured events in with `Ingest`
//! (already carrying their TI matches: no enrichment here), found again with the seed's
//! SELECT verbatim, aggregates as typed rows, refused SQL naming what it refused, and one
//! tenant never seeing another's events.

use serde_json::{Value, json};
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, collector, grpcurl::Outcome};

fn collector_rpc(
    pki: &TestPki,
    server: &ServiceProcess,
    cert: &str,
    headers: &[(&str, &str)],
    rpc: &str,
    request: &Value,
) -> Outcome {
    collector::rpc_as(pki, server, cert, headers, rpc, request)
}

fn ok(outcome: Outcome) -> Value {
    assert!(outcome.success, "{}", outcome.stderr);
    serde_json::from_str(&outcome.stdout).unwrap()
}

fn url_event(url: &str) -> Value {
    json!({"fields": {"RequestUrl": {"text": url}}, "ti": [{
        "field": "RequestUrl", "value": url, "category": "KL_Malicious_URL",
        "matchedIndicator": "fakess123bn.nu", "supplier": "Demo"
    }]})
}

#[test]
fn the_seed_select_finds_an_ingested_event_and_only_the_callers_tenant() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    collector::create(&pki, &server, "main-in", "Main", &[], &[]);
    collector::create(&pki, &server, "acme-in", "Acme", &[], &[]);
    let ingested = ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "Ingest",
        &json!({"collector": "main-in", "events": [url_event("http://fakess123bn.nu")]}),
    ));
    assert_eq!(ingested["accepted"], 1, "{ingested}");
    let acme_id = &collector::ok(
        &pki,
        &server,
        "GetCollector",
        &json!({"id": "acme-in", "tenant": "Acme"}),
    )["id"];
    ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "Ingest",
        &json!({"collector": acme_id, "events": [url_event("http://fakess123bn.nu")]}),
    ));

    let seed = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";
    let found = ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "SearchEvents",
        &json!({"sql": seed}),
    ));
    let events = found["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "the operator searches Main: {found}");
    assert_eq!(events[0]["id"], ingested["ids"][0]);
    assert_eq!(events[0]["ti"][0]["category"], "KL_Malicious_URL");
    assert_eq!(events[0]["ti"][0]["matchedIndicator"], "fakess123bn.nu");

    // One event by its id, within the caller's tenant only.
    let id = ingested["ids"][0].as_str().unwrap();
    let got = ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "GetEvent",
        &json!({"id": id}),
    ));
    assert_eq!(got["ti"][0]["category"], "KL_Malicious_URL", "{got}");
    let elsewhere = collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "GetEvent",
        &json!({"id": id, "tenant": "Acme"}),
    );
    assert!(
        elsewhere.stderr.contains("NotFound"),
        "{}",
        elsewhere.stderr
    );

    // A person of Acme counts Acme's events only, as typed rows.
    let acme = [
        ("x-xdr-user", "ann"),
        ("x-xdr-tenant", "Acme"),
        ("x-xdr-role", "tier1-analyst"),
    ];
    let counted = ok(collector_rpc(
        &pki,
        &server,
        "gateway",
        &acme,
        "SearchEvents",
        &json!({"sql": "SELECT count() AS n FROM events WHERE Tenant = 'Main' OR 1 = 1"}),
    ));
    assert_eq!(counted["columns"], json!(["n"]), "{counted}");
    assert_eq!(counted["rows"][0]["cells"][0]["integer"], "1", "{counted}");
    let elsewhere = collector_rpc(
        &pki,
        &server,
        "gateway",
        &acme,
        "SearchEvents",
        &json!({"sql": seed, "tenant": "Main"}),
    );
    assert!(
        elsewhere.stderr.contains("PermissionDenied"),
        "{}",
        elsewhere.stderr
    );
}

#[test]
fn refused_sql_names_what_it_refused_and_runs_nothing() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    collector::create(&pki, &server, "main-in", "Main", &[], &[]);
    ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "Ingest",
        &json!({"collector": "main-in", "events": [url_event("http://a.example/")]}),
    ));
    for (sql, says) in [
        ("DELETE FROM events", "only SELECT"),
        ("DROP TABLE events", "only SELECT"),
        ("ATTACH DATABASE '/tmp/x' AS x", "only SELECT"),
        ("SELECT * FROM events; DROP TABLE events", "2 statements"),
        ("SELECT * FROM sqlite_master", "not searchable"),
        ("SELECT * FROM system.tables", "not searchable"),
        ("SELECT * FROM events WHERE Nope = 1", "no column"),
        (
            "SELECT * FROM events WHERE \"RequestUrl\"\"; DROP TABLE events; --\" = 'x'",
            "no column",
        ),
        (
            "SELECT * FROM events WHERE load_extension('x') = 1",
            "no function",
        ),
    ] {
        let refused = collector_rpc(
            &pki,
            &server,
            "operator",
            &[],
            "SearchEvents",
            &json!({"sql": sql}),
        );
        assert!(
            refused.stderr.contains("InvalidArgument") && refused.stderr.contains(says),
            "{sql}: {}",
            refused.stderr
        );
    }
    // Quotes inside a literal are the literal's: no row has that text, and nothing else ran.
    let injected = ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "SearchEvents",
        &json!({"sql": "SELECT * FROM events WHERE RequestUrl = 'x'' OR 1=1 --'"}),
    ));
    assert_eq!(injected, json!({}), "no event matched the literal");
    // The event is still there, once.
    let counted = ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "SearchEvents",
        &json!({"sql": "SELECT count() FROM events"}),
    ));
    assert_eq!(counted["rows"][0]["cells"][0]["integer"], "1", "{counted}");
}

#[test]
fn an_answer_past_one_message_comes_whole_through_the_stream() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    collector::create(&pki, &server, "main-in", "Main", &[], &[]);
    // 300 events of 20 KB: 6 MB, more than one gRPC message holds by default.
    for batch in 0..6 {
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"raw": format!("{batch}-{i} {}", "x".repeat(20_000))}))
            .collect();
        let request = json!({"collector": "main-in", "events": events}).to_string();
        let sent = Grpcurl::new(&pki, Cert::Named("operator"))
            .stream(&request)
            .ok(server.listening_addr(), &["xdr.v1.Collector/Ingest"]);
        assert!(sent.contains("\"accepted\": 50"), "{sent}");
    }
    let sql = json!({"sql": "SELECT * FROM events LIMIT 1000"}).to_string();
    let whole = Grpcurl::new(&pki, Cert::Named("operator"))
        .data(&sql)
        .call(server.listening_addr(), &["xdr.v1.Collector/SearchEvents"]);
    assert!(
        whole.stderr.contains("ResourceExhausted") && whole.stderr.contains("SearchEventsStream"),
        "{}",
        whole.stderr
    );
    let streamed = Grpcurl::new(&pki, Cert::Named("operator")).data(&sql).ok(
        server.listening_addr(),
        &["xdr.v1.Collector/SearchEventsStream"],
    );
    let pieces: Vec<Value> = serde_json::Deserializer::from_str(&streamed)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert!(pieces.len() >= 6, "{} pieces", pieces.len());
    let events: usize = pieces
        .iter()
        .map(|p| p["events"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(events, 300);

    // Refused SQL ends the stream with the checker's error before any piece.
    let refused = Grpcurl::new(&pki, Cert::Named("operator"))
        .data(&json!({"sql": "DELETE FROM events"}).to_string())
        .call(
            server.listening_addr(),
            &["xdr.v1.Collector/SearchEventsStream"],
        );
    assert!(
        refused.stderr.contains("InvalidArgument"),
        "{}",
        refused.stderr
    );
}

//! The collector's store and search through grpcurl: events in with `Ingest`, found again
//! with the seed's SELECT verbatim, aggregates as typed rows, refused SQL naming what it
//! refused, and one tenant never seeing another's events. (Enrichment on the way in is the
//! rest of the collector issue.)

use serde_json::{Value, json};
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, grpcurl::Outcome};

fn collector_rpc(
    pki: &TestPki,
    server: &ServiceProcess,
    cert: &str,
    headers: &[(&str, &str)],
    rpc: &str,
    request: &Value,
) -> Outcome {
    let mut grpcurl = Grpcurl::new(pki, Cert::Named(cert)).data(&request.to_string());
    for (name, value) in headers {
        grpcurl = grpcurl.header(name, value);
    }
    grpcurl.call(
        server.listening_addr(),
        &[&format!("xdr.v1.Collector/{rpc}")],
    )
}

fn ok(outcome: Outcome) -> Value {
    assert!(outcome.success, "{}", outcome.stderr);
    serde_json::from_str(&outcome.stdout).unwrap()
}

fn url_event(url: &str, tenant: &str) -> Value {
    json!({"tenant": tenant, "fields": {"RequestUrl": {"text": url}}, "ti": [{
        "field": "RequestUrl", "value": url, "category": "KL_Malicious_URL",
        "matchedIndicator": "fakess123bn.nu", "supplier": "Demo"
    }]})
}

#[test]
fn the_seed_select_finds_an_ingested_event_and_only_the_callers_tenant() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    let ingested = ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "Ingest",
        &json!({"events": [
            url_event("http://fakess123bn.nu", "Main"),
            url_event("http://fakess123bn.nu", "Acme"),
        ]}),
    ));
    assert_eq!(ingested["ids"].as_array().unwrap().len(), 2, "{ingested}");

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
    ok(collector_rpc(
        &pki,
        &server,
        "operator",
        &[],
        "Ingest",
        &json!({"events": [url_event("http://a.example/", "Main")]}),
    ));
    for (sql, says) in [
        ("DELETE FROM events", "only SELECT"),
        ("SELECT * FROM events; DROP TABLE events", "2 statements"),
        ("SELECT * FROM sqlite_master", "not searchable"),
        ("SELECT * FROM events WHERE Nope = 1", "no column"),
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

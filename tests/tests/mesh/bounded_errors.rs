//! An error names what was wrong with a request without repeating it whole: a 300 KB value
//! echoed back makes a status that gRPC clients refuse as oversized metadata, so the caller
//! would see RESOURCE_EXHAUSTED instead of the real error. Sent with the real grpcurl.

use serde_json::json;
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki};

const HUGE: usize = 300_000;

/// Calls `rpc` with `request` (through stdin: the value is longer than an argument may be)
/// and returns grpcurl's stderr, checking the call failed.
fn refused(
    pki: &TestPki,
    server: &ServiceProcess,
    rpc: &str,
    request: serde_json::Value,
) -> String {
    let outcome = Grpcurl::new(pki, Cert::Named("operator"))
        .stream(&request.to_string())
        .call(server.listening_addr(), &[rpc]);
    assert!(!outcome.success, "{rpc} was accepted");
    assert!(
        outcome.stderr.len() < 2048,
        "{rpc}: a {} byte error",
        outcome.stderr.len()
    );
    outcome.stderr
}

#[test]
fn an_unknown_id_of_300_kb_is_not_found_with_a_short_message() {
    let pki = TestPki::new();
    let server =
        ServiceProcess::start_with("enrichment", &pki, &["--threatintel-addr", "127.0.0.1:9"]);
    let stderr = refused(
        &pki,
        &server,
        "xdr.v1.Enrichment/GetRule",
        json!({"id": "x".repeat(HUGE)}),
    );
    assert!(stderr.contains("NotFound"), "{stderr}");
    assert!(stderr.contains("(300000 bytes)"), "{stderr}");
    let stderr = refused(
        &pki,
        &server,
        "xdr.v1.Enrichment/CreateRule",
        json!({"name": "r", "tenant": "t".repeat(HUGE),
               "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}]}),
    );
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("tenant: 300000 characters"),
        "{stderr}"
    );
}

#[test]
fn a_long_supplier_or_value_is_refused_with_a_short_message() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    let stderr = refused(
        &pki,
        &server,
        "xdr.v1.ThreatIntel/RemoveIndicators",
        json!({"supplier": "s".repeat(HUGE), "objects": [{"value": "192.0.2.1"}]}),
    );
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("supplier"),
        "{stderr}"
    );
    let stderr = refused(
        &pki,
        &server,
        "xdr.v1.ThreatIntel/Lookup",
        json!({"objects": [{"value": format!("http://{}", "a".repeat(8000)), "type": "INDICATOR_TYPE_IP"}]}),
    );
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("objects[0]"),
        "{stderr}"
    );
}

//! Per-method allow lists: a valid mesh certificate is not enough; its identity must be on
//! the list of the method it calls.

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, pki};

#[test]
fn identity_not_on_the_allow_list_gets_permission_denied() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    let addr = server.listening_addr();

    // The collector may not change indicators.
    let denied = Grpcurl::new(&pki, Cert::Named("collector"))
        .data("{}")
        .call(addr, &["xdr.v1.ThreatIntel/AddIndicators"]);
    assert!(!denied.success);
    assert!(
        denied.stderr.contains("Code: PermissionDenied"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("spiffe://xdr.local/collector"),
        "the refusal names the caller: {}",
        denied.stderr
    );
    let logged = server.wait_for_log("the denial", |l| l["message"] == "permission denied");
    assert!(
        logged["reason"]
            .as_str()
            .unwrap()
            .contains("spiffe://xdr.local/collector"),
        "{logged}"
    );

    // The same method passes the check for operators.
    let added = Grpcurl::new(&pki, Cert::Named("operator"))
        .data("{}")
        .ok(addr, &["xdr.v1.ThreatIntel/AddIndicators"]);
    let added: serde_json::Value = serde_json::from_str(&added).unwrap();
    assert_eq!(
        added,
        serde_json::json!({}),
        "nothing to add, nothing added"
    );
    // Lookups are open to the enrichment service.
    let looked_up = Grpcurl::new(&pki, Cert::Named("enrichment"))
        .data("{}")
        .ok(addr, &["xdr.v1.ThreatIntel/Lookup"]);
    let reply: serde_json::Value = serde_json::from_str(&looked_up).unwrap();
    assert_eq!(reply, serde_json::json!({}), "no objects, no results");
}

#[test]
fn certificate_without_mesh_identity_gets_permission_denied() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    let addr = server.listening_addr();
    let denied = Grpcurl::new(&pki, Cert::Named(pki::NO_IDENTITY))
        .data("{}")
        .call(addr, &["xdr.v1.Collector/Ingest"]);
    // grpcurl asks reflection first, which is refused the same way.
    assert!(!denied.success);
    assert!(
        denied.stderr.contains("PermissionDenied"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.stderr.contains("no spiffe://xdr.local/ URI SAN"),
        "{}",
        denied.stderr
    );
}

#[test]
fn ping_reports_how_the_server_sees_its_caller() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("playbook", &pki);
    let reply = Grpcurl::new(&pki, Cert::Named("gateway"))
        .data("{}")
        .ok(server.listening_addr(), &["xdr.v1.Diagnostics/Ping"]);
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["service"], "playbook");
    assert_eq!(reply["caller"], "spiffe://xdr.local/gateway");
}

//! Every gRPC service, asked by grpcurl with the operator certificate: `list` shows exactly
//! its services, `describe` resolves every one of them and shows the service's RPCs, and
//! health answers SERVING.

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki};

fn lists_describes_and_reports_serving(service: &str, grpc_service: &str, rpc: &str) {
    let pki = TestPki::new();
    let server = ServiceProcess::start(service, &pki);
    let addr = server.listening_addr();
    let operator = || Grpcurl::new(&pki, Cert::Named("operator"));

    let listed = operator().ok(addr, &["list"]);
    let listed: Vec<&str> = listed.lines().collect();
    for expected in [grpc_service, "grpc.health.v1.Health", "xdr.v1.Diagnostics"] {
        assert!(
            listed.contains(&expected),
            "{service}: `list` lacks {expected}: {listed:?}"
        );
    }
    let foreign: Vec<_> = listed
        .iter()
        .filter(|s| s.starts_with("xdr.v1.") && **s != grpc_service && **s != "xdr.v1.Diagnostics")
        .collect();
    assert!(
        foreign.is_empty(),
        "{service} advertises services it does not serve: {foreign:?}"
    );

    // Every name `list` gives resolves: `describe` with no symbol describes them all.
    let everything = operator().ok(addr, &["describe"]);
    for name in &listed {
        assert!(
            everything.contains(&format!("{name} is a service")),
            "{service}: `describe` lacks {name}:\n{everything}"
        );
    }

    let described = operator().ok(addr, &["describe", grpc_service]);
    assert!(
        described.contains(&format!("rpc {rpc} (")),
        "{service}: describe lacks {rpc}:\n{described}"
    );

    for checked in ["", grpc_service] {
        let request = format!(r#"{{"service": "{checked}"}}"#);
        let health = operator()
            .data(&request)
            .ok(addr, &["grpc.health.v1.Health/Check"]);
        assert!(
            health.contains(r#""status": "SERVING""#),
            "{service} health of {checked:?}: {health}"
        );
    }
}

#[test]
fn collector_lists_describes_and_reports_serving() {
    lists_describes_and_reports_serving("collector", "xdr.v1.Collector", "Ingest");
}

#[test]
fn enrichment_lists_describes_and_reports_serving() {
    lists_describes_and_reports_serving("enrichment", "xdr.v1.Enrichment", "Enrich");
}

#[test]
fn threatintel_lists_describes_and_reports_serving() {
    lists_describes_and_reports_serving("threatintel", "xdr.v1.ThreatIntel", "LookupStream");
}

#[test]
fn playbook_lists_describes_and_reports_serving() {
    lists_describes_and_reports_serving("playbook", "xdr.v1.Playbook", "LaunchPlaybook");
}

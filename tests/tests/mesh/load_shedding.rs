//! Beyond `--concurrency-limit` calls in progress, a server refuses at once with
//! RESOURCE_EXHAUSTED instead of queueing without bound, and serves again when load drops.
//! A stream counts until it ends: grpcurl keeps its reflection stream open while it calls,
//! so one grpcurl call in flight holds two slots.

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, grpcurl::ping_in_flight};

#[test]
fn calls_beyond_the_concurrency_limit_are_shed_with_resource_exhausted() {
    let pki = TestPki::new();
    let server = ServiceProcess::start_with("playbook", &pki, &["--concurrency-limit", "2"]);
    let addr = server.listening_addr();
    let busy = ping_in_flight(&pki, &server, 1500);

    let shed = Grpcurl::new(&pki, Cert::Named("operator"))
        .data("{}")
        .call(addr, &["xdr.v1.Diagnostics/Ping"]);
    assert!(
        !shed.success,
        "a call beyond the limit was served: {}",
        shed.stdout
    );
    assert!(shed.stderr.contains("ResourceExhausted"), "{}", shed.stderr);

    assert!(
        busy.join().expect("the grpcurl thread").success,
        "the call holding the slot was cut"
    );
    let served = Grpcurl::new(&pki, Cert::Named("operator"))
        .data("{}")
        .ok(addr, &["xdr.v1.Diagnostics/Ping"]);
    assert!(served.contains("playbook"), "{served}");
}

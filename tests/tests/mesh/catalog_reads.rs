//! Reading rules, filters and resources answers from the catalog's last published snapshot:
//! a change in progress — here a resource of 400,000 entries being saved — does not hold a
//! read back (reads used to wait for the writer's lock on an async worker).

use serde_json::json;
use xdr_tests::{
    Cert, Grpcurl, ServiceProcess, TestPki,
    enrichment::{ok, rpc},
};

#[test]
fn a_read_does_not_wait_for_a_change_in_progress() {
    let pki = TestPki::new();
    let server = ServiceProcess::start_with(
        "enrichment",
        &pki,
        &[
            "--threatintel-addr",
            "127.0.0.1:9",
            "--log",
            "info,xdr_enrichment=debug",
        ],
    );
    let rule = ok(
        &pki,
        &server,
        "CreateRule",
        &json!({"name": "Read me", "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}]}),
    );
    let entries: Vec<_> = (0..400_000)
        .map(|i| json!({"key": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)}))
        .collect();
    let big = json!({"name": "Big list", "kind": "RESOURCE_KIND_ACTIVE_LIST", "entries": entries});
    let addr = server.listening_addr();
    let saving_pki = &pki;
    std::thread::scope(|scope| {
        let saving = scope.spawn(move || {
            Grpcurl::new(saving_pki, Cert::Named("operator"))
                // The reply is the resource, entries and all.
                .max_reply_bytes(64 << 20)
                .stream(&big.to_string())
                .call(addr, &["xdr.v1.Enrichment/CreateResource"])
        });
        server.wait_for_log("the save holding the writer", |l| {
            l["message"] == "catalog change begins" && l["rpc"] == "CreateResource"
        });
        let read = rpc(&pki, &server, "GetRule", &json!({"id": rule["id"]}));
        assert!(read.success, "{}", read.stderr);
        assert!(
            !saving.is_finished(),
            "the read was answered only after the change: it waited for it"
        );
        let saved = saving.join().unwrap();
        assert!(saved.success, "{}", saved.stderr);
        assert!(saved.stdout.contains("Big list"), "the change went through");
    });
}

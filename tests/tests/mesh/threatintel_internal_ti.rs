//! Internal TI: analysts add and remove indicators at run time; false positives suppress
//! every supplier; SearchIndicator shows everything known; all of it survives a restart.

use std::{path::Path, time::Duration};

use serde_json::json;
use xdr_tests::{
    Cert, Grpcurl, ServiceProcess, TestPki,
    threatintel::{call, matches, start_with_demo_feed_in},
};

fn start(pki: &TestPki, data: &Path) -> ServiceProcess {
    start_with_demo_feed_in(pki, Some(data), &[])
}

#[test]
fn analysts_indicators_match_suppress_and_survive_a_restart() {
    let pki = TestPki::new();
    let data = pki.scratch().join("threatintel-data");
    let mut server = start(&pki, &data);

    let added = call(
        &pki,
        &server,
        "AddIndicators",
        &json!({ "indicators": [
            { "value": "http://Insider.Example/exfil" },
            { "value": "192.0.2.1", "supplier": "FalsePositive" },
            { "value": "44d88612fea8a8f36de82e1278abb02f", "category": "KL_InternalTI_Hash_MD5", "context": { "ticket": "INC-42" } },
        ]}),
    );
    assert_eq!(added["added"], 3, "{added}");
    assert_eq!(
        matches(&pki, &server, "insider.example/exfil"),
        ["InternalTI/KL_InternalTI_URL"]
    );
    assert!(
        matches(&pki, &server, "192.0.2.1").is_empty(),
        "the false positive suppresses the demo feed"
    );
    assert_eq!(
        matches(&pki, &server, "44D88612FEA8A8F36DE82E1278ABB02F"),
        [
            "Demo/KL_Malicious_Hash_MD5",
            "InternalTI/KL_InternalTI_Hash_MD5"
        ]
    );

    let search = call(
        &pki,
        &server,
        "SearchIndicator",
        &json!({ "object": { "value": "192.0.2.1" } }),
    );
    let mut known: Vec<&str> = search["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["supplier"].as_str().unwrap())
        .collect();
    known.sort();
    assert_eq!(known, ["Demo", "FalsePositive"], "{search}");

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let server = start(&pki, &data);
    assert_eq!(
        matches(&pki, &server, "http://insider.example/exfil"),
        ["InternalTI/KL_InternalTI_URL"]
    );
    assert!(matches(&pki, &server, "192.0.2.1").is_empty());

    let removed = call(
        &pki,
        &server,
        "RemoveIndicators",
        &json!({ "supplier": "FalsePositive", "objects": [{ "value": "192.0.2.1" }] }),
    );
    assert_eq!(removed["removed"], 1, "{removed}");
    assert_eq!(
        matches(&pki, &server, "192.0.2.1"),
        ["Demo/KL_IP_Reputation"]
    );
}

#[test]
fn bad_runtime_indicators_are_refused_naming_the_field() {
    let pki = TestPki::new();
    let server = start(&pki, &pki.scratch().join("data"));
    let cases = [
        (
            json!({ "indicators": [{ "value": "evil.example", "supplier": "Demo" }] }),
            "indicators[0].supplier: `Demo` is fed from files",
        ),
        (
            json!({ "indicators": [{ "value": "192.0.2.3" }, { "value": "0.0.0.0/0" }] }),
            "indicators[1].value",
        ),
        (
            json!({ "indicators": [{ "value": "abc", "type": "INDICATOR_TYPE_HASH" }] }),
            "indicators[0].value: `abc` is not a file hash",
        ),
    ];
    for (request, expected) in cases {
        let refused = Grpcurl::new(&pki, Cert::Named("operator"))
            .data(&request.to_string())
            .call(
                server.listening_addr(),
                &["xdr.v1.ThreatIntel/AddIndicators"],
            );
        assert!(
            refused.stderr.contains("Code: InvalidArgument") && refused.stderr.contains(expected),
            "{request}: {}",
            refused.stderr
        );
    }
    let stats = call(&pki, &server, "Stats", &json!({}));
    let by_supplier = stats["indicatorsBySupplier"].as_array().unwrap();
    assert!(
        !by_supplier.iter().any(|s| s["key"] == "InternalTI"),
        "a refused request adds nothing: {stats}"
    );
}

#[test]
fn supplier_settings_apply_and_persist() {
    let pki = TestPki::new();
    let data = pki.scratch().join("data");
    let mut server = start(&pki, &data);
    let upserted = call(
        &pki,
        &server,
        "UpsertSupplier",
        &json!({ "supplier": { "name": "Demo", "confidence": 40, "retentionMinutes": 0 } }),
    );
    assert_eq!(upserted["confidence"], 40);
    let refused = Grpcurl::new(&pki, Cert::Named("operator"))
        .data(r#"{"supplier": {"name": "Demo", "confidence": 101}}"#)
        .call(
            server.listening_addr(),
            &["xdr.v1.ThreatIntel/UpsertSupplier"],
        );
    assert!(
        refused.stderr.contains("supplier.confidence"),
        "{}",
        refused.stderr
    );

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let server = start(&pki, &data);
    let suppliers = call(&pki, &server, "ListSuppliers", &json!({}));
    let demo = suppliers["suppliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Demo")
        .cloned()
        .unwrap();
    assert_eq!(demo["confidence"], 40, "{suppliers}");
}

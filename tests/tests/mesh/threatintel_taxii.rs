//! TAXII 2.1 suppliers: the service polls a real TAXII server (OASIS's medallion, pages of
//! two objects) for STIX objects made by OASIS's stix2 library, follows the pages, asks only
//! for what was added since, drops a revoked indicator, reports bad credentials and a server
//! that went away, and keeps its records through both.

use std::{process::Command, time::Duration};

use serde_json::Value;
use xdr_tests::{
    ServiceProcess, TestPki,
    compose::eventually,
    paths,
    taxii::{COLLECTION, Medallion},
    threatintel::{call, matches, python_output},
};

/// The server's loopback address, this test's alone.
const TAXII_IP: &str = "127.0.0.131";
/// How long a poll's effect may take to show: polls are a second apart.
const POLLED: Duration = Duration::from_secs(30);

/// Two batches of objects, one JSON array a line: indicators of three kinds, one whose
/// pattern joins values with AND, and a malware object; then the first indicator revoked
/// and a new one.
const MAKE_OBJECTS: &str = r#"
import json, time
from datetime import datetime, timedelta, timezone
import stix2

now = datetime.now(timezone.utc)
def indicator(**properties):
    return stix2.Indicator(pattern_type="stix", valid_from=now - timedelta(days=1), **properties)

evil = indicator(name="Evil", pattern="[url:value = 'http://evil-taxii.example/a']",
                 indicator_types=["malicious-activity"])
first = [
    evil,
    indicator(name="C2", pattern="[ipv4-addr:value = '198.51.100.201']"),
    indicator(name="Phish", pattern="[domain-name:value = 'phish-taxii.example']",
              indicator_types=["phishing"]),
    indicator(name="Both", pattern="[ipv4-addr:value = '198.51.100.210' AND ipv4-addr:value = '198.51.100.211']"),
    stix2.Malware(name="Dropper", is_family=False),
]
time.sleep(0.01)
second = [evil.revoke(), indicator(name="Late", pattern="[ipv4-addr:value = '198.51.100.202']")]
for batch in (first, second):
    print(json.dumps([json.loads(o.serialize()) for o in batch]))
"#;

/// The supplier `name`'s status in `ListSuppliers`.
fn status(pki: &TestPki, server: &ServiceProcess, name: &str) -> Value {
    let reply = call(pki, server, "ListSuppliers", &serde_json::json!({}));
    reply["statuses"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[test]
fn a_taxii_collection_is_polled_page_by_page_and_its_changes_follow() {
    let pki = TestPki::new();
    let batches = python_output("stix2 makes objects", MAKE_OBJECTS, &[]);
    let batches: Vec<&str> = batches.lines().collect();
    let mut taxii = Medallion::start(
        &pki.scratch().join("medallion"),
        TAXII_IP,
        &[("feeds", "s3cret")],
        2,
    );
    taxii.add(batches[0]);

    let data = pki.scratch().join("threatintel-data");
    let credentials = data.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(
        credentials.join("cti.toml"),
        "user = \"feeds\"\npassword = \"s3cret\"\n",
    )
    .unwrap();
    std::fs::write(
        credentials.join("wrong.toml"),
        "user = \"feeds\"\npassword = \"not-it\"\n",
    )
    .unwrap();
    let suppliers = pki.scratch().join("suppliers.toml");
    let api_root = taxii.api_root();
    std::fs::write(
        &suppliers,
        format!(
            "[[taxii]]\nsupplier = \"Cti\"\napi_root = \"{api_root}\"\ncollection = \"{COLLECTION}\"\n\
             credentials = \"cti\"\npoll_interval = \"1s\"\n\n\
             [[taxii]]\nsupplier = \"Wrong\"\napi_root = \"{api_root}\"\ncollection = \"{COLLECTION}\"\n\
             credentials = \"wrong\"\npoll_interval = \"1s\"\n"
        ),
    )
    .unwrap();
    let server = ServiceProcess::start_in(
        "threatintel",
        &pki,
        &data,
        &["--suppliers", suppliers.to_str().unwrap()],
    );

    // Five objects in pages of two: the third page holds the last indicator.
    eventually("the first batch matches", POLLED, || {
        matches(&pki, &server, "http://phish-taxii.example/") == ["Cti/KL_Phishing_URL"]
    });
    assert_eq!(
        matches(&pki, &server, "http://evil-taxii.example/a"),
        ["Cti/KL_Malicious_URL"]
    );
    assert_eq!(
        matches(&pki, &server, "198.51.100.201"),
        ["Cti/KL_IP_Reputation"]
    );
    assert!(matches(&pki, &server, "198.51.100.210").is_empty());
    let cti = status(&pki, &server, "Cti");
    assert_eq!(cti["kind"], "taxii", "{cti}");
    assert_eq!(cti["records"], "3", "{cti}");
    assert_eq!(
        cti["skippedByReason"],
        serde_json::json!([{"key": "pattern with AND", "count": "1"}]),
        "{cti}"
    );
    assert!(
        cti["source"].as_str().unwrap().starts_with(&api_root) && cti.get("lastError").is_none(),
        "{cti}"
    );

    eventually("the wrong credentials are reported", POLLED, || {
        status(&pki, &server, "Wrong")["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("refused the credentials (HTTP 401)"))
    });
    server.wait_for_log("the failed poll's alert", |line| {
        line["message"] == "poll failed; the previous records stay" && line["supplier"] == "Wrong"
    });
    assert!(
        !server
            .log_lines()
            .iter()
            .any(|line| line.contains("not-it")),
        "a password was logged"
    );

    // Only what was added since: the revoked version replaces the indicator.
    taxii.add(batches[1]);
    eventually("the second batch matches", POLLED, || {
        matches(&pki, &server, "198.51.100.202") == ["Cti/KL_IP_Reputation"]
    });
    assert!(matches(&pki, &server, "http://evil-taxii.example/a").is_empty());
    let cti = status(&pki, &server, "Cti");
    assert_eq!(cti["records"], "3", "{cti}");
    let state = std::fs::read_to_string(data.join("remote-feeds/Cti.taxii-state")).unwrap();
    assert!(
        state.starts_with("20"),
        "the poll keeps where it ended: {state}"
    );

    // The server goes away: the error is reported, the records stay.
    taxii.kill();
    eventually("the lost server is reported", POLLED, || {
        status(&pki, &server, "Cti")["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable"))
    });
    assert_eq!(
        matches(&pki, &server, "198.51.100.202"),
        ["Cti/KL_IP_Reputation"]
    );

    let stats = call(&pki, &server, "Stats", &serde_json::json!({}));
    assert_eq!(stats["suppliersFailing"], "2", "{stats}");
    assert_eq!(
        stats["skippedByReason"],
        serde_json::json!([
            {"key": "pattern with AND", "count": "1"},
            {"key": "revoked", "count": "1"}
        ]),
        "{stats}"
    );

    // `xdrctl ti suppliers` shows the same.
    let shown = Command::new(paths::binary("xdrctl"))
        .args(["ti", "suppliers", "--home"])
        .arg(pki.scratch())
        .args(["--addr", &server.listening_addr().to_string()])
        .output()
        .expect("xdrctl runs");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let cti_line = text
        .lines()
        .find(|l| l.starts_with("Cti  "))
        .unwrap_or_default();
    assert!(
        cti_line.starts_with("Cti  taxii  3  2 (1 pattern with AND, 1 revoked)  20")
            && cti_line.contains("unreachable"),
        "{text}"
    );
}

/// The second server's loopback address.
const ADDED_TAXII_IP: &str = "127.0.0.133";

/// One indicator, as a JSON array.
const ONE_INDICATOR: &str = r#"
import json
import stix2
print(json.dumps([json.loads(stix2.Indicator(
    pattern_type="stix", pattern="[ipv4-addr:value = '198.51.100.231']").serialize())]))
"#;

fn upsert(
    pki: &TestPki,
    server: &ServiceProcess,
    cert: &str,
    source: Value,
) -> xdr_tests::grpcurl::Outcome {
    xdr_tests::Grpcurl::new(pki, xdr_tests::Cert::Named(cert))
        .data(&serde_json::json!({ "supplier": { "name": "Added", "confidence": 80, "source": source } }).to_string())
        .call(server.listening_addr(), &["xdr.v1.ThreatIntel/UpsertSupplier"])
}

#[test]
fn an_operator_adds_a_taxii_supplier_over_the_api_and_it_is_polled_across_restarts() {
    let pki = TestPki::new();
    let indicator = python_output("stix2 makes an indicator", ONE_INDICATOR, &[]);
    let taxii = Medallion::start(
        &pki.scratch().join("medallion"),
        ADDED_TAXII_IP,
        &[("feeds", "s3cret")],
        100,
    );
    taxii.add(indicator.trim());
    let data = pki.scratch().join("threatintel-data");
    std::fs::create_dir_all(data.join("credentials")).unwrap();
    std::fs::write(
        data.join("credentials/cti.toml"),
        "user = \"feeds\"\npassword = \"s3cret\"\n",
    )
    .unwrap();
    let mut server = ServiceProcess::start_in("threatintel", &pki, &data, &[]);
    let source = serde_json::json!({
        "kind": "taxii", "url": taxii.api_root(), "collection": COLLECTION,
        "credentials": "cti", "pollInterval": "1s"
    });

    // Only a Main administrator or the operator; credentials by name only.
    let denied = upsert(&pki, &server, "collector", source.clone());
    assert!(
        denied.stderr.contains("Code: PermissionDenied"),
        "{}",
        denied.stderr
    );
    let mut by_path = source.clone();
    by_path["credentials"] = "../../etc/passwd".into();
    let refused = upsert(&pki, &server, "operator", by_path);
    assert!(
        refused.stderr.contains("Code: InvalidArgument")
            && refused.stderr.contains(
                "supplier.source: supplier Added: `../../etc/passwd`: a credentials name is"
            ),
        "{}",
        refused.stderr
    );
    let mut unknown = source.clone();
    unknown["kind"] = "ftp".into();
    let refused = upsert(&pki, &server, "operator", unknown);
    assert!(
        refused.stderr.contains("supplier.source.kind"),
        "{}",
        refused.stderr
    );

    let added = upsert(&pki, &server, "operator", source);
    assert!(added.success, "{}", added.stderr);
    eventually("the added supplier's indicator matches", POLLED, || {
        matches(&pki, &server, "198.51.100.231") == ["Added/KL_IP_Reputation"]
    });

    // Persisted: a restart polls it again.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let server = ServiceProcess::start_in("threatintel", &pki, &data, &[]);
    eventually("the restarted service polls it", POLLED, || {
        status(&pki, &server, "Added")["lastSuccessMs"]
            .as_str()
            .is_some()
    });
    assert_eq!(
        matches(&pki, &server, "198.51.100.231"),
        ["Added/KL_IP_Reputation"]
    );

    // `none` stops polling and forgets what was fetched.
    let removed = upsert(
        &pki,
        &server,
        "operator",
        serde_json::json!({ "kind": "none" }),
    );
    assert!(removed.success, "{}", removed.stderr);
    assert!(matches(&pki, &server, "198.51.100.231").is_empty());
    assert_eq!(status(&pki, &server, "Added"), Value::Null);
}

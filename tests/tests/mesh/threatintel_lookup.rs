//! ThreatIntel lookups through grpcurl: the demo feed answers the seeds' test indicators in
//! every spelling, malformed values are refused by item, and streamed batches are each
//! answered with their id.

use serde_json::Value;
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, threatintel::start_with_demo_feed};

fn lookup(pki: &TestPki, server: &ServiceProcess, values: &[&str]) -> Vec<Value> {
    let objects: Vec<Value> = values
        .iter()
        .map(|v| serde_json::json!({ "value": v }))
        .collect();
    let request = serde_json::json!({ "objects": objects }).to_string();
    let reply = Grpcurl::new(pki, Cert::Named("enrichment"))
        .data(&request)
        .ok(server.listening_addr(), &["xdr.v1.ThreatIntel/Lookup"]);
    let reply: Value = serde_json::from_str(&reply).unwrap();
    reply["results"].as_array().unwrap().clone()
}

#[test]
fn the_demo_feed_answers_the_seed_indicators_in_any_spelling() {
    let pki = TestPki::new();
    let server = start_with_demo_feed(&pki, &[]);
    let results = lookup(
        &pki,
        &server,
        &[
            "http://fakess123.nu",
            "HTTPS://WWW.FAKESS123.NU:443/#x",
            "http://example.com/testpage/login.html",
            "192.0.2.1",
            "198.51.100.77",
            "44D88612FEA8A8F36DE82E1278ABB02F",
            "http://unknown.example/",
        ],
    );
    let first = |i: usize| &results[i]["matches"][0];
    assert_eq!(first(0)["category"], "KL_Malicious_URL");
    assert_eq!(first(0)["matchedIndicator"], "fakess123.nu");
    assert_eq!(first(0)["supplier"], "Demo");
    assert_eq!(first(0)["context"]["threat"], "Demo malicious URL");
    assert_eq!(first(0)["indicatorType"], "INDICATOR_TYPE_URL");
    assert_eq!(first(1)["matchedIndicator"], "fakess123.nu");
    assert_eq!(first(2)["matchedIndicator"], "example.com/testpage/*");
    assert_eq!(first(3)["category"], "KL_IP_Reputation");
    assert_eq!(first(4)["matchedIndicator"], "198.51.100.0/24");
    assert_eq!(first(5)["category"], "KL_Malicious_Hash_MD5");
    assert_eq!(
        results[6],
        serde_json::json!({}),
        "no match is an empty answer, not an error"
    );
}

#[test]
fn malformed_values_are_refused_naming_the_item_and_the_service_stays_up() {
    let pki = TestPki::new();
    let server = start_with_demo_feed(&pki, &[]);
    let addr = server.listening_addr();
    let cases = [
        (
            r#"{"objects":[{"value":"192.0.2.1"},{"value":""}]}"#,
            "objects[1]: empty value",
        ),
        (
            r#"{"objects":[{"value":"zz","type":"INDICATOR_TYPE_HASH"}]}"#,
            "objects[0]: `zz` is not a file hash",
        ),
        (
            r#"{"objects":[{"value":"10.0.0.0/8","type":"INDICATOR_TYPE_IP"}]}"#,
            "is not an IP address",
        ),
        (
            r#"{"objects":[{"value":"http://exa mple.com/","type":"INDICATOR_TYPE_URL"}]}"#,
            "is not a URL",
        ),
    ];
    for (request, expected) in cases {
        let refused = Grpcurl::new(&pki, Cert::Named("operator"))
            .data(request)
            .call(addr, &["xdr.v1.ThreatIntel/Lookup"]);
        assert!(
            refused.stderr.contains("Code: InvalidArgument"),
            "{request}: {}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains(expected),
            "{request}: {}",
            refused.stderr
        );
    }
    let oversized = format!(r#"{{"objects":[{{"value":"{}"}}]}}"#, "a".repeat(9000));
    let refused = Grpcurl::new(&pki, Cert::Named("operator"))
        .data(&oversized)
        .call(addr, &["xdr.v1.ThreatIntel/Lookup"]);
    assert!(
        refused.stderr.contains("longer than 8192"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        lookup(&pki, &server, &["192.0.2.1"])[0]["matches"][0]["category"],
        "KL_IP_Reputation"
    );
}

#[test]
fn lookup_stream_answers_each_batch_with_its_id() {
    let pki = TestPki::new();
    let server = start_with_demo_feed(&pki, &[]);
    let batches = r#"
        {"batchId": "1", "objects": [{"value": "http://fakess123bn.nu"}]}
        {"batchId": "2", "objects": [{"value": "8.8.8.8"}, {"value": "not a value"}]}
        {"batchId": "3", "objects": [{"value": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"}]}
    "#;
    let out = Grpcurl::new(&pki, Cert::Named("enrichment"))
        .stream(batches)
        .ok(
            server.listening_addr(),
            &["xdr.v1.ThreatIntel/LookupStream"],
        );
    let replies: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let by_id = |id: &str| {
        replies
            .iter()
            .find(|r| r["batchId"] == id)
            .unwrap_or_else(|| panic!("no reply for batch {id}: {out}"))
    };
    assert_eq!(replies.len(), 3, "{out}");
    assert_eq!(
        by_id("1")["results"][0]["matches"][0]["category"],
        "KL_BotnetCnC_URL"
    );
    assert_eq!(by_id("2")["results"][0], serde_json::json!({}));
    assert!(
        by_id("2")["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not an IP, URL, domain or hash"),
        "{out}"
    );
    assert_eq!(
        by_id("3")["results"][0]["matches"][0]["category"],
        "KL_Malicious_Hash_SHA256"
    );
}

/// The mesh's JSON codec (`xdr_proto::json`) and grpcurl's map a real reply alike: reading
/// grpcurl's JSON and writing it again gives the same document. Matches carry nested
/// messages, maps, enums and repeated fields.
#[test]
fn the_mesh_json_codec_agrees_with_grpcurl() {
    use xdr_proto::{json, pb::LookupReply};
    let pki = TestPki::new();
    let server = start_with_demo_feed(&pki, &[]);
    let reply = Grpcurl::new(&pki, Cert::Named("operator"))
        .data(r#"{"objects": [{"value": "http://fakess123.nu"}, {"value": "192.0.2.1"}]}"#)
        .ok(server.listening_addr(), &["xdr.v1.ThreatIntel/Lookup"]);
    let grpcurls: Value = serde_json::from_str(&reply).unwrap();
    assert!(
        grpcurls["results"][0]["matches"][0]["context"].is_object(),
        "{grpcurls}"
    );
    let decoded: LookupReply = json::from_json("xdr.v1.LookupReply", &reply).unwrap();
    let ours: Value =
        serde_json::from_str(&json::to_json("xdr.v1.LookupReply", &decoded).unwrap()).unwrap();
    assert_eq!(ours, grpcurls);
}

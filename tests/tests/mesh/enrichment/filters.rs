//! Saved filters and resources selecting the events a rule takes.

use serde_json::{Value, json};
use xdr_tests::threatintel::start_with_demo_feed;
use xdr_tests::{
    TestPki,
    enrichment::{enrich, ok, rpc},
};

use super::{event, seed_rule, start_enrichment};

#[test]
fn saved_filters_select_events_and_refuse_cycles_and_deletion_in_use() {
    let pki = TestPki::new();
    let threatintel = start_with_demo_feed(&pki, &[]);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    let only_fakess = json!({"name": "Fakess only", "root": {"condition": {
        "left": {"field": "RequestUrl"},
        "operator": "OPERATOR_CONTAINS",
        "right": [{"constant": {"text": "FAKESS"}}],
        "ignoreCase": true
    }}});
    let filter = ok(&pki, &server, "CreateFilter", &only_fakess);
    let filter_id = filter["id"].as_str().unwrap().to_owned();
    let mut rule = seed_rule();
    rule["filterId"] = json!(filter_id);
    ok(&pki, &server, "CreateRule", &rule);
    let answers = enrich(
        &pki,
        &server,
        &[json!({"batchId": "1", "events": [
            event("e1", Some("http://fakess123.nu")),
            event("e2", Some("http://example.org/")),
        ]})],
    );
    let events = answers[0]["events"].as_array().unwrap();
    assert_eq!(events[0]["ti"][0]["category"], "KL_Malicious_URL");
    assert_eq!(
        events[1]["enrichmentStatus"],
        "ENRICHMENT_STATUS_NOT_ENRICHED"
    );

    // A second filter that uses the first; then the first made to use the second.
    let outer = ok(
        &pki,
        &server,
        "CreateFilter",
        &json!({"name": "Outer", "root": {"filterId": filter_id}}),
    );
    let mut looped = only_fakess.clone();
    looped["id"] = json!(filter_id);
    looped["root"] = json!({"filterId": outer["id"]});
    let refused = rpc(&pki, &server, "UpdateFilter", &looped);
    assert!(
        refused.stderr.contains("InvalidArgument") && refused.stderr.contains("cycle"),
        "{}",
        refused.stderr
    );
    let in_use = rpc(&pki, &server, "DeleteFilter", &json!({"id": filter_id}));
    assert!(
        in_use.stderr.contains("FailedPrecondition")
            && in_use.stderr.contains("Test CT enrichment"),
        "{}",
        in_use.stderr
    );
    let bad_regex = json!({"name": "Bad", "root": {"condition": {
        "left": {"field": "RequestUrl"},
        "operator": "OPERATOR_MATCH",
        "right": [{"constant": {"text": "("}}]
    }}});
    let refused = rpc(&pki, &server, "CreateFilter", &bad_regex);
    assert!(
        refused.stderr.contains("root.condition.right[0]") && refused.stderr.contains("RE2"),
        "{}",
        refused.stderr
    );
}

#[test]
fn an_active_list_selects_events_and_its_changes_apply_at_once() {
    let pki = TestPki::new();
    let threatintel = start_with_demo_feed(&pki, &[]);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    let mut list = json!({
        "name": "Watched hosts",
        "kind": "RESOURCE_KIND_ACTIVE_LIST",
        "entries": [{"key": "192.0.2.1"}]
    });
    let created = ok(&pki, &server, "CreateResource", &list);
    let list_id = created["id"].as_str().unwrap().to_owned();
    let rule = json!({
        "name": "Watched hosts only",
        "mapping": [{"field": "SourceAddress", "indicatorType": "INDICATOR_TYPE_IP"}],
        "inlineFilter": {"condition": {
            "left": {"field": "SourceAddress"},
            "operator": "OPERATOR_IN_ACTIVE_LIST",
            "right": [{"resourceId": list_id}]
        }}
    });
    ok(&pki, &server, "CreateRule", &rule);
    let from =
        |id: &str, address: &str| json!({"id": id, "fields": {"SourceAddress": {"text": address}}});
    let statuses = |answers: &[Value]| -> Vec<String> {
        answers[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let category = e["ti"][0]["category"].as_str().unwrap_or("-");
                format!("{} {category}", e["enrichmentStatus"].as_str().unwrap())
            })
            .collect()
    };
    let batch = json!({"batchId": "1", "events": [
        from("listed", "192.0.2.1"),
        from("unlisted", "198.51.100.7"),
    ]});
    assert_eq!(
        statuses(&enrich(&pki, &server, std::slice::from_ref(&batch))),
        [
            "ENRICHMENT_STATUS_COMPLETE KL_IP_Reputation",
            "ENRICHMENT_STATUS_NOT_ENRICHED -"
        ]
    );

    list["id"] = json!(list_id);
    list["entries"] = json!([{"key": "192.0.2.1"}, {"key": "198.51.100.7"}]);
    ok(&pki, &server, "UpdateResource", &list);
    assert_eq!(
        statuses(&enrich(&pki, &server, std::slice::from_ref(&batch))),
        [
            "ENRICHMENT_STATUS_COMPLETE KL_IP_Reputation",
            "ENRICHMENT_STATUS_COMPLETE KL_IP_Reputation"
        ]
    );

    // Entries changed by key, the list not sent whole.
    let changed = ok(
        &pki,
        &server,
        "ChangeResourceEntries",
        &json!({"id": list_id, "put": [{"key": "203.0.113.5"}], "remove": ["192.0.2.1"]}),
    );
    assert_eq!(
        changed,
        json!({"entries": "2", "added": "1", "removed": "1"}),
        "{changed}"
    );
    assert_eq!(
        statuses(&enrich(&pki, &server, std::slice::from_ref(&batch))),
        [
            "ENRICHMENT_STATUS_NOT_ENRICHED -",
            "ENRICHMENT_STATUS_COMPLETE KL_IP_Reputation"
        ]
    );
    let ambiguous = rpc(
        &pki,
        &server,
        "ChangeResourceEntries",
        &json!({"id": list_id, "put": [{"key": "a"}], "remove": ["a"]}),
    );
    assert!(
        ambiguous.stderr.contains("InvalidArgument")
            && ambiguous.stderr.contains("remove[0]: `a` is also put"),
        "{}",
        ambiguous.stderr
    );
    let kept = ok(&pki, &server, "GetResource", &json!({"id": list_id}));
    let keys: Vec<&str> = kept["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["198.51.100.7", "203.0.113.5"],
        "a refused change changes nothing"
    );

    let in_use = rpc(&pki, &server, "DeleteResource", &json!({"id": list_id}));
    assert!(
        in_use.stderr.contains("FailedPrecondition")
            && in_use.stderr.contains("Watched hosts only"),
        "{}",
        in_use.stderr
    );
    let mut twice = list.clone();
    twice["entries"] = json!([{"key": "a"}, {"key": "a"}]);
    let refused = rpc(&pki, &server, "UpdateResource", &twice);
    assert!(
        refused.stderr.contains("entries[1].key"),
        "{}",
        refused.stderr
    );
}

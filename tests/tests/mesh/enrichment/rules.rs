//! Rules kept and checked, across a restart.

use serde_json::json;
use xdr_tests::{
    TestPki,
    enrichment::{ok, rpc},
};

use super::{seed_rule, start_enrichment};

#[test]
fn rules_are_checked_completed_and_kept_across_a_restart() {
    let pki = TestPki::new();
    let server = start_enrichment(&pki, "127.0.0.1:9");
    let rule = ok(&pki, &server, "CreateRule", &seed_rule());
    assert_eq!(rule["sourceKind"], "SOURCE_KIND_THREATINTEL");
    assert_eq!(rule["rps"], 1000);
    assert_eq!(rule["timeoutSeconds"], 30);
    assert!(rule["connections"].as_u64().unwrap() >= 1);
    let id = rule["id"].as_str().unwrap().to_owned();

    let again = rpc(&pki, &server, "CreateRule", &seed_rule());
    assert!(
        !again.success && again.stderr.contains("AlreadyExists"),
        "{}",
        again.stderr
    );
    let mut nameless = seed_rule();
    nameless["name"] = json!("");
    let refused = rpc(&pki, &server, "CreateRule", &nameless);
    assert!(
        refused.stderr.contains("InvalidArgument") && refused.stderr.contains("name: empty"),
        "{}",
        refused.stderr
    );
    let mut unmapped = seed_rule();
    unmapped["name"] = json!("No mapping");
    unmapped["mapping"] = json!([]);
    let refused = rpc(&pki, &server, "CreateRule", &unmapped);
    assert!(
        refused.stderr.contains("mapping: at least one row"),
        "{}",
        refused.stderr
    );

    // The data folder outlives the process: a second one finds the rule.
    drop(server);
    let server = start_enrichment(&pki, "127.0.0.1:9");
    let kept = ok(&pki, &server, "GetRule", &json!({"id": id}));
    assert_eq!(kept["name"], "Test CT enrichment");
    let listed = ok(&pki, &server, "ListRules", &json!({}));
    assert_eq!(listed["rules"].as_array().unwrap().len(), 1);
    let deleted = ok(&pki, &server, "DeleteRule", &json!({"id": id}));
    assert_eq!(deleted["deleted"], true);
    let gone = rpc(&pki, &server, "GetRule", &json!({"id": id}));
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
}

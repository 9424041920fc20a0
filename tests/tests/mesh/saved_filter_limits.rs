//! What a saved filter may make the service do is bounded where it is saved: a chain of saved
//! filters deeper than the limit, or filters that each name the one before twice (doubling
//! at every level, tiny as each is), are refused with INVALID_ARGUMENT naming the limit —
//! before a save or an event can cost seconds.

use serde_json::{Value, json};
use xdr_tests::{
    TestPki,
    enrichment::{ok, rpc, start},
};

fn condition() -> Value {
    json!({"condition": {
        "left": {"field": "RequestUrl"},
        "operator": "OPERATOR_CONTAINS",
        "right": [{"constant": {"text": "fakess"}}]
    }})
}

/// Saves filters `name0`, `name1`, ... each built by `root` from the previous one's id, until
/// one is refused or `most` are saved; the refused level and its error.
fn save_until_refused(
    pki: &TestPki,
    server: &xdr_tests::ServiceProcess,
    name: &str,
    most: usize,
    root: impl Fn(&str) -> Value,
) -> Option<(usize, String)> {
    let first = ok(
        pki,
        server,
        "CreateFilter",
        &json!({"name": format!("{name}0"), "root": condition()}),
    );
    let mut previous = first["id"].as_str().unwrap().to_owned();
    for level in 1..=most {
        let filter = json!({"name": format!("{name}{level}"), "root": root(&previous)});
        let outcome = rpc(pki, server, "CreateFilter", &filter);
        if !outcome.success {
            return Some((level, outcome.stderr));
        }
        let saved: Value = serde_json::from_str(&outcome.stdout).unwrap();
        previous = saved["id"].as_str().unwrap().to_owned();
    }
    None
}

#[test]
fn a_chain_of_saved_filters_deeper_than_the_limit_is_refused() {
    let pki = TestPki::new();
    let server = start(&pki, "127.0.0.1:9");
    let refused = save_until_refused(
        &pki,
        &server,
        "chain",
        40,
        |previous| json!({"filterId": previous}),
    );
    let (level, error) = refused.expect("a chain of 40 was accepted");
    assert!(level <= 32, "refused only at level {level}");
    assert!(
        error.contains("InvalidArgument") && error.contains("nested deeper than 32"),
        "{error}"
    );
}

#[test]
fn a_filter_that_doubles_at_each_level_is_refused_before_it_grows() {
    let pki = TestPki::new();
    let server = start(&pki, "127.0.0.1:9");
    let refused = save_until_refused(
        &pki,
        &server,
        "double",
        20,
        |previous| json!({"group": {"op": "OP_OR", "children": [{"filterId": previous}, {"filterId": previous}]}}),
    );
    // Level k expands to 2^(k+1) conditions and values: past 10,000 at level 13.
    let (level, error) = refused.expect("20 doubling levels were accepted");
    assert_eq!(level, 13, "{error}");
    assert!(
        error.contains("InvalidArgument") && error.contains("more than 10000"),
        "{error}"
    );
    // The levels below the limit are saved and still work in a rule.
    let rule = json!({
        "name": "Doubling filter",
        "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}],
        "filterId": ok(&pki, &server, "ListFilters", &json!({}))["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "double12")
            .expect("level 12 was saved")["id"]
    });
    ok(&pki, &server, "CreateRule", &rule);
}

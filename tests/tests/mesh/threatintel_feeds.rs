//! Feeds: loaded at start, reloaded on ReloadFeeds into a new index swapped in whole; a feed
//! that breaks keeps its previous version and is reported by file and line.

use std::path::Path;

use xdr_tests::{
    ServiceProcess, TestPki,
    threatintel::{call, matches},
};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn reload_swaps_in_new_feeds_and_a_broken_feed_keeps_its_previous_version() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    write(
        &feeds,
        "Alpha.json",
        r#"[{"indicator": "alpha.example", "category": "KL_Malicious_URL"}]"#,
    );
    let server = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &["--feeds-dir", feeds.to_str().unwrap()],
    );
    assert_eq!(
        matches(&pki, &server, "http://alpha.example/x"),
        ["Alpha/KL_Malicious_URL"]
    );

    write(
        &feeds,
        "Alpha.json",
        r#"[{"indicator": "alpha.example", "category": "KL_Phishing_URL"}, {"indicator": "203.0.113.0/24", "category": "KL_IP_Reputation"}]"#,
    );
    write(
        &feeds,
        "Beta.csv",
        "indicator,category,type,threat\n203.0.113.9,KL_BotnetCnC_URL,ip,demo botnet\n",
    );
    let reload = call(&pki, &server, "ReloadFeeds", &serde_json::json!({}));
    assert!(
        reload["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f.get("error").is_none()),
        "{reload}"
    );
    assert_eq!(
        matches(&pki, &server, "alpha.example"),
        ["Alpha/KL_Phishing_URL"]
    );
    let mut both = matches(&pki, &server, "203.0.113.9");
    both.sort();
    assert_eq!(both, ["Alpha/KL_IP_Reputation", "Beta/KL_BotnetCnC_URL"]);

    write(
        &feeds,
        "Alpha.json",
        "[\n  {\"indicator\": \"alpha.example\",\n  oops\n]",
    );
    let reload = call(&pki, &server, "ReloadFeeds", &serde_json::json!({}));
    let alpha = reload["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["supplier"] == "Alpha")
        .unwrap()
        .clone();
    let error = alpha["error"].as_str().unwrap();
    assert!(
        error.contains("Alpha.json") && error.contains("line 3"),
        "{error}"
    );
    assert_eq!(
        alpha["indicators"], "2",
        "the previous version is kept: {alpha}"
    );
    assert_eq!(
        matches(&pki, &server, "alpha.example"),
        ["Alpha/KL_Phishing_URL"]
    );
    server.wait_for_log("the feed warning", |l| {
        l["message"] == "feed not loaded" && l["level"] == "WARN"
    });

    let stats = call(&pki, &server, "Stats", &serde_json::json!({}));
    let by_supplier = stats["indicatorsBySupplier"].as_array().unwrap();
    assert!(
        by_supplier.contains(&serde_json::json!({"key": "Alpha", "count": "2"})),
        "{stats}"
    );
    assert!(
        stats["residentBytes"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 1_000_000,
        "{stats}"
    );
    let suppliers = call(&pki, &server, "ListSuppliers", &serde_json::json!({}));
    let names: Vec<&str> = suppliers["suppliers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for expected in ["InternalTI", "FalsePositive", "Alpha", "Beta"] {
        assert!(names.contains(&expected), "{names:?}");
    }
}

#[test]
fn a_record_that_is_not_an_indicator_is_reported_by_file_and_line() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    write(
        &feeds,
        "Gamma.csv",
        "indicator,category\n192.0.2.5,KL_IP_Reputation\n0.0.0.0/0,KL_IP_Reputation\n",
    );
    let server = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &["--feeds-dir", feeds.to_str().unwrap()],
    );
    let warning = server.wait_for_log("the feed warning", |l| l["message"] == "feed not loaded");
    let error = warning["error"].as_str().unwrap();
    assert!(
        error.contains("Gamma.csv: line 3") && error.contains("/0"),
        "{error}"
    );
    assert!(
        matches(&pki, &server, "192.0.2.5").is_empty(),
        "nothing of a broken feed is loaded"
    );
}

//! URL indicators through AddIndicators, Lookup and feeds: two different URLs never share a
//! key, and only web URLs with a host are URL indicators — anything else is refused by name
//! (INVALID_ARGUMENT), or in a feed skipped, counted and reported by file and line.

use serde_json::{Value, json};
use xdr_tests::{
    Cert, Grpcurl, ServiceProcess, TestPki,
    threatintel::{call, matches},
};

fn url(value: &str) -> Value {
    json!({"value": value, "type": "INDICATOR_TYPE_URL"})
}

fn add_url(pki: &TestPki, server: &ServiceProcess, value: &str) {
    let mut indicator = url(value);
    indicator["category"] = json!("KL_InternalTI_URL");
    call(
        pki,
        server,
        "AddIndicators",
        &json!({"indicators": [indicator]}),
    );
}

/// `rpc` with `request`, expected to be refused: grpcurl's stderr.
fn refused(pki: &TestPki, server: &ServiceProcess, rpc: &str, request: &Value) -> String {
    let outcome = Grpcurl::new(pki, Cert::Named("operator"))
        .data(&request.to_string())
        .call(
            server.listening_addr(),
            &[&format!("xdr.v1.ThreatIntel/{rpc}")],
        );
    assert!(!outcome.success, "{rpc} {request} was accepted");
    outcome.stderr
}

#[test]
fn urls_that_differ_in_a_byte_do_not_match_and_query_escapes_do() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    add_url(&pki, &server, "http://a.com/%FF");
    add_url(&pki, &server, "http://www.google.com/q?r?s%3F");
    let found = |value: &str| {
        let reply = call(&pki, &server, "Lookup", &json!({"objects": [url(value)]}));
        reply["results"][0]["matches"]
            .as_array()
            .map_or(0, |m| m.len())
    };
    assert_eq!(found("http://a.com/%FE"), 0, "%FE is not %FF");
    assert_eq!(found("http://a.com/%ff"), 1, "%ff is %FF");
    assert_eq!(found("http://a.com/%FF%20"), 0);
    assert_eq!(found("google.com/q?r?s?"), 1);
    assert_eq!(
        matches(&pki, &server, "http://a.com/"),
        Vec::<String>::new()
    );
}

#[test]
fn only_web_urls_with_a_host_are_url_indicators_or_lookups() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    for (value, reason) in [
        ("mailto:user@example.com", "`mailto:` is not a web scheme"),
        ("javascript:alert(1)", "`javascript:` is not a web scheme"),
        ("/blah", "no host"),
        ("http:///blah;param?query#ref", "no host"),
    ] {
        let mut indicator = url(value);
        indicator["category"] = json!("KL_InternalTI_URL");
        let stderr = refused(
            &pki,
            &server,
            "AddIndicators",
            &json!({"indicators": [indicator]}),
        );
        assert!(
            stderr.contains("InvalidArgument")
                && stderr.contains("indicators[0].value")
                && stderr.contains("is not a web URL")
                && stderr.contains(reason),
            "{value}: {stderr}"
        );
        let stderr = refused(&pki, &server, "Lookup", &json!({"objects": [url(value)]}));
        assert!(
            stderr.contains("InvalidArgument") && stderr.contains(reason),
            "{value}: {stderr}"
        );
    }
    // Nothing was added: example.com is no indicator.
    assert_eq!(
        matches(&pki, &server, "http://example.com/"),
        Vec::<String>::new()
    );
}

#[test]
fn a_feed_record_that_is_not_a_web_url_is_skipped_and_reported() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    std::fs::write(
        feeds.join("Gamma.csv"),
        "indicator,category,type\n\
         http://gamma.example/x,KL_Malicious_URL,url\n\
         mailto:user@example.com,KL_Malicious_URL,url\n\
         /blah,KL_Malicious_URL,url\n\
         192.0.2.77,KL_IP_Reputation,ip\n",
    )
    .unwrap();
    let server = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &["--feeds-dir", feeds.to_str().unwrap()],
    );
    server.wait_for_log("the skipped records", |l| {
        l["message"] == "feed records skipped: no lookup could match them" && l["skipped"] == 2
    });
    assert_eq!(
        matches(&pki, &server, "http://gamma.example/x"),
        ["Gamma/KL_Malicious_URL"]
    );
    assert_eq!(
        matches(&pki, &server, "192.0.2.77"),
        ["Gamma/KL_IP_Reputation"]
    );
    assert_eq!(
        matches(&pki, &server, "http://example.com/"),
        Vec::<String>::new()
    );

    let reload = call(&pki, &server, "ReloadFeeds", &json!({}));
    let gamma = &reload["feeds"][0];
    assert!(gamma.get("error").is_none(), "{gamma}");
    assert_eq!(
        (&gamma["indicators"], &gamma["skipped"]),
        (&json!("2"), &json!("2")),
        "{gamma}"
    );
    let first = gamma["skippedRecords"].as_array().unwrap();
    assert!(
        first[0].as_str().unwrap().contains("Gamma.csv: line 3:")
            && first[0].as_str().unwrap().contains("mailto"),
        "{gamma}"
    );
    assert!(
        first[1].as_str().unwrap().contains("Gamma.csv: line 4:"),
        "{gamma}"
    );
}

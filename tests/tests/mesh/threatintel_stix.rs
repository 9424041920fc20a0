//! STIX 2.1 bundles as feeds: a bundle written by OASIS's `stix2` library (tests/run.sh
//! installs it) is read by the real service; its indicators match with the categories the
//! mapping gives, and what no lookup could match is reported by reason.

use xdr_tests::{
    ServiceProcess, TestPki,
    threatintel::{call, matches, python_output, skipped_by_reason},
};

const SHA256: &str = "5f2b1e6d8a4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c4b3a29";

/// A bundle as a TI vendor's export makes one: an identity, indicators of every kind we look
/// up, one revoked, one expired, patterns a lookup cannot match, a malware object.
const MAKE_BUNDLE: &str = r#"
import sys
from datetime import datetime, timedelta, timezone
import stix2

now = datetime.now(timezone.utc)
vendor = stix2.Identity(name="Vendor CTI", identity_class="organization")

def indicator(**properties):
    properties.setdefault("valid_from", now - timedelta(days=1))
    return stix2.Indicator(pattern_type="stix", created_by_ref=vendor.id, **properties)

objects = [
    vendor,
    indicator(name="Evil page", pattern="[url:value = 'http://evil-stix.example/login']",
              indicator_types=["malicious-activity"], confidence=85),
    indicator(name="Phish", pattern="[domain-name:value = 'phish-stix.example']",
              indicator_types=["phishing"]),
    indicator(name="C2 hosts", indicator_types=["c2"],
              pattern="[ipv4-addr:value = '198.51.100.77'] OR [ipv4-addr:value = '198.51.100.78']"),
    indicator(name="Dropper", pattern="[file:hashes.'SHA-256' = '%s']" % sys.argv[1],
              indicator_types=["malicious-activity"]),
    indicator(name="Withdrawn", pattern="[url:value = 'http://withdrawn-stix.example/']",
              revoked=True),
    indicator(name="Old", pattern="[url:value = 'http://old-stix.example/']",
              valid_from=now - timedelta(days=10), valid_until=now - timedelta(days=5)),
    indicator(name="Both", pattern="[ipv4-addr:value = '203.0.113.5' AND ipv4-addr:value = '203.0.113.6']"),
    indicator(name="Mail", pattern="[email-addr:value = 'boss@phish-stix.example']"),
    stix2.Malware(name="Dropper", is_family=False),
]
print(stix2.Bundle(objects=objects).serialize(pretty=True))
"#;

#[test]
fn a_stix_bundle_from_the_stix2_library_loads_with_mapped_categories_and_reasons() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    let bundle = python_output("stix2 makes a bundle", MAKE_BUNDLE, &[SHA256]);
    std::fs::write(feeds.join("Vendor.stix.json"), bundle).unwrap();
    let categories = pki.scratch().join("feed-categories.json");
    std::fs::write(&categories, r#"{"c2/ipv4": "KL_BotnetCnC_IP"}"#).unwrap();
    let server = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &[
            "--feeds-dir",
            feeds.to_str().unwrap(),
            "--feed-categories",
            categories.to_str().unwrap(),
        ],
    );

    for (value, expected) in [
        (
            "http://evil-stix.example/login",
            &["Vendor/KL_Malicious_URL"][..],
        ),
        ("http://phish-stix.example/any", &["Vendor/KL_Phishing_URL"]),
        ("198.51.100.78", &["Vendor/KL_BotnetCnC_IP"]),
        (SHA256, &["Vendor/KL_Malicious_Hash_SHA256"]),
        ("http://withdrawn-stix.example/", &[]),
        ("http://old-stix.example/", &[]),
        ("203.0.113.5", &[]),
    ] {
        assert_eq!(matches(&pki, &server, value), expected, "{value}");
    }
    let reply = call(
        &pki,
        &server,
        "Lookup",
        &serde_json::json!({ "objects": [{ "value": "http://evil-stix.example/login" }] }),
    );
    let context = &reply["results"][0]["matches"][0]["context"];
    assert_eq!(context["name"], "Evil page", "{reply}");
    assert_eq!(context["confidence"], "85", "{reply}");
    assert!(
        context["stix_id"]
            .as_str()
            .unwrap()
            .starts_with("indicator--"),
        "{reply}"
    );
    assert!(
        context["created_by_ref"]
            .as_str()
            .unwrap()
            .starts_with("identity--"),
        "{reply}"
    );

    let reload = call(&pki, &server, "ReloadFeeds", &serde_json::json!({}));
    let vendor = &reload["feeds"][0];
    assert_eq!(vendor["supplier"], "Vendor", "{reload}");
    assert_eq!(vendor["indicators"], "5", "{reload}");
    assert_eq!(vendor["skipped"], "4", "{reload}");
    assert_eq!(
        skipped_by_reason(vendor),
        [
            "expired=1",
            "pattern object path not looked up=1",
            "pattern with AND=1",
            "revoked=1"
        ],
        "{reload}"
    );
}

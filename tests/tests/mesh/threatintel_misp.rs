//! MISP feeds: a feed folder written with `pymisp`'s `MISPEvent` (tests/run.sh installs it),
//! as MISP's feed generator lays it out, is read by the real service: detection attributes
//! match with the event's context, the rest is reported by reason.

use std::process::Command;

use xdr_tests::{
    ServiceProcess, TestPki, paths,
    threatintel::{call, matches},
};

const SHA256: &str = "9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// One event of a phishing wave: an address, a URL tagged `phishing`, a domain with its
/// address, a dropper's hash, and two attributes no lookup uses (not for detection; an
/// e-mail address).
const MAKE_FEED: &str = r#"
import json, os, sys
from pymisp import MISPEvent, MISPOrganisation

folder, sha256 = sys.argv[1], sys.argv[2]
org = MISPOrganisation()
org.name, org.uuid = "CIRCL", "55f6ea5e-2c60-40e5-964f-47a8950d210f"
event = MISPEvent()
event.info, event.threat_level_id, event.Orgc = "Phishing wave", 1, org
event.add_tag("tlp:white")
event.add_attribute("ip-dst", "198.51.100.91", to_ids=True)
url = event.add_attribute("url", "http://phish-misp.example/login", to_ids=True,
                          comment="landing page")
url.add_tag("phishing")
event.add_attribute("domain|ip", "c2-misp.example|203.0.113.91", to_ids=True)
event.add_attribute("filename|sha256", "dropper.exe|" + sha256, to_ids=True)
event.add_attribute("ip-src", "203.0.113.92", to_ids=False)
event.add_attribute("email-src", "boss@phish-misp.example", to_ids=True)
feed = event.to_feed(with_meta=True)
manifest = feed["Event"].pop("_manifest")
feed["Event"].pop("_hashes")
os.makedirs(folder)
with open(os.path.join(folder, event.uuid + ".json"), "w") as out:
    json.dump(feed, out)
with open(os.path.join(folder, "manifest.json"), "w") as out:
    json.dump(manifest, out)
print(event.uuid)
"#;

#[test]
fn a_misp_feed_folder_from_pymisp_loads_its_detection_attributes() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    let folder = feeds.join("Circl.misp");
    let made = Command::new(paths::python())
        .args(["-c", MAKE_FEED, folder.to_str().unwrap(), SHA256])
        .output()
        .expect("python runs");
    assert!(
        made.status.success(),
        "pymisp made no feed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let event_uuid = String::from_utf8(made.stdout).unwrap().trim().to_owned();
    let server = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &["--feeds-dir", feeds.to_str().unwrap()],
    );

    for (value, expected) in [
        ("198.51.100.91", &["Circl/KL_IP_Reputation"][..]),
        (
            "http://phish-misp.example/login",
            &["Circl/KL_Phishing_URL"],
        ),
        ("http://c2-misp.example/", &["Circl/KL_Malicious_URL"]),
        ("203.0.113.91", &["Circl/KL_IP_Reputation"]),
        (SHA256, &["Circl/KL_Malicious_Hash_SHA256"]),
        ("203.0.113.92", &[]),
    ] {
        assert_eq!(matches(&pki, &server, value), expected, "{value}");
    }
    let reply = call(
        &pki,
        &server,
        "Lookup",
        &serde_json::json!({ "objects": [{ "value": SHA256 }] }),
    );
    let context = &reply["results"][0]["matches"][0]["context"];
    assert_eq!(context["event_info"], "Phishing wave", "{reply}");
    assert_eq!(context["event_uuid"], event_uuid.as_str(), "{reply}");
    assert_eq!(context["threat_level"], "High", "{reply}");
    assert_eq!(context["filename"], "dropper.exe", "{reply}");

    let reload = call(&pki, &server, "ReloadFeeds", &serde_json::json!({}));
    let circl = &reload["feeds"][0];
    assert_eq!(circl["supplier"], "Circl", "{reload}");
    assert_eq!(circl["indicators"], "5", "{reload}");
    let mut by_reason: Vec<String> = circl["skippedByReason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["key"].as_str().unwrap(),
                r["count"].as_str().unwrap()
            )
        })
        .collect();
    by_reason.sort();
    assert_eq!(
        by_reason,
        [
            "attribute type not looked up=1",
            "not for detection (to_ids false)=1"
        ],
        "{reload}"
    );
}

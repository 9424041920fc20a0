//! MISP feeds: a feed folder written with `pymisp`'s `MISPEvent` (tests/run.sh installs it),
//! as MISP's feed generator lays it out, is read by the real service: detection attributes
//! match with the event's context, the rest is reported by reason.

use std::process::Command;

use xdr_tests::{
    ServiceProcess, TestPki,
    compose::eventually,
    paths,
    threatintel::{call, matches, python_output, skipped_by_reason},
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
    let made = python_output(
        "pymisp makes a feed",
        MAKE_FEED,
        &[folder.to_str().unwrap(), SHA256],
    );
    let event_uuid = made.trim().to_owned();
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
    assert_eq!(
        skipped_by_reason(circl),
        [
            "attribute type not looked up=1",
            "not for detection (to_ids false)=1"
        ],
        "{reload}"
    );
}

/// One event with one detection address, added to the feed in `folder` (its manifest
/// merged); prints the event's UUID.
const ADD_EVENT: &str = r#"
import json, os, sys
from pymisp import MISPEvent, MISPOrganisation

folder, info, address = sys.argv[1], sys.argv[2], sys.argv[3]
org = MISPOrganisation()
org.name, org.uuid = "CIRCL", "55f6ea5e-2c60-40e5-964f-47a8950d210f"
event = MISPEvent()
event.info, event.threat_level_id, event.Orgc = info, 2, org
event.add_attribute("ip-dst", address, to_ids=True)
feed = event.to_feed(with_meta=True)
entry = feed["Event"].pop("_manifest")
feed["Event"].pop("_hashes")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, event.uuid + ".json"), "w") as out:
    json.dump(feed, out)
path = os.path.join(folder, "manifest.json")
manifest = json.load(open(path)) if os.path.exists(path) else {}
manifest.update(entry)
with open(path, "w") as out:
    json.dump(manifest, out)
print(event.uuid)
"#;

/// The feed's loopback address, this test's alone.
const FEED_IP: &str = "127.0.0.132";

fn add_event(folder: &std::path::Path, info: &str, address: &str) -> String {
    let args = [folder.to_str().unwrap(), info, address];
    python_output("pymisp makes an event", ADD_EVENT, &args)
        .trim()
        .to_owned()
}

#[test]
fn a_misp_feed_over_http_is_polled_fetching_only_the_events_that_changed() {
    let pki = TestPki::new();
    let served = pki.scratch().join("served");
    let first = add_event(&served, "First wave", "198.51.100.121");
    let log = std::fs::File::create(pki.scratch().join("http.log")).unwrap();
    let _http = Stopped(
        Command::new(paths::python())
            .args([
                "-m",
                "http.server",
                "--bind",
                FEED_IP,
                "8000",
                "--directory",
            ])
            .arg(&served)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python's http.server starts"),
    );
    let suppliers = pki.scratch().join("suppliers.toml");
    std::fs::write(
        &suppliers,
        format!(
            "[[misp]]\nsupplier = \"Circl\"\nurl = \"http://{FEED_IP}:8000/\"\npoll_interval = \"1s\"\n"
        ),
    )
    .unwrap();
    let data = pki.scratch().join("threatintel-data");
    let server = ServiceProcess::start_in(
        "threatintel",
        &pki,
        &data,
        &["--suppliers", suppliers.to_str().unwrap()],
    );
    let polled = std::time::Duration::from_secs(30);
    eventually("the first event matches", polled, || {
        matches(&pki, &server, "198.51.100.121") == ["Circl/KL_IP_Reputation"]
    });

    let second = add_event(&served, "Second wave", "198.51.100.122");
    eventually("the second event matches", polled, || {
        matches(&pki, &server, "198.51.100.122") == ["Circl/KL_IP_Reputation"]
    });
    let fetched = |uuid: &str| {
        std::fs::read_to_string(pki.scratch().join("http.log"))
            .unwrap()
            .matches(&format!("GET /{uuid}.json "))
            .count()
    };
    assert_eq!(fetched(&first), 1, "an unchanged event is fetched once");
    assert_eq!(fetched(&second), 1);

    // An event gone from the manifest is gone from the index.
    let manifest_path = served.join("manifest.json");
    let mut manifest: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest.remove(&first);
    std::fs::write(
        &manifest_path,
        serde_json::Value::Object(manifest).to_string(),
    )
    .unwrap();
    eventually("the withdrawn event stops matching", polled, || {
        matches(&pki, &server, "198.51.100.121").is_empty()
    });
    assert_eq!(
        matches(&pki, &server, "198.51.100.122"),
        ["Circl/KL_IP_Reputation"]
    );
    let reply = call(&pki, &server, "ListSuppliers", &serde_json::json!({}));
    let circl = reply["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Circl")
        .cloned()
        .unwrap_or_default();
    assert_eq!(circl["kind"], "misp", "{reply}");
    assert_eq!(circl["records"], "1", "{reply}");
}

/// A child process killed when the test ends, passed or failed.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

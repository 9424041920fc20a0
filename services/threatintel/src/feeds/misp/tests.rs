use super::*;

const EVENT: &str = "5f3c0a6e-0c1c-4f4e-9d7a-2b1d3c4e5f60";
const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What `read_folder` hands on, one line per value, and what it skipped.
fn read(folder: &Path) -> Result<(Vec<String>, Skipped), FeedError> {
    let mut seen = Vec::new();
    let skipped = read_folder(
        "Circl.misp",
        folder,
        &FeedCategories::default(),
        &mut |entry: &FeedEntry<'_>| {
            let context: Vec<String> = (entry.context.iter())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            seen.push(format!(
                "{} {} {} {} [{}] [{}] {}",
                entry.location,
                entry.kind.unwrap_or("-"),
                entry.indicator,
                entry.category.unwrap_or("-"),
                context.join(","),
                entry.tags.join(","),
                entry.last_seen,
            ));
            Ok(())
        },
    )?;
    Ok((seen, skipped))
}

fn feed(events: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifest: serde_json::Map<String, serde_json::Value> = events
        .iter()
        .map(|(uuid, _)| {
            (
                (*uuid).to_owned(),
                serde_json::json!({"info": "x", "timestamp": "1"}),
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::Value::Object(manifest).to_string(),
    )
    .unwrap();
    for (uuid, text) in events {
        std::fs::write(dir.path().join(format!("{uuid}.json")), text).unwrap();
    }
    dir
}

fn attribute(kind: &str, value: &str, to_ids: bool) -> serde_json::Value {
    serde_json::json!({
        "type": kind, "value": value, "to_ids": to_ids, "category": "Network activity",
        "timestamp": "1700000000", "uuid": "a", "comment": ""
    })
}

#[test]
fn detection_attributes_become_records_with_the_events_context() {
    let event = serde_json::json!({"Event": {
        "info": "Phishing wave", "uuid": EVENT, "threat_level_id": "1",
        "Tag": [{"name": "tlp:white"}],
        "Attribute": [
            attribute("ip-dst", "198.51.100.9", true),
            {"type": "url", "value": "http://phish.example/login", "to_ids": true,
             "category": "Payload delivery", "comment": "landing page", "timestamp": 1700000001,
             "Tag": [{"name": "phishing"}]},
            attribute("domain|ip", "c2.example|2001:db8::9", true),
            attribute("filename|sha256", &format!("dropper.exe|{SHA256}"), true),
            attribute("comment", "seen in the wild", true),
            attribute("ip-src", "203.0.113.1", false),
        ],
        "Object": [{"name": "file", "Attribute": [attribute("md5", "d41d8cd98f00b204e9800998ecf8427e", true)]}]
    }});
    let folder = feed(&[(EVENT, event.to_string())]);
    let (seen, skipped) = read(folder.path()).unwrap();
    let context = format!("event_info=Phishing wave,event_uuid={EVENT},threat_level=High");
    assert_eq!(
        seen,
        [
            format!(
                "record 1 ip 198.51.100.9 KL_IP_Reputation [{context},misp_category=Network activity] [tlp:white] 1700000000000"
            ),
            format!(
                "record 2 url http://phish.example/login KL_Phishing_URL [{context},misp_category=Payload delivery,comment=landing page] [tlp:white,phishing] 1700000001000"
            ),
            format!(
                "record 3 domain c2.example KL_Malicious_URL [{context},misp_category=Network activity] [tlp:white] 1700000000000"
            ),
            format!(
                "record 3 ip 2001:db8::9 KL_IP_Reputation [{context},misp_category=Network activity] [tlp:white] 1700000000000"
            ),
            format!(
                "record 4 hash {SHA256} KL_Malicious_Hash_SHA256 [{context},misp_category=Network activity,filename=dropper.exe] [tlp:white] 1700000000000"
            ),
            format!(
                "record 7 hash d41d8cd98f00b204e9800998ecf8427e KL_Malicious_Hash_MD5 [{context},misp_category=Network activity] [tlp:white] 1700000000000"
            ),
        ]
    );
    let by_reason: Vec<(&str, u64)> = skipped.by_reason.into_iter().collect();
    assert_eq!(
        by_reason,
        [
            ("attribute type not looked up", 1),
            ("not for detection (to_ids false)", 1)
        ]
    );
    assert_eq!(
        skipped.first[0],
        format!("Circl.misp: record 5: event {EVENT}: comment: attribute type not looked up")
    );
}

#[test]
fn a_manifest_cannot_name_a_file_outside_the_folder_and_errors_name_the_file() {
    let folder = feed(&[("../../etc/passwd", String::new())]);
    let error = read(folder.path()).unwrap_err().to_string();
    assert_eq!(
        error,
        "Circl.misp/manifest.json: event 1: an event name is its UUID: hex digits and -"
    );
    let folder = feed(&[(EVENT, "{\"Event\": {\"Attribute\": [}".to_owned())]);
    let error = read(folder.path()).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("Circl.misp/{EVENT}.json: line 1:")),
        "{error}"
    );
    let folder = feed(&[(EVENT, "{}".to_owned())]);
    std::fs::remove_file(folder.path().join(format!("{EVENT}.json"))).unwrap();
    let error = read(folder.path()).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("Circl.misp/{EVENT}.json: ")),
        "{error}"
    );
    let empty = tempfile::tempdir().unwrap();
    let error = read(empty.path()).unwrap_err().to_string();
    assert!(error.starts_with("Circl.misp/manifest.json: "), "{error}");
}

#[test]
fn composite_types_split_at_their_bar() {
    assert_eq!(
        values_of("ip-dst|port", "192.0.2.1|443"),
        Some(vec![(ValueKind::Ipv4, "192.0.2.1")])
    );
    assert_eq!(
        values_of("hostname|port", "h.example|8080"),
        Some(vec![(ValueKind::Domain, "h.example")])
    );
    assert_eq!(
        values_of("filename|md5", "a|b|c"),
        Some(vec![(ValueKind::Md5, "b|c")])
    );
    assert_eq!(values_of("email-src", "a@b.example"), None);
}

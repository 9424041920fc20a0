use super::*;

/// 2024-01-01T00:00:00Z.
const NOW_MS: i64 = 1_704_067_200_000;

/// What `read_bundle` hands on, one line per value, and what it skipped.
fn read(text: &str) -> Result<(Vec<String>, Skipped), FeedError> {
    let mut seen = Vec::new();
    let skipped = read_bundle(
        "Vendor.stix.json",
        text.as_bytes(),
        NOW_MS,
        &FeedCategories::default(),
        &mut |entry: &FeedEntry<'_>| {
            let context: Vec<String> = entry
                .context
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            seen.push(format!(
                "{} {} {} {} [{}] [{}] {} {}",
                entry.location,
                entry.kind.unwrap_or("-"),
                entry.indicator,
                entry.category.unwrap_or("-"),
                context.join(","),
                entry.tags.join(","),
                entry.last_seen,
                entry.expires_at
            ));
            Ok(())
        },
    )?;
    Ok((seen, skipped))
}

fn indicator(fields: &str) -> String {
    format!(
        r#"{{"type": "indicator", "spec_version": "2.1", "id": "indicator--{}", {fields}}}"#,
        fields.len()
    )
}

fn bundle(objects: &[String]) -> String {
    format!(
        r#"{{"type": "bundle", "id": "bundle--1", "objects": [{}]}}"#,
        objects.join(", ")
    )
}

#[test]
fn indicators_become_records_with_their_category_context_and_times() {
    let text = bundle(&[
        r#"{"type": "identity", "id": "identity--1", "name": {"any": ["shape"]}}"#.to_owned(),
        indicator(
            r#""pattern": "[url:value = 'http://evil.example/a']", "pattern_type": "stix",
               "valid_from": "2023-12-01T00:00:00Z", "valid_until": "2024-02-01T00:00:00.5Z",
               "modified": "2023-12-02T00:00:00.000Z", "indicator_types": ["malicious-activity"],
               "labels": ["phishing"], "name": "Evil page", "confidence": 85,
               "created_by_ref": "identity--1""#,
        ),
        indicator(
            r#""pattern": "[ipv4-addr:value = '198.51.100.7'] OR [ipv6-addr:value = '2001:db8::7']",
               "pattern_type": "stix", "valid_from": "2023-12-01T00:00:00Z""#,
        ),
    ]);
    let (seen, skipped) = read(&text).unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with(
            "object 2 url http://evil.example/a KL_Phishing_URL [name=Evil page,stix_id=indicator--"
        ),
        "{}",
        seen[0]
    );
    assert!(
        seen[0].ends_with(
            ",created_by_ref=identity--1,confidence=85,first_seen=2023-12-01T00:00:00Z] \
             [malicious-activity,phishing] 1701475200000 1706745600500"
        ),
        "{}",
        seen[0]
    );
    assert!(seen[1].starts_with("object 3 ip 198.51.100.7 KL_IP_Reputation [stix_id="));
    assert!(seen[1].ends_with("[] 0 0"), "{}", seen[1]);
    assert!(seen[2].starts_with("object 3 ip 2001:db8::7 KL_IP_Reputation"));
    assert_eq!(skipped, Skipped::default());
}

#[test]
fn patterns_no_lookup_matches_are_skipped_and_counted_by_reason() {
    let text = bundle(&[
        indicator(
            r#""pattern": "[url:value = 'http://a.example']", "pattern_type": "stix", "revoked": true"#,
        ),
        indicator(
            r#""pattern": "[url:value = 'http://b.example']", "pattern_type": "stix",
               "valid_until": "2023-06-01T00:00:00Z""#,
        ),
        indicator(r#""pattern": "[url:value = 'a' AND url:value = 'b']", "pattern_type": "stix""#),
        indicator(
            r#""pattern": "[url:value = 'a'] AND [domain-name:value = 'b']", "pattern_type": "stix""#,
        ),
        indicator(
            r#""pattern": "[url:value = 'a'] FOLLOWEDBY [url:value = 'b']", "pattern_type": "stix""#,
        ),
        indicator(r#""pattern": "[email-addr:value = 'x@y.example']", "pattern_type": "stix""#),
        indicator(r#""pattern": "title: x\ndetection: y", "pattern_type": "sigma""#),
        indicator(r#""pattern": "[url:value = 'unterminated]", "pattern_type": "stix""#),
        indicator(r#""pattern": "[ipv4-addr:value = '999.1.1.1']", "pattern_type": "stix""#),
        indicator(r#""pattern": "[domain-name:value = 'kept.example']", "pattern_type": "stix""#),
    ]);
    let (seen, skipped) = read(&text).unwrap();
    // An address no index takes is handed on: the loader parses values, and skips it.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("object 9 ip 999.1.1.1 "), "{}", seen[0]);
    assert!(
        seen[1].contains(" domain kept.example KL_Malicious_URL "),
        "{}",
        seen[1]
    );
    let by_reason: Vec<(&str, u64)> = skipped.by_reason.into_iter().collect();
    assert_eq!(
        by_reason,
        [
            ("expired", 1),
            ("pattern object path not looked up", 1),
            ("pattern syntax", 1),
            ("pattern type not stix", 1),
            ("pattern with AND", 2),
            ("pattern with FOLLOWEDBY", 1),
            ("revoked", 1),
        ]
    );
    assert_eq!(skipped.count, 8);
    assert!(
        skipped.first[0].starts_with("Vendor.stix.json: object 1: indicator--"),
        "{:?}",
        skipped.first
    );
    assert!(skipped.first[0].ends_with(": revoked"));
    assert!(
        skipped.first[7].ends_with(": pattern syntax: a string that does not end at byte 27"),
        "{:?}",
        skipped.first
    );
}

#[test]
fn what_is_not_a_bundle_fails_the_feed_with_where() {
    let error = read(r#"{"type": "report", "objects": []}"#).unwrap_err();
    assert!(error.to_string().contains("not a STIX bundle"), "{error}");
    let error = read(r#"[{"type": "indicator"}]"#).unwrap_err();
    assert!(
        error.to_string().starts_with("Vendor.stix.json: line 1:"),
        "{error}"
    );
    let error = read(r#"{"type": "bundle", "objects": [5]}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Vendor.stix.json: object 1: not a STIX object (no `type`)"
    );
    let error = read(&bundle(&[indicator(r#""pattern": 5"#)])).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("Vendor.stix.json: object 1: an indicator: "),
        "{error}"
    );
    // Deep JSON in an object is skimmed without recursion; in the bundle it is refused.
    let deep = format!(
        r#"{{"type": "bundle", "objects": [{{"type": "x", "a": {}1{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(read(&deep).unwrap().0, Vec::<String>::new());
    let deep = format!(
        r#"{{"type": "bundle", "x": {}1{}, "objects": []}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(read(&deep).is_ok());
}

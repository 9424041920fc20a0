//! The enrichment service through grpcurl: rules and saved filters kept and checked, and the
//! `Enrich` stream looking events up in a real ThreatIntel over mTLS, as the seed's "Test CT
//! enrichment" rule does.

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki, client,
    enrichment::{enrich, ok, rpc},
    metrics::{sample, scrape},
    threatintel::{cybertrace_addr, start_with_demo_feed},
};

/// `Stats`, its counters as numbers (proto3 JSON writes 64-bit ones as strings, and leaves
/// zeros out).
fn stats(pki: &TestPki, server: &ServiceProcess) -> Value {
    fn numbers(value: Value) -> Value {
        match value {
            Value::String(s) if s.parse::<u64>().is_ok() => json!(s.parse::<u64>().unwrap()),
            Value::Object(map) => map.into_iter().map(|(k, v)| (k, numbers(v))).collect(),
            Value::Array(items) => items.into_iter().map(numbers).collect(),
            other => other,
        }
    }
    numbers(ok(pki, server, "Stats", &json!({})))
}

fn seed_rule() -> Value {
    json!({
        "name": "Test CT enrichment",
        "tenant": "Shared",
        "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}],
        "debug": true
    })
}

fn event(id: &str, url: Option<&str>) -> Value {
    let fields = match url {
        Some(url) => json!({"RequestUrl": {"text": url}}),
        None => json!({"SourceAddress": {"text": "192.0.2.10"}}),
    };
    json!({"id": id, "tenant": "Shared", "fields": fields})
}

fn start_threatintel(pki: &TestPki) -> ServiceProcess {
    start_with_demo_feed(pki, &[])
}

/// The enrichment service with its data in the test's scratch folder (the same each time:
/// a restart finds what the last process saved).
fn start_enrichment(pki: &TestPki, threatintel: &str) -> ServiceProcess {
    let data = pki.scratch().join("enrichment-data");
    // A rule's debug lines are debug-level, as the seed says.
    let args = [
        "--threatintel-addr",
        threatintel,
        "--log",
        "info,xdr_enrichment=debug",
    ];
    ServiceProcess::start_in("enrichment", pki, &data, &args)
}

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

#[test]
fn the_seed_rule_enriches_events_through_threatintel_in_order() {
    let pki = TestPki::new();
    let threatintel = start_threatintel(&pki);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    ok(&pki, &server, "CreateRule", &seed_rule());
    let answers = enrich(
        &pki,
        &server,
        &[
            json!({"batchId": "1", "events": [
                event("e1", Some("http://fakess123.nu")),
                event("e2", Some("http://example.org/clean")),
                event("e3", None),
            ]}),
            json!({"batchId": "2", "events": [event("e4", Some("HTTPS://www.fakess123.nu:443/"))]}),
        ],
    );
    let ids: Vec<&str> = answers
        .iter()
        .map(|b| b["batchId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2"]);
    let events = answers[0]["events"].as_array().unwrap();
    let e1 = &events[0];
    assert_eq!(e1["id"], "e1");
    assert_eq!(e1["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE");
    let ti = &e1["ti"][0];
    assert_eq!(ti["field"], "RequestUrl");
    assert_eq!(ti["value"], "http://fakess123.nu");
    assert_eq!(ti["category"], "KL_Malicious_URL");
    assert_eq!(ti["matchedIndicator"], "fakess123.nu");
    assert_eq!(ti["supplier"], "Demo");
    assert!(ti["context"].is_object(), "{ti}");
    assert_eq!(events[1]["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE");
    assert!(events[1].get("ti").is_none(), "{}", events[1]);
    assert_eq!(
        events[2]["enrichmentStatus"],
        "ENRICHMENT_STATUS_NOT_ENRICHED"
    );
    assert_eq!(
        answers[1]["events"][0]["ti"][0]["category"],
        "KL_Malicious_URL"
    );
    // Debug is on in the seed rule: each answer is logged with its event id.
    server.wait_for_log("the debug answer for e1", |l| {
        l["message"] == "enrichment answer" && l["event"] == "e1"
    });
    let stats = stats(&pki, &server);
    assert_eq!(
        (
            &stats["batches"],
            &stats["events"],
            &stats["complete"],
            &stats["notEnriched"]
        ),
        (&json!(2), &json!(4), &json!(3), &json!(1)),
        "{stats}"
    );
    let rule = &stats["rules"][0];
    assert_eq!(rule["ruleName"], "Test CT enrichment");
    assert_eq!(
        (&rule["events"], &rule["lookups"], &rule["matches"]),
        (&json!(3), &json!(3), &json!(2)),
        "{stats}"
    );
    // The same counts on both services' Prometheus endpoints.
    let scraped = scrape(server.metrics_addr());
    let of = |metric: &str, labels: &[&str]| sample(&scraped, metric, labels);
    let events = "xdr_enrichment_events_total";
    assert_eq!(
        (
            of(events, &[r#"status="ENRICHMENT_STATUS_COMPLETE""#]),
            of(events, &[r#"status="ENRICHMENT_STATUS_NOT_ENRICHED""#]),
            of("xdr_enrichment_lookups_total", &[]),
            of("xdr_enrichment_matches_total", &[]),
            of("xdr_enrichment_batch_duration_seconds_count", &[]),
        ),
        (Some(3.0), Some(1.0), Some(3.0), Some(2.0), Some(2.0)),
        "{scraped}"
    );
    let scraped = scrape(threatintel.metrics_addr());
    let grpc = [r#"interface="grpc""#];
    assert_eq!(
        (
            sample(&scraped, "xdr_threatintel_lookups_total", &grpc),
            sample(&scraped, "xdr_threatintel_matches_total", &grpc),
        ),
        (Some(3.0), Some(2.0)),
        "{scraped}"
    );
    assert!(
        sample(&scraped, "xdr_threatintel_feed_indicators", &[]) > Some(0.0),
        "{scraped}"
    );
}

#[test]
fn a_source_that_is_down_lets_events_through_marked() {
    let pki = TestPki::new();
    // Nothing listens on the discard port.
    let server = start_enrichment(&pki, "127.0.0.1:9");
    ok(&pki, &server, "CreateRule", &seed_rule());
    let answers = enrich(
        &pki,
        &server,
        &[json!({"batchId": "7", "events": [
            event("e1", Some("http://fakess123.nu")),
            event("e2", None),
        ]})],
    );
    let events = answers[0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "no event is dropped");
    assert_eq!(
        events[0]["enrichmentStatus"],
        "ENRICHMENT_STATUS_SOURCE_UNAVAILABLE"
    );
    assert_eq!(
        events[1]["enrichmentStatus"],
        "ENRICHMENT_STATUS_NOT_ENRICHED"
    );
    let test = ok(&pki, &server, "TestConnection", &seed_rule());
    assert!(test.get("ok").is_none(), "{test}");
    assert!(!test["message"].as_str().unwrap().is_empty(), "{test}");
    // Counted, per service and per rule.
    let stats = stats(&pki, &server);
    assert_eq!(stats["sourceUnavailable"], 1, "{stats}");
    assert_eq!(stats["rules"][0]["sourceUnavailable"], 1, "{stats}");
    let scraped = scrape(server.metrics_addr());
    assert_eq!(
        sample(&scraped, "xdr_enrichment_source_unavailable_total", &[]),
        Some(1.0),
        "{scraped}"
    );
}

#[test]
fn a_source_that_does_not_answer_times_events_out_at_the_rule_timeout() {
    let pki = TestPki::new();
    // Connections complete in the kernel's backlog, and nothing ever answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = start_enrichment(&pki, &silent.local_addr().unwrap().to_string());
    let mut rule = seed_rule();
    rule["timeoutSeconds"] = json!(1);
    ok(&pki, &server, "CreateRule", &rule);
    let answers = enrich(
        &pki,
        &server,
        &[
            json!({"batchId": "1", "events": [event("e1", Some("http://fakess123.nu"))]}),
            json!({"batchId": "2", "events": [event("e2", Some("http://fakess123.nu")), event("e3", None)]}),
        ],
    );
    let statuses: Vec<&str> = answers
        .iter()
        .flat_map(|b| b["events"].as_array().unwrap())
        .map(|e| e["enrichmentStatus"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "ENRICHMENT_STATUS_TIMED_OUT",
            "ENRICHMENT_STATUS_TIMED_OUT",
            "ENRICHMENT_STATUS_NOT_ENRICHED"
        ]
    );
    // TIMED_OUT, not SOURCE_UNAVAILABLE: the rule's second ended the wait, not the
    // channel's 5-second connect timeout.
    let stats = stats(&pki, &server);
    assert_eq!(
        (&stats["timedOut"], &stats["rules"][0]["timedOut"]),
        (&json!(2), &json!(2)),
        "{stats}"
    );
}

#[test]
fn saved_filters_select_events_and_refuse_cycles_and_deletion_in_use() {
    let pki = TestPki::new();
    let threatintel = start_threatintel(&pki);
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
fn the_cybertrace_source_speaks_replyback_to_a_cybertrace_listener() {
    let pki = TestPki::new();
    let threatintel = start_threatintel(&pki);
    let cybertrace = cybertrace_addr(&threatintel).to_string();
    // The enrichment service is not told where ThreatIntel's gRPC is: only CyberTrace answers.
    let server = start_enrichment(&pki, "127.0.0.1:9");
    let mut rule = seed_rule();
    rule["sourceKind"] = json!("SOURCE_KIND_CYBERTRACE");
    rule["serverUrl"] = json!(cybertrace);
    rule["mapping"] = json!([
        {"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"},
        {"field": "SourceAddress", "indicatorType": "INDICATOR_TYPE_IP"}
    ]);
    let test = ok(&pki, &server, "TestConnection", &rule);
    assert_eq!(test["ok"], true, "{test}");
    ok(&pki, &server, "CreateRule", &rule);
    let mut both = event("e1", Some("http://fakess123.nu"));
    both["fields"]["SourceAddress"] = json!({"text": "198.51.100.7"});
    let answers = enrich(
        &pki,
        &server,
        &[json!({"batchId": "1", "events": [both, event("e2", Some("http://example.org/"))]})],
    );
    let events = answers[0]["events"].as_array().unwrap();
    let mut found: Vec<String> = events[0]["ti"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m["field"], m["category"], m["matchedIndicator"], m["supplier"]
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            r#""RequestUrl" "KL_Malicious_URL" "fakess123.nu" "CyberTrace""#,
            r#""SourceAddress" "KL_IP_Reputation" "198.51.100.0/24" "CyberTrace""#,
        ]
    );
    assert!(events[0]["ti"][0]["context"]["threat"].is_string());
    assert_eq!(events[0]["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE");
    assert_eq!(events[1]["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE");
    assert!(events[1].get("ti").is_none());
}

#[test]
fn a_rules_rps_is_a_ceiling_seen_at_the_threatintel_side() {
    const RPS: u64 = 20;
    const VALUES: u64 = 60;
    let pki = TestPki::new();
    let threatintel = start_threatintel(&pki);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    let mut rule = seed_rule();
    rule["rps"] = json!(RPS);
    rule["debug"] = json!(false);
    ok(&pki, &server, "CreateRule", &rule);
    let events: Vec<Value> = (0..VALUES)
        .map(|i| event(&format!("e{i}"), Some(&format!("http://rps{i}.example/"))))
        .collect();
    let batch = json!({"batchId": "1", "events": events});
    let lookups = || {
        let stats = xdr_tests::threatintel::call(&pki, &threatintel, "Stats", &json!({}));
        stats["lookups"]
            .as_str()
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let enriching = scope.spawn(|| enrich(&pki, &server, std::slice::from_ref(&batch)));
        // Samples while the batch is at work (bounded: 600 polls of ~50 ms at most): the
        // count may never pass one second's burst plus RPS per second since the start.
        let mut polls = 0;
        while !enriching.is_finished() && polls < 600 {
            let seen = lookups();
            let allowed = RPS + (RPS as f64 * started.elapsed().as_secs_f64()).ceil() as u64;
            assert!(
                seen <= allowed,
                "{seen} lookups after {:?}",
                started.elapsed()
            );
            polls += 1;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let answers = enriching.join().unwrap();
        // What the burst leaves needs this long at RPS per second; a slow machine only
        // takes longer, so this can fail only if the ceiling was not held.
        let least = std::time::Duration::from_secs((VALUES - RPS) / RPS);
        assert!(
            started.elapsed() >= least,
            "done in {:?}",
            started.elapsed()
        );
        let statuses: Vec<&str> = answers[0]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["enrichmentStatus"].as_str().unwrap())
            .collect();
        assert!(
            statuses.iter().all(|s| *s == "ENRICHMENT_STATUS_COMPLETE"),
            "{statuses:?}"
        );
    });
    assert_eq!(lookups(), VALUES);
    // One second's burst went at once; the two batches of values after it waited.
    let scraped = scrape(server.metrics_addr());
    assert_eq!(
        sample(&scraped, "xdr_enrichment_throttled_lookups_total", &[]),
        Some((VALUES - RPS) as f64),
        "{scraped}"
    );
}

/// One event whose URL is in the demo feed, as the tonic client sends it.
fn fakess_batch(batch_id: u64) -> xdr_proto::pb::EnrichBatch {
    use xdr_proto::pb::{EnrichBatch, Event, FieldValue, field_value::Kind};
    let url = FieldValue {
        kind: Some(Kind::Text("http://fakess123.nu".into())),
    };
    EnrichBatch {
        batch_id,
        events: vec![Event {
            id: format!("e{batch_id}"),
            fields: [("RequestUrl".to_owned(), url)].into(),
            ..Default::default()
        }],
    }
}

#[test]
fn a_rule_changed_mid_stream_applies_from_the_next_batch() {
    use xdr_proto::pb::{EnrichmentStatus, enrichment_client::EnrichmentClient};
    let pki = TestPki::new();
    let threatintel = start_threatintel(&pki);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    // At first the rule's filter takes no event.
    let mut rule = seed_rule();
    rule["inlineFilter"] = json!({"condition": {
        "left": {"field": "RequestUrl"},
        "operator": "OPERATOR_CONTAINS",
        "right": [{"constant": {"text": "nothing-has-this"}}]
    }});
    let created = ok(&pki, &server, "CreateRule", &rule);
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        let (batches, outgoing) = tokio::sync::mpsc::channel(4);
        let mut answers = EnrichmentClient::new(channel)
            .enrich(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        batches.send(fakess_batch(1)).await.unwrap();
        let first = answers.message().await.unwrap().unwrap();
        assert_eq!(first.batch_id, 1);
        assert_eq!(
            first.events[0].enrichment_status(),
            EnrichmentStatus::NotEnriched
        );

        // The same stream, open all along: the rule loses its filter.
        let mut changed = created.clone();
        changed.as_object_mut().unwrap().remove("inlineFilter");
        ok(&pki, &server, "UpdateRule", &changed);
        batches.send(fakess_batch(2)).await.unwrap();
        let second = answers.message().await.unwrap().unwrap();
        assert_eq!(second.batch_id, 2);
        assert_eq!(
            second.events[0].enrichment_status(),
            EnrichmentStatus::Complete
        );
        assert_eq!(second.events[0].ti[0].category, "KL_Malicious_URL");

        drop(batches);
        assert!(
            answers.message().await.unwrap().is_none(),
            "each batch answered once"
        );
    });
}

#[test]
fn an_active_list_selects_events_and_its_changes_apply_at_once() {
    let pki = TestPki::new();
    let threatintel = start_threatintel(&pki);
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

/// `Enrich` fed batches whose events are bytes the test chose; answers read whole.
async fn raw_enrich(
    channel: tonic::transport::Channel,
    batches: Vec<xdr_proto::wire::WireEnrichBatch>,
) -> tonic::Streaming<xdr_proto::pb::EnrichBatch> {
    use xdr_proto::{codec::XdrCodec, pb::EnrichBatch, wire::WireEnrichBatch};
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    grpc.streaming(
        tonic::Request::new(tokio_stream::iter(batches)),
        tonic::codegen::http::uri::PathAndQuery::from_static("/xdr.v1.Enrichment/Enrich"),
        XdrCodec::<WireEnrichBatch, EnrichBatch>::default(),
    )
    .await
    .unwrap()
    .into_inner()
}

#[test]
fn a_batch_larger_than_grpcs_default_4_mib_is_taken() {
    use prost::Message;
    use xdr_proto::{pb::Event, wire::WireEnrichBatch};
    let pki = TestPki::new();
    let server = start_enrichment(&pki, "127.0.0.1:9");
    let event = Event {
        raw: "x".repeat(1000),
        ..Default::default()
    }
    .encode_to_vec();
    let batch = WireEnrichBatch {
        batch_id: 1,
        events: vec![event.into(); 6000],
    };
    assert!(
        batch.encoded_len() > 4 << 20,
        "more than tonic takes by default"
    );
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        let answer = raw_enrich(channel, vec![batch])
            .await
            .message()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.events.len(), 6000);
    });
}

#[test]
fn a_batch_with_an_event_that_does_not_decode_is_refused_by_name_and_the_service_stays_up() {
    use prost::Message;
    use xdr_proto::{pb::EnrichmentStatus, wire::WireEnrichBatch};
    let pki = TestPki::new();
    let server = start_enrichment(&pki, "127.0.0.1:9");
    // Field 1 (`id`, a string) holding bytes that are not UTF-8.
    let not_utf8 = vec![0x0a, 0x02, 0xff, 0xfe];
    let valid = |batch_id| {
        let batch = fakess_batch(batch_id);
        WireEnrichBatch {
            batch_id,
            events: vec![batch.events[0].encode_to_vec().into()],
        }
    };
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        let open = |batches| raw_enrich(channel.clone(), batches);
        let mut broken = valid(2);
        broken.events.push(not_utf8.into());
        let mut answers = open(vec![valid(1), broken, valid(3)]).await;
        let first = answers.message().await.unwrap().unwrap();
        assert_eq!(first.batch_id, 1);
        assert_eq!(
            first.events[0].enrichment_status(),
            EnrichmentStatus::NotEnriched
        );
        let refused = answers.message().await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("batch 2: events[1]")
                && refused.message().contains("Event.id"),
            "{}",
            refused.message()
        );

        // The service is still up: a new stream is answered.
        let mut again = open(vec![valid(4)]).await;
        assert_eq!(again.message().await.unwrap().unwrap().batch_id, 4);
    });
    let stats = stats(&pki, &server);
    assert_eq!(
        (&stats["batches"], &stats["refusedBatches"]),
        (&json!(2), &json!(1)),
        "batches 1 and 4 answered, 2 refused, 3 never read: {stats}"
    );
}

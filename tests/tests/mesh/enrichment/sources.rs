//! Where rules look values up: a source that is down or silent, a CyberTrace listener, and a
//! rule's RPS as seen from the ThreatIntel side.

use serde_json::{Value, json};
use xdr_tests::threatintel::start_with_demo_feed;
use xdr_tests::{
    ServiceProcess, TestPki,
    enrichment::{enrich, ok},
    metrics::{sample, scrape},
    threatintel::cybertrace_addr,
};

use super::{event, seed_rule, start_enrichment, stats};

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
fn the_cybertrace_source_speaks_replyback_to_a_cybertrace_listener() {
    let pki = TestPki::new();
    let threatintel = start_with_demo_feed(&pki, &[]);
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
    let threatintel = start_with_demo_feed(&pki, &[]);
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

/// Two ThreatIntel replicas behind one enrichment service: the lanes spread over both, and
/// when one is killed, the lookups of its lane are tried on the other — every event of
/// every batch, before and after, is enriched (none marked unavailable), each answered once.
#[test]
fn a_killed_threatintel_replica_has_its_lookups_answered_by_the_other() {
    let pki = TestPki::new();
    let first = start_with_demo_feed(&pki, &[]);
    let second = start_with_demo_feed(&pki, &[]);
    let replicas = format!("{},{}", first.listening_addr(), second.listening_addr());
    let server = start_enrichment(&pki, &replicas);
    let mut rule = seed_rule();
    rule["connections"] = json!(2);
    ok(&pki, &server, "CreateRule", &rule);
    let batches = |from: usize| -> Vec<Value> {
        (from..from + 8)
            .map(|b| {
                json!({"batchId": b.to_string(), "events": [
                    event(&format!("e{b}a"), Some("http://fakess123.nu")),
                    event(&format!("e{b}b"), Some(&format!("http://clean{b}.example"))),
                ]})
            })
            .collect()
    };
    let statuses = |answers: &[Value]| -> Vec<(String, String)> {
        answers
            .iter()
            .flat_map(|b| b["events"].as_array().unwrap())
            .map(|e| {
                let category = e["ti"][0]["category"].as_str().unwrap_or("-").to_owned();
                (e["enrichmentStatus"].as_str().unwrap().to_owned(), category)
            })
            .collect()
    };
    let expected: Vec<(String, String)> = (0..8)
        .flat_map(|_| {
            [
                (
                    "ENRICHMENT_STATUS_COMPLETE".to_owned(),
                    "KL_Malicious_URL".to_owned(),
                ),
                ("ENRICHMENT_STATUS_COMPLETE".to_owned(), "-".to_owned()),
            ]
        })
        .collect();
    // Both replicas serve: each lane's first batches go to its own.
    // Each stream's values go out as one gathered lookup, on the next lane in turn.
    for from in [0, 8] {
        let before = enrich(&pki, &server, &batches(from));
        assert_eq!(statuses(&before), expected);
    }
    let looked_up = |replica: &ServiceProcess| {
        sample(
            &scrape(replica.metrics_addr()),
            "xdr_threatintel_lookups_total",
            &["interface=\"grpc\""],
        )
        .unwrap_or(0.0)
    };
    assert!(
        looked_up(&first) > 0.0 && looked_up(&second) > 0.0,
        "both replicas were used"
    );

    // One replica dies. Once its health check says so, its lanes are passed over before
    // any exchange fails on them: no lane fails, every event still enriched.
    let mut first = first;
    let dead = first.listening_addr().to_string();
    first.signal(libc::SIGKILL);
    first.wait_exit(std::time::Duration::from_secs(10));
    server.wait_for_log("the dead replica passed over", |l| {
        l["message"] == "replica passed over" && l["replica"].as_str() == Some(&dead)
    });
    let lane_failures = || {
        (server.log_lines().iter())
            .filter(|l| l.contains("a lane failed an exchange"))
            .count()
    };
    let failed_before = lane_failures();
    for from in [16, 24] {
        let after = enrich(&pki, &server, &batches(from));
        assert_eq!(statuses(&after), expected, "{after:?}");
    }
    assert_eq!(
        lane_failures(),
        failed_before,
        "no exchange sent to the dead replica"
    );
    assert_eq!(
        stats(&pki, &server)["sourceUnavailable"],
        Value::Null,
        "none unavailable"
    );
}

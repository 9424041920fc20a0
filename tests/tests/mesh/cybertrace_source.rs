//! The enrichment service's `cybertrace` source facing what a network gives it: a value the
//! listener would refuse, a value that would read as two lookups, a peer that stops answering
//! mid-exchange. Each costs at most its own events; the source goes on for every later one.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Duration,
};

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki,
    enrichment::{enrich, ok, rpc, start},
    threatintel::{self, cybertrace_addr, start_with_demo_feed},
};

fn cybertrace_rule(target: &str, timeout_seconds: u32) -> Value {
    json!({
        "name": "CyberTrace URLs",
        "sourceKind": "SOURCE_KIND_CYBERTRACE",
        "serverUrl": target,
        "connections": 1,
        "timeoutSeconds": timeout_seconds,
        "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}]
    })
}

fn batch(batch_id: u32, urls: &[&str]) -> Value {
    let events: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| json!({"id": format!("b{batch_id}e{i}"), "fields": {"RequestUrl": {"text": url}}}))
        .collect();
    json!({"batchId": batch_id.to_string(), "events": events})
}

/// Each event of each answered batch as (status, categories of its matches).
fn outcomes(answers: &[Value]) -> Vec<(String, Vec<String>)> {
    answers
        .iter()
        .flat_map(|b| b["events"].as_array().unwrap().clone())
        .map(|e| {
            let categories = e["ti"]
                .as_array()
                .map(|ti| {
                    ti.iter()
                        .map(|m| m["category"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            (
                e["enrichmentStatus"].as_str().unwrap().to_owned(),
                categories,
            )
        })
        .collect()
}

const COMPLETE: &str = "ENRICHMENT_STATUS_COMPLETE";

/// ThreatIntel with the demo feed, and an enrichment service whose one rule looks URLs up in
/// its CyberTrace listener (also returned, for the rule's connection test).
fn with_cybertrace_rule(pki: &TestPki) -> (ServiceProcess, ServiceProcess, String) {
    let threatintel = start_with_demo_feed(pki, &[]);
    let target = cybertrace_addr(&threatintel).to_string();
    let server = start(pki, "127.0.0.1:9");
    ok(pki, &server, "CreateRule", &cybertrace_rule(&target, 5));
    (threatintel, server, target)
}

#[test]
fn a_value_over_64_kib_is_answered_without_wedging_the_source() {
    let pki = TestPki::new();
    let (_threatintel, server, target) = with_cybertrace_rule(&pki);
    let huge = format!("http://example.org/{}", "a".repeat(70 * 1024));
    let answers = enrich(
        &pki,
        &server,
        &[
            batch(1, &[&huge, "http://fakess123.nu"]),
            batch(2, &["http://fakess123.nu"]),
        ],
    );
    let malicious = vec!["KL_Malicious_URL".to_owned()];
    assert_eq!(
        outcomes(&answers),
        [
            (COMPLETE.to_owned(), vec![]),
            (COMPLETE.to_owned(), malicious.clone()),
            (COMPLETE.to_owned(), malicious),
        ]
    );
    let test = ok(
        &pki,
        &server,
        "TestConnection",
        &cybertrace_rule(&target, 5),
    );
    assert_eq!(test["ok"], true, "{test}");
}

#[test]
fn a_value_with_a_space_is_one_lookup() {
    let pki = TestPki::new();
    let (threatintel, server, _target) = with_cybertrace_rule(&pki);
    let lookups = || {
        let stats = threatintel::call(&pki, &threatintel, "Stats", &json!({}));
        stats["lookups"]
            .as_str()
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    // 192.0.2.1 is a demo indicator: read as a second lookup, it would be a false match.
    let before = lookups();
    let answers = enrich(
        &pki,
        &server,
        &[batch(1, &["http://benign.example/ ip=192.0.2.1"])],
    );
    assert_eq!(outcomes(&answers), [(COMPLETE.to_owned(), vec![])]);
    assert_eq!(lookups() - before, 1, "one value, one lookup");
}

/// A CyberTrace that takes the first connection's request and never answers it, and answers
/// every line of later connections with one detection and its `LookupFinished`.
fn stalling_cybertrace() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut stalled, _) = listener.accept().unwrap();
        let _ = stalled.read(&mut [0u8; 1024]);
        // Held open, unanswered, for as long as the test runs.
        let mut held = vec![stalled];
        for accepted in listener.incoming().take(4) {
            let Ok(stream) = accepted else { return };
            held.push(stream.try_clone().unwrap());
            std::thread::spawn(move || answer_lines(stream));
        }
    });
    addr
}

fn answer_lines(stream: TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    let mut total = 0;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        total += 1;
        let value = line
            .trim_start_matches("X-KF-SendFinishedEventX-KF-ReplyBack")
            .trim();
        let answer = format!(
            "Category=KL_Test_URL|MatchedIndicator={value}\nLookupFinished|sent_events=1|total={total}\n"
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_cybertrace_that_stops_answering_is_replaced_at_the_deadline() {
    let pki = TestPki::new();
    let target = stalling_cybertrace();
    let server = start(&pki, "127.0.0.1:9");
    ok(&pki, &server, "CreateRule", &cybertrace_rule(&target, 1));
    let first = enrich(&pki, &server, &[batch(1, &["http://a.example/"])]);
    assert_eq!(
        outcomes(&first),
        [("ENRICHMENT_STATUS_TIMED_OUT".to_owned(), vec![])]
    );
    // The stalled connection was given up at the deadline; the next batch dials a new one.
    let second = enrich(&pki, &server, &[batch(2, &["http://b.example/"])]);
    assert_eq!(
        outcomes(&second),
        [(COMPLETE.to_owned(), vec!["KL_Test_URL".to_owned()])]
    );
    let test = ok(
        &pki,
        &server,
        "TestConnection",
        &cybertrace_rule(&target, 1),
    );
    assert_eq!(test["ok"], true, "{test}");
}

/// A CyberTrace double answering every line; `closed` hears each time a connection it
/// accepted is closed by the enrichment service.
fn answering_cybertrace() -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (closed_tx, closed) = mpsc::channel();
    std::thread::spawn(move || {
        for accepted in listener.incoming().take(8) {
            let Ok(stream) = accepted else { return };
            let closed_tx = closed_tx.clone();
            std::thread::spawn(move || {
                answer_lines(stream);
                let _ = closed_tx.send(());
            });
        }
    });
    (addr, closed)
}

/// Generous for a debug build on a busy machine; a connection left open fails the test.
const CLOSED_WITHIN: Duration = Duration::from_secs(20);

#[test]
fn a_source_no_rule_uses_any_more_is_closed() {
    let pki = TestPki::new();
    let (target, closed) = answering_cybertrace();
    let server = start(&pki, "127.0.0.1:9");
    let rule = ok(&pki, &server, "CreateRule", &cybertrace_rule(&target, 5));
    let answers = enrich(&pki, &server, &[batch(1, &["http://a.example/"])]);
    assert_eq!(
        outcomes(&answers),
        [(COMPLETE.to_owned(), vec!["KL_Test_URL".to_owned()])]
    );
    // The rule now looks elsewhere: nothing uses the first source, and its connection goes.
    let mut moved = rule.clone();
    moved["serverUrl"] = json!("127.0.0.1:9");
    ok(&pki, &server, "UpdateRule", &moved);
    closed
        .recv_timeout(CLOSED_WITHIN)
        .expect("the connection of the source no rule uses is closed");
}

#[test]
fn a_connection_test_of_a_draft_rule_leaves_no_source_behind() {
    let pki = TestPki::new();
    let (target, closed) = answering_cybertrace();
    let server = start(&pki, "127.0.0.1:9");
    let test = ok(
        &pki,
        &server,
        "TestConnection",
        &cybertrace_rule(&target, 5),
    );
    assert_eq!(test["ok"], true, "{test}");
    closed
        .recv_timeout(CLOSED_WITHIN)
        .expect("the tested source's connection is closed once the test is answered");
    // The draft was never saved: no rule, nothing kept.
    let listed = rpc(&pki, &server, "ListRules", &json!({}));
    assert!(
        listed.success && !listed.stdout.contains("CyberTrace URLs"),
        "{}",
        listed.stdout
    );
}

//! The CyberTrace-compatible TCP service, spoken to over a real socket the way KUMA and
//! CyberTrace's own tools do.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use serde_json::json;
use xdr_tests::{
    ServiceProcess, TestPki,
    metrics::{sample, scrape},
    threatintel::{cybertrace_addr, start_with_demo_feed},
};

fn start(pki: &TestPki) -> (ServiceProcess, SocketAddr) {
    start_with(pki, &[])
}

/// The threat-intel service with the demo feed and `extra` flags; its CyberTrace address.
fn start_with(pki: &TestPki, extra: &[&str]) -> (ServiceProcess, SocketAddr) {
    let server = start_with_demo_feed(pki, extra);
    let addr = cybertrace_addr(&server);
    (server, addr)
}

/// A connection whose reads give up after 10 s, so a silent server fails the test.
fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn next_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("an answer within 10 s");
    line.trim_end_matches('\n').to_owned()
}

#[test]
fn reply_back_answers_each_line_with_detections_and_a_finished_event() {
    let pki = TestPki::new();
    let (_server, addr) = start(&pki);
    let (mut stream, mut reader) = connect(addr);
    stream
        .write_all(b"X-KF-SendFinishedEventX-KF-ReplyBackurl=http://fakess123.nu \r\n")
        .unwrap();
    assert_eq!(
        next_line(&mut reader),
        "Category=KL_Malicious_URL|MatchedIndicator=fakess123.nu|popularity=1|threat=Demo malicious URL"
    );
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=1|total=1"
    );

    stream.write_all(b"ip=203.0.113.200 \n").unwrap();
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=2"
    );

    stream
        .write_all(b"Blocked a download of 44d88612fea8a8f36de82e1278abb02f from 198.51.100.7\n")
        .unwrap();
    let mut detections = vec![next_line(&mut reader), next_line(&mut reader)];
    detections.sort();
    assert!(
        detections[0].starts_with("Category=KL_IP_Reputation|MatchedIndicator=198.51.100.0/24"),
        "{detections:?}"
    );
    assert!(
        detections[1].starts_with("Category=KL_Malicious_Hash_MD5|MatchedIndicator=44d88612"),
        "{detections:?}"
    );
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=2|total=3"
    );
}

#[test]
fn ping_is_answered_pong() {
    let pki = TestPki::new();
    let (_server, addr) = start(&pki);
    let (mut stream, mut reader) = connect(addr);
    stream.write_all(b"X-KF-ReplyBackPING").unwrap();
    assert_eq!(next_line(&mut reader), "PONG");
}

#[test]
fn every_line_gets_its_finished_event_refused_lines_too() {
    let pki = TestPki::new();
    let (server, addr) = start(&pki);
    let (mut stream, mut reader) = connect(addr);
    stream
        .write_all(b"X-KF-SendFinishedEventX-KF-ReplyBack")
        .unwrap();
    // Not UTF-8, over 64 KiB, empty, a value that is not a hash: each is a line the client
    // waits for, and each is answered in turn.
    stream.write_all(b"url=\xff\xfe\xfd \n").unwrap();
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=1"
    );
    stream.write_all(&[b'a'; 70 * 1024]).unwrap();
    stream.write_all(b"\n").unwrap();
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=2"
    );
    stream.write_all(b"\r\n").unwrap();
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=3"
    );
    stream.write_all(b"md5=zz \nip=192.0.2.1 \n").unwrap();
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=4"
    );
    assert!(
        next_line(&mut reader).starts_with("Category=KL_IP_Reputation|MatchedIndicator=192.0.2.1")
    );
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=1|total=5"
    );

    let open = scrape(server.metrics_addr());
    assert_eq!(
        sample(&open, "xdr_threatintel_cybertrace_connections", &[]),
        Some(1.0),
        "{open}"
    );

    // The first refusal is logged in detail, the rest summed up when the connection closes.
    server.wait_for_log("the first refusal", |l| {
        l["message"] == "cybertrace: line refused" && l["reason"] == "not UTF-8"
    });
    drop((stream, reader));
    let summary = server.wait_for_log("the summary", |l| {
        l["message"] == "cybertrace: connection closed after refused input"
    });
    assert_eq!(
        (
            &summary["not_utf8"],
            &summary["too_long"],
            &summary["bad_values"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{summary}"
    );
    // Counted on /metrics too, by reason, with the lookups and matches of this interface.
    let scraped = scrape(server.metrics_addr());
    let refused = "xdr_threatintel_cybertrace_refused_lines_total";
    for reason in ["not_utf8", "too_long", "bad_value"] {
        let label = format!(r#"reason="{reason}""#);
        assert_eq!(sample(&scraped, refused, &[&label]), Some(1.0), "{scraped}");
    }
    let cybertrace = [r#"interface="cybertrace""#];
    assert_eq!(
        sample(&scraped, "xdr_threatintel_matches_total", &cybertrace),
        Some(1.0),
        "{scraped}"
    );
}

#[test]
fn a_client_cannot_flood_the_log_with_malformed_lines() {
    let pki = TestPki::new();
    let (server, addr) = start(&pki);
    let (mut stream, mut reader) = connect(addr);
    stream
        .write_all(b"X-KF-SendFinishedEventX-KF-ReplyBack")
        .unwrap();
    const LINES: usize = 5000;
    stream.write_all(&b"\xff\n".repeat(LINES)).unwrap();
    for n in 1..=LINES {
        assert_eq!(
            next_line(&mut reader),
            format!("LookupFinished|sent_events=0|total={n}")
        );
    }
    drop((stream, reader));
    let summary = server.wait_for_log("the summary", |l| {
        l["message"] == "cybertrace: connection closed after refused input"
    });
    assert_eq!(summary["not_utf8"], LINES, "{summary}");
    let warnings = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("cybertrace: line refused"))
        .count();
    assert_eq!(warnings, 1, "one warning for {LINES} refused lines");
}

#[test]
fn many_connections_are_served_at_once() {
    let pki = TestPki::new();
    let (_server, addr) = start(&pki);
    let clients: Vec<_> = (0..64)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut stream, mut reader) = connect(addr);
                let line = format!("X-KF-ReplyBackip=198.51.100.{i} \n");
                stream.write_all(line.as_bytes()).unwrap();
                next_line(&mut reader)
            })
        })
        .collect();
    for client in clients {
        assert!(
            client
                .join()
                .unwrap()
                .starts_with("Category=KL_IP_Reputation|MatchedIndicator=198.51.100.0/24")
        );
    }
}

#[test]
fn a_connection_that_says_nothing_is_closed_at_the_idle_timeout() {
    let pki = TestPki::new();
    let (_server, addr) = start_with(&pki, &["--cybertrace-idle-timeout", "1s"]);
    let (mut silent, _) = connect(addr);
    let mut byte = [0u8; 1];
    let read = silent.read(&mut byte);
    assert!(
        matches!(read, Ok(0)),
        "the server closes a silent connection (read {read:?})"
    );
    let (mut opened, mut reader) = connect(addr);
    opened
        .write_all(b"X-KF-SendFinishedEventX-KF-ReplyBackip=192.0.2.200 \n")
        .unwrap();
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=1"
    );
    // Opened, answered, then quiet: closed too.
    let read = opened.read(&mut byte);
    assert!(matches!(read, Ok(0)), "read {read:?}");
}

#[test]
fn idle_connections_past_the_cap_do_not_keep_a_real_client_out() {
    let pki = TestPki::new();
    let (_server, addr) = start(&pki);
    // More idle sockets than the listener's 1,024 connections.
    let idle: Vec<_> = (0..1100).map(|_| connect(addr).0).collect();
    let (mut client, mut reader) = connect(addr);
    client
        .write_all(b"X-KF-SendFinishedEventX-KF-ReplyBackip=192.0.2.1 \n")
        .unwrap();
    assert!(
        next_line(&mut reader).starts_with("Category=KL_IP_Reputation|MatchedIndicator=192.0.2.1")
    );
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=1|total=1"
    );
    // Room was made by closing the sockets idle longest: the first ones opened.
    let mut first = idle.into_iter().next().unwrap();
    let read = first.read(&mut [0u8; 1]);
    assert!(matches!(read, Ok(0)), "read {read:?}");
}

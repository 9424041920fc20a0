//! CyberTrace's outgoing events: service alerts and the detections of connections without
//! ReplyBack, written one per line to `--event-target`, a TCP listener the test holds the way
//! a SIEM collector would.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    sync::mpsc,
    time::Duration,
};

use xdr_tests::{ServiceProcess, TestPki, threatintel::call};

/// Lines the event target received, from the first connection the service makes.
fn event_target(listener: TcpListener) -> mpsc::Receiver<String> {
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    received
}

fn next_event(events: &mpsc::Receiver<String>, within: Duration) -> String {
    events
        .recv_timeout(within)
        .expect("an event at the target in time")
}

fn start(pki: &TestPki, feeds: &Path, target: SocketAddr) -> ServiceProcess {
    ServiceProcess::start_with(
        "threatintel",
        pki,
        &[
            "--feeds-dir",
            feeds.to_str().unwrap(),
            "--event-target",
            &target.to_string(),
        ],
    )
}

/// `%Date% alert=...`: the date is RFC 3339 UTC to the second, the rest is returned.
fn alert_of(line: &str) -> &str {
    let (date, rest) = line
        .split_once(" alert=")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "{line}"
    );
    rest
}

#[test]
fn alerts_and_plain_detections_reach_the_event_target() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    std::fs::write(
        feeds.join("Alpha.json"),
        r#"[{"indicator": "alpha.example", "category": "KL_Malicious_URL", "context": {"threat": "test"}}]"#,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let events = event_target(listener);
    let mut server = start(&pki, &feeds, target);
    let wait = Duration::from_secs(10);
    assert_eq!(
        alert_of(&next_event(&events, wait)),
        "KL_ALERT_UpdatedFeed|feed=Alpha.json|records=1"
    );
    assert_eq!(
        alert_of(&next_event(&events, wait)),
        "KL_ALERT_ServiceStarted"
    );

    // A connection without ReplyBack: its detections go to the target, not back.
    let line = server.wait_for_log("the CyberTrace listener", |l| {
        l["message"] == "cybertrace listening"
    });
    let cybertrace: SocketAddr = line["addr"].as_str().unwrap().parse().unwrap();
    let mut stream = TcpStream::connect(cybertrace).unwrap();
    stream
        .write_all(b"url=http://alpha.example/x \nip=203.0.113.9 \n")
        .unwrap();
    assert_eq!(
        next_event(&events, wait),
        "Category=KL_Malicious_URL|MatchedIndicator=alpha.example|threat=test"
    );

    std::fs::write(feeds.join("Alpha.json"), "[{\"indicator\": ").unwrap();
    let reload = call(&pki, &server, "ReloadFeeds", &serde_json::json!({}));
    assert!(reload["feeds"][0]["error"].as_str().is_some(), "{reload}");
    let failed = next_event(&events, wait);
    assert!(
        alert_of(&failed).starts_with("KL_ALERT_FailedToUpdateFeed|feed=Alpha.json|error=")
            && failed.contains("line 1"),
        "{failed}"
    );

    server.signal(libc::SIGTERM);
    assert_eq!(
        alert_of(&next_event(&events, wait)),
        "KL_ALERT_ServiceStopped"
    );
    assert!(server.wait_exit(wait).success());
}

#[test]
fn events_wait_for_a_target_that_is_not_there_yet() {
    let pki = TestPki::new();
    let feeds = pki.scratch().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    std::fs::write(
        feeds.join("Beta.csv"),
        "indicator,category\nbeta.example,C\n",
    )
    .unwrap();
    // A free port, closed again: nothing listens there when the service starts.
    let target = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = start(&pki, &feeds, target);
    server.wait_for_log("the unreachable target reported", |l| {
        l["message"] == "cybertrace: event target unreachable"
    });
    // Lookups do not wait for the target.
    let reply = call(
        &pki,
        &server,
        "Lookup",
        &serde_json::json!({ "objects": [{ "value": "beta.example" }] }),
    );
    assert_eq!(reply["results"][0]["matches"][0]["supplier"], "Beta");

    let events = event_target(TcpListener::bind(target).unwrap());
    // The writer retries at most every 5 s; what was queued meanwhile arrives, in order.
    let wait = Duration::from_secs(15);
    assert_eq!(
        alert_of(&next_event(&events, wait)),
        "KL_ALERT_UpdatedFeed|feed=Beta.csv|records=1"
    );
    assert_eq!(
        alert_of(&next_event(&events, wait)),
        "KL_ALERT_ServiceStarted"
    );
}

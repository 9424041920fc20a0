//! The CyberTrace-compatible TCP service, spoken to over a real socket the way KUMA and
//! CyberTrace's own tools do.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use xdr_tests::{ServiceProcess, TestPki, paths};

fn start(pki: &TestPki) -> (ServiceProcess, SocketAddr) {
    let feeds = paths::workspace().join("services/threatintel/feeds");
    let server = ServiceProcess::start_with(
        "threatintel",
        pki,
        &["--feeds-dir", feeds.to_str().unwrap()],
    );
    let line = server.wait_for_log("the CyberTrace listener", |l| {
        l["message"] == "cybertrace listening"
    });
    let addr = line["addr"].as_str().unwrap().parse().unwrap();
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
fn malformed_lines_are_logged_and_the_connection_goes_on() {
    let pki = TestPki::new();
    let (server, addr) = start(&pki);
    let (mut stream, mut reader) = connect(addr);
    stream
        .write_all(b"X-KF-SendFinishedEventX-KF-ReplyBack")
        .unwrap();
    stream.write_all(b"url=\xff\xfe\xfd \n").unwrap();
    stream.write_all(&[b'a'; 70 * 1024]).unwrap();
    stream.write_all(b"\nmd5=zz \nip=192.0.2.1 \n").unwrap();
    // The bad lines are skipped; `md5=zz` is a line (total 1) whose value is refused.
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=0|total=1"
    );
    assert!(
        next_line(&mut reader).starts_with("Category=KL_IP_Reputation|MatchedIndicator=192.0.2.1")
    );
    assert_eq!(
        next_line(&mut reader),
        "LookupFinished|sent_events=1|total=2"
    );
    server.wait_for_log("the UTF-8 warning", |l| {
        l["message"] == "cybertrace: line is not UTF-8, skipped"
    });
    server.wait_for_log("the long-line warning", |l| {
        l["message"] == "cybertrace: line too long, discarded"
    });
    server.wait_for_log("the refused value", |l| {
        l["message"] == "cybertrace: value not looked up"
    });
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

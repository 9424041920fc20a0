//! Graceful shutdown: SIGTERM stops new connections, lets calls in flight finish and exits 0;
//! a call outlasting the shutdown grace is cut off so a stuck client cannot pin the process.

use std::{
    net::{SocketAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use xdr_tests::{ServiceProcess, TestPki, grpcurl::ping_in_flight};

/// Polls (bounded) until connecting to `addr` is refused: the listener is closed.
fn wait_until_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections while draining"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_lets_an_in_flight_call_finish_and_exits_zero() {
    let pki = TestPki::new();
    let mut server = ServiceProcess::start("enrichment", &pki);
    let addr = server.listening_addr();
    let call = ping_in_flight(&pki, &server, 2000);

    server.signal(libc::SIGTERM);
    server.wait_for_log("the shutdown", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))
    });
    wait_until_refused(addr);

    let outcome = call.join().expect("the grpcurl thread");
    assert!(
        outcome.success,
        "the in-flight call was cut: {}",
        outcome.stderr
    );
    assert!(
        outcome.stdout.contains(r#""service": "enrichment""#),
        "{}",
        outcome.stdout
    );
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains(r#""message":"stopped""#))
    );
}

#[test]
fn calls_outlasting_the_shutdown_grace_are_cut_off() {
    let pki = TestPki::new();
    let mut server = ServiceProcess::start_with("collector", &pki, &["--shutdown-grace", "300ms"]);
    let call = ping_in_flight(&pki, &server, 25_000);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    server.wait_for_log("the cut-off warning", |l| {
        l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("shutdown grace"))
    });
    let outcome = call.join().expect("the grpcurl thread");
    assert!(
        !outcome.success,
        "a call longer than the grace cannot have finished: {}",
        outcome.stdout
    );
}

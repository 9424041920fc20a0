//! Connections that never start TLS cost the server a socket each and nothing more: they
//! cannot delay a real client's handshake, and past the bound on handshakes in progress the
//! oldest of them is dropped to make room. grpcurl's `-max-time 20` bounds every call below:
//! a client kept waiting behind silent handshakes fails the test.

use std::{io::Read, net::TcpStream, time::Duration};

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki};

fn ping(pki: &TestPki, server: &ServiceProcess) -> xdr_tests::grpcurl::Outcome {
    Grpcurl::new(pki, Cert::Named("operator"))
        .data("{}")
        .call(server.listening_addr(), &["xdr.v1.Diagnostics/Ping"])
}

#[test]
fn connections_that_never_start_tls_do_not_delay_a_real_client() {
    let pki = TestPki::new();
    // Silent handshakes would hold for a minute: a wait behind them outlasts grpcurl's 20 s.
    let server = ServiceProcess::start_with("threatintel", &pki, &["--handshake-timeout", "60s"]);
    let addr = server.listening_addr();
    let _silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let served = ping(&pki, &server);
    assert!(served.success, "{}", served.stderr);
}

#[test]
fn past_the_handshake_bound_the_oldest_silent_connection_is_dropped() {
    let pki = TestPki::new();
    let server = ServiceProcess::start_with(
        "threatintel",
        &pki,
        &["--handshake-timeout", "60s", "--max-handshakes", "8"],
    );
    let addr = server.listening_addr();
    let mut silent: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let served = ping(&pki, &server);
    assert!(served.success, "{}", served.stderr);
    let oldest = &mut silent[0];
    oldest
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let read = oldest.read(&mut [0u8; 1]);
    assert!(
        matches!(read, Ok(0)),
        "the oldest silent connection is closed (read {read:?})"
    );
}

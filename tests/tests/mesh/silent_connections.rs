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

/// Reads the first answer of a stream the client opened and sends nothing on.
async fn first_answer_of_a_silent_stream<T: std::fmt::Debug>(
    answers: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> tonic::Status {
    let mut answers = match answers {
        Ok(answers) => answers.into_inner(),
        Err(status) => return status,
    };
    match tokio::time::timeout(Duration::from_secs(20), answers.message()).await {
        Ok(Err(status)) => status,
        other => panic!("a silent stream is ended with a status, got {other:?}"),
    }
}

#[test]
fn a_stream_that_sends_nothing_is_ended_and_told_why_on_every_streaming_rpc() {
    use xdr_proto::pb::{
        EnrichBatch, IngestRequest, LookupBatch, collector_client::CollectorClient,
        enrichment_client::EnrichmentClient, threat_intel_client::ThreatIntelClient,
    };
    let pki = TestPki::new();
    let idle = ["--stream-idle", "1s"];
    let threatintel = ServiceProcess::start_with("threatintel", &pki, &idle);
    let enrichment = ServiceProcess::start_with("enrichment", &pki, &idle);
    let collector = ServiceProcess::start_with("collector", &pki, &idle);
    let statuses = xdr_tests::client::runtime().block_on(async {
        let lookup = xdr_tests::client::channel(&pki, "enrichment", &threatintel, "threatintel");
        let lookup = ThreatIntelClient::new(lookup.await)
            .lookup_stream(tokio_stream::pending::<LookupBatch>())
            .await;
        let enrich = xdr_tests::client::channel(&pki, "collector", &enrichment, "enrichment");
        let enrich = EnrichmentClient::new(enrich.await)
            .enrich(tokio_stream::pending::<EnrichBatch>())
            .await;
        let ingest = xdr_tests::client::channel(&pki, "operator", &collector, "collector");
        let ingest = CollectorClient::new(ingest.await)
            .ingest_stream(tokio_stream::pending::<IngestRequest>())
            .await;
        [
            first_answer_of_a_silent_stream(lookup).await,
            first_answer_of_a_silent_stream(enrich).await,
            first_answer_of_a_silent_stream(ingest).await,
        ]
    });
    for (rpc, status) in ["LookupStream", "Enrich", "IngestStream"]
        .iter()
        .zip(statuses)
    {
        assert_eq!(
            status.code(),
            tonic::Code::DeadlineExceeded,
            "{rpc}: {status:?}"
        );
        assert!(
            status.message().contains("nothing sent for 1s"),
            "{rpc}: {status:?}"
        );
    }
}

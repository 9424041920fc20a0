//! Every gRPC service serves Prometheus `/metrics` on its own plain-HTTP port, read with curl:
//! calls counted by method and status code, timed; a path the server does not serve is
//! counted as `unknown`, so clients cannot grow the registry.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use xdr_tests::{
    Cert, Grpcurl, ServiceProcess, TestPki, client,
    metrics::{sample, scrape},
    raw_grpc,
};

#[test]
fn every_grpc_service_counts_its_calls_on_its_metrics_port() {
    let pki = TestPki::new();
    for service in xdr_mesh::directory::grpc_services() {
        let server = ServiceProcess::start(service.name, &pki);
        for _ in 0..3 {
            Grpcurl::new(&pki, Cert::Named("operator"))
                .data("{}")
                .ok(server.listening_addr(), &["xdr.v1.Diagnostics/Ping"]);
        }
        let body = scrape(server.metrics_addr());
        let pings = sample(
            &body,
            "xdr_grpc_calls_total",
            &[r#"method="/xdr.v1.Diagnostics/Ping""#, r#"code="Ok""#],
        );
        assert_eq!(pings, Some(3.0), "{}: {body}", service.name);
        let timed = sample(
            &body,
            "xdr_grpc_call_duration_seconds_count",
            &[r#"method="/xdr.v1.Diagnostics/Ping""#],
        );
        assert_eq!(timed, Some(3.0), "{}: {body}", service.name);
        assert!(
            body.contains("# TYPE xdr_grpc_call_duration_seconds histogram"),
            "{body}"
        );
    }
}

#[test]
fn paths_the_server_does_not_serve_share_one_label() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("collector", &pki);
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "operator", &server, "collector").await;
        for path in ["/xdr.v1.Nope/A", "/xdr.v1.Nope/B", "/x/y"] {
            let reply = raw_grpc::call(channel.clone(), path, vec![raw_grpc::frame(b"")]).await;
            assert_ne!(reply.status.code(), tonic::Code::Ok, "{path}");
        }
    });
    let body = scrape(server.metrics_addr());
    assert!(!body.contains("Nope"), "{body}");
    let unknown = sample(
        &body,
        "xdr_grpc_calls_total",
        &[r#"method="unknown""#, r#"code="PermissionDenied""#],
    );
    assert_eq!(unknown, Some(3.0), "{body}");
}

#[test]
fn clients_that_send_nothing_half_a_request_or_nothing_more_are_disconnected() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("playbook", &pki);
    let silent = TcpStream::connect(server.metrics_addr()).unwrap();
    let mut half = TcpStream::connect(server.metrics_addr()).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // A whole request on a kept-alive connection, then nothing more.
    let mut idle = TcpStream::connect(server.metrics_addr()).unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    for mut stalled in [silent, half, idle] {
        // The head deadline is 5 s; the read is bounded well past it.
        stalled
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reply = Vec::new();
        let read = stalled.read_to_end(&mut reply);
        assert!(read.is_ok(), "still open after 30 s: {read:?}");
    }
    // And the endpoint still answers.
    scrape(server.metrics_addr());
}

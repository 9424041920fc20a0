//! Clients without a valid mesh certificate fail at TLS, are logged, and do not disturb the
//! service for everybody else. With TLS 1.3 the refusal shows on the first call, so every
//! case makes one.

use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, pki};

fn refused_then_others_still_served(cert: Cert<'_>, reason_in_log: &str) {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    let addr = server.listening_addr();

    // grpc-go retries a refused dial until its connect timeout: keep that short.
    let refused = Grpcurl::new(&pki, cert)
        .connect_timeout_secs(2)
        .call(addr, &["list"]);
    assert!(!refused.success, "{cert:?} was served:\n{}", refused.stdout);
    assert!(
        !refused.stdout.contains("xdr.v1"),
        "{cert:?} learnt the services:\n{}",
        refused.stdout
    );

    let logged = server.wait_for_log("the refused handshake", |l| {
        l["message"] == "TLS handshake refused"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains(reason_in_log))
    });
    assert_eq!(logged["level"], "WARN");
    let served = Grpcurl::new(&pki, Cert::Named("operator")).ok(addr, &["list"]);
    assert!(served.contains("xdr.v1.ThreatIntel"), "{served}");
}

#[test]
fn call_without_client_certificate_is_refused() {
    refused_then_others_still_served(Cert::None, "no certificates");
}

#[test]
fn certificate_from_another_ca_is_refused() {
    // Go's TLS client withholds a certificate whose issuer is not among the CAs the server
    // asks for, so the server sees none; `xdr_mesh::listener`'s tests present one anyway.
    refused_then_others_still_served(Cert::Named(pki::OTHER_CA_OPERATOR), "no certificates");
}

#[test]
fn expired_client_certificate_is_refused() {
    refused_then_others_still_served(Cert::Named(pki::EXPIRED_OPERATOR), "certificate expired");
}

#[test]
fn plaintext_call_is_refused() {
    // The server speaks only TLS: a plaintext HTTP/2 preface is not a TLS record.
    refused_then_others_still_served(Cert::Plaintext, "corrupt message");
}

//! The gateway over HTTPS (`--https-cert`/`--https-key`, the certificate `xdrctl certs`
//! writes as `gateway-https.crt`): curl verifying it against the mesh CA gets its answers;
//! plain HTTP on that port gets nothing. Over plain HTTP, a token is taken from loopback only
//! unless the operator allows it.

use std::process::Command;

use xdr_tests::{ServiceProcess, TestPki};

#[test]
fn the_gateway_serves_https_with_the_certificate_the_dev_pki_writes() {
    let pki = TestPki::new();
    let certs = pki.certs();
    let mut args: Vec<String> = vec!["--http-listen".into(), "127.0.0.1:0".into()];
    args.push("--data-dir".into());
    args.push(pki.scratch().join("gateway").display().to_string());
    args.push("--https-cert".into());
    args.push(certs.join("gateway-https.crt").display().to_string());
    args.push("--https-key".into());
    args.push(certs.join("gateway-https.key").display().to_string());
    // Nothing listens upstream: the document and input refusals need no service.
    for service in ["collector", "enrichment", "threatintel", "playbook"] {
        args.push(format!("--{service}-addr"));
        args.push("127.0.0.1:9".into());
    }
    let gateway = ServiceProcess::spawn("xdr-gateway", &pki, &args);
    let port = gateway.listening_addr().port();

    let secure = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(certs.join("ca.crt"))
        .arg(format!("https://localhost:{port}/openapi.json"))
        .output()
        .unwrap();
    assert!(secure.status.success(), "{secure:?}");
    let text = String::from_utf8(secure.stdout).unwrap();
    assert!(text.ends_with("\n200"), "{text}");
    assert!(text.contains("\"openapi\":\"3.1.0\""));
    // By address too: the certificate names 127.0.0.1.
    let by_ip = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(certs.join("ca.crt"))
        .arg(format!("https://127.0.0.1:{port}/openapi.json"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&by_ip.stdout), "200", "{by_ip:?}");

    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{port}/openapi.json"))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP answered: {plain:?}");
}

/// The machine's first IPv4 address that is not loopback (`hostname -I`): a connection to it
/// from this machine comes from that address, not from 127.0.0.1.
fn non_loopback_address() -> String {
    let output = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("an IPv4 address besides loopback")
        .to_owned()
}

#[test]
fn over_plain_http_a_token_is_taken_from_loopback_only_unless_allowed() {
    let address = non_loopback_address();
    let pki = TestPki::new();
    let start = |allow: bool| {
        let data = pki.scratch().join(format!("gateway-{allow}"));
        let mut args: Vec<String> = vec!["--http-listen".into(), "0.0.0.0:0".into()];
        args.extend(["--data-dir".into(), data.display().to_string()]);
        if allow {
            args.push("--allow-plain-http-tokens".into());
        }
        for service in ["collector", "enrichment", "threatintel", "playbook"] {
            args.extend([format!("--{service}-addr"), "127.0.0.1:9".into()]);
        }
        let gateway = ServiceProcess::spawn("xdr-gateway", &pki, &args);
        // The first token is written before the gateway listens.
        let port = gateway.listening_addr().port();
        let token = std::fs::read_to_string(data.join("first-admin-token")).unwrap();
        (gateway, port, token.trim().to_owned())
    };
    let status = |host: &str, port: u16, token: &str| {
        let output = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("http://{host}:{port}/v1/people/tokens"))
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };

    let (_gateway, port, token) = start(false);
    assert_eq!(status("127.0.0.1", port, &token), "200");
    assert_eq!(status(&address, port, &token), "401", "from {address}");
    let (_allowing, port, token) = start(true);
    assert_eq!(status(&address, port, &token), "200", "from {address}");
}

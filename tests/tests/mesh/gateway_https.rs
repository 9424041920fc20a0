//! The gateway over HTTPS (`--https-cert`/`--https-key`, the certificate `xdrctl certs`
//! writes as `gateway-https.crt`): curl verifying it against the mesh CA gets its answers;
//! plain HTTP on that port gets nothing.

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

//! The gateway's `/healthz`, read with curl: 200 while every service is SERVING, 503 naming
//! the one that is not.

use std::{process::Command, time::Duration};

use serde_json::Value;
use xdr_tests::{ServiceProcess, TestPki};

const SERVICES: [&str; 4] = ["collector", "enrichment", "threatintel", "playbook"];

fn curl_json(url: &str) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let (body, code) = text
        .rsplit_once('\n')
        .expect("curl printed the status code");
    (
        code.parse().expect("a status code"),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[test]
fn healthz_is_200_while_all_serve_and_503_naming_the_one_down() {
    let pki = TestPki::new();
    let mut services: Vec<ServiceProcess> = SERVICES
        .iter()
        .map(|s| ServiceProcess::start(s, &pki))
        .collect();
    let mut args = vec!["--http-listen".to_owned(), "127.0.0.1:0".to_owned()];
    args.push("--data-dir".into());
    args.push(pki.scratch().join("gateway").display().to_string());
    for (name, process) in SERVICES.iter().zip(&services) {
        args.push(format!("--{name}-addr"));
        args.push(process.listening_addr().to_string());
    }
    let gateway = ServiceProcess::spawn("xdr-gateway", &pki, &args);
    let url = format!("http://{}/healthz", gateway.listening_addr());

    let (code, body) = curl_json(&url);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "SERVING");
    // Its Prometheus endpoint is on the same port.
    xdr_tests::metrics::scrape(gateway.listening_addr());
    for name in SERVICES {
        assert_eq!(body["services"][name], "SERVING", "{body}");
    }

    let playbook = &mut services[3];
    playbook.signal(libc::SIGTERM);
    assert!(playbook.wait_exit(Duration::from_secs(20)).success());
    let (code, body) = curl_json(&url);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "NOT_SERVING");
    assert!(
        body["services"]["playbook"]
            .as_str()
            .unwrap()
            .starts_with("UNREACHABLE"),
        "{body}"
    );
    assert_eq!(body["services"]["threatintel"], "SERVING", "{body}");
}

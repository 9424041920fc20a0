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

/// `POST path` with `token` and a JSON body, through curl: the status and the JSON answer.
fn post_json(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--data-binary", &body.to_string()])
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let (body, code) = text
        .rsplit_once('\n')
        .expect("curl printed the status code");
    (
        code.parse().expect("a status code"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// The gateway dials two threatintel replicas (`--threatintel-addr A,B`): lookups go to one
/// that serves; when it dies, the gateway passes it over and every lookup is answered by the
/// other.
#[test]
fn lookups_through_the_gateway_go_on_when_the_replica_answering_them_dies() {
    let pki = TestPki::new();
    let replicas = [
        xdr_tests::threatintel::start_with_demo_feed(&pki, &[]),
        xdr_tests::threatintel::start_with_demo_feed(&pki, &[]),
    ];
    let others: Vec<ServiceProcess> = ["collector", "enrichment", "playbook"]
        .iter()
        .map(|s| ServiceProcess::start(s, &pki))
        .collect();
    let data = pki.scratch().join("gateway");
    let mut args = vec![
        "--http-listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".into(),
        data.display().to_string(),
        "--threatintel-addr".into(),
        format!(
            "{},{}",
            replicas[0].listening_addr(),
            replicas[1].listening_addr()
        ),
    ];
    for (name, process) in ["collector", "enrichment", "playbook"].iter().zip(&others) {
        args.push(format!("--{name}-addr"));
        args.push(process.listening_addr().to_string());
    }
    let gateway = ServiceProcess::spawn("xdr-gateway", &pki, &args);
    let url = format!(
        "http://{}/xdr.v1.ThreatIntel/Lookup",
        gateway.listening_addr()
    );
    let token = std::fs::read_to_string(data.join("first-admin-token")).unwrap();
    let lookup = serde_json::json!({"objects": [{"type": "INDICATOR_TYPE_URL", "value": "http://fakess123bn.nu"}]});
    let answered = |times: usize| {
        for _ in 0..times {
            let (code, found) = post_json(&url, token.trim(), &lookup);
            assert_eq!(code, 200, "{found}");
            assert_eq!(
                found["results"][0]["matches"][0]["category"],
                "KL_BotnetCnC_URL"
            );
        }
    };
    let looked_up = |replica: &ServiceProcess| {
        xdr_tests::metrics::sample(
            &xdr_tests::metrics::scrape(replica.metrics_addr()),
            "xdr_threatintel_lookups_total",
            &["interface=\"grpc\""],
        )
        .unwrap_or(0.0)
    };
    answered(10);
    let used = (0..2)
        .find(|i| looked_up(&replicas[*i]) > 0.0)
        .expect("a replica answered");
    let other = 1 - used;
    let before = looked_up(&replicas[other]);

    let mut replicas = replicas;
    replicas[used].signal(libc::SIGKILL);
    replicas[used].wait_exit(Duration::from_secs(10));
    gateway.wait_for_log("the dead replica passed over", |l| {
        l["message"] == "replica passed over"
            && l["replica"].as_str() == Some(&replicas[used].listening_addr().to_string())
    });
    answered(10);
    assert!(
        looked_up(&replicas[other]) >= before + 10.0,
        "the other replica answered"
    );
}

//! The seed's two stories in the docker-compose environment: one container per service plus
//! the UserGate emulator, over mTLS, reached from the host the way a user reaches them —
//! curl to the gateway, grpcurl to each service with the operator certificate. With the
//! `tracing` profile: the seed's curl is one trace across the containers, and so is a launch,
//! down to the appliance.

use std::time::Duration;

use serde_json::{Value, json};
use xdr_tests::{
    Cert, Grpcurl,
    compose::{Compose, eventually, query_encoded, text},
    traces::{Span, of_trace, one},
};

const SEED_EVENT: &str = r#"{"RequestUrl":"http://fakess123bn.nu"}"#;
const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";
/// The caller's trace of the seed's curl, and of the launch.
const CURL_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const LAUNCH_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// The spans of `trace_id` once `wanted` (service, name) are all in it.
fn trace_with(compose: &Compose, trace_id: &str, wanted: &[(&str, &str)]) -> Vec<Span> {
    let mut trace = Vec::new();
    eventually(
        &format!("the spans of {trace_id}"),
        Duration::from_secs(30),
        || {
            trace = of_trace(&compose.spans(), trace_id);
            (wanted.iter()).all(|(service, name)| {
                trace
                    .iter()
                    .any(|s| s.service == *service && s.name == *name)
            })
        },
    );
    trace
}

fn usergate_state(compose: &Compose) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .arg(format!("http://{}:4040/control/state", compose.bind))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn list_items(state: &Value, name: &str) -> Vec<String> {
    let mut items: Vec<String> = state["lists"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"] == name)
        .flat_map(|l| l["items"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    items.sort();
    items
}

#[test]
fn the_seeds_stories_run_through_the_compose_environment() {
    let compose = Compose::up_traced("xdrstories", "127.0.0.87");
    let admin = compose.admin_token();

    // 1. The seed's CyberTrace story: its curl, then its SELECT.
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "--request", "POST"])
        .args(["--url", &format!("http://{}:8080/input", compose.bind)])
        .args([
            "--header",
            "Content-Type: application/json",
            "--header",
            &format!("traceparent: 00-{CURL_TRACE}-{CALLER_SPAN}-01"),
            "--data",
            SEED_EVENT,
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&curl.stdout);
    assert!(said.contains("\"accepted\":1"), "{said}");
    let query = format!("/v1/events?sql={}", query_encoded(SEED_SELECT));
    let (code, found) = compose.http("GET", &query, Some(&admin), None);
    assert_eq!(code, 200, "{found}");
    let event = &found["events"][0];
    assert_eq!(event["ti"][0]["category"], "KL_BotnetCnC_URL", "{found}");
    assert_eq!(
        event["ti"][0]["matchedIndicator"], "fakess123bn.nu",
        "{found}"
    );

    // The curl is one trace across the containers, each hop a child of the one before.
    let trace = trace_with(
        &compose,
        CURL_TRACE,
        &[
            ("xdr-gateway", "POST /input"),
            ("xdr-collector", "collector.ingest"),
            ("xdr-enrichment", "enrichment.enrich"),
            ("xdr-threatintel", "threatintel.lookup"),
            ("xdr-playbook", "playbook.raise"),
        ],
    );
    let gateway = one(&trace, "xdr-gateway", "POST /input");
    assert_eq!(gateway.parent_span_id, CALLER_SPAN);
    let ingest = one(&trace, "xdr-collector", "collector.ingest");
    assert_eq!(ingest.parent_span_id, gateway.span_id);
    let enrich = one(&trace, "xdr-collector", "collector.enrich");
    assert_eq!(enrich.parent_span_id, ingest.span_id);
    let enriching = one(&trace, "xdr-enrichment", "enrichment.enrich");
    assert_eq!(enriching.parent_span_id, enrich.span_id);
    let lookup = one(&trace, "xdr-enrichment", "enrichment.lookup");
    assert_eq!(lookup.parent_span_id, enriching.span_id);
    let threatintel = one(&trace, "xdr-threatintel", "threatintel.lookup");
    assert_eq!(threatintel.parent_span_id, lookup.span_id);
    assert_eq!(
        one(&trace, "xdr-playbook", "playbook.raise").parent_span_id,
        gateway.span_id
    );

    // 2. The seed's UserGate story: the event raised an alert with its observables.
    let mut alerts = Value::Null;
    eventually("the alert", Duration::from_secs(30), || {
        alerts = compose.http("GET", "/v1/alerts", Some(&admin), None).1;
        alerts["alerts"].is_array()
    });
    let alert = &alerts["alerts"][0];
    let alert_id = alert["id"].as_str().unwrap().to_owned();
    let observables: Vec<&Value> = alert["observables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["value"])
        .collect();
    assert_eq!(
        observables,
        ["http://fakess123bn.nu", "fakess123bn.nu"],
        "{alert}"
    );

    // The administrator keeps the appliance's credentials; people with the seed's roles.
    let (code, secret) = compose.http(
        "POST",
        "/v1/secrets",
        Some(&admin),
        Some(
            &json!({"name": "usergate", "type": "SECRET_TYPE_CREDENTIALS", "user": "xdr-api",
                     "password": compose.usergate_password, "url": "http://usergate:4040/rpc"}),
        ),
    );
    assert_eq!(code, 200, "{secret}");
    assert!(!secret.to_string().contains(&compose.usergate_password));
    let token_of = |name: &str, role: &str| {
        let (code, user) = compose.http(
            "POST",
            "/v1/people/users",
            Some(&admin),
            Some(&json!({"name": name, "role": role, "tenant": "Main"})),
        );
        assert_eq!(code, 201, "{user}");
        let (code, token) = compose.http(
            "POST",
            "/v1/people/tokens",
            Some(&admin),
            Some(&json!({"user": name})),
        );
        assert_eq!(code, 201, "{token}");
        token["secret"].as_str().unwrap().to_owned()
    };
    let ann = token_of("ann", "tier1-analyst");
    let olga = token_of("olga", "observer");
    let control = |path: &str, body: Value| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--max-time",
                "10",
                "-H",
                "content-type: application/json",
            ])
            .args(["--data", &body.to_string()])
            .arg(format!("http://{}:4040/control/{path}", compose.bind))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    control("users", json!({"login": "bob", "ip": "10.0.0.21"}));

    // A Tier 1 analyst blocks the host, naming the IP the attacker came from as well.
    let (code, run) = compose.http_with(
        "POST",
        "/v1/playbooks/usergate.block_host/launch",
        Some(&ann),
        Some(&json!({"alertId": alert_id,
                     "observables": [{"type": "INDICATOR_TYPE_IP", "value": "198.51.100.23"}]})),
        &[&format!("traceparent: 00-{LAUNCH_TRACE}-{CALLER_SPAN}-01")],
    );
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    let state = usergate_state(&compose);
    assert_eq!(
        list_items(&state, "XDR blocked URLs"),
        ["fakess123bn.nu", "http://fakess123bn.nu"]
    );
    assert_eq!(list_items(&state, "XDR blocked hosts"), ["198.51.100.23"]);
    assert_eq!(state["firewall_rules"][0]["action"], "drop", "{state}");
    assert_eq!(state["content_rules"][0]["action"], "drop", "{state}");

    // The launch is one trace too, from the gateway to each call the appliance received.
    let trace = trace_with(
        &compose,
        LAUNCH_TRACE,
        &[
            ("xdr-playbook", "playbook.launch"),
            ("xdr-gateway", "POST /v1/playbooks/{playbook_id}/launch"),
        ],
    );
    let gateway = one(
        &trace,
        "xdr-gateway",
        "POST /v1/playbooks/{playbook_id}/launch",
    );
    assert_eq!(gateway.parent_span_id, CALLER_SPAN);
    let rpc = one(&trace, "xdr-playbook", "xdr.v1.Playbook/LaunchPlaybook");
    assert_eq!(rpc.parent_span_id, gateway.span_id);
    let launch = one(&trace, "xdr-playbook", "playbook.launch");
    assert_eq!(launch.parent_span_id, rpc.span_id);
    let calls: Vec<&Span> = (trace.iter())
        .filter(|s| s.name.starts_with("usergate "))
        .collect();
    assert!(!calls.is_empty(), "{trace:#?}");
    assert!(calls.iter().all(|c| c.parent_span_id == launch.span_id));
    let sent = state["traceparents"].as_array().unwrap();
    let traced_calls = (sent.iter())
        .filter(|t| t.as_str().unwrap().contains(LAUNCH_TRACE))
        .count();
    assert_eq!(traced_calls, calls.len(), "{state}");

    // "Log out the users" logs bob out and leaves no session open.
    let (code, run) = compose.http(
        "POST",
        "/v1/playbooks/usergate.logout_users/launch",
        Some(&ann),
        Some(&json!({"alertId": alert_id})),
    );
    assert_eq!(
        (code, &run["outcome"]),
        (200, &json!("RUN_OUTCOME_SUCCEEDED")),
        "{run}"
    );
    let state = usergate_state(&compose);
    assert_eq!(
        (&state["users"], &state["sessions"]),
        (&json!([]), &json!(0)),
        "{state}"
    );

    // A role outside the seed's five is refused; the History shows both launches.
    let (code, refused) = compose.http(
        "POST",
        "/v1/playbooks/usergate.block_host/launch",
        Some(&olga),
        Some(&json!({"alertId": alert_id})),
    );
    assert_eq!(code, 403, "{refused}");
    let (_, alert) = compose.http("GET", &format!("/v1/alerts/{alert_id}"), Some(&ann), None);
    let history: Vec<(&Value, &Value, &Value)> = alert["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["by"], &e["launch"]["playbook"], &e["launch"]["outcome"]))
        .collect();
    assert_eq!(
        history,
        [
            (
                &json!("ann"),
                &json!("usergate.block_host"),
                &json!("RUN_OUTCOME_SUCCEEDED")
            ),
            (
                &json!("ann"),
                &json!("usergate.logout_users"),
                &json!("RUN_OUTCOME_SUCCEEDED")
            ),
        ]
    );

    // 3. grpcurl from the host to every service: reflection and health with the operator
    // certificate; nothing without one.
    for (service, port) in [
        ("collector", 7201),
        ("enrichment", 7202),
        ("threatintel", 7203),
        ("playbook", 7204),
    ] {
        let addr = format!("{}:{port}", compose.bind).parse().unwrap();
        let listed = Grpcurl::with_certs(&compose.certs(), Cert::Named("operator"))
            .server_name(service)
            .ok(addr, &["list"]);
        assert!(
            listed.contains("grpc.health.v1.Health"),
            "{service}: {listed}"
        );
        let health = Grpcurl::with_certs(&compose.certs(), Cert::Named("operator"))
            .server_name(service)
            .ok(addr, &["grpc.health.v1.Health/Check"]);
        assert!(health.contains("SERVING"), "{service}: {health}");
        // Refused at the handshake: grpcurl would retry until its connect timeout.
        let anonymous = Grpcurl::with_certs(&compose.certs(), Cert::None)
            .server_name(service)
            .connect_timeout_secs(2)
            .call(addr, &["grpc.health.v1.Health/Check"]);
        assert!(
            !anonymous.success,
            "{service} answered a caller without a certificate"
        );
    }
}

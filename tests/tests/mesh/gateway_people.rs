//! People at the gateway, with curl and xdrctl against a fresh `xdrctl up`: the first Main
//! administrator's token, users and tokens made, revoked and deleted; every unary RPC over
//! HTTP JSON (Connect's unary form) for a person, the services applying the role table and
//! the tenant to what the gateway sends for them; gRPC codes as HTTP statuses; event search
//! streamed as NDJSON.

use std::{process::Command, time::Duration};

use serde_json::{Value, json};
use xdr_tests::{mesh_up, metrics};

const HOST: &str = "127.0.0.82";
const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";

/// `POST path` with a JSON `body` and `token`: the status and the body as text.
fn post(path: &str, token: Option<&str>, content_type: &str, body: &str) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(["--data-binary", body]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(format!("http://{HOST}:8080{path}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// `GET path` with `token`: the status and the body.
fn get(path: &str, token: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://{HOST}:8080{path}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

fn urlencoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn rpc(path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (code, text) = post(path, Some(token), "application/json", &body.to_string());
    (
        code,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn xdrctl(home: &std::path::Path, args: &[&str]) -> String {
    let output = mesh_up::xdrctl(home, HOST, args);
    assert!(
        output.status.success(),
        "xdrctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn people_with_tokens_call_every_unary_rpc_over_http_json_within_their_role_and_tenant() {
    let home = tempfile::tempdir().unwrap();
    let mut up = mesh_up::up(home.path(), HOST);
    let admin = std::fs::read_to_string(home.path().join("data/gateway/first-admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let said = up.log_lines().join("\n");
    assert!(said.contains(&admin), "up prints the first token: {said}");

    // No token, an unknown one: 401, in Connect's error form.
    let lookup =
        json!({"objects": [{"type": "INDICATOR_TYPE_URL", "value": "http://fakess123bn.nu"}]});
    let (code, text) = post(
        "/xdr.v1.ThreatIntel/Lookup",
        None,
        "application/json",
        &lookup.to_string(),
    );
    assert_eq!(code, 401, "{text}");
    assert!(text.contains(r#""code":"unauthenticated""#), "{text}");
    let (code, _) = rpc("/xdr.v1.ThreatIntel/Lookup", "xdr_forged", &lookup);
    assert_eq!(code, 401);

    // The Main administrator: a unary RPC of each service, answered in proto3 JSON.
    let (code, found) = rpc("/xdr.v1.ThreatIntel/Lookup", &admin, &lookup);
    assert_eq!(code, 200, "{found}");
    assert_eq!(
        found["results"][0]["matches"][0]["category"],
        "KL_BotnetCnC_URL"
    );
    let (code, rules) = rpc(
        "/xdr.v1.Enrichment/ListRules",
        &admin,
        &json!({"tenant": "Shared"}),
    );
    assert_eq!(code, 200, "{rules}");
    assert_eq!(rules["rules"][0]["name"], "Test CT enrichment", "{rules}");

    // People made with xdrctl (the first token from the home), their tokens printed once.
    xdrctl(
        home.path(),
        &[
            "user",
            "create",
            "ann",
            "--role",
            "tier1-analyst",
            "--tenant",
            "Acme",
        ],
    );
    xdrctl(
        home.path(),
        &[
            "user",
            "create",
            "tom",
            "--role",
            "tenant-administrator",
            "--tenant",
            "Acme",
        ],
    );
    let ann = xdrctl(home.path(), &["token", "create", "--user", "ann"])
        .trim()
        .to_owned();
    let tom = xdrctl(home.path(), &["token", "create", "--user", "tom"])
        .trim()
        .to_owned();
    assert!(ann.starts_with("xdr_") && ann.len() > 40, "{ann}");
    let listed = xdrctl(home.path(), &["user", "list"]);
    assert!(listed.contains("ann  Acme/tier1-analyst"), "{listed}");

    // A password for the console: a sign-in gives a token that expires; the hash is never
    // answered.
    let (code, body) = post(
        "/v1/people/users",
        Some(&admin),
        "application/json",
        r#"{"name":"pam","role":"observer","tenant":"Acme","password":"short"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("password"), "{body}");
    let (code, body) = post(
        "/v1/people/users",
        Some(&admin),
        "application/json",
        r#"{"name":"pam","role":"observer","tenant":"Acme","password":"correct horse battery"}"#,
    );
    assert_eq!(code, 201, "{body}");
    assert!(
        body.contains(r#""hasPassword":true"#) && !body.contains("argon2"),
        "{body}"
    );
    let login = |password: &str| {
        post(
            "/v1/people/login",
            None,
            "application/json",
            &json!({"name": "pam", "password": password}).to_string(),
        )
    };
    let (code, body) = login("wrong horse battery");
    assert_eq!(code, 401, "{body}");
    let (code, unknown) = post(
        "/v1/people/login",
        None,
        "application/json",
        r#"{"name":"nobody","password":"correct horse battery"}"#,
    );
    assert_eq!(
        (code, &unknown),
        (401, &body),
        "unknown users are answered alike"
    );
    let (code, body) = login("correct horse battery");
    assert_eq!(code, 201, "{body}");
    let signed_in: Value = serde_json::from_str(&body).unwrap();
    let pam = signed_in["secret"].as_str().unwrap().to_owned();
    assert!(signed_in["expiresMs"].as_i64().unwrap() > 0, "{signed_in}");
    let (code, _) = rpc("/xdr.v1.Enrichment/ListRules", &pam, &json!({}));
    assert_eq!(code, 200);
    // She changes her own password; the old one stops working.
    let output = Command::new("curl")
        .args(["-sS", "-X", "PUT", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {pam}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["--data", r#"{"password":"a much better passphrase"}"#])
        .arg(format!("http://{HOST}:8080/v1/people/users/pam/password"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).ends_with("\n200"),
        "{output:?}"
    );
    assert_eq!(login("correct horse battery").0, 401);
    assert_eq!(login("a much better passphrase").0, 201);
    // xdrctl takes a password on standard input.
    let mut made = Command::new(xdr_tests::paths::binary("xdrctl"))
        .args([
            "user", "create", "lea", "--role", "observer", "--tenant", "Acme",
        ])
        .arg("--password-stdin")
        .arg("--home")
        .arg(home.path())
        .args(["--host", HOST])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut made.stdin.take().unwrap(), b"lea's long passphrase\n").unwrap();
    assert!(made.wait().unwrap().success());
    let (code, body) = post(
        "/v1/people/login",
        None,
        "application/json",
        r#"{"name":"lea","password":"lea's long passphrase"}"#,
    );
    assert_eq!(code, 201, "{body}");

    // The services apply the role table to the person the gateway names.
    let rule = json!({
        "name": "Acme URLs",
        "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}],
    });
    let (code, denied) = rpc("/xdr.v1.Enrichment/CreateRule", &ann, &rule);
    assert_eq!(code, 403, "{denied}");
    assert_eq!(denied["code"], "permission_denied");
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("change configuration"),
        "{denied}"
    );
    let (code, made) = rpc("/xdr.v1.Enrichment/CreateRule", &tom, &rule);
    assert_eq!(code, 200, "{made}");
    assert_eq!(made["tenant"], "Acme", "the tenant follows the person");
    // Tenancy follows the person, whatever the body says.
    let (code, other) = rpc(
        "/xdr.v1.Enrichment/CreateRule",
        &tom,
        &json!({"name": "in Main", "tenant": "Main", "mapping": rule["mapping"]}),
    );
    assert_eq!(code, 403, "{other}");
    let (code, seen) = rpc("/xdr.v1.Enrichment/ListRules", &ann, &json!({}));
    assert_eq!(code, 200, "{seen}");
    let names: Vec<&str> = seen["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Acme URLs"), "{seen}");
    // Managing people: tom in Acme, not ann; not in Main.
    let (code, _) = post(
        "/v1/people/users",
        Some(&ann),
        "application/json",
        r#"{"name":"x","role":"observer"}"#,
    );
    assert_eq!(code, 403);
    let (code, body) = post(
        "/v1/people/users",
        Some(&tom),
        "application/json",
        r#"{"name":"max","role":"main-administrator"}"#,
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = post(
        "/v1/people/users",
        Some(&tom),
        "application/json",
        r#"{"name":"olga","role":"observer","tenant":"Main"}"#,
    );
    assert_eq!(code, 403, "{body}");

    // gRPC codes as HTTP statuses; the body checked against the request type.
    let (code, missing) = rpc("/xdr.v1.Enrichment/GetRule", &admin, &json!({"id": "nope"}));
    assert_eq!(
        (code, missing["code"].as_str()),
        (404, Some("not_found")),
        "{missing}"
    );
    let (code, invalid) = rpc(
        "/xdr.v1.Enrichment/CreateRule",
        &admin,
        &json!({"name": ""}),
    );
    assert_eq!(
        (code, invalid["code"].as_str()),
        (400, Some("invalid_argument")),
        "{invalid}"
    );
    let (code, unknown_field) = rpc("/xdr.v1.ThreatIntel/Lookup", &admin, &json!({"bogus": 1}));
    assert_eq!(code, 400);
    assert!(unknown_field["message"].as_str().unwrap().contains("bogus"));
    let (code, _) = post(
        "/xdr.v1.ThreatIntel/Lookup",
        Some(&admin),
        "application/json",
        "{not json",
    );
    assert_eq!(code, 400);
    let (code, _) = post(
        "/xdr.v1.ThreatIntel/Lookup",
        Some(&admin),
        "text/plain",
        "{}",
    );
    assert_eq!(code, 415);
    let (code, _) = rpc("/xdr.v1.ThreatIntel/Nothing", &admin, &json!({}));
    assert_eq!(code, 404);
    let (code, _) = rpc("/xdr.v1.Collector/IngestStream", &admin, &json!({}));
    assert_eq!(code, 404, "a client stream is not served over HTTP");

    // The seed's event in through /input, found by the seed's SELECT through the gateway:
    // unary, and streamed as NDJSON.
    let (code, text) = post(
        "/input",
        None,
        "application/json",
        r#"{"RequestUrl":"http://fakess123bn.nu"}"#,
    );
    assert_eq!(code, 200, "{text}");
    let (code, found) = rpc(
        "/xdr.v1.Collector/SearchEvents",
        &admin,
        &json!({"sql": SEED_SELECT}),
    );
    assert_eq!(code, 200, "{found}");
    assert_eq!(
        found["events"][0]["ti"][0]["category"], "KL_BotnetCnC_URL",
        "{found}"
    );
    let (code, text) = post(
        "/xdr.v1.Collector/SearchEventsStream",
        Some(&admin),
        "application/json",
        &json!({"sql": SEED_SELECT}).to_string(),
    );
    assert_eq!(code, 200, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["events"][0]["ti"][0]["category"], "KL_BotnetCnC_URL",
        "{text}"
    );
    // The same through the REST path the proto's `google.api.http` option names.
    let (code, text) = get(
        &format!("/v1/events?sql={}", urlencoded(SEED_SELECT)),
        &admin,
    );
    assert_eq!(code, 200, "{text}");
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        found["events"][0]["ti"][0]["category"], "KL_BotnetCnC_URL",
        "{found}"
    );
    // REST: path variables, nested query fields, body "*"; unknown parameters named.
    let (code, text) = get("/v1/enrichment/rules?tenant=Shared&page.pageSize=1", &admin);
    assert_eq!(code, 200, "{text}");
    let rules: Value = serde_json::from_str(&text).unwrap();
    let seed_rule = rules["rules"][0]["id"].as_str().unwrap().to_owned();
    let (code, text) = get(
        &format!("/v1/enrichment/rules/{seed_rule}?tenant=Shared"),
        &admin,
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("Test CT enrichment"), "{text}");
    let (code, text) = get("/v1/enrichment/rules/nope", &admin);
    assert_eq!(code, 404, "{text}");
    let (code, text) = get("/v1/enrichment/rules?bogus=1", &admin);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("bogus"), "{text}");
    let (code, text) = get("/v1/enrichment/rules", "xdr_forged");
    assert_eq!(code, 401, "{text}");
    let (code, made) = rpc("/v1/threatintel/lookup", &admin, &lookup);
    assert_eq!(code, 200, "{made}");
    assert_eq!(
        made["results"][0]["matches"][0]["category"],
        "KL_BotnetCnC_URL"
    );

    // W3C trace context: a caller's trace is kept (the gateway's span is new), else started.
    let traced = |traceparent: Option<&str>| -> String {
        let mut command = Command::new("curl");
        command.args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10"]);
        command.args(["-H", &format!("Authorization: Bearer {admin}")]);
        if let Some(value) = traceparent {
            command.args(["-H", &format!("traceparent: {value}")]);
        }
        let head = command
            .arg(format!("http://{HOST}:8080/v1/enrichment/rules"))
            .output()
            .unwrap();
        let head = String::from_utf8(head.stdout).unwrap();
        head.lines()
            .find_map(|l| l.strip_prefix("traceparent: "))
            .unwrap_or_else(|| panic!("no traceparent in {head}"))
            .trim()
            .to_owned()
    };
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let kept = traced(Some(parent));
    assert!(
        kept.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{kept}"
    );
    assert!(!kept.contains("00f067aa0ba902b7"), "{kept}");
    let started = traced(None);
    assert_eq!(started.len(), 55, "{started}");
    assert_ne!(started[3..35], kept[3..35]);

    // A person of another tenant does not see Main's events.
    let (code, none) = rpc(
        "/xdr.v1.Collector/SearchEvents",
        &ann,
        &json!({"sql": SEED_SELECT}),
    );
    assert_eq!(code, 200, "{none}");
    assert!(
        none["events"].as_array().is_none_or(Vec::is_empty),
        "{none}"
    );
    // A stream that fails ends with an error line.
    let (code, text) = post(
        "/xdr.v1.Collector/SearchEventsStream",
        Some(&admin),
        "application/json",
        &json!({"sql": "DROP TABLE events"}).to_string(),
    );
    assert!(
        code == 400 || text.lines().last().unwrap().contains(r#""error""#),
        "{code} {text}"
    );

    // Revoked and deleted: the token stops working at once.
    let tokens = xdrctl(home.path(), &["token", "list"]);
    let ann_token_id = tokens
        .lines()
        .find(|l| l.contains("  ann  "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    xdrctl(home.path(), &["token", "revoke", &ann_token_id]);
    let (code, _) = rpc("/xdr.v1.Enrichment/ListRules", &ann, &json!({}));
    assert_eq!(code, 401);
    xdrctl(home.path(), &["user", "delete", "tom"]);
    let (code, _) = rpc("/xdr.v1.Enrichment/ListRules", &tom, &json!({}));
    assert_eq!(code, 401);
    let (code, _) = rpc("/xdr.v1.Enrichment/ListRules", &admin, &json!({}));
    assert_eq!(code, 200);

    let scraped = metrics::scrape(format!("{HOST}:8080").parse().unwrap());
    assert!(
        metrics::sample(
            &scraped,
            "xdr_gateway_http_requests_total",
            &[r#"route="/{service}/{method}""#, r#"status="403""#],
        )
        .is_some_and(|n| n >= 2.0),
        "{scraped}"
    );

    up.signal(libc::SIGINT);
    assert!(up.wait_exit(Duration::from_secs(60)).success());
}

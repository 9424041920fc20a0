//! The seed's UserGate story (`../shared/seeds/000_…`) on a fresh `xdrctl up`: the seed's
//! curl to `/input` raises an alert with its observables; the operator keeps the appliance's
//! credentials as a secret; a Tier 1 analyst's token launches "Block host via UserGate" over
//! HTTP and the emulator holds the URL and domain with the drop rules; the launch is in the
//! alert's History; "Log out the users" runs from xdrctl; an observer is refused.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use xdr_tests::{mesh_up, playbook::UserGate};

const HOST: &str = "127.0.0.84";
const PASSWORD: &str = "Utm-seed-5ecret";

fn xdrctl(home: &std::path::Path, args: &[&str]) -> String {
    let output = mesh_up::xdrctl(home, HOST, args);
    assert!(
        output.status.success(),
        "xdrctl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `POST path` on the gateway with `token` and a JSON `body`: the status and the JSON answer.
fn post(path: &str, token: &str, body: &Value) -> (u16, Value) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(body.to_string())
        .arg(format!("http://{HOST}:8080{path}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn the_seeds_event_raises_an_alert_that_a_tier1_analyst_answers_through_usergate() {
    let home = tempfile::tempdir().unwrap();
    let mut up = mesh_up::up(home.path(), HOST);
    let usergate = UserGate::start(PASSWORD, "5m");
    usergate.control(
        "POST",
        "users",
        Some(json!({"login": "bob", "ip": "10.0.0.21"})),
    );

    // The operator keeps the credentials as a secret; the password goes in on stdin.
    mesh_up::xdrctl_with_input(
        home.path(),
        HOST,
        &[
            "secret",
            "create",
            "usergate",
            "--user",
            "xdr-api",
            "--url",
            &usergate.url(),
        ],
        PASSWORD,
    );
    assert!(!xdrctl(home.path(), &["secret", "list"]).contains(PASSWORD));

    // The seed's curl, verbatim but for the host.
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--request", "POST"])
        .args(["--url", &format!("http://{HOST}:8080/input")])
        .args(["--header", "Content-Type: application/json"])
        .args(["--data", r#"{"RequestUrl":"http://fakess123bn.nu"}"#])
        .output()
        .unwrap();
    assert!(curl.status.success(), "{curl:?}");

    // The alert arrives behind the acknowledgement: look (bounded) until it is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = xdrctl(home.path(), &["alerts", "list"]);
        if !listed.is_empty() || Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        listed.contains("KL_BotnetCnC_URL matched fakess123bn.nu"),
        "{listed}"
    );
    let alert_id = listed.split_whitespace().next().unwrap().to_owned();

    xdrctl(
        home.path(),
        &[
            "user",
            "create",
            "ann",
            "--role",
            "tier1-analyst",
            "--tenant",
            "Main",
        ],
    );
    xdrctl(
        home.path(),
        &[
            "user", "create", "olga", "--role", "observer", "--tenant", "Main",
        ],
    );
    let ann = xdrctl(home.path(), &["token", "create", "--user", "ann"])
        .trim()
        .to_owned();
    let olga = xdrctl(home.path(), &["token", "create", "--user", "olga"])
        .trim()
        .to_owned();

    let (code, run) = post(
        "/v1/playbooks/usergate.block_host/launch",
        &ann,
        &json!({"alertId": alert_id}),
    );
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    let mut urls = usergate.list_items("XDR blocked URLs");
    urls.sort();
    assert_eq!(urls, ["fakess123bn.nu", "http://fakess123bn.nu"]);
    let state = usergate.state();
    assert_eq!(state["content_rules"][0]["action"], "drop", "{state}");

    let (code, refused) = post(
        "/v1/playbooks/usergate.block_host/launch",
        &olga,
        &json!({"alertId": alert_id}),
    );
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("(observer)"),
        "{refused}"
    );

    let out = xdrctl(
        home.path(),
        &[
            "playbook",
            "run",
            "usergate.logout_users",
            "--alert",
            &alert_id,
        ],
    );
    assert!(out.contains("done: bob (10.0.0.21)"), "{out}");
    assert_eq!(usergate.state()["users"], json!([]));

    let shown: Value =
        serde_json::from_str(&xdrctl(home.path(), &["alerts", "show", &alert_id])).unwrap();
    let launches: Vec<(&Value, &Value)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["by"], &e["launch"]["playbook"]))
        .collect();
    assert_eq!(
        launches,
        [
            (&json!("ann"), &json!("usergate.block_host")),
            (&json!("operator"), &json!("usergate.logout_users")),
        ]
    );
    up.signal(libc::SIGINT);
    assert!(up.wait_exit(Duration::from_secs(60)).success());
}

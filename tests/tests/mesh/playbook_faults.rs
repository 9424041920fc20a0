//! Launches when UserGate is not as it should be: a session that expires mid-launch (signed
//! in again once), an appliance that is down, a login refused, a URL list fed from a URL
//! (a partial outcome naming what was and was not blocked) — each a clear outcome in the
//! alert's history, the service still up.

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki,
    playbook::{As, USERGATE_LOGIN, UserGate, matched_event, ok, raise, usergate_secret},
};

const PASSWORD: &str = "Utm-pa55-91bd02";
const ALICE: As<'static> = As::Person("alice", "Main", "tier1-analyst");

fn block(pki: &TestPki, server: &ServiceProcess, alert: &Value) -> Value {
    ok(
        pki,
        server,
        ALICE,
        "LaunchPlaybook",
        &json!({"playbookId": "usergate.block_host", "alertId": alert}),
    )
}

fn one_alert(pki: &TestPki, server: &ServiceProcess, id: &str) -> Value {
    raise(
        pki,
        server,
        &[matched_event(
            id,
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    )["alertIds"][0]
        .clone()
}

#[test]
fn a_session_that_expires_mid_launch_is_signed_in_again_once() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = ServiceProcess::start("playbook", &pki);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let alert = one_alert(&pki, &server, "ev-expiry");
    // Three calls into the launch the appliance forgets every session.
    usergate.control("POST", "expire-sessions", Some(json!({"after_calls": 3})));
    let run = block(&pki, &server, &alert);
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    let actions = run["actions"].to_string();
    assert!(
        actions.contains("session expired (fault 104): signing in again"),
        "{actions}"
    );
    let logins = usergate.state()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| *c == "v2.core.login")
        .count();
    assert_eq!(logins, 2, "one sign-in, and one again");
    assert_eq!(usergate.list_items("XDR blocked hosts"), ["203.0.113.9"]);
}

#[test]
fn usergate_down_or_refusing_the_login_fails_the_launch_with_a_clear_message() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("playbook", &pki);
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    ok(
        &pki,
        &server,
        As::Operator,
        "CreateSecret",
        &json!({"name": "usergate", "tenant": "Main", "type": "SECRET_TYPE_CREDENTIALS",
                "user": USERGATE_LOGIN, "password": PASSWORD,
                "url": format!("http://{closed}/rpc")}),
    );
    let alert = one_alert(&pki, &server, "ev-down");
    let run = block(&pki, &server, &alert);
    assert_eq!(run["outcome"], "RUN_OUTCOME_FAILED", "{run}");
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("UserGate is unreachable"),
        "{run}"
    );
    let secret = ok(
        &pki,
        &server,
        As::Operator,
        "ListSecrets",
        &json!({"tenant": "Main"}),
    )["secrets"][0]["id"]
        .clone();
    let tested = ok(
        &pki,
        &server,
        As::Operator,
        "TestSecret",
        &json!({"id": secret}),
    );
    assert_eq!(tested["ok"], Value::Null, "false is left out: {tested}");
    assert!(
        tested["message"].as_str().unwrap().contains("unreachable"),
        "{tested}"
    );

    // The appliance is back, but the password in the secret is not its own.
    let usergate = UserGate::start("another-password", "5m");
    // The stored password is not sent to a new address without being given again.
    let moved = xdr_tests::playbook::rpc(
        &pki,
        &server,
        As::Operator,
        "UpdateSecret",
        &json!({"id": secret, "tenant": "Main", "user": USERGATE_LOGIN, "url": usergate.url()}),
    );
    assert!(
        moved.stderr.contains("password: required when the url"),
        "{}",
        moved.stderr
    );
    ok(
        &pki,
        &server,
        As::Operator,
        "UpdateSecret",
        &json!({"id": secret, "tenant": "Main", "user": USERGATE_LOGIN, "url": usergate.url(),
                "password": PASSWORD}),
    );
    let refused = block(&pki, &server, &alert);
    assert_eq!(refused["outcome"], "RUN_OUTCOME_FAILED", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("refused the login of `xdr-api`"),
        "{message}"
    );
    assert!(!refused.to_string().contains(PASSWORD));
    let tested = ok(
        &pki,
        &server,
        As::Operator,
        "TestSecret",
        &json!({"id": secret}),
    );
    assert!(
        tested["message"]
            .as_str()
            .unwrap()
            .contains("refused the login"),
        "{tested}"
    );

    // Rotating the password is an update of the secret: the next launch works.
    ok(
        &pki,
        &server,
        As::Operator,
        "UpdateSecret",
        &json!({"id": secret, "tenant": "Main", "user": USERGATE_LOGIN, "url": usergate.url(),
                "password": "another-password"}),
    );
    let tested = ok(
        &pki,
        &server,
        As::Operator,
        "TestSecret",
        &json!({"id": secret}),
    );
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(
        usergate.state()["calls"]
            .as_array()
            .unwrap()
            .contains(&json!("v2.core.session.ping")),
        "the session was checked"
    );
    assert_eq!(
        block(&pki, &server, &alert)["outcome"],
        "RUN_OUTCOME_SUCCEEDED"
    );

    // Each outcome is in the history.
    let alert = ok(&pki, &server, ALICE, "GetAlert", &json!({"id": alert}));
    let outcomes: Vec<&Value> = alert["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["launch"]["outcome"])
        .collect();
    assert_eq!(
        outcomes,
        [
            "RUN_OUTCOME_FAILED",
            "RUN_OUTCOME_FAILED",
            "RUN_OUTCOME_SUCCEEDED"
        ]
    );
}

#[test]
fn a_url_list_fed_from_a_url_makes_a_partial_outcome_naming_what_was_not_blocked() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    usergate.control(
        "POST",
        "lists",
        Some(json!({"name": "XDR blocked URLs", "type": "url", "url": "http://feeds.example/urls.txt"})),
    );
    let server = ServiceProcess::start("playbook", &pki);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let alert = one_alert(&pki, &server, "ev-fed");
    let run = block(&pki, &server, &alert);
    assert_eq!(run["outcome"], "RUN_OUTCOME_PARTIAL", "{run}");
    let message = run["message"].as_str().unwrap();
    assert!(message.contains("Done: 203.0.113.9"), "{message}");
    assert!(
        message.contains("Not done: http://fakess123bn.nu"),
        "{message}"
    );
    assert!(message.contains("fault 2003"), "{message}");
    let not_done: Vec<&Value> = run["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["done"] != true)
        .map(|i| &i["value"])
        .collect();
    assert_eq!(
        not_done,
        ["http://fakess123bn.nu", "fakess123bn.nu"],
        "{run}"
    );
    assert_eq!(usergate.list_items("XDR blocked hosts"), ["203.0.113.9"]);
    assert_eq!(
        usergate.list_items("XDR blocked URLs"),
        Vec::<String>::new()
    );
}

#[test]
fn an_https_appliance_is_reached_through_the_ca_in_its_secret_and_only_so() {
    let pki = TestPki::new();
    let certs = pki.certs();
    let (cert, key) = (
        certs.join("gateway-https.crt"),
        certs.join("gateway-https.key"),
    );
    let usergate = UserGate::start_with(
        PASSWORD,
        "5m",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let server = ServiceProcess::start("playbook", &pki);
    let secret = |name: &str, ca: &str| {
        ok(
            &pki,
            &server,
            As::Operator,
            "CreateSecret",
            &json!({"name": name, "tenant": "Main", "type": "SECRET_TYPE_CREDENTIALS",
                    "user": USERGATE_LOGIN, "password": PASSWORD, "url": usergate.url(),
                    "caPem": ca}),
        )["id"]
            .clone()
    };
    // An https URL without a CA is refused where it is given.
    let refused = xdr_tests::playbook::rpc(
        &pki,
        &server,
        As::Operator,
        "CreateSecret",
        &json!({"name": "no-ca", "tenant": "Main", "type": "SECRET_TYPE_CREDENTIALS",
                "user": USERGATE_LOGIN, "password": PASSWORD, "url": usergate.url()}),
    );
    assert!(refused.stderr.contains("ca_pem"), "{}", refused.stderr);
    let mesh_ca = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    let good = secret("usergate", &mesh_ca);
    let tested = ok(
        &pki,
        &server,
        As::Operator,
        "TestSecret",
        &json!({"id": good}),
    );
    assert_eq!(tested["ok"], true, "{tested}");
    let alert = one_alert(&pki, &server, "ev-https");
    assert_eq!(
        block(&pki, &server, &alert)["outcome"],
        "RUN_OUTCOME_SUCCEEDED"
    );
    assert_eq!(usergate.list_items("XDR blocked hosts"), ["203.0.113.9"]);
    // Another CA's certificate does not do.
    let other = TestPki::new();
    let other_ca = std::fs::read_to_string(other.certs().join("ca.crt")).unwrap();
    let wrong = secret("wrong-ca", &other_ca);
    let tested = ok(
        &pki,
        &server,
        As::Operator,
        "TestSecret",
        &json!({"id": wrong}),
    );
    assert!(
        tested["message"].as_str().unwrap().contains("TLS"),
        "{tested}"
    );
}

#[test]
fn a_launch_whose_caller_gives_up_still_finishes_and_is_in_the_history() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = ServiceProcess::start("playbook", &pki);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    usergate.control(
        "POST",
        "users",
        Some(json!({"login": "bob", "ip": "10.0.0.21"})),
    );
    usergate.control(
        "POST",
        "delays",
        Some(json!({"method": "v1.auth.active.users.list", "ms": 2500})),
    );
    let alert = one_alert(&pki, &server, "ev-impatient");
    let gave_up = xdr_tests::Grpcurl::new(&pki, xdr_tests::Cert::Named("gateway"))
        .header("x-xdr-user", "alice")
        .header("x-xdr-tenant", "Main")
        .header("x-xdr-role", "tier1-analyst")
        .max_time_secs(1.0)
        .data(&json!({"playbookId": "usergate.logout_users", "alertId": alert}).to_string())
        .call(server.listening_addr(), &["xdr.v1.Playbook/LaunchPlaybook"]);
    assert!(!gave_up.success, "{}", gave_up.stdout);
    server.wait_for_log("the run recorded", |l| {
        l["message"] == "launch recorded in the history"
    });
    let kept = ok(&pki, &server, ALICE, "GetAlert", &json!({"id": alert}));
    assert_eq!(
        kept["history"][0]["launch"]["outcome"], "RUN_OUTCOME_SUCCEEDED",
        "{kept}"
    );
    assert_eq!(usergate.state()["users"], json!([]));
}

//! The seed's UserGate story against the emulator: "Block host via UserGate" puts an alert's
//! threat observables on the appliance and makes the drop rules, a second run changes
//! nothing, "Log out the users" logs everyone out, and each launch is in the alert's history
//! — with the appliance's password nowhere in what the service says or logs.

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki,
    playbook::{As, UserGate, matched_event, ok, raise, usergate_secret},
};

const PASSWORD: &str = "Utm-pa55-7f3c9e";
const ALICE: As<'static> = As::Person("alice", "Main", "tier1-analyst");

fn start_playbook(pki: &TestPki, extra: &[&str]) -> ServiceProcess {
    let mut args = vec!["--protected-networks", "10.0.0.0/8"];
    args.extend_from_slice(extra);
    ServiceProcess::start_with("playbook", pki, &args)
}

fn launch(pki: &TestPki, server: &ServiceProcess, who: As<'_>, request: Value) -> Value {
    ok(pki, server, who, "LaunchPlaybook", &request)
}

fn done_notes(run: &Value) -> Vec<(String, String)> {
    run["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["done"] == true)
        .map(|i| {
            (
                i["value"].as_str().unwrap().to_owned(),
                i["note"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn block_host_puts_threat_observables_on_usergate_and_a_rerun_changes_nothing() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = start_playbook(&pki, &[]);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let raised = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-1",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    );
    let alert_id = raised["alertIds"][0].as_str().unwrap().to_owned();

    let request = json!({
        "playbookId": "usergate.block_host", "alertId": alert_id,
        // The analyst adds one more, and one inside the protected networks.
        "observables": [
            {"type": "INDICATOR_TYPE_IP", "value": "198.51.100.77"},
            {"type": "INDICATOR_TYPE_IP", "value": "10.20.30.40"},
        ],
    });
    let run = launch(&pki, &server, ALICE, request.clone());
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    assert_eq!(run["launchedBy"], "alice");
    assert_eq!(run["protected"], json!(["10.20.30.40"]), "{run}");
    let mut blocked: Vec<String> = done_notes(&run).into_iter().map(|(v, _)| v).collect();
    blocked.sort();
    assert_eq!(
        blocked,
        [
            "198.51.100.77",
            "203.0.113.9",
            "fakess123bn.nu",
            "http://fakess123bn.nu"
        ],
        "the unmatched 10.0.0.5 is not blocked: {run}"
    );
    assert!(
        run["message"].as_str().unwrap().contains("succeeded"),
        "{run}"
    );

    // The appliance holds them, and the rules that drop traffic to the lists are in force.
    let mut hosts = usergate.list_items("XDR blocked hosts");
    hosts.sort();
    assert_eq!(hosts, ["198.51.100.77", "203.0.113.9"]);
    let mut urls = usergate.list_items("XDR blocked URLs");
    urls.sort();
    assert_eq!(urls, ["fakess123bn.nu", "http://fakess123bn.nu"]);
    let state = usergate.state();
    let hosts_list = state["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "XDR blocked hosts")
        .unwrap()["id"]
        .clone();
    let firewall = state["firewall_rules"].as_array().unwrap();
    assert_eq!(firewall.len(), 1, "{state}");
    assert_eq!(firewall[0]["action"], "drop");
    assert_eq!(firewall[0]["enabled"], true);
    assert_eq!(firewall[0]["dst_ips"], json!([["list_id", hosts_list]]));
    let content = state["content_rules"].as_array().unwrap();
    assert_eq!((content.len(), &content[0]["action"]), (1, &json!("drop")));
    assert_eq!(state["sessions"], 0, "the session is logged out: {state}");
    assert!(
        state["calls"]
            .as_array()
            .unwrap()
            .contains(&json!("origin=xdr-playbook")),
        "login names its origin: {state}"
    );

    // Twice is harmless: everything is already there, nothing is added or made again.
    let again = launch(&pki, &server, ALICE, request);
    assert_eq!(again["outcome"], "RUN_OUTCOME_SUCCEEDED", "{again}");
    assert!(
        done_notes(&again)
            .iter()
            .all(|(_, note)| note == "already present"),
        "{again}"
    );
    assert_eq!(usergate.list_items("XDR blocked hosts").len(), 2);
    let state = usergate.state();
    assert_eq!(state["firewall_rules"].as_array().unwrap().len(), 1);
    assert_eq!(state["content_rules"].as_array().unwrap().len(), 1);

    // Both launches are in the alert's history: who, which playbook, what was sent, outcome.
    let alert = ok(&pki, &server, ALICE, "GetAlert", &json!({"id": alert_id}));
    let launches: Vec<&Value> = alert["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry.get("launch"))
        .collect();
    assert_eq!(launches.len(), 2, "{alert}");
    assert_eq!(launches[0]["playbook"], "usergate.block_host");
    assert_eq!(launches[0]["launchedBy"], "alice");
    let actions = launches[0]["actions"].to_string();
    assert!(actions.contains("v2.nlists.list.add.items"), "{actions}");
    assert!(actions.contains("v1.firewall.rule.add"), "{actions}");
    assert!(
        actions.contains("***"),
        "the login is shown without its password: {actions}"
    );

    // Metrics count the launches and the calls, by outcome.
    let scraped = xdr_tests::metrics::scrape(server.metrics_addr());
    let launches = xdr_tests::metrics::sample(
        &scraped,
        "xdr_playbook_launches_total",
        &[
            "outcome=\"RUN_OUTCOME_SUCCEEDED\"",
            "playbook=\"usergate.block_host\"",
        ],
    );
    assert_eq!(launches, Some(2.0), "{scraped}");
    let logins = xdr_tests::metrics::sample(
        &scraped,
        "xdr_playbook_usergate_calls_total",
        &["call=\"login\"", "result=\"ok\""],
    );
    assert_eq!(logins, Some(2.0), "{scraped}");

    // The password appears in no answer and no log line.
    let secrets = ok(
        &pki,
        &server,
        As::Operator,
        "ListSecrets",
        &json!({"tenant": "Main"}),
    );
    for text in [alert.to_string(), secrets.to_string(), again.to_string()] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(secrets.to_string().contains(&usergate.url()), "{secrets}");
    for line in server.log_lines() {
        assert!(!line.contains(PASSWORD), "{line}");
    }
}

#[test]
fn log_out_the_users_logs_out_everyone_logged_in() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = start_playbook(&pki, &[]);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    for (login, ip) in [("bob", "10.0.0.21"), ("carol", "10.0.0.22")] {
        usergate.control("POST", "users", Some(json!({"login": login, "ip": ip})));
    }
    let raised = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-2",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    );
    let run = launch(
        &pki,
        &server,
        As::Person("dave", "Main", "junior-analyst"),
        json!({"playbookId": "usergate.logout_users", "alertId": raised["alertIds"][0]}),
    );
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    let mut out: Vec<String> = done_notes(&run).into_iter().map(|(v, _)| v).collect();
    out.sort();
    assert_eq!(out, ["bob (10.0.0.21)", "carol (10.0.0.22)"]);
    assert_eq!(usergate.state()["users"], json!([]));
    // Nobody left: a second run succeeds with nothing to do.
    let again = launch(
        &pki,
        &server,
        As::Person("dave", "Main", "junior-analyst"),
        json!({"playbookId": "usergate.logout_users", "alertId": raised["alertIds"][0]}),
    );
    assert_eq!(again["outcome"], "RUN_OUTCOME_SUCCEEDED", "{again}");
    assert_eq!(again["items"], Value::Null, "{again}");
}

#[test]
fn a_dry_run_shows_what_would_be_sent_and_sends_nothing() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = start_playbook(&pki, &[]);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let raised = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-3",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    );
    let alert_id = raised["alertIds"][0].clone();
    let run = launch(
        &pki,
        &server,
        ALICE,
        json!({"playbookId": "usergate.block_host", "alertId": alert_id, "dryRun": true}),
    );
    assert_eq!(run["outcome"], "RUN_OUTCOME_DRY_RUN", "{run}");
    let actions = run["actions"].to_string();
    assert!(actions.contains("203.0.113.9"), "{actions}");
    assert!(actions.contains(&usergate.url()), "{actions}");
    assert_eq!(
        usergate.state()["calls"],
        json!([]),
        "nothing reached the appliance"
    );
    let alert = ok(&pki, &server, ALICE, "GetAlert", &json!({"id": alert_id}));
    assert_eq!(
        alert["history"],
        Value::Null,
        "a dry run writes no history: {alert}"
    );
}

#[test]
fn unblock_removes_on_demand_and_a_block_lifetime_removes_by_itself() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = start_playbook(&pki, &["--block-sweep-interval", "200ms"]);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let first = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-4",
            "Main",
            "http://one.example",
            "203.0.113.1",
        )],
    );
    let second = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-5",
            "Main",
            "http://two.example",
            "203.0.113.2",
        )],
    );
    let (first, second) = (first["alertIds"][0].clone(), second["alertIds"][0].clone());
    let block = |alert: &Value, extra: Value| {
        let mut request = json!({"playbookId": "usergate.block_host", "alertId": alert});
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let run = launch(&pki, &server, ALICE, request);
        assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    };
    block(&first, json!({}));
    block(&second, json!({"blockSeconds": 1}));
    let mut hosts = usergate.list_items("XDR blocked hosts");
    hosts.sort();
    assert_eq!(hosts, ["203.0.113.1", "203.0.113.2"]);

    // The second block ends by itself: the sweep removes its items, and only those.
    server.wait_for_log("expired blocks removed", |l| {
        l["message"] == "expired blocks removed" && l["list"] == "`XDR blocked URLs`"
    });
    server.wait_for_log("expired blocks removed", |l| {
        l["message"] == "expired blocks removed" && l["list"] == "`XDR blocked hosts`"
    });
    assert_eq!(usergate.list_items("XDR blocked hosts"), ["203.0.113.1"]);
    assert_eq!(
        usergate.list_items("XDR blocked URLs"),
        ["http://one.example", "one.example"]
    );

    // The first is removed on demand.
    let run = launch(
        &pki,
        &server,
        ALICE,
        json!({"playbookId": "usergate.unblock_host", "alertId": first}),
    );
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    assert!(
        done_notes(&run).iter().all(|(_, n)| n == "removed"),
        "{run}"
    );
    assert_eq!(
        usergate.list_items("XDR blocked hosts"),
        Vec::<String>::new()
    );
    assert_eq!(
        usergate.list_items("XDR blocked URLs"),
        Vec::<String>::new()
    );
}

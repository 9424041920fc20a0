//! Events into alerts: a burst with the same matches is one alert, an event sent twice counts
//! once, other matches or a closed alert open a new one, severity follows the category;
//! listings filter and page; incidents group alerts and launch on all of their observables.

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki,
    playbook::{As, UserGate, matched_event, ok, raise, rpc, usergate_secret},
};

const ALICE: As<'static> = As::Person("alice", "Main", "tier1-analyst");

#[test]
fn a_burst_is_one_alert_and_duplicates_count_once() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("playbook", &pki);
    let burst: Vec<Value> = (0..50)
        .map(|i| {
            matched_event(
                &format!("burst-{i}"),
                "Main",
                "http://fakess123bn.nu",
                "203.0.113.9",
            )
        })
        .collect();
    let first = raise(&pki, &server, &burst);
    assert_eq!(first["newAlerts"], 1, "{first}");
    let ids: Vec<&Value> = first["alertIds"].as_array().unwrap().iter().collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{first}");
    // A collector unsure the first send arrived sends part of it again.
    let again = raise(&pki, &server, &burst[..10]);
    assert_eq!(again["duplicates"], 10, "{again}");
    assert_eq!(again["newAlerts"], Value::Null, "{again}");

    let alert = ok(&pki, &server, ALICE, "GetAlert", &json!({"id": ids[0]}));
    assert_eq!(alert["eventCount"], "50", "{alert}");
    assert_eq!(alert["status"], "ALERT_STATUS_NEW");
    assert_eq!(
        alert["severity"], "SEVERITY_HIGH",
        "KL_Malicious_URL is high"
    );
    assert_eq!(alert["eventIds"].as_array().unwrap().len(), 50);
    let observables: Vec<(&str, &str)> = alert["observables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap(),
                o["category"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        observables,
        [
            ("http://fakess123bn.nu", "KL_Malicious_URL"),
            ("fakess123bn.nu", "KL_Malicious_URL"),
            ("203.0.113.9", "KL_IP_Reputation"),
            ("10.0.0.5", ""),
        ]
    );

    // Other matches make another alert; a closed alert takes no more events.
    let other = raise(
        &pki,
        &server,
        &[matched_event(
            "o-1",
            "Main",
            "http://other.example",
            "203.0.113.50",
        )],
    );
    assert_eq!(other["newAlerts"], 1);
    ok(
        &pki,
        &server,
        ALICE,
        "UpdateAlert",
        &json!({"id": ids[0], "status": "ALERT_STATUS_CLOSED"}),
    );
    let after_close = raise(
        &pki,
        &server,
        &[matched_event(
            "late-1",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    );
    assert_eq!(after_close["newAlerts"], 1, "{after_close}");
    assert_ne!(after_close["alertIds"][0], *ids[0]);

    // Listing: newest first, filtered by status, paged.
    let all = ok(&pki, &server, ALICE, "ListAlerts", &json!({}));
    let listed: Vec<&Value> = all["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(
        listed,
        [&after_close["alertIds"][0], &other["alertIds"][0], ids[0]]
    );
    let open = ok(
        &pki,
        &server,
        ALICE,
        "ListAlerts",
        &json!({"statuses": ["ALERT_STATUS_NEW"]}),
    );
    assert_eq!(open["alerts"].as_array().unwrap().len(), 2);
    let page = ok(
        &pki,
        &server,
        ALICE,
        "ListAlerts",
        &json!({"page": {"pageSize": 2}}),
    );
    assert_eq!(page["alerts"].as_array().unwrap().len(), 2);
    let token = page["page"]["nextPageToken"].as_str().unwrap();
    let rest = ok(
        &pki,
        &server,
        ALICE,
        "ListAlerts",
        &json!({"page": {"pageSize": 2, "pageToken": token}}),
    );
    assert_eq!(rest["alerts"][0]["id"], *ids[0], "{rest}");
    let critical = ok(
        &pki,
        &server,
        ALICE,
        "ListAlerts",
        &json!({"minSeverity": "SEVERITY_CRITICAL"}),
    );
    assert_eq!(critical["alerts"], Value::Null);
}

#[test]
fn bad_events_are_refused_by_field_and_nothing_is_half_taken() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("playbook", &pki);
    let good = matched_event("fine-1", "Main", "http://a.example", "203.0.113.1");
    let mut shared = matched_event("bad-1", "Shared", "http://a.example", "203.0.113.1");
    let outcome = rpc(
        &pki,
        &server,
        As::Service("collector"),
        "RaiseAlerts",
        &json!({"events": [good, shared.clone()]}),
    );
    assert!(
        outcome.stderr.contains("InvalidArgument"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("events[1].tenant"),
        "{}",
        outcome.stderr
    );
    shared["tenant"] = json!("Main");
    shared["id"] = json!("");
    let outcome = rpc(
        &pki,
        &server,
        As::Service("collector"),
        "RaiseAlerts",
        &json!({"events": [shared]}),
    );
    assert!(
        outcome.stderr.contains("events[0].id"),
        "{}",
        outcome.stderr
    );
    let listed = ok(&pki, &server, ALICE, "ListAlerts", &json!({}));
    assert_eq!(
        listed["alerts"],
        Value::Null,
        "the refused batch left nothing: {listed}"
    );
    // The enrichment service may not raise alerts; only collectors (and operators).
    let enrichment = rpc(
        &pki,
        &server,
        As::Service("enrichment"),
        "RaiseAlerts",
        &json!({}),
    );
    assert!(
        enrichment.stderr.contains("PermissionDenied"),
        "{}",
        enrichment.stderr
    );
}

#[test]
fn an_incident_groups_alerts_and_a_launch_on_it_covers_all_their_observables() {
    let pki = TestPki::new();
    let usergate = UserGate::start("Utm-incident-1", "5m");
    let server = ServiceProcess::start("playbook", &pki);
    usergate_secret(&pki, &server, "Main", &usergate, "Utm-incident-1");
    let a = raise(
        &pki,
        &server,
        &[matched_event(
            "i-1",
            "Main",
            "http://one.example",
            "203.0.113.1",
        )],
    );
    let b = raise(
        &pki,
        &server,
        &[matched_event(
            "i-2",
            "Main",
            "http://two.example",
            "203.0.113.2",
        )],
    );
    let (a, b) = (a["alertIds"][0].clone(), b["alertIds"][0].clone());
    let incident = ok(
        &pki,
        &server,
        ALICE,
        "CreateIncident",
        &json!({"title": "Two hosts, one campaign", "alertIds": [a, b]}),
    );
    assert_eq!(incident["severity"], "SEVERITY_HIGH");
    let linked = ok(&pki, &server, ALICE, "GetAlert", &json!({"id": a}));
    assert_eq!(linked["incidentId"], incident["id"]);
    let run = ok(
        &pki,
        &server,
        ALICE,
        "LaunchPlaybook",
        &json!({"playbookId": "usergate.block_host", "incidentId": incident["id"]}),
    );
    assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{run}");
    let mut hosts = usergate.list_items("XDR blocked hosts");
    hosts.sort();
    assert_eq!(hosts, ["203.0.113.1", "203.0.113.2"]);
    let kept = ok(
        &pki,
        &server,
        ALICE,
        "GetIncident",
        &json!({"id": incident["id"]}),
    );
    let history = kept["history"].as_array().unwrap();
    assert_eq!(
        history.last().unwrap()["launch"]["incidentId"],
        incident["id"]
    );
    let closed = ok(
        &pki,
        &server,
        ALICE,
        "UpdateIncident",
        &json!({"id": incident["id"], "status": "ALERT_STATUS_CLOSED"}),
    );
    assert_eq!(closed["status"], "ALERT_STATUS_CLOSED");
    let listed = |filter: Value| {
        ok(&pki, &server, ALICE, "ListIncidents", &filter)["incidents"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(listed(json!({"statuses": ["ALERT_STATUS_CLOSED"]})), 1);
    assert_eq!(listed(json!({"statuses": ["ALERT_STATUS_NEW"]})), 0);
    assert_eq!(listed(json!({"minSeverity": "SEVERITY_HIGH"})), 1);
    assert_eq!(listed(json!({"minSeverity": "SEVERITY_CRITICAL"})), 0);
    assert_eq!(
        listed(json!({"sinceMs": "4102444800000"})),
        0,
        "none from 2100 on"
    );
    let missing = rpc(
        &pki,
        &server,
        ALICE,
        "CreateIncident",
        &json!({"title": "x", "alertIds": ["no-such-alert"]}),
    );
    assert!(missing.stderr.contains("NotFound"), "{}", missing.stderr);
}

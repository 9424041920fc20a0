//! Who may do what with alerts, playbooks and secrets (the design's role table), tenants
//! kept apart, and what survives a restart.

use serde_json::{Value, json};
use xdr_tests::{
    ServiceProcess, TestPki,
    playbook::{As, UserGate, matched_event, ok, raise, rpc, usergate_secret},
};

const PASSWORD: &str = "Utm-pa55-c0ffee";

fn refused(outcome: &xdr_tests::grpcurl::Outcome, code: &str, words: &str) {
    assert!(!outcome.success, "{}", outcome.stdout);
    assert!(outcome.stderr.contains(code), "{}", outcome.stderr);
    assert!(outcome.stderr.contains(words), "{}", outcome.stderr);
}

#[test]
fn the_seeds_five_roles_launch_an_observer_does_not_and_tenants_stay_apart() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = ServiceProcess::start("playbook", &pki);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let alert = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-roles",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    )["alertIds"][0]
        .clone();
    let launch = json!({"playbookId": "usergate.logout_users", "alertId": alert});

    for role in [
        "main-administrator",
        "tenant-administrator",
        "tier2-analyst",
        "tier1-analyst",
        "junior-analyst",
    ] {
        let run = ok(
            &pki,
            &server,
            As::Person("p", "Main", role),
            "LaunchPlaybook",
            &launch,
        );
        assert_eq!(run["outcome"], "RUN_OUTCOME_SUCCEEDED", "{role}: {run}");
    }
    let observer = rpc(
        &pki,
        &server,
        As::Person("olga", "Main", "observer"),
        "LaunchPlaybook",
        &launch,
    );
    refused(
        &observer,
        "PermissionDenied",
        "`olga` (observer) may not launch playbooks",
    );
    // Observers read.
    ok(
        &pki,
        &server,
        As::Person("olga", "Main", "observer"),
        "GetAlert",
        &json!({"id": alert}),
    );

    // A junior analyst launches but does not change an alert's status; a Tier 1 does.
    let close = json!({"id": alert, "status": "ALERT_STATUS_IN_PROGRESS", "assignee": "alice"});
    let junior = rpc(
        &pki,
        &server,
        As::Person("jo", "Main", "junior-analyst"),
        "UpdateAlert",
        &close,
    );
    refused(&junior, "PermissionDenied", "may not change alerts");
    let changed = ok(
        &pki,
        &server,
        As::Person("alice", "Main", "tier1-analyst"),
        "UpdateAlert",
        &close,
    );
    assert_eq!(changed["status"], "ALERT_STATUS_IN_PROGRESS");
    assert_eq!(changed["assignee"], "alice");
    let history = changed["history"].as_array().unwrap();
    let last_two: Vec<&Value> = history[history.len() - 2..].iter().collect();
    assert_eq!(last_two[0]["status"], "ALERT_STATUS_IN_PROGRESS");
    assert_eq!(last_two[1]["assignee"], "alice");
    assert_eq!(last_two[1]["by"], "alice");

    // Another tenant's people neither see nor act on Main's alert.
    let acme = As::Person("eve", "Acme", "tenant-administrator");
    let unseen = rpc(&pki, &server, acme, "GetAlert", &json!({"id": alert}));
    refused(&unseen, "NotFound", "not found");
    let named = rpc(
        &pki,
        &server,
        acme,
        "GetAlert",
        &json!({"id": alert, "tenant": "Main"}),
    );
    refused(&named, "PermissionDenied", "is not `eve`'s tenant");
    let theirs = ok(&pki, &server, acme, "ListAlerts", &json!({}));
    assert_eq!(theirs["alerts"], Value::Null, "{theirs}");
    let forged = rpc(&pki, &server, acme, "LaunchPlaybook", &launch);
    refused(&forged, "NotFound", "not found");

    // Secrets are for administrators; no answer carries the password.
    let tier2 = rpc(
        &pki,
        &server,
        As::Person("t2", "Main", "tier2-analyst"),
        "ListSecrets",
        &json!({}),
    );
    refused(&tier2, "PermissionDenied", "may not manage secrets");
    let listed = ok(
        &pki,
        &server,
        As::Person("adm", "Main", "tenant-administrator"),
        "ListSecrets",
        &json!({}),
    );
    assert_eq!(listed["secrets"][0]["name"], "usergate");
    assert!(!listed.to_string().contains(PASSWORD));
    // A person does not raise alerts: collectors do (the gateway may not call it at all).
    let raised = rpc(
        &pki,
        &server,
        As::Person("adm", "Main", "main-administrator"),
        "RaiseAlerts",
        &json!({"events": [matched_event("x", "Main", "http://a.example", "203.0.113.1")]}),
    );
    refused(
        &raised,
        "PermissionDenied",
        "may not call /xdr.v1.Playbook/RaiseAlerts",
    );
}

#[test]
fn alerts_history_and_secrets_survive_a_restart() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let data = pki.scratch().join("playbook-data");
    let server = ServiceProcess::start_in("playbook", &pki, &data, &[]);
    usergate_secret(&pki, &server, "Main", &usergate, PASSWORD);
    let alert = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-restart",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    )["alertIds"][0]
        .clone();
    let alice = As::Person("alice", "Main", "tier1-analyst");
    let launch = json!({"playbookId": "usergate.block_host", "alertId": alert});
    ok(&pki, &server, alice, "LaunchPlaybook", &launch);
    drop(server);

    let server = ServiceProcess::start_in("playbook", &pki, &data, &[]);
    let kept = ok(&pki, &server, alice, "GetAlert", &json!({"id": alert}));
    assert_eq!(kept["history"].as_array().unwrap().len(), 1, "{kept}");
    assert_eq!(kept["observables"].as_array().unwrap().len(), 4, "{kept}");
    // The secret still decrypts with the key file the first start made.
    let again = ok(&pki, &server, alice, "LaunchPlaybook", &launch);
    assert_eq!(again["outcome"], "RUN_OUTCOME_SUCCEEDED", "{again}");
    // And the same event sent again is taken for what it is: a duplicate.
    let resent = raise(
        &pki,
        &server,
        &[matched_event(
            "ev-restart",
            "Main",
            "http://fakess123bn.nu",
            "203.0.113.9",
        )],
    );
    assert_eq!(resent["duplicates"], 1, "{resent}");
    let key = std::fs::metadata(data.join("secret.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let store = std::fs::read(data.join("playbook.redb")).unwrap();
    assert!(
        !store
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the password is encrypted at rest"
    );
}

#[test]
fn one_tenant_runs_at_most_four_launches_at_once_and_others_still_launch() {
    let pki = TestPki::new();
    let usergate = UserGate::start(PASSWORD, "5m");
    let server = ServiceProcess::start("playbook", &pki);
    // One secret in Shared serves every tenant.
    usergate_secret(&pki, &server, "Shared", &usergate, PASSWORD);
    let main_alert = raise(
        &pki,
        &server,
        &[matched_event(
            "busy-1",
            "Main",
            "http://a.example",
            "203.0.113.1",
        )],
    )["alertIds"][0]
        .clone();
    let acme_alert = raise(
        &pki,
        &server,
        &[matched_event(
            "busy-2",
            "Acme",
            "http://b.example",
            "203.0.113.2",
        )],
    )["alertIds"][0]
        .clone();
    usergate.control(
        "POST",
        "delays",
        Some(json!({"method": "v1.auth.active.users.list", "ms": 3000})),
    );
    let launch = |alert: &Value| json!({"playbookId": "usergate.logout_users", "alertId": alert});
    std::thread::scope(|scope| {
        let slow: Vec<_> = (0..4)
            .map(|_| {
                let request = launch(&main_alert);
                let (pki, server) = (&pki, &server);
                scope.spawn(move || {
                    ok(
                        pki,
                        server,
                        As::Person("p", "Main", "tier1-analyst"),
                        "LaunchPlaybook",
                        &request,
                    )
                })
            })
            .collect();
        // Once the four are inside UserGate, a fifth of Main is refused at once...
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let calls = usergate.state()["calls"].to_string();
            if calls.matches("v1.auth.active.users.list").count() == 4 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{calls}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let fifth = rpc(
            &pki,
            &server,
            As::Person("p", "Main", "tier1-analyst"),
            "LaunchPlaybook",
            &launch(&main_alert),
        );
        refused(
            &fifth,
            "ResourceExhausted",
            "tenant `Main` has 4 playbook launches running",
        );
        // ...while another tenant still launches.
        let acme = ok(
            &pki,
            &server,
            As::Person("q", "Acme", "tier1-analyst"),
            "LaunchPlaybook",
            &launch(&acme_alert),
        );
        assert_eq!(acme["outcome"], "RUN_OUTCOME_SUCCEEDED", "{acme}");
        for launched in slow {
            assert_eq!(launched.join().unwrap()["outcome"], "RUN_OUTCOME_SUCCEEDED");
        }
    });
}

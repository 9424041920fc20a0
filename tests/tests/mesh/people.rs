//! People behind the gateway: the gateway's identity calls with `x-xdr-user`, `x-xdr-tenant`
//! and `x-xdr-role`, and services apply the design's role table and tenant rules. The
//! metadata is believed from the gateway only.

use serde_json::{Value, json};
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, grpcurl::Outcome};

/// `service/method` with `request`, as the gateway calling for `user` of `tenant` in `role`.
fn as_person(
    pki: &TestPki,
    server: &ServiceProcess,
    (user, tenant, role): (&str, &str, &str),
    rpc: &str,
    request: &Value,
) -> Outcome {
    Grpcurl::new(pki, Cert::Named("gateway"))
        .header("x-xdr-user", user)
        .header("x-xdr-tenant", tenant)
        .header("x-xdr-role", role)
        .data(&request.to_string())
        .call(server.listening_addr(), &[rpc])
}

fn rule(tenant: Option<&str>) -> Value {
    let mut rule = json!({
        "name": "URL reputation",
        "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}],
    });
    if let Some(tenant) = tenant {
        rule["tenant"] = json!(tenant);
    }
    rule
}

fn denied(outcome: &Outcome, says: &str) {
    assert!(!outcome.success, "{}", outcome.stdout);
    assert!(
        outcome.stderr.contains("PermissionDenied") && outcome.stderr.contains(says),
        "{}",
        outcome.stderr
    );
}

#[test]
fn enrichment_rules_follow_the_role_table_and_the_persons_tenant() {
    let pki = TestPki::new();
    let server =
        ServiceProcess::start_with("enrichment", &pki, &["--threatintel-addr", "127.0.0.1:9"]);
    const CREATE: &str = "xdr.v1.Enrichment/CreateRule";
    let admin = ("ann", "Acme", "tenant-administrator");
    let tier1 = ("tom", "Acme", "tier1-analyst");

    // No tenant in the body: the rule is the person's tenant's.
    let created = as_person(&pki, &server, admin, CREATE, &rule(None));
    assert!(created.success, "{}", created.stderr);
    let created: Value = serde_json::from_str(&created.stdout).unwrap();
    assert_eq!(created["tenant"], "Acme", "{created}");

    // Another tenant in the body, or Shared, is not a tenant administrator's to change.
    let elsewhere = as_person(&pki, &server, admin, CREATE, &rule(Some("Globex")));
    denied(&elsewhere, "is not `ann`'s tenant");
    let shared = as_person(&pki, &server, admin, CREATE, &rule(Some("Shared")));
    denied(&shared, "may not change configuration in tenant `Shared`");
    // A tier 1 analyst reads rules but does not change them.
    let tier1_create = as_person(&pki, &server, tier1, CREATE, &rule(None));
    denied(
        &tier1_create,
        "(tier1-analyst) may not change configuration",
    );
    let listed = as_person(
        &pki,
        &server,
        tier1,
        "xdr.v1.Enrichment/ListRules",
        &json!({}),
    );
    assert!(listed.success, "{}", listed.stderr);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed["rules"][0]["id"], created["id"], "{listed}");
    // A person of another tenant does not see it.
    let other = ("olga", "Globex", "tenant-administrator");
    let get = as_person(
        &pki,
        &server,
        other,
        "xdr.v1.Enrichment/GetRule",
        &json!({"id": created["id"], "tenant": "Acme"}),
    );
    denied(&get, "is not `olga`'s tenant");
    // A Main administrator names any tenant.
    let main = ("max", "Main", "main-administrator");
    let in_globex = as_person(&pki, &server, main, CREATE, &rule(Some("Globex")));
    assert!(in_globex.success, "{}", in_globex.stderr);
}

#[test]
fn person_metadata_from_anyone_but_the_gateway_is_refused() {
    let pki = TestPki::new();
    let server =
        ServiceProcess::start_with("enrichment", &pki, &["--threatintel-addr", "127.0.0.1:9"]);
    let claimed = Grpcurl::new(&pki, Cert::Named("operator"))
        .header("x-xdr-user", "mallory")
        .header("x-xdr-tenant", "Main")
        .header("x-xdr-role", "main-administrator")
        .data("{}")
        .call(server.listening_addr(), &["xdr.v1.Enrichment/ListRules"]);
    denied(&claimed, "taken from the gateway only");
    // From the gateway, the person must be whole and the role one of the table's.
    let partial = Grpcurl::new(&pki, Cert::Named("gateway"))
        .header("x-xdr-user", "ann")
        .data("{}")
        .call(server.listening_addr(), &["xdr.v1.Enrichment/ListRules"]);
    assert!(
        partial.stderr.contains("InvalidArgument"),
        "{}",
        partial.stderr
    );
    assert!(
        partial.stderr.contains("x-xdr-tenant: missing"),
        "{}",
        partial.stderr
    );
    let unknown = as_person(
        &pki,
        &server,
        ("ann", "Acme", "root"),
        "xdr.v1.Enrichment/ListRules",
        &json!({}),
    );
    assert!(
        unknown.stderr.contains("`root` is not a role")
            && unknown.stderr.contains("PermissionDenied"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn internal_ti_changes_need_a_tier_2_analyst_or_above() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    const ADD: &str = "xdr.v1.ThreatIntel/AddIndicators";
    let indicator = json!({"indicators": [{ "value": "203.0.113.9" }]});
    let tier1 = as_person(
        &pki,
        &server,
        ("tom", "Acme", "tier1-analyst"),
        ADD,
        &indicator,
    );
    denied(&tier1, "(tier1-analyst) may not change Internal TI");
    let tier2 = as_person(
        &pki,
        &server,
        ("tia", "Acme", "tier2-analyst"),
        ADD,
        &indicator,
    );
    assert!(tier2.success, "{}", tier2.stderr);
    // Feeds serve every tenant: only a Main administrator reloads them.
    let reload = as_person(
        &pki,
        &server,
        ("ann", "Acme", "tenant-administrator"),
        "xdr.v1.ThreatIntel/ReloadFeeds",
        &json!({}),
    );
    denied(&reload, "in tenant `Shared`");
    // Anyone may look values up.
    let lookup = as_person(
        &pki,
        &server,
        ("olive", "Acme", "observer"),
        "xdr.v1.ThreatIntel/Lookup",
        &json!({"objects": [{"value": "203.0.113.9"}]}),
    );
    assert!(lookup.success, "{}", lookup.stderr);
    assert!(
        lookup.stdout.contains("matchedIndicator"),
        "{}",
        lookup.stdout
    );
}

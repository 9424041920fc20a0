//! The enrichment service through grpcurl and a tonic client: rules and saved filters kept
//! and checked, and the `Enrich` stream looking events up in a real ThreatIntel over mTLS, as
//! the seed's "Test CT enrichment" rule does. One file per story; the setup they share is here.

mod filters;
mod rules;
mod sources;
mod stream;

use serde_json::{Value, json};
use xdr_tests::{ServiceProcess, TestPki, enrichment::ok};

/// `Stats`, its counters as numbers (proto3 JSON writes 64-bit ones as strings, and leaves
/// zeros out).
pub(super) fn stats(pki: &TestPki, server: &ServiceProcess) -> Value {
    fn numbers(value: Value) -> Value {
        match value {
            Value::String(s) if s.parse::<u64>().is_ok() => json!(s.parse::<u64>().unwrap()),
            Value::Object(map) => map.into_iter().map(|(k, v)| (k, numbers(v))).collect(),
            Value::Array(items) => items.into_iter().map(numbers).collect(),
            other => other,
        }
    }
    numbers(ok(pki, server, "Stats", &json!({})))
}

pub(super) fn seed_rule() -> Value {
    json!({
        "name": "Test CT enrichment",
        "tenant": "Shared",
        "mapping": [{"field": "RequestUrl", "indicatorType": "INDICATOR_TYPE_URL"}],
        "debug": true
    })
}

pub(super) fn event(id: &str, url: Option<&str>) -> Value {
    let fields = match url {
        Some(url) => json!({"RequestUrl": {"text": url}}),
        None => json!({"SourceAddress": {"text": "192.0.2.10"}}),
    };
    json!({"id": id, "tenant": "Shared", "fields": fields})
}

/// The enrichment service with its data in the test's scratch folder (the same each time:
/// a restart finds what the last process saved).
pub(super) fn start_enrichment(pki: &TestPki, threatintel: &str) -> ServiceProcess {
    let data = pki.scratch().join("enrichment-data");
    // A rule's debug lines are debug-level, as the seed says.
    let args = [
        "--threatintel-addr",
        threatintel,
        "--log",
        "info,xdr_enrichment=debug",
    ];
    ServiceProcess::start_in("enrichment", pki, &data, &args)
}

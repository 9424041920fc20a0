//! Calls to a running `xdr-enrichment` through grpcurl, shared by the enrichment stories.

use serde_json::Value;

use crate::{Cert, Grpcurl, ServiceProcess, TestPki, grpcurl::Outcome};

/// `xdr.v1.Enrichment/<method>` as the operator, however it ends.
pub fn rpc(pki: &TestPki, server: &ServiceProcess, method: &str, request: &Value) -> Outcome {
    Grpcurl::new(pki, Cert::Named("operator"))
        .data(&request.to_string())
        .call(
            server.listening_addr(),
            &[&format!("xdr.v1.Enrichment/{method}")],
        )
}

/// `xdr.v1.Enrichment/<method>` as the operator; its JSON reply. Fails the test on an error.
pub fn ok(pki: &TestPki, server: &ServiceProcess, method: &str, request: &Value) -> Value {
    let outcome = rpc(pki, server, method, request);
    assert!(outcome.success, "{method}: {}", outcome.stderr);
    serde_json::from_str(&outcome.stdout).expect("grpcurl prints JSON")
}

/// The batches `Enrich` answers to `batches` (sent as the collector), in the order they came.
pub fn enrich(pki: &TestPki, server: &ServiceProcess, batches: &[Value]) -> Vec<Value> {
    let input: String = batches.iter().map(|b| format!("{b}\n")).collect();
    let out = Grpcurl::new(pki, Cert::Named("collector"))
        .stream(&input)
        .ok(server.listening_addr(), &["xdr.v1.Enrichment/Enrich"]);
    serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|v| v.expect("grpcurl prints JSON messages"))
        .collect()
}

/// The enrichment service looking values up in the ThreatIntel at `threatintel`.
pub fn start(pki: &TestPki, threatintel: &str) -> ServiceProcess {
    ServiceProcess::start_with("enrichment", pki, &["--threatintel-addr", threatintel])
}

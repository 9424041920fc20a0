//! Calls to a running `xdr-collector` through grpcurl, shared by the collector stories.

use base64::Engine;
use serde_json::{Value, json};
use xdr_proto::pb::IngestRequest;

use crate::{Cert, Grpcurl, ServiceProcess, TestPki, grpcurl::Outcome};

/// `xdr.v1.Collector/<method>` as `cert` with `headers`, however it ends.
pub fn rpc_as(
    pki: &TestPki,
    server: &ServiceProcess,
    cert: &str,
    headers: &[(&str, &str)],
    method: &str,
    request: &Value,
) -> Outcome {
    let mut grpcurl = Grpcurl::new(pki, Cert::Named(cert)).data(&request.to_string());
    for (name, value) in headers {
        grpcurl = grpcurl.header(name, value);
    }
    grpcurl.call(
        server.listening_addr(),
        &[&format!("xdr.v1.Collector/{method}")],
    )
}

/// `xdr.v1.Collector/<method>` as the operator, however it ends.
pub fn rpc(pki: &TestPki, server: &ServiceProcess, method: &str, request: &Value) -> Outcome {
    rpc_as(pki, server, "operator", &[], method, request)
}

/// `xdr.v1.Collector/<method>` as the operator; its JSON reply. Fails the test on an error.
pub fn ok(pki: &TestPki, server: &ServiceProcess, method: &str, request: &Value) -> Value {
    let outcome = rpc(pki, server, method, request);
    assert!(outcome.success, "{method}: {}", outcome.stderr);
    serde_json::from_str(&outcome.stdout).expect("grpcurl prints JSON")
}

/// A collector `name` in `tenant` taking JSON with `mapping` (source fields, mapped to
/// themselves) and linking `rules`; its id.
pub fn create(
    pki: &TestPki,
    server: &ServiceProcess,
    name: &str,
    tenant: &str,
    mapping: &[&str],
    rules: &[&str],
) -> String {
    let rows: Vec<Value> = mapping.iter().map(|m| json!({"source": m})).collect();
    let created = ok(
        pki,
        server,
        "CreateCollector",
        &json!({"name": name, "tenant": tenant, "normalizer": {"mapping": rows}, "ruleIds": rules}),
    );
    created["id"]
        .as_str()
        .expect("a created collector has an id")
        .to_owned()
}

/// `raw` as the proto3 JSON mapping writes a `bytes` field.
pub fn bytes(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Sends `raw` (events split by newlines) to `collector`; the reply.
pub fn ingest_raw(pki: &TestPki, server: &ServiceProcess, collector: &str, raw: &str) -> Value {
    ok(
        pki,
        server,
        "Ingest",
        &json!({"collector": collector, "raw": bytes(raw)}),
    )
}

/// The rows of `sql` as the operator sees them (Main).
pub fn search(pki: &TestPki, server: &ServiceProcess, sql: &str) -> Value {
    ok(pki, server, "SearchEvents", &json!({"sql": sql}))
}

/// The single integer `sql` answers (a `count()`).
pub fn count(pki: &TestPki, server: &ServiceProcess, sql: &str) -> i64 {
    let found = search(pki, server, sql);
    let cell = &found["rows"][0]["cells"][0];
    cell["integer"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .or_else(|| cell.as_object().filter(|o| o.is_empty()).map(|_| 0))
        .unwrap_or_else(|| panic!("{sql} answered no count: {found}"))
}

/// Batch `number` for `collector`'s stream: `events` raw NDJSON events, each a URL of its own.
pub fn numbered_batch(collector: &str, number: u64, events: usize) -> IngestRequest {
    let raw: String = (0..events)
        .map(|i| format!("{{\"RequestUrl\":\"http://example.com/{number}/{i}\"}}\n"))
        .collect();
    IngestRequest {
        collector: collector.into(),
        raw: raw.into_bytes(),
        batch_id: number,
        ..Default::default()
    }
}

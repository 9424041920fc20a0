//! Calls to a running `xdr-threatintel` as the operator, shared by the threat-intel stories.

use serde_json::Value;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use crate::{Cert, Grpcurl, ServiceProcess, TestPki, paths};

/// The folder of the demo feed: the seeds' test indicators.
pub fn demo_feeds() -> PathBuf {
    paths::workspace().join("services/threatintel/feeds")
}

/// `xdr-threatintel` with the demo feed and `extra` flags.
pub fn start_with_demo_feed(pki: &TestPki, extra: &[&str]) -> ServiceProcess {
    start_with_demo_feed_in(pki, None, extra)
}

/// As [`start_with_demo_feed`], with its data in `data` when given (a restart given the same
/// folder finds what the last process saved).
pub fn start_with_demo_feed_in(
    pki: &TestPki,
    data: Option<&Path>,
    extra: &[&str],
) -> ServiceProcess {
    let feeds = demo_feeds();
    let mut args = vec!["--feeds-dir", feeds.to_str().expect("a UTF-8 path")];
    args.extend(extra);
    match data {
        Some(data) => ServiceProcess::start_in("threatintel", pki, data, &args),
        None => ServiceProcess::start_with("threatintel", pki, &args),
    }
}

/// Where `server`'s CyberTrace listener listens, from its log.
pub fn cybertrace_addr(server: &ServiceProcess) -> SocketAddr {
    let line = server.wait_for_log("the CyberTrace listener", |l| {
        l["message"] == "cybertrace listening"
    });
    line["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("`cybertrace listening` carries addr")
}

/// `xdr.v1.ThreatIntel/<rpc>` with a JSON request; the JSON reply. Fails the test on an error.
pub fn call(pki: &TestPki, server: &ServiceProcess, rpc: &str, request: &Value) -> Value {
    let out = Grpcurl::new(pki, Cert::Named("operator"))
        .data(&request.to_string())
        .ok(
            server.listening_addr(),
            &[&format!("xdr.v1.ThreatIntel/{rpc}")],
        );
    serde_json::from_str(&out).expect("grpcurl prints JSON")
}

/// Every match of `value` as `supplier/category`, sorted.
pub fn matches(pki: &TestPki, server: &ServiceProcess, value: &str) -> Vec<String> {
    let reply = call(
        pki,
        server,
        "Lookup",
        &serde_json::json!({ "objects": [{ "value": value }] }),
    );
    let found = reply["results"][0]["matches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut found: Vec<String> = found
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["supplier"].as_str().unwrap_or_default(),
                m["category"].as_str().unwrap_or_default()
            )
        })
        .collect();
    found.sort();
    found
}

/// A feed report's or supplier status's `skippedByReason` as `reason=count`, sorted.
pub fn skipped_by_reason(report: &Value) -> Vec<String> {
    let mut reasons: Vec<String> = report["skippedByReason"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r["key"].as_str().unwrap_or_default(),
                r["count"].as_str().unwrap_or_default()
            )
        })
        .collect();
    reasons.sort();
    reasons
}

/// What the venv's Python prints running `script` with `args` (the tests' STIX and MISP
/// producers); fails the test, naming `what`, when the script fails.
pub fn python_output(what: &str, script: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(crate::paths::python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the script prints UTF-8")
}

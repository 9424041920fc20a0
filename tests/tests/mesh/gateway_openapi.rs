//! The gateway's `/openapi.json`, generated from the descriptors it transcodes with: it
//! describes the REST and Connect routes of the running services with their message schemas,
//! a real OpenAPI tool (schemathesis) loads it, and every case schemathesis generates from it
//! against the running gateway is answered without a 5xx.

use std::{process::Command, time::Duration};

use serde_json::Value;
use xdr_tests::{mesh_up, paths};

const HOST: &str = "127.0.0.83";

#[test]
fn openapi_document_describes_the_routes_and_schemathesis_finds_no_server_error() {
    let home = tempfile::tempdir().unwrap();
    let mut up = mesh_up::up(home.path(), HOST);
    let token = std::fs::read_to_string(home.path().join("data/gateway/first-admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let url = format!("http://{HOST}:8080/openapi.json");

    // No token needed to read it.
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let search = &document["paths"]["/v1/events"]["get"];
    let parameters = search["parameters"].as_array().unwrap();
    assert!(
        parameters
            .iter()
            .any(|p| p["name"] == "sql" && p["in"] == "query"),
        "{search}"
    );
    assert_eq!(
        search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/xdr.v1.SearchEventsReply"
    );
    // Descriptions are the .proto comments.
    assert!(
        document["paths"]["/xdr.v1.Collector/Ingest"]["post"]["summary"]
            .as_str()
            .unwrap()
            .contains("durable"),
        "{}",
        document["paths"]["/xdr.v1.Collector/Ingest"]
    );
    let rule = &document["components"]["schemas"]["xdr.v1.EnrichmentRule"];
    assert_eq!(
        rule["properties"]["timeoutSeconds"]["type"], "integer",
        "{rule}"
    );
    assert!(document["paths"]["/input"]["post"]["security"] == Value::Array(vec![]));

    // schemathesis loads the document (it refuses an invalid one) and fuzzes every operation.
    let fuzz = Command::new(paths::schemathesis())
        .args(["run", &url])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error"])
        .args([
            "--phases",
            "fuzzing",
            "-n",
            "10",
            "--seed",
            "1",
            "--no-shrink",
        ])
        .args(["--request-timeout", "30"])
        .env("SCHEMATHESIS_HOOKS", "")
        // It keeps a cache in its working folder.
        .current_dir(home.path())
        .output()
        .expect("schemathesis runs (tests/run.sh installs it)");
    let said = String::from_utf8_lossy(&fuzz.stdout);
    assert!(
        fuzz.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&fuzz.stderr)
    );
    assert!(said.contains("Tested:"), "{said}");

    up.signal(libc::SIGINT);
    assert!(up.wait_exit(Duration::from_secs(60)).success());
}

//! The seed's CyberTrace test (`../shared/seeds/004_…`, steps 3–4) on a fresh `xdrctl up`:
//! the quickstart's collector `http-input` takes `{"RequestUrl":"http://fakess123bn.nu"}`,
//! the seed's rule "Test CT enrichment" enriches it, and the seed's SELECT, verbatim, finds
//! it with its TI indicator and category — through grpcurl, and through xdrctl.

use serde_json::{Value, json};
use xdr_tests::{collector, mesh_up};

const HOST: &str = "127.0.0.78";
const SEED_EVENT: &str = r#"{"RequestUrl":"http://fakess123bn.nu"}"#;
const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";

#[test]
fn the_seeds_event_is_enriched_and_found_by_the_seeds_select_on_a_fresh_mesh() {
    let home = tempfile::tempdir().unwrap();
    let mut up = mesh_up::up(home.path(), HOST);
    let output = up.log_lines().join("\n");
    assert!(
        output.contains("created enrichment rule \"Test CT enrichment\""),
        "{output}"
    );
    assert!(
        output.contains("created collector \"http-input\""),
        "{output}"
    );

    let grpcurl =
        |method: &str, request: &Value| mesh_up::collector_call(home.path(), HOST, method, request);
    let ingested = grpcurl(
        "Ingest",
        &json!({"collector": "http-input", "raw": collector::bytes(SEED_EVENT)}),
    );
    assert_eq!(ingested["accepted"], 1, "{ingested}");

    let found = grpcurl("SearchEvents", &json!({"sql": SEED_SELECT}));
    let event = &found["events"][0];
    assert_eq!(event["id"], ingested["ids"][0], "{found}");
    assert_eq!(event["collector"], "http-input");
    assert_eq!(event["tenant"], "Main");
    assert_eq!(
        event["fields"]["RequestUrl"]["text"],
        "http://fakess123bn.nu"
    );
    assert_eq!(event["raw"], SEED_EVENT);
    assert_eq!(
        event["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE",
        "{found}"
    );
    assert_eq!(event["ti"][0]["category"], "KL_BotnetCnC_URL", "{found}");
    assert_eq!(
        event["ti"][0]["matchedIndicator"], "fakess123bn.nu",
        "{found}"
    );
    assert_eq!(event["ti"][0]["field"], "RequestUrl");

    // The same through xdrctl: a file of events in, the SELECT printed as a table.
    let file = home.path().join("events.ndjson");
    std::fs::write(&file, format!("{SEED_EVENT}\nnot json\n")).unwrap();
    let sent = mesh_up::xdrctl(home.path(), HOST, &["ingest", file.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        said.contains("2 events read, 1 accepted, 1 refused"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&sent.stderr).contains("event 2: not JSON"));
    let table = mesh_up::xdrctl(home.path(), HOST, &["search", SEED_SELECT]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        table.matches("KL_BotnetCnC_URL fakess123bn.nu").count(),
        2,
        "{table}"
    );

    // The quickstart again changes nothing.
    let again = mesh_up::xdrctl(home.path(), HOST, &["quickstart"]);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success() && said.contains("collector \"http-input\" exists"),
        "{said}"
    );
    let listed = mesh_up::xdrctl(home.path(), HOST, &["collector", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout)
            .matches("http-input")
            .count(),
        1
    );

    up.signal(libc::SIGINT);
    assert!(up.wait_exit(std::time::Duration::from_secs(60)).success());
}

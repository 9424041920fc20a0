//! One event, one trace: `xdrctl up` exporting over OTLP to `xdrctl traces receive`, the
//! seed's curl carrying a caller's `traceparent`, and the spans of gateway, collector,
//! enrichment, threat intel and playbook in that trace, each a child of the hop before.
//! Events batched together: the batch's spans are children of the first event's context
//! and link to the others'.

use std::{path::Path, process::Command, time::Duration};

use serde_json::json;
use xdr_tests::{
    Cert, Grpcurl, ServiceProcess, mesh_up, paths,
    traces::{Span, SpanFile, of_trace, one},
};

const HOST: &str = "127.0.0.89";
const SEED_EVENT: &str = r#"{"RequestUrl":"http://fakess123bn.nu"}"#;
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(30);

fn receiver(spans: &Path) -> ServiceProcess {
    let mut command = Command::new(paths::binary("xdrctl"));
    command
        .args(["traces", "receive", "--listen", &format!("{HOST}:4317")])
        .arg("--output")
        .arg(spans);
    let receiver = ServiceProcess::watch("xdrctl traces receive", command);
    receiver.wait_for_line("its listening line", WAIT, |l| {
        l.starts_with("receiving OTLP spans")
    });
    receiver
}

fn traced_mesh(home: &Path) -> ServiceProcess {
    let mut command = mesh_up::up_command(home, HOST);
    command
        .arg("--bin-dir")
        .arg(paths::bin_dir())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{HOST}:4317"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let up = ServiceProcess::watch("xdrctl up", command);
    up.wait_for_line("the mesh being up", Duration::from_secs(90), |l| {
        l.starts_with("xdr mesh is up")
    });
    up
}

/// The seed's curl with the caller's `traceparent`: the status and the answer's
/// `traceparent`.
fn seed_curl(traceparent: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "20"])
        .args([
            "--request",
            "POST",
            "--url",
            &format!("http://{HOST}:8080/input"),
        ])
        .args(["--header", "Content-Type: application/json"])
        .args(["--header", &format!("traceparent: {traceparent}")])
        .args(["--data", SEED_EVENT])
        .output()
        .unwrap();
    let head = String::from_utf8(out.stdout).unwrap();
    let status = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let answered = (head.lines())
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    (status, answered)
}

fn has(spans: &[Span], service: &str, name: &str) -> bool {
    spans.iter().any(|s| s.service == service && s.name == name)
}

#[test]
fn one_curl_is_one_trace_through_every_hop_and_batches_link_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spans.jsonl");
    let mut receiver = receiver(&file);
    let _up = traced_mesh(&dir.path().join("home"));
    let spans = SpanFile::new(&file);

    // One curl: one trace, the caller's.
    let (status, answered) = seed_curl(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"));
    assert_eq!(status, "200");
    assert!(
        answered.starts_with(&format!("00-{CALLER_TRACE}-")),
        "{answered}"
    );
    let everything = spans.wait_until("every hop's span of the curl's trace", WAIT, |spans| {
        let trace = of_trace(spans, CALLER_TRACE);
        [
            ("xdr-gateway", "POST /input"),
            ("xdr-collector", "collector.ingest"),
            ("xdr-collector", "collector.enrich"),
            ("xdr-collector", "collector.store"),
            ("xdr-enrichment", "enrichment.enrich"),
            ("xdr-enrichment", "enrichment.lookup"),
            ("xdr-threatintel", "threatintel.lookup"),
            ("xdr-playbook", "playbook.raise"),
        ]
        .iter()
        .all(|(service, name)| has(&trace, service, name))
    });
    let trace = of_trace(&everything, CALLER_TRACE);
    let gateway = one(&trace, "xdr-gateway", "POST /input");
    assert_eq!(gateway.parent_span_id, CALLER_SPAN, "{gateway:?}");
    assert_eq!(gateway.kind, "SPAN_KIND_SERVER");
    assert_eq!(gateway.attributes["http.response.status_code"], "200");
    assert_eq!(
        &answered[36..52],
        gateway.span_id,
        "the answer names the gateway's span"
    );
    let ingest = one(&trace, "xdr-collector", "collector.ingest");
    assert_eq!(ingest.parent_span_id, gateway.span_id, "{ingest:?}");
    let enrich = one(&trace, "xdr-collector", "collector.enrich");
    assert_eq!(enrich.parent_span_id, ingest.span_id);
    let store = one(&trace, "xdr-collector", "collector.store");
    assert_eq!(store.parent_span_id, ingest.span_id);
    let enriching = one(&trace, "xdr-enrichment", "enrichment.enrich");
    assert_eq!(enriching.parent_span_id, enrich.span_id, "{enriching:?}");
    assert!(
        enriching.links_to(gateway),
        "the enrichment batch links to its event's request: {enriching:?}"
    );
    let lookup = one(&trace, "xdr-enrichment", "enrichment.lookup");
    assert_eq!(lookup.parent_span_id, enriching.span_id);
    assert_eq!(lookup.attributes["rule"], "Test CT enrichment");
    let threatintel = one(&trace, "xdr-threatintel", "threatintel.lookup");
    assert_eq!(
        threatintel.parent_span_id, lookup.span_id,
        "{threatintel:?}"
    );
    let raise = one(&trace, "xdr-playbook", "playbook.raise");
    assert_eq!(
        raise.parent_span_id, gateway.span_id,
        "alerts follow the event's request"
    );

    // Events of several requests in one batch (a grpcurl Ingest carrying each event's own
    // context): the batch's spans are the first's children and link to the others'.
    let contexts: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("{i:032x}"), format!("{:016x}", 0xabc0 + i)))
        .collect();
    let events: Vec<_> = (contexts.iter())
        .map(|(trace, span)| {
            json!({
                "fields": {"RequestUrl": {"text": "http://fakess123bn.nu"}},
                "traceparent": format!("00-{trace}-{span}-01"),
            })
        })
        .collect();
    let certs = dir.path().join("home/certs");
    let ingested = Grpcurl::with_certs(&certs, Cert::Named("operator"))
        .server_name("collector")
        .data(&json!({"collector": "http-input", "events": events}).to_string())
        .ok(
            format!("{HOST}:7201").parse().unwrap(),
            &["xdr.v1.Collector/Ingest"],
        );
    assert!(ingested.contains("\"accepted\": 3"), "{ingested}");
    let (first_trace, first_span) = &contexts[0];
    let everything = spans.wait_until(
        "the batch's spans in the first event's trace",
        WAIT,
        |spans| {
            let trace = of_trace(spans, first_trace);
            has(&trace, "xdr-collector", "collector.ingest")
                && has(&trace, "xdr-enrichment", "enrichment.enrich")
                && has(&trace, "xdr-threatintel", "threatintel.lookup")
        },
    );
    let trace = of_trace(&everything, first_trace);
    let ingest = one(&trace, "xdr-collector", "collector.ingest");
    assert_eq!(&ingest.parent_span_id, first_span);
    let enriching = one(&trace, "xdr-enrichment", "enrichment.enrich");
    for (trace, span) in &contexts {
        let linked = |s: &Span| s.links.iter().any(|l| l == &(trace.clone(), span.clone()));
        assert!(
            linked(enriching),
            "enrichment links every event: {trace} in {enriching:?}"
        );
        if trace != first_trace {
            assert!(linked(ingest), "the ingest batch links {trace}: {ingest:?}");
        }
    }

    // `xdrctl up` polled every service's health: those checks are not exported.
    let health: Vec<&Span> = (everything.iter())
        .filter(|s| s.name.starts_with("grpc.health"))
        .collect();
    assert!(health.is_empty(), "health checks exported: {health:?}");

    // The mesh does not depend on the receiver: without it, input is still answered.
    receiver.signal(libc::SIGTERM);
    receiver.wait_exit(WAIT);
    let (status, _) = seed_curl(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"));
    assert_eq!(status, "200", "input without a trace receiver");
}

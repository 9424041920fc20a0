//! The `Enrich` stream: the seed rule enriching events in order, a rule changed mid-stream, batches past
//! gRPC's default size, and a batch that does not decode refused by name.

use serde_json::json;
use xdr_tests::threatintel::start_with_demo_feed;
use xdr_tests::{
    TestPki, client,
    enrichment::{enrich, ok},
    metrics::{sample, scrape},
};

use super::{event, seed_rule, start_enrichment, stats};

#[test]
fn the_seed_rule_enriches_events_through_threatintel_in_order() {
    let pki = TestPki::new();
    let threatintel = start_with_demo_feed(&pki, &[]);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    ok(&pki, &server, "CreateRule", &seed_rule());
    let answers = enrich(
        &pki,
        &server,
        &[
            json!({"batchId": "1", "events": [
                event("e1", Some("http://fakess123.nu")),
                event("e2", Some("http://example.org/clean")),
                event("e3", None),
            ]}),
            json!({"batchId": "2", "events": [event("e4", Some("HTTPS://www.fakess123.nu:443/"))]}),
        ],
    );
    let ids: Vec<&str> = answers
        .iter()
        .map(|b| b["batchId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2"]);
    let events = answers[0]["events"].as_array().unwrap();
    let e1 = &events[0];
    assert_eq!(e1["id"], "e1");
    assert_eq!(e1["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE");
    let ti = &e1["ti"][0];
    assert_eq!(ti["field"], "RequestUrl");
    assert_eq!(ti["value"], "http://fakess123.nu");
    assert_eq!(ti["category"], "KL_Malicious_URL");
    assert_eq!(ti["matchedIndicator"], "fakess123.nu");
    assert_eq!(ti["supplier"], "Demo");
    assert!(ti["context"].is_object(), "{ti}");
    assert_eq!(events[1]["enrichmentStatus"], "ENRICHMENT_STATUS_COMPLETE");
    assert!(events[1].get("ti").is_none(), "{}", events[1]);
    assert_eq!(
        events[2]["enrichmentStatus"],
        "ENRICHMENT_STATUS_NOT_ENRICHED"
    );
    assert_eq!(
        answers[1]["events"][0]["ti"][0]["category"],
        "KL_Malicious_URL"
    );
    // Debug is on in the seed rule: each answer is logged with its event id.
    server.wait_for_log("the debug answer for e1", |l| {
        l["message"] == "enrichment answer" && l["event"] == "e1"
    });
    let stats = stats(&pki, &server);
    assert_eq!(
        (
            &stats["batches"],
            &stats["events"],
            &stats["complete"],
            &stats["notEnriched"]
        ),
        (&json!(2), &json!(4), &json!(3), &json!(1)),
        "{stats}"
    );
    let rule = &stats["rules"][0];
    assert_eq!(rule["ruleName"], "Test CT enrichment");
    assert_eq!(
        (&rule["events"], &rule["lookups"], &rule["matches"]),
        (&json!(3), &json!(3), &json!(2)),
        "{stats}"
    );
    // The same counts on both services' Prometheus endpoints.
    let scraped = scrape(server.metrics_addr());
    let of = |metric: &str, labels: &[&str]| sample(&scraped, metric, labels);
    let events = "xdr_enrichment_events_total";
    assert_eq!(
        (
            of(events, &[r#"status="ENRICHMENT_STATUS_COMPLETE""#]),
            of(events, &[r#"status="ENRICHMENT_STATUS_NOT_ENRICHED""#]),
            of("xdr_enrichment_lookups_total", &[]),
            of("xdr_enrichment_matches_total", &[]),
            of("xdr_enrichment_batch_duration_seconds_count", &[]),
        ),
        (Some(3.0), Some(1.0), Some(3.0), Some(2.0), Some(2.0)),
        "{scraped}"
    );
    let scraped = scrape(threatintel.metrics_addr());
    let grpc = [r#"interface="grpc""#];
    assert_eq!(
        (
            sample(&scraped, "xdr_threatintel_lookups_total", &grpc),
            sample(&scraped, "xdr_threatintel_matches_total", &grpc),
        ),
        (Some(3.0), Some(2.0)),
        "{scraped}"
    );
    assert!(
        sample(&scraped, "xdr_threatintel_feed_indicators", &[]) > Some(0.0),
        "{scraped}"
    );
}

/// One event whose URL is in the demo feed, as the tonic client sends it.
fn fakess_batch(batch_id: u64) -> xdr_proto::pb::EnrichBatch {
    use xdr_proto::pb::{EnrichBatch, Event, FieldValue, field_value::Kind};
    let url = FieldValue {
        kind: Some(Kind::Text("http://fakess123.nu".into())),
    };
    EnrichBatch {
        batch_id,
        events: vec![Event {
            id: format!("e{batch_id}"),
            fields: [("RequestUrl".to_owned(), url)].into(),
            ..Default::default()
        }],
        rules: None,
        ..Default::default()
    }
}

#[test]
fn a_rule_changed_mid_stream_applies_from_the_next_batch() {
    use xdr_proto::pb::{EnrichmentStatus, enrichment_client::EnrichmentClient};
    let pki = TestPki::new();
    let threatintel = start_with_demo_feed(&pki, &[]);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    // At first the rule's filter takes no event.
    let mut rule = seed_rule();
    rule["inlineFilter"] = json!({"condition": {
        "left": {"field": "RequestUrl"},
        "operator": "OPERATOR_CONTAINS",
        "right": [{"constant": {"text": "nothing-has-this"}}]
    }});
    let created = ok(&pki, &server, "CreateRule", &rule);
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        let (batches, outgoing) = tokio::sync::mpsc::channel(4);
        let mut answers = EnrichmentClient::new(channel)
            .enrich(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        batches.send(fakess_batch(1)).await.unwrap();
        let first = answers.message().await.unwrap().unwrap();
        assert_eq!(first.batch_id, 1);
        assert_eq!(
            first.events[0].enrichment_status(),
            EnrichmentStatus::NotEnriched
        );

        // The same stream, open all along: the rule loses its filter.
        let mut changed = created.clone();
        changed.as_object_mut().unwrap().remove("inlineFilter");
        ok(&pki, &server, "UpdateRule", &changed);
        batches.send(fakess_batch(2)).await.unwrap();
        let second = answers.message().await.unwrap().unwrap();
        assert_eq!(second.batch_id, 2);
        assert_eq!(
            second.events[0].enrichment_status(),
            EnrichmentStatus::Complete
        );
        assert_eq!(second.events[0].ti[0].category, "KL_Malicious_URL");

        drop(batches);
        assert!(
            answers.message().await.unwrap().is_none(),
            "each batch answered once"
        );
    });
}

/// `Enrich` fed batches whose events are bytes the test chose; answers read whole.
async fn raw_enrich(
    channel: tonic::transport::Channel,
    batches: Vec<xdr_proto::wire::WireEnrichBatch>,
) -> tonic::Streaming<xdr_proto::pb::EnrichBatch> {
    use xdr_proto::{codec::XdrCodec, pb::EnrichBatch, wire::WireEnrichBatch};
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    grpc.streaming(
        tonic::Request::new(tokio_stream::iter(batches)),
        tonic::codegen::http::uri::PathAndQuery::from_static("/xdr.v1.Enrichment/Enrich"),
        XdrCodec::<WireEnrichBatch, EnrichBatch>::default(),
    )
    .await
    .unwrap()
    .into_inner()
}

#[test]
fn a_batch_larger_than_grpcs_default_4_mib_is_taken() {
    use prost::Message;
    use xdr_proto::{pb::Event, wire::WireEnrichBatch};
    let pki = TestPki::new();
    let server = start_enrichment(&pki, "127.0.0.1:9");
    let event = Event {
        raw: "x".repeat(1000),
        ..Default::default()
    }
    .encode_to_vec();
    let batch = WireEnrichBatch {
        batch_id: 1,
        events: vec![event.into(); 6000],
        rules: None,
        ..Default::default()
    };
    assert!(
        batch.encoded_len() > 4 << 20,
        "more than tonic takes by default"
    );
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        let answer = raw_enrich(channel, vec![batch])
            .await
            .message()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.events.len(), 6000);
    });
}

#[test]
fn a_batch_with_an_event_that_does_not_decode_is_refused_by_name_and_the_service_stays_up() {
    use prost::Message;
    use xdr_proto::{pb::EnrichmentStatus, wire::WireEnrichBatch};
    let pki = TestPki::new();
    let server = start_enrichment(&pki, "127.0.0.1:9");
    // Field 1 (`id`, a string) holding bytes that are not UTF-8.
    let not_utf8 = vec![0x0a, 0x02, 0xff, 0xfe];
    let valid = |batch_id| {
        let batch = fakess_batch(batch_id);
        WireEnrichBatch {
            batch_id,
            events: vec![batch.events[0].encode_to_vec().into()],
            rules: None,
            ..Default::default()
        }
    };
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        let open = |batches| raw_enrich(channel.clone(), batches);
        let mut broken = valid(2);
        broken.events.push(not_utf8.into());
        let mut answers = open(vec![valid(1), broken, valid(3)]).await;
        let first = answers.message().await.unwrap().unwrap();
        assert_eq!(first.batch_id, 1);
        assert_eq!(
            first.events[0].enrichment_status(),
            EnrichmentStatus::NotEnriched
        );
        let refused = answers.message().await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("batch 2: events[1]")
                && refused.message().contains("Event.id"),
            "{}",
            refused.message()
        );

        // The service is still up: a new stream is answered.
        let mut again = open(vec![valid(4)]).await;
        assert_eq!(again.message().await.unwrap().unwrap().batch_id, 4);
    });
    let stats = stats(&pki, &server);
    assert_eq!(
        (&stats["batches"], &stats["refusedBatches"]),
        (&json!(2), &json!(1)),
        "batches 1 and 4 answered, 2 refused, 3 never read: {stats}"
    );
}

#[test]
fn a_batch_naming_more_rules_than_a_collector_links_is_refused_by_name() {
    let pki = TestPki::new();
    let threatintel = start_with_demo_feed(&pki, &[]);
    let server = start_enrichment(&pki, &threatintel.listening_addr().to_string());
    let many: Vec<String> = (0..300).map(|i| format!("rule-{i}")).collect();
    let batch = json!({"batchId": "1", "events": [event("e1", None)], "rules": {"ruleIds": many}});
    let refused = xdr_tests::Grpcurl::new(&pki, xdr_tests::Cert::Named("collector"))
        .stream(&batch.to_string())
        .call(server.listening_addr(), &["xdr.v1.Enrichment/Enrich"]);
    assert!(
        refused.stderr.contains("InvalidArgument")
            && refused
                .stderr
                .contains("rules.rule_ids: 300 in batch 1; at most 256"),
        "{}",
        refused.stderr
    );
}

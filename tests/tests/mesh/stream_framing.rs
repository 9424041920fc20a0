//! Frames a well-behaved client never sends — a compressed flag that is not 0 or 1, the
//! compressed flag with no compression, a length prefix that promises more than comes, one
//! over the size limit — end the call with an error status, never OK, and every batch of a
//! stream received before the bad frame is answered first. A message over the limit is
//! RESOURCE_EXHAUSTED, as the gRPC status code spec says.

use prost::Message;
use tonic::Code;
use xdr_proto::{
    pb::{EnrichBatch, Event, LookupBatch, LookupBatchReply, LookupObject},
    wire::WireEnrichBatch,
};
use xdr_tests::{
    ServiceProcess, TestPki, client,
    raw_grpc::{self, frame, frame_with},
};

/// The bad frames, each named for the failure message, and the code each must end with.
fn bad_frames(limit: u32) -> Vec<(&'static str, Vec<bytes::Bytes>, Code)> {
    vec![
        (
            "a compressed flag of 7",
            vec![frame_with(7, 3, b"abc")],
            Code::Internal,
        ),
        (
            "the compressed flag without an encoding",
            vec![frame_with(1, 3, b"abc")],
            Code::Internal,
        ),
        (
            "a length prefix promising more than comes",
            vec![frame_with(0, 1000, b"only ten b")],
            Code::Internal,
        ),
        (
            "a length prefix over the size limit",
            vec![frame_with(0, limit + 1, b"")],
            Code::ResourceExhausted,
        ),
    ]
}

fn enrich_batch(batch_id: u64) -> bytes::Bytes {
    let event = Event {
        id: format!("e{batch_id}"),
        ..Default::default()
    };
    frame(
        &WireEnrichBatch {
            batch_id,
            events: vec![event.encode_to_vec().into()],
            rules: None,
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

#[test]
fn a_malformed_frame_ends_enrich_with_an_error_after_the_batches_before_it() {
    let pki = TestPki::new();
    let server =
        ServiceProcess::start_with("enrichment", &pki, &["--threatintel-addr", "127.0.0.1:9"]);
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "collector", &server, "enrichment").await;
        for (what, bad, code) in bad_frames(64 << 20) {
            let mut chunks = vec![enrich_batch(1), enrich_batch(2)];
            chunks.extend(bad);
            chunks.push(enrich_batch(3));
            let reply = raw_grpc::call(channel.clone(), "/xdr.v1.Enrichment/Enrich", chunks).await;
            let answered: Vec<u64> = reply
                .messages
                .iter()
                .map(|m| EnrichBatch::decode(m.clone()).expect("an answer").batch_id)
                .collect();
            assert_eq!(answered, [1, 2], "{what}: {:?}", reply.status);
            assert_eq!(reply.status.code(), code, "{what}: {:?}", reply.status);
        }
    });
}

fn lookup_batch(batch_id: u64) -> bytes::Bytes {
    frame(
        &LookupBatch {
            batch_id,
            objects: vec![LookupObject {
                r#type: 0,
                value: "192.0.2.1".to_owned(),
            }],
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

#[test]
fn a_malformed_frame_ends_lookup_stream_with_an_error_after_the_batches_before_it() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    client::runtime().block_on(async {
        let channel = client::channel(&pki, "enrichment", &server, "threatintel").await;
        for (what, bad, code) in bad_frames(4 << 20) {
            let mut chunks: Vec<_> = (1..=5).map(lookup_batch).collect();
            chunks.extend(bad);
            chunks.push(lookup_batch(6));
            let reply =
                raw_grpc::call(channel.clone(), "/xdr.v1.ThreatIntel/LookupStream", chunks).await;
            // Batches are answered as each is ready: in any order, but all of them.
            let mut answered: Vec<u64> = reply
                .messages
                .iter()
                .map(|m| {
                    LookupBatchReply::decode(m.clone())
                        .expect("a reply")
                        .batch_id
                })
                .collect();
            answered.sort();
            assert_eq!(answered, [1, 2, 3, 4, 5], "{what}: {:?}", reply.status);
            assert_eq!(reply.status.code(), code, "{what}: {:?}", reply.status);
        }
    });
}

#[test]
fn a_unary_request_over_the_size_limit_is_resource_exhausted() {
    let pki = TestPki::new();
    let server = ServiceProcess::start("threatintel", &pki);
    let status = client::runtime().block_on(async {
        let channel = client::channel(&pki, "operator", &server, "threatintel").await;
        let oversized = frame_with(0, (4 << 20) + 1, b"");
        raw_grpc::call(channel, "/xdr.v1.ThreatIntel/Lookup", vec![oversized])
            .await
            .status
    });
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );
}

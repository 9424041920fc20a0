//! Wire-level views of the messages the enrichment path moves in bulk, for code that forwards
//! most of a message untouched. Each view reads the same bytes as its generated message but
//! keeps some sub-messages as the bytes they arrived in (slices of the received buffer, no
//! copy), so they are neither decoded into owned strings and maps nor encoded again.
//!
//! Enrichment relies on how protobuf concatenates: bytes appended to an encoded message add to
//! its repeated fields and replace its singular ones. An event is answered as it came, followed
//! by its new `ti` records and its `enrichment_status` ([`enriched_event`]).

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// `xdr.v1.EnrichBatch` with each event as its encoded bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireEnrichBatch {
    #[prost(uint64, tag = "1")]
    pub batch_id: u64,
    /// Encoded `xdr.v1.Event`s.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub events: Vec<Bytes>,
    /// The rules applied to the batch; `None`: every rule.
    #[prost(message, optional, tag = "3")]
    pub rules: Option<crate::pb::RuleSelection>,
    /// W3C `traceparent` of the sender's span for this batch.
    #[prost(string, tag = "4")]
    pub traceparent: String,
}

/// `xdr.v1.LookupBatchReply` with each match as its encoded bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireLookupReply {
    #[prost(uint64, tag = "1")]
    pub batch_id: u64,
    #[prost(message, repeated, tag = "2")]
    pub results: Vec<WireLookupResult>,
}

/// `xdr.v1.LookupResult` with each match as its encoded bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireLookupResult {
    /// Encoded `xdr.v1.TiMatch`es.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub matches: Vec<Bytes>,
    #[prost(string, tag = "2")]
    pub error: String,
}

/// A `TiMatch` in borrowed parts (its `field` left empty: enrichment names it), for a server
/// that encodes matches straight from its index instead of building owned messages first.
pub struct TiMatchParts<'a, C> {
    pub value: &'a str,
    pub indicator_type: i32,
    pub category: &'a str,
    pub matched_indicator: &'a str,
    pub supplier: &'a str,
    /// The context's entries; a key given twice reads back as its last value.
    pub context: C,
}

/// Appends the encoded `TiMatch` of `parts` to `out`, as prost encodes one: fields in number
/// order, empty ones left out.
pub fn encode_ti_match<'a>(
    parts: TiMatchParts<'a, impl Iterator<Item = (&'a str, &'a str)>>,
    out: &mut BytesMut,
) {
    put_text(TI_MATCH_VALUE, parts.value, out);
    if parts.indicator_type != 0 {
        encode_key(TI_MATCH_INDICATOR_TYPE, WireType::Varint, out);
        encode_varint(i64::from(parts.indicator_type) as u64, out);
    }
    put_text(TI_MATCH_CATEGORY, parts.category, out);
    put_text(TI_MATCH_MATCHED_INDICATOR, parts.matched_indicator, out);
    put_text(TI_MATCH_SUPPLIER, parts.supplier, out);
    for (key, value) in parts.context {
        let entry_len = text_len(MAP_KEY, key) + text_len(MAP_VALUE, value);
        encode_key(TI_MATCH_CONTEXT, WireType::LengthDelimited, out);
        encode_varint(entry_len as u64, out);
        put_text(MAP_KEY, key, out);
        put_text(MAP_VALUE, value, out);
    }
}

/// The encoded length of what [`put_text`] writes.
fn text_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(text.len() as u64) + text.len()
    }
}

/// A string field, left out when empty (proto3's default).
fn put_text(tag: u32, text: &str, out: &mut BytesMut) {
    if !text.is_empty() {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(text.len() as u64, out);
        out.put_slice(text.as_bytes());
    }
}

/// `TiMatch`'s fields, `Event.ti` and `Event.enrichment_status`, as numbered in common.proto.
const TI_MATCH_FIELD: u32 = 1;
const TI_MATCH_VALUE: u32 = 2;
const TI_MATCH_INDICATOR_TYPE: u32 = 3;
const TI_MATCH_CATEGORY: u32 = 4;
const TI_MATCH_MATCHED_INDICATOR: u32 = 5;
const TI_MATCH_SUPPLIER: u32 = 6;
const TI_MATCH_CONTEXT: u32 = 7;
/// A map entry's key and value, as protobuf numbers them.
const MAP_KEY: u32 = 1;
const MAP_VALUE: u32 = 2;
const EVENT_TI: u32 = 7;
const EVENT_ENRICHMENT_STATUS: u32 = 8;

/// An encoded `TiMatch` with its `field` set to `field` (whatever it held before).
pub fn ti_match_for_field(ti_match: &[u8], field: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(
        ti_match.len()
            + key_len(TI_MATCH_FIELD)
            + encoded_len_varint(field.len() as u64)
            + field.len(),
    );
    out.put_slice(ti_match);
    encode_key(TI_MATCH_FIELD, WireType::LengthDelimited, &mut out);
    encode_varint(field.len() as u64, &mut out);
    out.put_slice(field.as_bytes());
    out.freeze()
}

/// The encoded event `event` with the encoded `TiMatch`es `ti` added to its `ti` and its
/// `enrichment_status` set to `status`.
pub fn enriched_event(event: &[u8], ti: &[Bytes], status: i32) -> Bytes {
    let ti_len: usize = ti
        .iter()
        .map(|m| key_len(EVENT_TI) + encoded_len_varint(m.len() as u64) + m.len())
        .sum();
    let mut out =
        BytesMut::with_capacity(event.len() + ti_len + key_len(EVENT_ENRICHMENT_STATUS) + 10);
    out.put_slice(event);
    for m in ti {
        encode_key(EVENT_TI, WireType::LengthDelimited, &mut out);
        encode_varint(m.len() as u64, &mut out);
        out.put_slice(m);
    }
    encode_key(EVENT_ENRICHMENT_STATUS, WireType::Varint, &mut out);
    // A negative enum value is sign-extended to ten bytes, as prost encodes an `int32`.
    encode_varint(i64::from(status) as u64, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::pb::{
        EnrichBatch, EnrichmentStatus, Event, FieldValue, LookupBatchReply, LookupResult, TiMatch,
        field_value,
    };

    fn event(ti: Vec<TiMatch>) -> Event {
        Event {
            id: "e1".to_owned(),
            tenant: "Shared".to_owned(),
            fields: [(
                "SourceAddress".to_owned(),
                FieldValue {
                    kind: Some(field_value::Kind::Text("10.0.0.1".to_owned())),
                },
            )]
            .into(),
            ti,
            enrichment_status: EnrichmentStatus::NotEnriched as i32,
            ..Default::default()
        }
    }

    fn ti_match(category: &str) -> TiMatch {
        TiMatch {
            value: "10.0.0.1".to_owned(),
            category: category.to_owned(),
            context: [("ttl".to_owned(), "60".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn batches_read_and_write_the_same_bytes_as_enrich_batch() {
        let batch = EnrichBatch {
            batch_id: 7,
            events: vec![event(Vec::new()), event(vec![ti_match("old")])],
            rules: Some(crate::pb::RuleSelection {
                rule_ids: vec!["r1".into()],
            }),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        };
        let wire = WireEnrichBatch::decode(batch.encode_to_vec().as_slice()).unwrap();
        assert_eq!(wire.batch_id, 7);
        assert_eq!(wire.rules, batch.rules);
        assert_eq!(wire.traceparent, batch.traceparent);
        assert_eq!(wire.events[1], batch.events[1].encode_to_vec());
        assert_eq!(
            EnrichBatch::decode(wire.encode_to_vec().as_slice()).unwrap(),
            batch
        );
    }

    #[test]
    fn lookup_replies_keep_each_match_as_its_bytes() {
        let reply = LookupBatchReply {
            batch_id: 3,
            results: vec![
                LookupResult {
                    matches: vec![ti_match("a"), ti_match("b")],
                    error: String::new(),
                },
                LookupResult {
                    matches: Vec::new(),
                    error: "bad URL".to_owned(),
                },
            ],
        };
        let wire = WireLookupReply::decode(reply.encode_to_vec().as_slice()).unwrap();
        assert_eq!(wire.batch_id, 3);
        assert_eq!(wire.results[0].matches[1], ti_match("b").encode_to_vec());
        assert_eq!(wire.results[1].error, "bad URL");
        assert_eq!(
            LookupBatchReply::decode(wire.encode_to_vec().as_slice()).unwrap(),
            reply
        );
    }

    #[test]
    fn an_enriched_event_keeps_everything_and_adds_its_matches_and_status() {
        let old = ti_match("old");
        let original = event(vec![old.clone()]);
        let added: Vec<Bytes> = ["a", "b"]
            .iter()
            .map(|c| ti_match_for_field(&ti_match(c).encode_to_vec(), "SourceAddress"))
            .collect();
        let bytes = enriched_event(
            &original.encode_to_vec(),
            &added,
            EnrichmentStatus::TimedOut as i32,
        );
        let enriched = Event::decode(bytes).unwrap();
        let mut expected = original;
        expected.ti.extend(["a", "b"].map(|c| TiMatch {
            field: "SourceAddress".to_owned(),
            ..ti_match(c)
        }));
        expected.enrichment_status = EnrichmentStatus::TimedOut as i32;
        assert_eq!(enriched, expected);
    }

    #[test]
    fn a_match_from_parts_is_the_bytes_prost_would_write() {
        let full = TiMatch {
            value: "http://evil.example/x".to_owned(),
            indicator_type: crate::pb::IndicatorType::Url as i32,
            category: "KL_Malicious_URL".to_owned(),
            matched_indicator: "evil.example".to_owned(),
            supplier: "Kaspersky".to_owned(),
            // An empty value and an empty key are left out of their entries, as prost does.
            context: [("", "x"), ("id", "7"), ("ttl", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        fn parts(m: &TiMatch) -> TiMatchParts<'_, impl Iterator<Item = (&str, &str)>> {
            TiMatchParts {
                value: &m.value,
                indicator_type: m.indicator_type,
                category: &m.category,
                matched_indicator: &m.matched_indicator,
                supplier: &m.supplier,
                context: m.context.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            }
        }
        encode_ti_match(parts(&full), &mut out);
        assert_eq!(out, full.encode_to_vec());
        // A match with every field empty is no bytes at all.
        let mut out = BytesMut::new();
        encode_ti_match(parts(&TiMatch::default()), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_field_already_set_on_a_match_is_replaced() {
        let named = TiMatch {
            field: "Old".to_owned(),
            ..ti_match("a")
        };
        let bytes = ti_match_for_field(&named.encode_to_vec(), "New");
        assert_eq!(TiMatch::decode(bytes).unwrap().field, "New");
    }
}

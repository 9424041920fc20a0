//! What the fuzz targets in `fuzz/` run, and the replay of their corpora as tests (seconds):
//!
//! - [`requests`]: bytes decoded as one of this service's gRPC requests, then the checks,
//!   compiles and evaluations its handlers run; every error message must stay short.
//! - [`cybertrace_request`]: any value of any kind, made a CyberTrace request line: it must be
//!   one line and one lookup, or refused; any reply line must read back without a panic.

use std::collections::HashMap;

use prost::Message;
use xdr_cybertrace::MAX_LINE;
use xdr_filter::{self as filter, Definitions, resources::Resources};
use xdr_mesh::fuzz_corpus::assert_short_error;
use xdr_proto::{
    pb::{self, ResourceKind},
    wire::WireEnrichBatch,
};

use crate::{
    resources, rule,
    source::cybertrace::{detection_of, request_line},
};

/// Saved filters and resources a fuzzed filter may name: one of each shape.
struct Known {
    filters: HashMap<String, pb::Filter>,
    resources: Vec<pb::Resource>,
}

fn known() -> Known {
    let condition = |field: &str, operator: pb::Operator, value: &str| pb::FilterNode {
        node: Some(pb::filter_node::Node::Condition(pb::Condition {
            left: Some(pb::Operand {
                kind: Some(pb::operand::Kind::Field(field.into())),
            }),
            operator: operator as i32,
            right: vec![pb::Operand {
                kind: Some(pb::operand::Kind::Constant(pb::FieldValue {
                    kind: Some(pb::field_value::Kind::Text(value.into())),
                })),
            }],
            ..Default::default()
        })),
    };
    let reference = |id: &str| pb::FilterNode {
        node: Some(pb::filter_node::Node::FilterId(id.into())),
    };
    let saved = |id: &str, root: pb::FilterNode| {
        let filter = pb::Filter {
            id: id.into(),
            name: id.into(),
            tenant: rule::SHARED_TENANT.into(),
            root: Some(root),
            ..Default::default()
        };
        (id.to_owned(), filter)
    };
    let both = pb::FilterNode {
        node: Some(pb::filter_node::Node::Group(pb::FilterGroup {
            op: pb::filter_group::Op::Or as i32,
            children: vec![reference("a"), reference("a")],
        })),
    };
    let filters = HashMap::from([
        saved(
            "a",
            condition("RequestUrl", pb::Operator::Contains, "fakess"),
        ),
        saved("b", both),
        saved(
            "c",
            condition("SourceAddress", pb::Operator::InSubnet, "10.0.0.0/8"),
        ),
    ]);
    let resources = vec![pb::Resource {
        id: "r".into(),
        name: "r".into(),
        tenant: rule::SHARED_TENANT.into(),
        kind: ResourceKind::ActiveList as i32,
        entries: vec![pb::ResourceEntry {
            key: "192.0.2.1".into(),
            ..Default::default()
        }],
        ..Default::default()
    }];
    Known { filters, resources }
}

impl Definitions for Known {
    fn saved(&self, id: &str) -> Option<pb::Filter> {
        self.filters.get(id).cloned()
    }

    fn resource(&self, id: &str) -> Option<(ResourceKind, String)> {
        (self.resources.iter())
            .find(|r| r.id == id)
            .map(|r| (r.kind(), r.tenant.clone()))
    }
}

/// Compiles `node` as a rule of `tenant` would, and runs it on `events` if it compiles.
fn compile_and_run(known: &Known, node: &pb::FilterNode, tenant: &str, events: &[pb::Event]) {
    match filter::compile(node, tenant, known) {
        Ok(compiled) => {
            let resources = Resources::of(&known.resources);
            for event in events {
                let _ = compiled.matches(event, &resources);
            }
        }
        Err(invalid) => assert_short_error("filter", &invalid.to_string()),
    }
}

fn sample_events() -> Vec<pb::Event> {
    let text = |value: &str| pb::FieldValue {
        kind: Some(pb::field_value::Kind::Text(value.into())),
    };
    vec![pb::Event {
        id: "e".into(),
        fields: [
            ("RequestUrl".to_owned(), text("http://fakess123.nu")),
            ("SourceAddress".to_owned(), text("10.1.2.3")),
        ]
        .into(),
        ..Default::default()
    }]
}

/// The first byte picks the request; the rest is its encoded message.
pub fn requests(data: &[u8]) {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let known = known();
    match selector % 5 {
        0 => {
            let Ok(rule) = pb::EnrichmentRule::decode(message) else {
                return;
            };
            match rule::checked(rule, 2) {
                Ok(rule) => {
                    if let Some(pb::enrichment_rule::Filter::InlineFilter(node)) = &rule.filter {
                        compile_and_run(&known, node, &rule.tenant, &sample_events());
                    }
                }
                Err(invalid) => assert_short_error("rule", &invalid.to_string()),
            }
        }
        1 => {
            let Ok(filter) = pb::Filter::decode(message) else {
                return;
            };
            if let Some(root) = &filter.root {
                compile_and_run(&known, root, &filter.tenant, &sample_events());
            }
        }
        2 => {
            let Ok(resource) = pb::Resource::decode(message) else {
                return;
            };
            if let Err(invalid) = resources::checked(resource) {
                assert_short_error("resource", &invalid.to_string());
            }
        }
        3 => {
            let Ok(change) = pb::ChangeResourceEntriesRequest::decode(message) else {
                return;
            };
            let resource = known.resources[0].clone();
            match resources::with_entries_changed(resource, change.put, &change.remove) {
                Ok((changed, _)) => {
                    if let Err(invalid) = resources::checked(changed) {
                        assert_short_error("entries", &invalid.to_string());
                    }
                }
                Err(invalid) => assert_short_error("entries", &invalid.to_string()),
            }
        }
        _ => {
            // Enrich: the batch as it is read on the wire, then each event as it is decoded.
            let Ok(batch) = WireEnrichBatch::decode(message) else {
                return;
            };
            let events: Vec<pb::Event> = (batch.events.iter())
                .filter_map(|bytes| pb::Event::decode(bytes.clone()).ok())
                .collect();
            let any = pb::FilterNode {
                node: Some(pb::filter_node::Node::FilterId("b".into())),
            };
            compile_and_run(&known, &any, rule::SHARED_TENANT, &events);
        }
    }
}

/// The first byte picks the kind, the rest is the value (and, after it, a reply line).
pub fn cybertrace_request(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (value, reply) = text.split_once('\u{0}').unwrap_or((&text, ""));
    let object = pb::LookupObject {
        r#type: i32::from(kind % 6),
        value: value.to_owned(),
    };
    if let Ok(line) = request_line(&object) {
        let body = line
            .strip_suffix(" \n")
            .expect("a request line ends in a space and LF");
        assert!(body.len() <= MAX_LINE, "{} bytes", body.len());
        assert_eq!(
            body.split_whitespace().count(),
            1,
            "one value is one lookup: {body:?}"
        );
        assert!(!body.contains(char::is_control), "{body:?}");
    }
    let _ = detection_of(reply, &object);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_requests_corpus_replays() {
        xdr_mesh::fuzz_corpus::replay(
            env!("CARGO_MANIFEST_DIR"),
            "enrichment_requests",
            super::requests,
        );
    }

    #[test]
    fn the_cybertrace_request_corpus_replays() {
        xdr_mesh::fuzz_corpus::replay(
            env!("CARGO_MANIFEST_DIR"),
            "cybertrace_request",
            super::cybertrace_request,
        );
    }
}

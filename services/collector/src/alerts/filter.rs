//! The filter of a collector's "alerts" destination: inline conditions compiled once per
//! distinct filter and kept, `TIDetect` (any threat-intel match) when none is given. Saved
//! filters and resources live in the enrichment service, so a destination cannot name them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use xdr_filter::{Compiled, Definitions, resources::Resources};
use xdr_mesh::error::Invalid;
use xdr_proto::pb::{self, Destination, DestinationKind, Event, Operator};

/// Compiled filters kept at most (one per distinct filter of the collectors).
const MAX_CACHED: usize = 1024;

/// No saved filters or resources: naming one is refused when the collector is saved.
struct Inline;

impl Definitions for Inline {
    fn saved(&self, _id: &str) -> Option<pb::Filter> {
        None
    }

    fn resource(&self, _id: &str) -> Option<(pb::ResourceKind, String)> {
        None
    }
}

/// Any threat-intel match.
fn ti_detect() -> pb::FilterNode {
    pb::FilterNode {
        node: Some(pb::filter_node::Node::Condition(pb::Condition {
            operator: Operator::TiDetect as i32,
            ..pb::Condition::default()
        })),
    }
}

/// The compiled filter of an alerts `destination` of a collector of `tenant`.
pub fn compile(destination: &Destination, tenant: &str) -> Result<Compiled, Invalid> {
    let node = destination.filter.clone().unwrap_or_else(ti_detect);
    xdr_filter::compile(&node, tenant, &Inline)
}

/// A collector's tenant and its alerts destination, encoded.
type FilterKey = (String, Vec<u8>);

/// The alert filters of the collectors, each compiled once.
#[derive(Default)]
pub struct AlertFilters {
    /// By tenant and the destination's encoding: a changed filter is compiled anew.
    compiled: Mutex<HashMap<FilterKey, Option<Arc<Compiled>>>>,
}

impl AlertFilters {
    /// The filter of `collector`'s alerts destination, if it has one.
    pub fn of(&self, collector: &pb::CollectorConfig) -> Option<Arc<Compiled>> {
        let destination = collector
            .destinations
            .iter()
            .find(|d| d.kind == DestinationKind::Alerts as i32)?;
        let key = (
            collector.tenant.clone(),
            prost::Message::encode_to_vec(destination),
        );
        let mut compiled = self.compiled.lock().expect("filter cache lock");
        if let Some(filter) = compiled.get(&key) {
            return filter.clone();
        }
        if compiled.len() >= MAX_CACHED {
            compiled.clear();
        }
        // Checked when the collector was saved; a filter that no longer compiles sends nothing.
        let filter = compile(destination, &collector.tenant).ok().map(Arc::new);
        compiled.insert(key, filter.clone());
        filter
    }
}

/// The events of a batch that pass `filter`.
pub fn passing(filter: &Compiled, events: &[Event]) -> Vec<Event> {
    let resources = Resources::default();
    events
        .iter()
        .filter(|event| filter.matches(event, &resources))
        .cloned()
        .collect()
}

//! What the resource operators read: each resource's entries by key, as one snapshot taken
//! with the rules, so a batch sees rules and resources of the same moment.

use std::collections::{BTreeMap, HashMap, HashSet};

use xdr_proto::pb::Resource;

/// One resource's entries: key → values.
pub struct Entries {
    pub by_key: HashMap<String, BTreeMap<String, String>>,
    /// The keys lower-cased, for conditions that do not match case (no scan per event).
    pub lowercase_keys: HashSet<String>,
}

/// Every resource's entries, by resource id.
#[derive(Default)]
pub struct Resources {
    by_id: HashMap<String, Entries>,
}

impl Resources {
    pub fn of<'r>(resources: impl IntoIterator<Item = &'r Resource>) -> Self {
        let by_id = resources
            .into_iter()
            .map(|resource| {
                let entries = Entries {
                    by_key: resource
                        .entries
                        .iter()
                        .map(|e| (e.key.clone(), e.values.clone()))
                        .collect(),
                    lowercase_keys: resource
                        .entries
                        .iter()
                        .map(|e| e.key.to_lowercase())
                        .collect(),
                };
                (resource.id.clone(), entries)
            })
            .collect();
        Resources { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&Entries> {
        self.by_id.get(id)
    }
}

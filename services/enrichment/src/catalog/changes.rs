//! Changing the catalog: one change at a time, each checked, saved to the store, then
//! published whole — the records readers see, the compiled rules streams apply, and a signal
//! for whoever keeps state per rule (the enricher's sources).

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use xdr_filter::Compiler;
use xdr_mesh::quote::quoted;
use xdr_proto::pb::{EnrichmentRule, Filter, Resource, ResourceEntry};

use super::{
    active::{ActiveRules, compile_rule, reference},
    error::CatalogError,
    records::{Defs, Records, check_quota, owned},
    store::{FILTERS, RESOURCES, RULES, RecordStore},
};
use crate::{
    resources::{self as resource, EntriesChanged},
    rule::{self, Invalid},
};

/// Resource entries one tenant may hold across its resources: every batch reads a snapshot.
const MAX_ENTRIES_PER_TENANT: usize = 2_000_000;

/// The catalog as its one writer holds it.
pub struct Catalog {
    store: RecordStore,
    records: Records,
    vcpus: u32,
    published: Arc<ArcSwap<Records>>,
    active: Arc<ArcSwap<ActiveRules>>,
    changed: Arc<watch::Sender<u64>>,
}

/// The catalog, changed one request at a time (off the async runtime: a change writes the
/// store) and read from its last published snapshot, which never waits for a change.
pub struct SharedCatalog {
    catalog: Mutex<Catalog>,
    published: Arc<ArcSwap<Records>>,
    active: Arc<ArcSwap<ActiveRules>>,
    changed: Arc<watch::Sender<u64>>,
}

impl SharedCatalog {
    /// Opens (or creates) the store at `path` and compiles what it holds.
    pub fn open(path: &Path, vcpus: u32) -> Result<Self, CatalogError> {
        let store = RecordStore::open(path)?;
        let records = Records {
            rules: Arc::new(store.load(RULES)?),
            filters: Arc::new(store.load(FILTERS)?),
            resources: Arc::new(store.load(RESOURCES)?),
        };
        let published = Arc::new(ArcSwap::from_pointee(Records::default()));
        let active = Arc::new(ArcSwap::from_pointee(ActiveRules::default()));
        let changed = Arc::new(watch::Sender::new(0));
        let catalog = Catalog {
            store,
            records,
            vcpus,
            published: published.clone(),
            active: active.clone(),
            changed: changed.clone(),
        };
        catalog.publish();
        Ok(SharedCatalog {
            catalog: Mutex::new(catalog),
            published,
            active,
            changed,
        })
    }

    /// The rules streams apply now; hold the `Arc` for one batch.
    pub fn active(&self) -> Arc<ActiveRules> {
        self.active.load_full()
    }

    /// The records as of the last change, for reads.
    pub fn records(&self) -> Arc<Records> {
        self.published.load_full()
    }

    /// Changes as they are published: the value is a change counter.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The writer; hold it only off the async runtime.
    pub fn lock(&self) -> MutexGuard<'_, Catalog> {
        self.catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A random UUID (version 4, RFC 9562 variant).
fn new_id() -> String {
    let bits = fastrand::u128(..);
    let bits = (bits & !(0xf << 76)) | (0x4 << 76);
    let bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Catalog {
    /// Makes the records the ones readers and streams see, and says so.
    fn publish(&self) {
        self.active.store(Arc::new(ActiveRules::of(&self.records)));
        self.published.store(Arc::new(self.records.clone()));
        self.changed.send_modify(|count| *count += 1);
    }

    /// Creates (`id` empty) or replaces the rule; what was stored.
    pub fn save_rule(
        &mut self,
        rule: EnrichmentRule,
        create: bool,
    ) -> Result<EnrichmentRule, CatalogError> {
        let mut rule = rule::checked(rule, self.vcpus)?;
        let rules = &self.records.rules;
        if create {
            check_quota(rules, &rule.tenant)?;
            rule.id = new_id();
        } else if !rules.contains_key(&rule.id) {
            return Err(CatalogError::NotFound {
                kind: "rule",
                id: rule.id,
            });
        }
        if rules
            .values()
            .any(|r| r.id != rule.id && r.tenant == rule.tenant && r.name == rule.name)
        {
            return Err(CatalogError::NameTaken {
                kind: "rule",
                tenant: rule.tenant,
                name: rule.name,
            });
        }
        let defs = self.defs();
        compile_rule(&mut Compiler::new(&defs), &rule)?;
        self.store.write(RULES, &rule.id, Some(&rule))?;
        Arc::make_mut(&mut self.records.rules).insert(rule.id.clone(), Arc::new(rule.clone()));
        self.publish();
        Ok(rule)
    }

    pub fn delete_rule(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.records.rule(id, tenant).is_err() {
            return Ok(false);
        }
        self.store.write::<EnrichmentRule>(RULES, id, None)?;
        Arc::make_mut(&mut self.records.rules).remove(id);
        self.publish();
        Ok(true)
    }

    /// Creates (`id` empty) or replaces the saved filter, after checking that it, and every
    /// rule and filter using it, still compiles.
    pub fn save_filter(&mut self, filter: Filter, create: bool) -> Result<Filter, CatalogError> {
        let mut filter = filter;
        rule::check_name("name", &filter.name)?;
        filter.name = filter.name.trim().to_owned();
        filter.tenant = rule::tenant_or_shared(&filter.tenant)?;
        rule::check_description(&filter.description)?;
        let filters = &self.records.filters;
        if create {
            check_quota(filters, &filter.tenant)?;
            filter.id = new_id();
        } else if !filters.contains_key(&filter.id) {
            return Err(CatalogError::NotFound {
                kind: "filter",
                id: filter.id,
            });
        }
        if filters
            .values()
            .any(|f| f.id != filter.id && f.tenant == filter.tenant && f.name == filter.name)
        {
            return Err(CatalogError::NameTaken {
                kind: "filter",
                tenant: filter.tenant,
                name: filter.name,
            });
        }
        if filter.root.is_none() {
            return Err(rule::invalid("root", "empty").into());
        }
        // Checked as if saved: a reference back to itself shows up as a cycle.
        let mut after = HashMap::clone(filters);
        after.insert(filter.id.clone(), Arc::new(filter.clone()));
        let defs = Defs {
            filters: &after,
            resources: &self.records.resources,
        };
        xdr_filter::compile(&reference(&filter.id), &filter.tenant, &defs).map_err(|e| {
            Invalid {
                field: e
                    .field
                    .replacen(&format!("filter.filter_id({})", filter.id), "root", 1),
                ..e
            }
        })?;
        if let Some(user) = self.first_broken(&after, &self.records.resources) {
            return Err(rule::invalid(
                "root",
                format!("{user}, which uses this filter, would break"),
            )
            .into());
        }
        self.store.write(FILTERS, &filter.id, Some(&filter))?;
        self.records.filters = Arc::new(after);
        self.publish();
        Ok(filter)
    }

    pub fn delete_filter(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.records.filter(id, tenant).is_err() {
            return Ok(false);
        }
        let mut after = HashMap::clone(&self.records.filters);
        after.remove(id);
        if let Some(user) = self.first_broken(&after, &self.records.resources) {
            return Err(CatalogError::InUse {
                id: id.to_owned(),
                user,
            });
        }
        self.store.write::<Filter>(FILTERS, id, None)?;
        self.records.filters = Arc::new(after);
        self.publish();
        Ok(true)
    }

    fn defs(&self) -> Defs<'_> {
        Defs {
            filters: &self.records.filters,
            resources: &self.records.resources,
        }
    }

    /// The first rule, else saved filter, that would no longer compile with `filters` and
    /// `resources` in place of the catalog's, named for an error (rules first: they are what
    /// an operator would miss).
    fn first_broken(
        &self,
        filters: &HashMap<String, Arc<Filter>>,
        resources: &HashMap<String, Arc<Resource>>,
    ) -> Option<String> {
        let defs = Defs { filters, resources };
        // One compiler for the whole check: each saved filter is compiled once, not once per
        // rule or filter that reaches it.
        let mut compiler = Compiler::new(&defs);
        for rule in self.records.rules.values() {
            if compile_rule(&mut compiler, rule).is_err() {
                return Some(format!("rule {}", quoted(&rule.name)));
            }
        }
        for user in filters.values() {
            if compiler
                .compile(&reference(&user.id), &user.tenant)
                .is_err()
            {
                return Some(format!("filter {}", quoted(&user.name)));
            }
        }
        None
    }

    /// Creates (`create`) or replaces a resource, entries and all; filters read the new
    /// entries from the next batch on.
    pub fn save_resource(
        &mut self,
        resource: Resource,
        create: bool,
    ) -> Result<Resource, CatalogError> {
        let mut resource = resource::checked(resource)?;
        let resources = &self.records.resources;
        if create {
            check_quota(resources, &resource.tenant)?;
            resource.id = new_id();
        } else if !resources.contains_key(&resource.id) {
            return Err(CatalogError::NotFound {
                kind: "resource",
                id: resource.id,
            });
        }
        if resources.values().any(|r| {
            r.id != resource.id
                && r.tenant == resource.tenant
                && r.kind == resource.kind
                && r.name == resource.name
        }) {
            return Err(CatalogError::NameTaken {
                kind: "resource",
                tenant: resource.tenant,
                name: resource.name,
            });
        }
        let held: usize = (resources.values())
            .filter(|r| r.tenant == resource.tenant && r.id != resource.id)
            .map(|r| r.entries.len())
            .sum();
        if held + resource.entries.len() > MAX_ENTRIES_PER_TENANT {
            return Err(CatalogError::Quota {
                what: "resource entries",
                tenant: resource.tenant,
                count: held + resource.entries.len(),
                max: MAX_ENTRIES_PER_TENANT,
            });
        }
        let mut after = HashMap::clone(resources);
        after.insert(resource.id.clone(), Arc::new(resource.clone()));
        if let Some(user) = self.first_broken(&self.records.filters, &after) {
            return Err(CatalogError::InUse {
                id: resource.id,
                user,
            });
        }
        self.store.write(RESOURCES, &resource.id, Some(&resource))?;
        self.records.resources = Arc::new(after);
        self.publish();
        Ok(resource)
    }

    /// Puts and removes entries of a resource by key (see [`resource::with_entries_changed`]),
    /// saved and in effect as [`Catalog::save_resource`] does.
    pub fn change_entries(
        &mut self,
        id: &str,
        tenant: &str,
        put: Vec<ResourceEntry>,
        remove: &[String],
    ) -> Result<(Resource, EntriesChanged), CatalogError> {
        let resource = owned(&self.records.resources, id, tenant)?;
        let (resource, changed) = resource::with_entries_changed(resource, put, remove)?;
        Ok((self.save_resource(resource, false)?, changed))
    }

    pub fn delete_resource(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.records.resource(id, tenant).is_err() {
            return Ok(false);
        }
        let mut after = HashMap::clone(&self.records.resources);
        after.remove(id);
        if let Some(user) = self.first_broken(&self.records.filters, &after) {
            return Err(CatalogError::InUse {
                id: id.to_owned(),
                user,
            });
        }
        self.store.write::<Resource>(RESOURCES, id, None)?;
        self.records.resources = Arc::new(after);
        self.publish();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_version_4_uuids() {
        let id = super::new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}

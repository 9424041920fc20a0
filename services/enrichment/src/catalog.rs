//! Rules and saved filters: kept in the service's embedded store, and compiled into the set of
//! active rules that every stream reads. A change is saved first, then swapped in whole: a
//! running stream takes it from its next batch, with nothing lost or done twice.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use arc_swap::ArcSwap;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use xdr_mesh::quote::quoted;
use xdr_proto::pb::{
    EnrichmentRule, Filter, Resource, ResourceEntry, ResourceKind, enrichment_rule,
};

use crate::{
    filter::{self, Compiled, Compiler, Definitions},
    resources::{self as resource, EntriesChanged, Resources},
    rule::{self, Invalid},
};

const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("rules");
const FILTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("filters");
const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no {kind} {}", quoted(.id))]
    NotFound { kind: &'static str, id: String },
    #[error("tenant {} already has a {kind} named {}", quoted(.tenant), quoted(.name))]
    NameTaken {
        kind: &'static str,
        tenant: String,
        name: String,
    },
    #[error("{} is used by {user}", quoted(.id))]
    InUse { id: String, user: String },
    #[error("tenant {} would have {count} {what}; at most {max}", quoted(.tenant))]
    Quota {
        /// What is counted, in the plural.
        what: &'static str,
        tenant: String,
        count: usize,
        max: usize,
    },
    #[error("the rule store: {0}")]
    Store(String),
}

/// Rules, saved filters and resources one tenant may have: each change recompiles them all.
const MAX_PER_TENANT: usize = 1000;
/// Resource entries one tenant may hold across its resources: every batch reads a snapshot.
const MAX_ENTRIES_PER_TENANT: usize = 2_000_000;

fn store_error(error: impl std::fmt::Display) -> CatalogError {
    CatalogError::Store(error.to_string())
}

/// A rule as streams use it: its settings and its compiled filter (none: every event).
pub struct ActiveRule {
    pub rule: EnrichmentRule,
    pub filter: Option<Compiled>,
}

#[derive(Default)]
pub struct ActiveRules {
    pub rules: Vec<Arc<ActiveRule>>,
    /// The resources' entries of the same moment, for the resource operators.
    pub resources: Resources,
}

pub struct Catalog {
    db: Database,
    rules: HashMap<String, EnrichmentRule>,
    filters: HashMap<String, Filter>,
    resources: HashMap<String, Resource>,
    active: Arc<ArcSwap<ActiveRules>>,
    vcpus: u32,
}

/// The catalog, changed one request at a time.
pub struct SharedCatalog {
    catalog: Mutex<Catalog>,
    active: Arc<ArcSwap<ActiveRules>>,
}

/// The saved filters and resources a compile sees: the catalog's, or what they would be after
/// a change.
struct Defs<'a> {
    filters: &'a HashMap<String, Filter>,
    resources: &'a HashMap<String, Resource>,
}

impl Definitions for Defs<'_> {
    fn saved(&self, id: &str) -> Option<Filter> {
        self.filters.get(id).cloned()
    }

    fn resource(&self, id: &str) -> Option<(ResourceKind, String)> {
        self.resources.get(id).map(|r| (r.kind(), r.tenant.clone()))
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

/// What rules, filters and resources have in common: a kind for messages, a tenant, a name.
trait Owned: Clone {
    const KIND: &'static str;
    const PLURAL: &'static str;
    fn tenant(&self) -> &str;
    fn name(&self) -> &str;
}

macro_rules! owned {
    ($type:ty, $kind:literal, $plural:literal) => {
        impl Owned for $type {
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            fn tenant(&self) -> &str {
                &self.tenant
            }
            fn name(&self) -> &str {
                &self.name
            }
        }
    };
}

owned!(EnrichmentRule, "rule", "rules");
owned!(Filter, "filter", "saved filters");
owned!(Resource, "resource", "resources");

/// Refuses a new record when `tenant` already has [`MAX_PER_TENANT`] of its kind.
fn check_quota<T: Owned>(records: &HashMap<String, T>, tenant: &str) -> Result<(), CatalogError> {
    let count = records.values().filter(|r| r.tenant() == tenant).count();
    if count >= MAX_PER_TENANT {
        return Err(CatalogError::Quota {
            what: T::PLURAL,
            tenant: tenant.to_owned(),
            count: count + 1,
            max: MAX_PER_TENANT,
        });
    }
    Ok(())
}

/// `records[id]`, if it is `tenant`'s (any tenant's when empty).
fn owned<T: Owned>(
    records: &HashMap<String, T>,
    id: &str,
    tenant: &str,
) -> Result<T, CatalogError> {
    records
        .get(id)
        .filter(|r| tenant.is_empty() || r.tenant() == tenant)
        .cloned()
        .ok_or_else(|| CatalogError::NotFound {
            kind: T::KIND,
            id: id.to_owned(),
        })
}

/// `tenant`'s records (everyone's when empty) by tenant and name.
fn listed<T: Owned>(records: &HashMap<String, T>, tenant: &str) -> Vec<T> {
    let mut listed: Vec<T> = records
        .values()
        .filter(|r| tenant.is_empty() || r.tenant() == tenant)
        .cloned()
        .collect();
    listed.sort_by(|a, b| (a.tenant(), a.name()).cmp(&(b.tenant(), b.name())));
    listed
}

/// Every record of `table`, decoded.
fn load<T: Message + Default>(
    read: &redb::ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<HashMap<String, T>, CatalogError> {
    let mut records = HashMap::new();
    for entry in read
        .open_table(table)
        .map_err(store_error)?
        .iter()
        .map_err(store_error)?
    {
        let (id, bytes) = entry.map_err(store_error)?;
        records.insert(
            id.value().to_owned(),
            T::decode(bytes.value()).map_err(store_error)?,
        );
    }
    Ok(records)
}

/// A filter node naming saved filter `id`.
fn reference(id: &str) -> xdr_proto::pb::FilterNode {
    xdr_proto::pb::FilterNode {
        node: Some(xdr_proto::pb::filter_node::Node::FilterId(id.to_owned())),
    }
}

/// `rule`'s filter compiled by `compiler` (none: the rule takes every event).
fn compile_rule(
    compiler: &mut Compiler<'_>,
    rule: &EnrichmentRule,
) -> Result<Option<Compiled>, Invalid> {
    let node = match &rule.filter {
        None => return Ok(None),
        Some(enrichment_rule::Filter::InlineFilter(node)) => node.clone(),
        Some(enrichment_rule::Filter::FilterId(id)) => reference(id),
    };
    compiler.compile(&node, &rule.tenant).map(Some)
}

impl SharedCatalog {
    /// Opens (or creates) the store at `path` and compiles what it holds.
    pub fn open(path: &Path, vcpus: u32) -> Result<Self, CatalogError> {
        let db = Database::create(path).map_err(store_error)?;
        let write = db.begin_write().map_err(store_error)?;
        for table in [RULES, FILTERS, RESOURCES] {
            write.open_table(table).map_err(store_error)?;
        }
        write.commit().map_err(store_error)?;
        let read = db.begin_read().map_err(store_error)?;
        let (rules, filters, resources) = (
            load(&read, RULES)?,
            load(&read, FILTERS)?,
            load(&read, RESOURCES)?,
        );
        let active = Arc::new(ArcSwap::from_pointee(ActiveRules::default()));
        let catalog = Catalog {
            db,
            rules,
            filters,
            resources,
            active: active.clone(),
            vcpus,
        };
        catalog.activate();
        Ok(SharedCatalog {
            catalog: Mutex::new(catalog),
            active,
        })
    }

    /// The rules streams apply now; hold the `Arc` for one batch.
    pub fn active(&self) -> Arc<ActiveRules> {
        self.active.load_full()
    }

    pub fn lock(&self) -> MutexGuard<'_, Catalog> {
        self.catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Catalog {
    /// Compiles every rule and swaps the set in. Rules were checked when saved; one whose
    /// filter no longer compiles (its saved filter changed under it) is logged and skipped.
    fn activate(&self) {
        let mut active = ActiveRules {
            rules: Vec::new(),
            resources: Resources::of(self.resources.values()),
        };
        let mut rules: Vec<_> = self.rules.values().collect();
        rules.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        let defs = Defs {
            filters: &self.filters,
            resources: &self.resources,
        };
        // One compiler for every rule: a saved filter they share is compiled once.
        let mut compiler = Compiler::new(&defs);
        for rule in rules {
            match compile_rule(&mut compiler, rule) {
                Ok(filter) => active.rules.push(Arc::new(ActiveRule {
                    rule: rule.clone(),
                    filter,
                })),
                Err(error) => {
                    tracing::warn!(rule = %rule.name, %error, "rule left inactive: its filter does not compile")
                }
            }
        }
        self.active.store(Arc::new(active));
    }

    fn compile_rule(&self, rule: &EnrichmentRule) -> Result<Option<Compiled>, Invalid> {
        let defs = Defs {
            filters: &self.filters,
            resources: &self.resources,
        };
        compile_rule(&mut Compiler::new(&defs), rule)
    }

    fn write<T: Message>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        value: Option<&T>,
    ) -> Result<(), CatalogError> {
        let write = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = write.open_table(table).map_err(store_error)?;
            match value {
                Some(value) => {
                    table
                        .insert(id, value.encode_to_vec().as_slice())
                        .map_err(store_error)?;
                }
                None => {
                    table.remove(id).map_err(store_error)?;
                }
            }
        }
        write.commit().map_err(store_error)
    }

    /// Creates (`id` empty) or replaces the rule; what was stored.
    pub fn save_rule(
        &mut self,
        rule: EnrichmentRule,
        create: bool,
    ) -> Result<EnrichmentRule, CatalogError> {
        let mut rule = rule::checked(rule, self.vcpus)?;
        if create {
            check_quota(&self.rules, &rule.tenant)?;
            rule.id = new_id();
        } else if !self.rules.contains_key(&rule.id) {
            return Err(CatalogError::NotFound {
                kind: "rule",
                id: rule.id,
            });
        }
        if self
            .rules
            .values()
            .any(|r| r.id != rule.id && r.tenant == rule.tenant && r.name == rule.name)
        {
            return Err(CatalogError::NameTaken {
                kind: "rule",
                tenant: rule.tenant,
                name: rule.name,
            });
        }
        self.compile_rule(&rule)?;
        self.write(RULES, &rule.id, Some(&rule))?;
        self.rules.insert(rule.id.clone(), rule.clone());
        self.activate();
        Ok(rule)
    }

    pub fn delete_rule(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.rule(id, tenant).is_err() {
            return Ok(false);
        }
        self.write::<EnrichmentRule>(RULES, id, None)?;
        self.rules.remove(id);
        self.activate();
        Ok(true)
    }

    /// The rule `id`, if it is `tenant`'s (any tenant when empty).
    pub fn rule(&self, id: &str, tenant: &str) -> Result<EnrichmentRule, CatalogError> {
        owned(&self.rules, id, tenant)
    }

    pub fn rules(&self, tenant: &str) -> Vec<EnrichmentRule> {
        listed(&self.rules, tenant)
    }

    /// Creates (`id` empty) or replaces the saved filter, after checking that it, and every
    /// rule and filter using it, still compiles.
    pub fn save_filter(&mut self, filter: Filter, create: bool) -> Result<Filter, CatalogError> {
        let mut filter = filter;
        rule::check_name("name", &filter.name)?;
        filter.name = filter.name.trim().to_owned();
        filter.tenant = rule::tenant_or_shared(&filter.tenant)?;
        rule::check_description(&filter.description)?;
        if create {
            check_quota(&self.filters, &filter.tenant)?;
            filter.id = new_id();
        } else if !self.filters.contains_key(&filter.id) {
            return Err(CatalogError::NotFound {
                kind: "filter",
                id: filter.id,
            });
        }
        if self
            .filters
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
        let mut after = self.filters.clone();
        after.insert(filter.id.clone(), filter.clone());
        let as_reference = reference(&filter.id);
        let defs = Defs {
            filters: &after,
            resources: &self.resources,
        };
        filter::compile(&as_reference, &filter.tenant, &defs).map_err(|e| Invalid {
            field: e
                .field
                .replacen(&format!("filter.filter_id({})", filter.id), "root", 1),
            ..e
        })?;
        if let Some(user) = self.first_broken(&after, &self.resources) {
            return Err(rule::invalid(
                "root",
                format!("{user}, which uses this filter, would break"),
            )
            .into());
        }
        self.write(FILTERS, &filter.id, Some(&filter))?;
        self.filters = after;
        self.activate();
        Ok(filter)
    }

    pub fn delete_filter(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.filter(id, tenant).is_err() {
            return Ok(false);
        }
        let mut after = self.filters.clone();
        after.remove(id);
        if let Some(user) = self.first_broken(&after, &self.resources) {
            return Err(CatalogError::InUse {
                id: id.to_owned(),
                user,
            });
        }
        self.write::<Filter>(FILTERS, id, None)?;
        self.filters = after;
        self.activate();
        Ok(true)
    }

    /// The first rule, else saved filter, that would no longer compile with `filters` and
    /// `resources` in place of the catalog's, named for an error (rules first: they are what
    /// an operator would miss).
    fn first_broken(
        &self,
        filters: &HashMap<String, Filter>,
        resources: &HashMap<String, Resource>,
    ) -> Option<String> {
        let defs = Defs { filters, resources };
        // One compiler for the whole check: each saved filter is compiled once, not once per
        // rule or filter that reaches it.
        let mut compiler = Compiler::new(&defs);
        for rule in self.rules.values() {
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
        if create {
            check_quota(&self.resources, &resource.tenant)?;
            resource.id = new_id();
        } else if !self.resources.contains_key(&resource.id) {
            return Err(CatalogError::NotFound {
                kind: "resource",
                id: resource.id,
            });
        }
        if self.resources.values().any(|r| {
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
        let held: usize = (self.resources.values())
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
        let mut after = self.resources.clone();
        after.insert(resource.id.clone(), resource.clone());
        if let Some(user) = self.first_broken(&self.filters, &after) {
            return Err(CatalogError::InUse {
                id: resource.id,
                user,
            });
        }
        self.write(RESOURCES, &resource.id, Some(&resource))?;
        self.resources = after;
        self.activate();
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
        let resource = owned(&self.resources, id, tenant)?;
        let (resource, changed) = resource::with_entries_changed(resource, put, remove)?;
        Ok((self.save_resource(resource, false)?, changed))
    }

    pub fn delete_resource(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.resource(id, tenant).is_err() {
            return Ok(false);
        }
        let mut after = self.resources.clone();
        after.remove(id);
        if let Some(user) = self.first_broken(&self.filters, &after) {
            return Err(CatalogError::InUse {
                id: id.to_owned(),
                user,
            });
        }
        self.write::<Resource>(RESOURCES, id, None)?;
        self.resources = after;
        self.activate();
        Ok(true)
    }

    pub fn resource(&self, id: &str, tenant: &str) -> Result<Resource, CatalogError> {
        owned(&self.resources, id, tenant)
    }

    pub fn resources(&self, tenant: &str) -> Vec<Resource> {
        listed(&self.resources, tenant)
    }

    pub fn filter(&self, id: &str, tenant: &str) -> Result<Filter, CatalogError> {
        owned(&self.filters, id, tenant)
    }

    pub fn filters(&self, tenant: &str) -> Vec<Filter> {
        listed(&self.filters, tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_past_its_quota_is_refused_and_others_are_not() {
        let rule = |i: usize, tenant: &str| EnrichmentRule {
            id: format!("{tenant}{i}"),
            tenant: tenant.to_owned(),
            ..Default::default()
        };
        let mut rules: HashMap<String, EnrichmentRule> = (0..MAX_PER_TENANT - 1)
            .map(|i| (format!("a{i}"), rule(i, "A")))
            .collect();
        rules.insert("b".into(), rule(0, "B"));
        assert!(check_quota(&rules, "A").is_ok(), "one more fits");
        rules.insert("last".into(), rule(MAX_PER_TENANT, "A"));
        let refused = check_quota(&rules, "A").unwrap_err();
        assert!(
            matches!(
                refused,
                CatalogError::Quota {
                    count: 1001,
                    max: 1000,
                    ..
                }
            ),
            "{refused}"
        );
        assert_eq!(
            refused.to_string(),
            "tenant `A` would have 1001 rules; at most 1000"
        );
        assert!(
            check_quota(&rules, "B").is_ok(),
            "tenants are counted apart"
        );
    }

    #[test]
    fn ids_are_version_4_uuids() {
        let id = super::new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}

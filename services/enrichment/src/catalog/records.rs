//! The catalog's records as readers see them: rules, saved filters and resources by id, each
//! map shared (`Arc`) so a snapshot costs three pointer copies and a change copies one map of
//! pointers, never the records. Reads answer from the snapshot of the last change, without
//! waiting for a change in progress.

use std::{collections::HashMap, sync::Arc};

use xdr_proto::pb::{EnrichmentRule, Filter, Resource, ResourceKind};

use super::error::CatalogError;
use xdr_filter::Definitions;

/// Rules, saved filters and resources one tenant may have: each change recompiles them all.
pub const MAX_PER_TENANT: usize = 1000;

pub type RecordMap<T> = Arc<HashMap<String, Arc<T>>>;

#[derive(Clone, Default)]
pub struct Records {
    pub rules: RecordMap<EnrichmentRule>,
    pub filters: RecordMap<Filter>,
    pub resources: RecordMap<Resource>,
}

impl Records {
    /// The rule `id`, if it is `tenant`'s (any tenant's when empty).
    pub fn rule(&self, id: &str, tenant: &str) -> Result<EnrichmentRule, CatalogError> {
        owned(&self.rules, id, tenant)
    }

    pub fn rules(&self, tenant: &str) -> Vec<Arc<EnrichmentRule>> {
        listed(&self.rules, tenant)
    }

    pub fn filter(&self, id: &str, tenant: &str) -> Result<Filter, CatalogError> {
        owned(&self.filters, id, tenant)
    }

    pub fn filters(&self, tenant: &str) -> Vec<Arc<Filter>> {
        listed(&self.filters, tenant)
    }

    pub fn resource(&self, id: &str, tenant: &str) -> Result<Resource, CatalogError> {
        owned(&self.resources, id, tenant)
    }

    pub fn resources(&self, tenant: &str) -> Vec<Arc<Resource>> {
        listed(&self.resources, tenant)
    }
}

/// What rules, filters and resources have in common: a kind for messages, a tenant, a name.
pub trait Owned: Clone {
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

/// `records[id]`, if it is `tenant`'s (any tenant's when empty).
pub fn owned<T: Owned>(
    records: &HashMap<String, Arc<T>>,
    id: &str,
    tenant: &str,
) -> Result<T, CatalogError> {
    records
        .get(id)
        .filter(|r| tenant.is_empty() || r.tenant() == tenant)
        .map(|r| T::clone(r))
        .ok_or_else(|| CatalogError::NotFound {
            kind: T::KIND,
            id: id.to_owned(),
        })
}

/// `tenant`'s records (everyone's when empty) by tenant and name, shared: a reader copies only
/// the page it answers.
fn listed<T: Owned>(records: &HashMap<String, Arc<T>>, tenant: &str) -> Vec<Arc<T>> {
    let mut listed: Vec<Arc<T>> = records
        .values()
        .filter(|r| tenant.is_empty() || r.tenant() == tenant)
        .cloned()
        .collect();
    listed.sort_by(|a, b| (a.tenant(), a.name()).cmp(&(b.tenant(), b.name())));
    listed
}

/// Refuses a new record when `tenant` already has [`MAX_PER_TENANT`] of its kind.
pub fn check_quota<T: Owned>(
    records: &HashMap<String, Arc<T>>,
    tenant: &str,
) -> Result<(), CatalogError> {
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

/// The saved filters and resources a compile sees: the catalog's, or what they would be after
/// a change.
pub struct Defs<'a> {
    pub filters: &'a HashMap<String, Arc<Filter>>,
    pub resources: &'a HashMap<String, Arc<Resource>>,
}

impl Definitions for Defs<'_> {
    fn saved(&self, id: &str) -> Option<Filter> {
        self.filters.get(id).map(|f| Filter::clone(f))
    }

    fn resource(&self, id: &str) -> Option<(ResourceKind, String)> {
        self.resources.get(id).map(|r| (r.kind(), r.tenant.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_past_its_quota_is_refused_and_others_are_not() {
        let rule = |i: usize, tenant: &str| {
            Arc::new(EnrichmentRule {
                id: format!("{tenant}{i}"),
                tenant: tenant.to_owned(),
                ..Default::default()
            })
        };
        let mut rules: HashMap<String, Arc<EnrichmentRule>> = (0..MAX_PER_TENANT - 1)
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
}

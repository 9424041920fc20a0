//! Saving and deleting saved filters: a filter in use by a rule or another filter stays.

use std::{collections::HashMap, sync::Arc};

use xdr_proto::pb::Filter;

use super::{
    active::reference,
    changes::{Catalog, new_id},
    error::CatalogError,
    records::{Defs, check_quota},
    store::FILTERS,
};
use crate::rule::{self, Invalid};

impl Catalog {
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
}

//! Saving, changing and deleting resources: a resource a filter uses stays.

use std::{collections::HashMap, sync::Arc};

use xdr_proto::pb::{Resource, ResourceEntry};

use super::{
    changes::{Catalog, new_id},
    error::CatalogError,
    records::{check_quota, owned},
    store::RESOURCES,
};
use crate::resources::{self as resource, EntriesChanged};

/// Resource entries one tenant may hold across its resources: every batch reads a snapshot.
const MAX_ENTRIES_PER_TENANT: usize = 2_000_000;

impl Catalog {
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

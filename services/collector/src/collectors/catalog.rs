//! The collectors, kept in redb (one record per collector, its protobuf encoding under its
//! id) and published as a snapshot: ingest reads the snapshot and never waits for a change.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwap;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use xdr_mesh::{
    error::{ErrorCode, Invalid, ServiceError},
    id::new_uuid,
    quote::quoted,
    store::StoreFailure,
};
use xdr_proto::pb::CollectorConfig;

use super::validate::validated;

const COLLECTORS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("collectors");
/// Collectors per tenant at most: each may hold an enrichment stream and its batches.
const MAX_PER_TENANT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no collector {}", quoted(.0))]
    NotFound(String),
    #[error("tenant {} already has a collector named {}", quoted(.tenant), quoted(.name))]
    NameTaken { tenant: String, name: String },
    #[error("tenant {} has {MAX_PER_TENANT} collectors, the most it may", quoted(.0))]
    Quota(String),
    #[error("the collector store: {0}")]
    Store(#[from] StoreFailure),
}

impl ServiceError for CollectorError {
    fn code(&self) -> ErrorCode {
        match self {
            CollectorError::Invalid(_) => ErrorCode::InvalidArgument,
            CollectorError::NotFound(_) => ErrorCode::NotFound,
            CollectorError::NameTaken { .. } => ErrorCode::AlreadyExists,
            CollectorError::Quota(_) => ErrorCode::ResourceExhausted,
            CollectorError::Store(failure) => failure.code(),
        }
    }
}

fn store_error(error: impl Into<redb::Error>) -> CollectorError {
    CollectorError::Store(StoreFailure::new(error))
}

type Snapshot = HashMap<String, Arc<CollectorConfig>>;

pub struct CollectorCatalog {
    db: Database,
    current: ArcSwap<Snapshot>,
    /// Changes one at a time: a name is checked unique and saved without a race.
    writer: Mutex<()>,
}

impl CollectorCatalog {
    /// Opens (or creates) the store at `path` and publishes what it holds.
    pub fn open(path: &Path) -> Result<Self, CollectorError> {
        let db = Database::create(path).map_err(store_error)?;
        let write = db.begin_write().map_err(store_error)?;
        write.open_table(COLLECTORS).map_err(store_error)?;
        write.commit().map_err(store_error)?;
        let mut snapshot = Snapshot::new();
        let read = db.begin_read().map_err(store_error)?;
        for entry in read
            .open_table(COLLECTORS)
            .map_err(store_error)?
            .iter()
            .map_err(store_error)?
        {
            let (id, bytes) = entry.map_err(store_error)?;
            let config = CollectorConfig::decode(bytes.value())
                .map_err(|e| CollectorError::Store(StoreFailure::unreadable(e)))?;
            snapshot.insert(id.value().to_owned(), Arc::new(config));
        }
        Ok(CollectorCatalog {
            db,
            current: ArcSwap::from_pointee(snapshot),
            writer: Mutex::new(()),
        })
    }

    /// The collector `key` names — its id, or its name in `tenant` — seen from `tenant`
    /// (any tenant when empty).
    pub fn find(&self, key: &str, tenant: &str) -> Result<Arc<CollectorConfig>, CollectorError> {
        let snapshot = self.current.load();
        let visible = |c: &&Arc<CollectorConfig>| tenant.is_empty() || c.tenant == tenant;
        snapshot
            .get(key)
            .filter(visible)
            .or_else(|| {
                snapshot
                    .values()
                    .filter(visible)
                    .find(|c| c.name == key && (!tenant.is_empty() || c.tenant == "Main"))
            })
            .cloned()
            .ok_or_else(|| CollectorError::NotFound(key.to_owned()))
    }

    /// `tenant`'s collectors (everyone's when empty), by tenant and name.
    pub fn list(&self, tenant: &str) -> Vec<Arc<CollectorConfig>> {
        let mut listed: Vec<_> = (self.current.load().values())
            .filter(|c| tenant.is_empty() || c.tenant == tenant)
            .cloned()
            .collect();
        listed.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        listed
    }

    /// Saves `config`: a new collector (an id is given) when `create`, else a change to the
    /// one with its id, in the same tenant.
    pub fn save(
        &self,
        config: CollectorConfig,
        create: bool,
    ) -> Result<CollectorConfig, CollectorError> {
        let mut config = validated(config)?;
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = self.current.load_full();
        if create {
            config.id = new_uuid();
            let owned = snapshot.values().filter(|c| c.tenant == config.tenant);
            if owned.count() >= MAX_PER_TENANT {
                return Err(CollectorError::Quota(config.tenant));
            }
        } else if (snapshot.get(&config.id)).is_none_or(|old| old.tenant != config.tenant) {
            return Err(CollectorError::NotFound(config.id));
        }
        let taken = snapshot
            .values()
            .any(|c| c.id != config.id && c.tenant == config.tenant && c.name == config.name);
        if taken {
            return Err(CollectorError::NameTaken {
                tenant: config.tenant,
                name: config.name,
            });
        }
        self.write(&config.id, Some(&config))?;
        let mut next = Snapshot::clone(&snapshot);
        next.insert(config.id.clone(), Arc::new(config.clone()));
        self.current.store(Arc::new(next));
        Ok(config)
    }

    /// Deletes collector `id` of `tenant` (any when empty); whether there was one.
    pub fn delete(&self, id: &str, tenant: &str) -> Result<bool, CollectorError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = self.current.load_full();
        if !(snapshot.get(id)).is_some_and(|c| tenant.is_empty() || c.tenant == tenant) {
            return Ok(false);
        }
        self.write(id, None)?;
        let mut next = Snapshot::clone(&snapshot);
        next.remove(id);
        self.current.store(Arc::new(next));
        Ok(true)
    }

    fn write(&self, id: &str, config: Option<&CollectorConfig>) -> Result<(), CollectorError> {
        let write = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = write.open_table(COLLECTORS).map_err(store_error)?;
            match config {
                Some(config) => {
                    table
                        .insert(id, config.encode_to_vec().as_slice())
                        .map_err(store_error)?;
                }
                None => {
                    table.remove(id).map_err(store_error)?;
                }
            }
        }
        write.commit().map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, tenant: &str) -> CollectorConfig {
        CollectorConfig {
            name: name.into(),
            tenant: tenant.into(),
            ..Default::default()
        }
    }

    #[test]
    fn collectors_survive_a_reopen_and_names_are_unique_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collectors.redb");
        let catalog = CollectorCatalog::open(&path).unwrap();
        let main = catalog.save(named("http-input", "Main"), true).unwrap();
        catalog.save(named("http-input", "Acme"), true).unwrap();
        assert!(matches!(
            catalog.save(named("http-input", "Main"), true),
            Err(CollectorError::NameTaken { .. })
        ));
        // Another tenant's id is not found from Acme.
        assert!(catalog.find(&main.id, "Acme").is_err());
        assert_eq!(catalog.find("http-input", "Main").unwrap().id, main.id);
        drop(catalog);

        let reopened = CollectorCatalog::open(&path).unwrap();
        assert_eq!(reopened.list("").len(), 2);
        assert!(reopened.delete(&main.id, "Main").unwrap());
        assert!(!reopened.delete(&main.id, "Main").unwrap());
        assert_eq!(reopened.list("Main").len(), 0);
    }
}

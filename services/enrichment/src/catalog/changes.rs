//! Changing the catalog: one change at a time, each checked, saved to the store, then
//! published whole — the records readers see, the compiled rules streams apply, and a signal
//! for whoever keeps state per rule (the enricher's sources). The changes of each kind of
//! record are in `rules.rs`, `filters.rs` and `resources.rs`; what they share is here.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use xdr_filter::Compiler;
use xdr_mesh::quote::quoted;
use xdr_proto::pb::{Filter, Resource};

use super::{
    active::{ActiveRules, compile_rule, reference},
    error::CatalogError,
    records::{Defs, Records},
    store::{FILTERS, RESOURCES, RULES, RecordStore},
};

/// The catalog as its one writer holds it.
pub struct Catalog {
    pub(super) store: RecordStore,
    pub(super) records: Records,
    pub(super) vcpus: u32,
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

/// A new record id: a random UUID.
pub(super) fn new_id() -> String {
    xdr_mesh::id::new_uuid()
}

impl Catalog {
    /// Makes the records the ones readers and streams see, and says so.
    pub(super) fn publish(&self) {
        self.active.store(Arc::new(ActiveRules::of(&self.records)));
        self.published.store(Arc::new(self.records.clone()));
        self.changed.send_modify(|count| *count += 1);
    }

    pub(super) fn defs(&self) -> Defs<'_> {
        Defs {
            filters: &self.records.filters,
            resources: &self.records.resources,
        }
    }

    /// The first rule, else saved filter, that would no longer compile with `filters` and
    /// `resources` in place of the catalog's, named for an error (rules first: they are what
    /// an operator would miss).
    pub(super) fn first_broken(
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
}

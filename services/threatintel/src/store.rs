//! The current indexes and how they are replaced. A reload builds a new feed index beside the
//! old one and swaps it in atomically, so lookups never wait and never see a half-loaded set.
//! Internal TI changes persist first, then rebuild only the small runtime index.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use crate::{
    feeds::{FeedOptions, FeedReport, load_feeds},
    index::{IndexBuilder, IndexView, Indicator, IndicatorIndex, IndicatorKey, Supplier},
    internal_ti::{InternalTi, StoreError},
};

pub use xdr_mesh::clock::now_ms;

pub struct IndicatorStore {
    feeds: ArcSwap<IndicatorIndex>,
    runtime: ArcSwap<IndicatorIndex>,
    internal: InternalTi,
    feeds_dir: PathBuf,
    feed_options: FeedOptions,
    /// How each feed fared in the last reload, for `ListSuppliers`.
    reports: Mutex<Vec<FeedReport>>,
    /// One change at a time: two reloads would both build from the same previous index.
    changing: Mutex<()>,
    lookups: AtomicU64,
    matches: AtomicU64,
}

/// What a reload did.
pub struct Reload {
    pub feeds: Vec<FeedReport>,
    /// Records in the new feed index.
    pub indicators: usize,
    pub took: Duration,
}

impl IndicatorStore {
    /// A store with the feeds of `feeds_dir` and the Internal TI of `internal_ti` loaded
    /// (blocking: call off the async runtime).
    pub fn open(
        feeds_dir: PathBuf,
        feed_options: FeedOptions,
        internal_ti: &Path,
    ) -> Result<(Self, Reload), StoreError> {
        // An empty feed folder is a normal start; creating it shows where feeds go. If it
        // cannot be created, the reload reports why.
        let _ = std::fs::create_dir_all(&feeds_dir);
        let store = IndicatorStore {
            feeds: ArcSwap::from_pointee(IndicatorIndex::empty()),
            runtime: ArcSwap::from_pointee(IndicatorIndex::empty()),
            internal: InternalTi::open(internal_ti)?,
            feeds_dir,
            feed_options,
            reports: Mutex::new(Vec::new()),
            changing: Mutex::new(()),
            lookups: AtomicU64::new(0),
            matches: AtomicU64::new(0),
        };
        let reload = store.reload()?;
        Ok((store, reload))
    }

    fn one_change_at_a_time(&self) -> MutexGuard<'_, ()> {
        self.changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-reads every feed and swaps the new indexes in (blocking).
    pub fn reload(&self) -> Result<Reload, StoreError> {
        let _guard = self.one_change_at_a_time();
        let started = Instant::now();
        let previous = self.feeds.load_full();
        let (mut builder, feeds) =
            load_feeds(&self.feeds_dir, &previous, now_ms(), &self.feed_options);
        // Settings an operator gave with UpsertSupplier win over a feed file's own.
        for supplier in self.internal.suppliers()? {
            builder.upsert_supplier(supplier);
        }
        let index = builder.build();
        let indicators = index.len();
        *self
            .reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = feeds.clone();
        self.feeds.store(Arc::new(index));
        drop(previous);
        self.rebuild_runtime()?;
        Ok(Reload {
            feeds,
            indicators,
            took: started.elapsed(),
        })
    }

    fn rebuild_runtime(&self) -> Result<(), StoreError> {
        let mut builder = IndexBuilder::new(self.internal.suppliers()?);
        for indicator in self.internal.indicators()? {
            // Stored entries were valid when added and are stored normalized.
            if let Err(error) = builder.add(&indicator) {
                tracing::warn!(value = %indicator.value, %error, "skipping an Internal TI entry");
            }
        }
        self.runtime.store(Arc::new(builder.build()));
        Ok(())
    }

    /// How each feed fared in the last reload.
    pub fn last_reports(&self) -> Vec<FeedReport> {
        self.reports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The indexes to answer from; hold the view for one request.
    pub fn view(&self) -> IndexView {
        IndexView {
            feeds: self.feeds.load_full(),
            runtime: self.runtime.load_full(),
        }
    }

    /// Persists runtime indicators, then serves them; returns (added, updated).
    pub fn add(&self, indicators: &[(IndicatorKey, Indicator)]) -> Result<(u32, u32), StoreError> {
        let _guard = self.one_change_at_a_time();
        let counts = self.internal.add(indicators)?;
        self.rebuild_runtime()?;
        Ok(counts)
    }

    pub fn remove(&self, supplier: &str, keys: &[IndicatorKey]) -> Result<u32, StoreError> {
        let _guard = self.one_change_at_a_time();
        let removed = self.internal.remove(supplier, keys)?;
        self.rebuild_runtime()?;
        Ok(removed)
    }

    /// Persists a supplier's settings and rebuilds the indexes with them.
    pub fn upsert_supplier(&self, supplier: &Supplier) -> Result<Reload, StoreError> {
        self.internal.upsert_supplier(supplier)?;
        self.reload()
    }

    /// The remote sources operators added, as persisted: (supplier, settings as JSON).
    pub fn remote_sources(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.internal.remote_sources()
    }

    /// Persists `supplier`'s remote source settings, or forgets them (`None`).
    pub fn set_remote_source(
        &self,
        supplier: &str,
        settings: Option<&str>,
    ) -> Result<(), StoreError> {
        let _guard = self.one_change_at_a_time();
        self.internal.set_remote_source(supplier, settings)
    }

    pub fn count(&self, lookups: u64, matches: u64) {
        self.lookups.fetch_add(lookups, Ordering::Relaxed);
        self.matches.fetch_add(matches, Ordering::Relaxed);
    }

    /// (lookups, matches) answered since start.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.lookups.load(Ordering::Relaxed),
            self.matches.load(Ordering::Relaxed),
        )
    }
}

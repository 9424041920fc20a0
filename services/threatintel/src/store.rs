//! The current indicator index and how it is replaced: a reload builds a new index beside the
//! old one and swaps it in atomically, so lookups never wait and never see a half-loaded set.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwap;

use crate::{
    feeds::{FeedReport, load_feeds},
    index::IndicatorIndex,
};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub struct IndicatorStore {
    current: ArcSwap<IndicatorIndex>,
    feeds_dir: PathBuf,
    /// One reload at a time: two would both build from the same previous index.
    reloading: Mutex<()>,
    lookups: AtomicU64,
    matches: AtomicU64,
}

/// What a reload did.
pub struct Reload {
    pub feeds: Vec<FeedReport>,
    /// Records in the new index.
    pub indicators: usize,
    pub took: Duration,
}

impl IndicatorStore {
    /// A store with the feeds of `feeds_dir` loaded (blocking: call off the async runtime).
    pub fn open(feeds_dir: PathBuf) -> (Self, Reload) {
        let store = IndicatorStore {
            current: ArcSwap::from_pointee(IndicatorIndex::empty()),
            feeds_dir,
            reloading: Mutex::new(()),
            lookups: AtomicU64::new(0),
            matches: AtomicU64::new(0),
        };
        let reload = store.reload();
        (store, reload)
    }

    /// Re-reads every feed and swaps the new index in (blocking).
    pub fn reload(&self) -> Reload {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = Instant::now();
        let previous = self.current.load_full();
        let (builder, feeds) = load_feeds(&self.feeds_dir, &previous, now_ms());
        let index = builder.build();
        let indicators = index.len();
        self.current.store(Arc::new(index));
        Reload {
            feeds,
            indicators,
            took: started.elapsed(),
        }
    }

    /// The index to answer from; hold it for one request, not across awaits of other work.
    pub fn index(&self) -> Arc<IndicatorIndex> {
        self.current.load_full()
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

//! What each collector did since the service started: events received, accepted and refused,
//! accepted ones by enrichment status, batches refused whole.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use xdr_proto::pb::{CollectorConfig, CollectorStats, EnrichmentStatus, Event};

use crate::metrics;

/// What one batch came to, counted before it is stored (the events go to the writer).
pub struct Tally(CollectorStats);

impl Tally {
    pub fn of(refused: usize, accepted: &[Event]) -> Self {
        let mut counts = CollectorStats {
            received: (refused + accepted.len()) as u64,
            refused: refused as u64,
            accepted: accepted.len() as u64,
            ..Default::default()
        };
        for event in accepted {
            match EnrichmentStatus::try_from(event.enrichment_status) {
                Ok(EnrichmentStatus::Complete) => counts.complete += 1,
                Ok(EnrichmentStatus::TimedOut) => counts.timed_out += 1,
                Ok(EnrichmentStatus::SourceUnavailable) => counts.source_unavailable += 1,
                _ => counts.not_enriched += 1,
            }
        }
        Tally(counts)
    }

    pub fn received(&self) -> usize {
        self.0.received as usize
    }
}

/// Also recorded as Prometheus metrics (`crate::metrics`), without the collector's name.
pub struct Stats {
    by_collector: Mutex<HashMap<String, CollectorStats>>,
}

impl Default for Stats {
    fn default() -> Self {
        metrics::describe();
        Stats {
            by_collector: Mutex::default(),
        }
    }
}

impl Stats {
    fn with(&self, collector: &CollectorConfig, change: impl FnOnce(&mut CollectorStats)) {
        let mut all = (self.by_collector.lock()).unwrap_or_else(PoisonError::into_inner);
        let entry = all
            .entry(collector.id.clone())
            .or_insert_with(|| CollectorStats {
                collector_id: collector.id.clone(),
                ..Default::default()
            });
        // The name and tenant as they were when it last took events.
        if entry.collector_name != collector.name {
            entry.collector_name = collector.name.clone();
        }
        if entry.tenant != collector.tenant {
            entry.tenant = collector.tenant.clone();
        }
        change(entry);
    }

    /// A batch that was answered: its events received, refused, and accepted by status.
    pub fn answered(&self, collector: &CollectorConfig, tally: &Tally) {
        let counts = &tally.0;
        metrics::events("refused", counts.refused);
        metrics::events("not_enriched", counts.not_enriched);
        metrics::events("complete", counts.complete);
        metrics::events("timed_out", counts.timed_out);
        metrics::events("source_unavailable", counts.source_unavailable);
        self.with(collector, |stats| {
            stats.received += counts.received;
            stats.refused += counts.refused;
            stats.accepted += counts.accepted;
            stats.not_enriched += counts.not_enriched;
            stats.complete += counts.complete;
            stats.timed_out += counts.timed_out;
            stats.source_unavailable += counts.source_unavailable;
        });
    }

    /// A batch refused whole (the store failing, too much in flight): its events received.
    pub fn refused_batch(&self, collector: &CollectorConfig, events: usize) {
        metrics::batch_refused();
        self.with(collector, |stats| {
            stats.received += events as u64;
            stats.refused_batches += 1;
        });
    }

    /// Drops the counts of collector `id` (deleted): a tenant creating and deleting
    /// collectors in a loop must not grow them.
    pub fn forget(&self, id: &str) {
        (self.by_collector.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Every collector's counts (of `tenant` when given), by tenant and name.
    pub fn of(&self, tenant: Option<&str>) -> Vec<CollectorStats> {
        let all = (self.by_collector.lock()).unwrap_or_else(PoisonError::into_inner);
        let mut listed: Vec<_> = (all.values())
            .filter(|s| tenant.is_none_or(|t| s.tenant == t))
            .cloned()
            .collect();
        listed.sort_by(|a, b| (&a.tenant, &a.collector_name).cmp(&(&b.tenant, &b.collector_name)));
        listed
    }
}

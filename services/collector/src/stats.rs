//! What each collector did since the service started: events received, accepted and refused,
//! accepted ones by enrichment status, batches refused whole.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use xdr_proto::pb::{CollectorConfig, CollectorStats, EnrichmentStatus, Event};

#[derive(Default)]
pub struct Stats {
    by_collector: Mutex<HashMap<String, CollectorStats>>,
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

    /// A batch that was answered: its events received, refused, and those stored.
    pub fn answered(&self, collector: &CollectorConfig, refused: usize, accepted: &[Event]) {
        self.with(collector, |stats| {
            stats.received += (refused + accepted.len()) as u64;
            stats.refused += refused as u64;
            stats.accepted += accepted.len() as u64;
            for event in accepted {
                match EnrichmentStatus::try_from(event.enrichment_status) {
                    Ok(EnrichmentStatus::Complete) => stats.complete += 1,
                    Ok(EnrichmentStatus::TimedOut) => stats.timed_out += 1,
                    Ok(EnrichmentStatus::SourceUnavailable) => stats.source_unavailable += 1,
                    _ => stats.not_enriched += 1,
                }
            }
        });
    }

    /// A batch refused whole (the store failing, too much in flight): its events received.
    pub fn refused_batch(&self, collector: &CollectorConfig, events: usize) {
        self.with(collector, |stats| {
            stats.received += events as u64;
            stats.refused_batches += 1;
        });
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

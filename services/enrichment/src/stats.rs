//! What the service did since it started, for `Stats`: events by how they ended, and per rule
//! its lookups, matches and the events that went on without its answers. Batches add their
//! tallies once each, so counting costs a few atomic adds and one short lock per rule a batch.
//! Each count is mirrored to Prometheus (`crate::metrics`) where it is made.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use xdr_proto::pb::{EnrichmentStatsReply, EnrichmentStatus, RuleStats};

use crate::metrics;

#[derive(Default)]
pub struct Stats {
    batches: AtomicU64,
    refused_batches: AtomicU64,
    not_enriched: AtomicU64,
    complete: AtomicU64,
    timed_out: AtomicU64,
    source_unavailable: AtomicU64,
    rules: Mutex<BTreeMap<String, RuleStats>>,
}

/// A batch's events by their final status.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatusCounts {
    not_enriched: u64,
    complete: u64,
    timed_out: u64,
    source_unavailable: u64,
}

impl FromIterator<EnrichmentStatus> for StatusCounts {
    fn from_iter<I: IntoIterator<Item = EnrichmentStatus>>(statuses: I) -> Self {
        let mut counts = StatusCounts::default();
        for status in statuses {
            *match status {
                EnrichmentStatus::Complete => &mut counts.complete,
                EnrichmentStatus::TimedOut => &mut counts.timed_out,
                EnrichmentStatus::SourceUnavailable => &mut counts.source_unavailable,
                _ => &mut counts.not_enriched,
            } += 1;
        }
        counts
    }
}

/// One rule's share of one batch.
#[derive(Default)]
pub struct RuleTally {
    pub events: u64,
    pub lookups: u64,
    pub matches: u64,
    pub timed_out: u64,
    pub source_unavailable: u64,
}

impl Stats {
    /// A batch answered to its stream.
    pub fn answered(&self, counts: StatusCounts) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        for (status, count) in [
            (EnrichmentStatus::NotEnriched, counts.not_enriched),
            (EnrichmentStatus::Complete, counts.complete),
            (EnrichmentStatus::TimedOut, counts.timed_out),
            (
                EnrichmentStatus::SourceUnavailable,
                counts.source_unavailable,
            ),
        ] {
            metrics::events(status.as_str_name(), count);
        }
        for (counter, count) in [
            (&self.not_enriched, counts.not_enriched),
            (&self.complete, counts.complete),
            (&self.timed_out, counts.timed_out),
            (&self.source_unavailable, counts.source_unavailable),
        ] {
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }

    pub fn refused_batch(&self) {
        metrics::batch_refused();
        self.refused_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rule(&self, id: &str, name: &str, tally: RuleTally) {
        metrics::rule_lookups(
            tally.lookups,
            tally.matches,
            tally.timed_out,
            tally.source_unavailable,
        );
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let stats = rules.entry(id.to_owned()).or_insert_with(|| RuleStats {
            rule_id: id.to_owned(),
            ..Default::default()
        });
        if stats.rule_name != name {
            name.clone_into(&mut stats.rule_name);
        }
        stats.events += tally.events;
        stats.lookups += tally.lookups;
        stats.matches += tally.matches;
        stats.timed_out += tally.timed_out;
        stats.source_unavailable += tally.source_unavailable;
    }

    pub fn snapshot(&self) -> EnrichmentStatsReply {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (not_enriched, complete, timed_out, source_unavailable) = (
            read(&self.not_enriched),
            read(&self.complete),
            read(&self.timed_out),
            read(&self.source_unavailable),
        );
        EnrichmentStatsReply {
            batches: read(&self.batches),
            refused_batches: read(&self.refused_batches),
            events: not_enriched + complete + timed_out + source_unavailable,
            not_enriched,
            complete,
            timed_out,
            source_unavailable,
            rules: self
                .rules
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_rules_add_up() {
        let stats = Stats::default();
        use EnrichmentStatus::*;
        stats.answered(
            [Complete, Complete, NotEnriched, TimedOut]
                .into_iter()
                .collect(),
        );
        stats.answered([SourceUnavailable].into_iter().collect());
        stats.refused_batch();
        let tally = |events, lookups| RuleTally {
            events,
            lookups,
            matches: 1,
            timed_out: 1,
            ..Default::default()
        };
        stats.rule("r1", "old name", tally(3, 2));
        stats.rule("r1", "new name", tally(1, 1));
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.batches, snapshot.refused_batches, snapshot.events),
            (2, 1, 5)
        );
        assert_eq!(
            (
                snapshot.not_enriched,
                snapshot.complete,
                snapshot.timed_out,
                snapshot.source_unavailable
            ),
            (1, 2, 1, 1)
        );
        let rule = &snapshot.rules[0];
        assert_eq!(rule.rule_name, "new name");
        assert_eq!(
            (rule.events, rule.lookups, rule.matches, rule.timed_out),
            (4, 3, 2, 2)
        );
    }
}

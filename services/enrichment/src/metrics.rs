//! The enrichment service's Prometheus metrics, declared here and nowhere else: each is
//! recorded by one function below, called where the service counts it for `Stats`.
//! No label comes from a request (rule ids, tenants): a client cannot grow the registry.

use std::{sync::Once, time::Duration};

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

const EVENTS: &str = "xdr_enrichment_events_total";
const BATCHES_REFUSED: &str = "xdr_enrichment_batches_refused_total";
const BATCH_SECONDS: &str = "xdr_enrichment_batch_duration_seconds";
const LOOKUPS: &str = "xdr_enrichment_lookups_total";
const MATCHES: &str = "xdr_enrichment_matches_total";
const RULE_TIMEOUTS: &str = "xdr_enrichment_rule_timeouts_total";
const SOURCE_UNAVAILABLE: &str = "xdr_enrichment_source_unavailable_total";
const THROTTLED: &str = "xdr_enrichment_throttled_lookups_total";
const THROTTLE_SECONDS: &str = "xdr_enrichment_throttle_wait_seconds";

/// Names, units and help of every metric; once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!(EVENTS, "events answered, by final enrichment status");
        describe_counter!(
            BATCHES_REFUSED,
            "Enrich batches refused (an event that does not decode)"
        );
        describe_histogram!(
            BATCH_SECONDS,
            Unit::Seconds,
            "time to enrich one batch, lookups included"
        );
        describe_counter!(LOOKUPS, "values looked up in threat-intel sources");
        describe_counter!(MATCHES, "matches the sources answered");
        describe_counter!(
            RULE_TIMEOUTS,
            "events a rule's source did not answer within its timeout"
        );
        describe_counter!(
            SOURCE_UNAVAILABLE,
            "events a rule's source could not be asked about"
        );
        describe_counter!(
            THROTTLED,
            "values whose lookup waited for the rule's RPS limit"
        );
        describe_histogram!(
            THROTTLE_SECONDS,
            Unit::Seconds,
            "time a lookup batch waited for the rule's RPS limit"
        );
    });
}

/// Events of an answered batch, `status` their final enrichment status.
pub fn events(status: &'static str, count: u64) {
    if count > 0 {
        counter!(EVENTS, "status" => status).increment(count);
    }
}

pub fn batch_refused() {
    counter!(BATCHES_REFUSED).increment(1);
}

pub fn batch_enriched(took: Duration) {
    histogram!(BATCH_SECONDS).record(took.as_secs_f64());
}

/// One rule's share of a batch.
pub fn rule_lookups(lookups: u64, matches: u64, timed_out: u64, source_unavailable: u64) {
    counter!(LOOKUPS).increment(lookups);
    counter!(MATCHES).increment(matches);
    counter!(RULE_TIMEOUTS).increment(timed_out);
    counter!(SOURCE_UNAVAILABLE).increment(source_unavailable);
}

/// `values` waited `waited` for tokens of their rule's bucket.
pub fn throttled(values: u32, waited: Duration) {
    counter!(THROTTLED).increment(u64::from(values));
    histogram!(THROTTLE_SECONDS).record(waited.as_secs_f64());
}

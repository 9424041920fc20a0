//! The collector's Prometheus metrics, declared here and nowhere else: each is recorded by one
//! function below, called where the collector counts it for `Stats`. No label comes from a
//! request (collector names, tenants): a client cannot grow the registry.

use std::{sync::Once, time::Duration};

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

const EVENTS: &str = "xdr_collector_events_total";
const BATCHES_REFUSED: &str = "xdr_collector_batches_refused_total";
const BATCH_SECONDS: &str = "xdr_collector_batch_duration_seconds";
const GROUP_BATCHES: &str = "xdr_collector_group_commit_batches";
const ALERT_EVENTS: &str = "xdr_collector_alert_events_total";

/// Names, units and help of every metric; once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!(
            EVENTS,
            "events received, by outcome: refused, or accepted with their enrichment status"
        );
        describe_counter!(
            BATCHES_REFUSED,
            "batches refused whole: no room (a slow store) or the store failing"
        );
        describe_histogram!(
            BATCH_SECONDS,
            Unit::Seconds,
            "time from a batch's arrival to its acknowledgement, enrichment and storage included"
        );
        describe_counter!(
            ALERT_EVENTS,
            "events of the alerts destination, by outcome: buffered, delivered (to the playbook service), refused (by it), left_out (the buffer full)"
        );
        describe_histogram!(
            GROUP_BATCHES,
            "batches written in one commit of the event store"
        );
    });
}

/// Events of an answered batch that ended as `outcome`.
pub fn events(outcome: &'static str, count: u64) {
    if count > 0 {
        counter!(EVENTS, "outcome" => outcome).increment(count);
    }
}

pub fn batch_refused() {
    counter!(BATCHES_REFUSED).increment(1);
}

pub fn batch_answered(took: Duration) {
    histogram!(BATCH_SECONDS).record(took.as_secs_f64());
}

pub fn group_committed(batches: usize) {
    histogram!(GROUP_BATCHES).record(batches as f64);
}

pub fn alert_events(outcome: &'static str, count: usize) {
    if count > 0 {
        counter!(ALERT_EVENTS, "outcome" => outcome).increment(count as u64);
    }
}

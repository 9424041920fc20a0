//! The playbook service's Prometheus metrics, declared here and nowhere else. Labels come from
//! the service's own tables (playbook ids from its configuration, UserGate calls from the
//! method table), never from a request's values: a client cannot grow the registry.

use std::{sync::Once, time::Duration};

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

const ALERT_EVENTS: &str = "xdr_playbook_alert_events_total";
const LAUNCHES: &str = "xdr_playbook_launches_total";
const USERGATE_CALLS: &str = "xdr_playbook_usergate_calls_total";
const USERGATE_SECONDS: &str = "xdr_playbook_usergate_call_duration_seconds";

pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!(
            ALERT_EVENTS,
            "events raised, by outcome: new_alert, joined (an open alert), duplicate, left_out (tenant at its cap)"
        );
        describe_counter!(LAUNCHES, "playbook launches, by playbook and outcome");
        describe_counter!(
            USERGATE_CALLS,
            "XML-RPC calls to UserGate, by call and result (ok, fault, or the failure)"
        );
        describe_histogram!(
            USERGATE_SECONDS,
            Unit::Seconds,
            "time UserGate took to answer a call"
        );
    });
}

pub fn alert_events(outcome: &'static str, count: u64) {
    if count > 0 {
        counter!(ALERT_EVENTS, "outcome" => outcome).increment(count);
    }
}

pub fn launch(playbook: &str, outcome: &'static str) {
    counter!(LAUNCHES, "playbook" => playbook.to_owned(), "outcome" => outcome).increment(1);
}

pub fn usergate_call(call: &'static str, result: &'static str, took: Duration) {
    counter!(USERGATE_CALLS, "call" => call, "result" => result).increment(1);
    histogram!(USERGATE_SECONDS).record(took.as_secs_f64());
}

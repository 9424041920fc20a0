//! The threat-intel service's Prometheus metrics, declared here and nowhere else: each is
//! recorded by one function below. Labels take values from fixed sets (the interface, the
//! refusal reason, the indicator kind), never from a request.

use std::sync::Once;

use metrics::{counter, describe_counter, describe_gauge, gauge};

const LOOKUPS: &str = "xdr_threatintel_lookups_total";
const MATCHES: &str = "xdr_threatintel_matches_total";
const INDICATORS: &str = "xdr_threatintel_feed_indicators";
const CYBERTRACE_CONNECTIONS: &str = "xdr_threatintel_cybertrace_connections";
const CYBERTRACE_REFUSED: &str = "xdr_threatintel_cybertrace_refused_lines_total";

/// Where a lookup came from: gRPC (`Lookup`, `LookupStream`) or the CyberTrace listener.
#[derive(Clone, Copy, Debug)]
pub enum Interface {
    Grpc,
    CyberTrace,
}

impl Interface {
    fn label(self) -> &'static str {
        match self {
            Interface::Grpc => "grpc",
            Interface::CyberTrace => "cybertrace",
        }
    }
}

/// Names and help of every metric; once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!(LOOKUPS, "values looked up, by interface");
        describe_counter!(MATCHES, "indicator matches answered, by interface");
        describe_gauge!(INDICATORS, "records in the supplier-feed index");
        describe_gauge!(
            CYBERTRACE_CONNECTIONS,
            "open CyberTrace-protocol connections"
        );
        describe_counter!(
            CYBERTRACE_REFUSED,
            "CyberTrace lines or values refused, by reason"
        );
    });
}

pub fn looked_up(via: Interface, lookups: u64, matches: u64) {
    counter!(LOOKUPS, "interface" => via.label()).increment(lookups);
    counter!(MATCHES, "interface" => via.label()).increment(matches);
}

pub fn feed_indicators(records: usize) {
    gauge!(INDICATORS).set(records as f64);
}

pub fn cybertrace_connection_opened() {
    gauge!(CYBERTRACE_CONNECTIONS).increment(1.0);
}

pub fn cybertrace_connection_closed() {
    gauge!(CYBERTRACE_CONNECTIONS).decrement(1.0);
}

/// A refused line or value; `reason` is one of the listener's fixed reasons.
pub fn cybertrace_refused(reason: &'static str) {
    counter!(CYBERTRACE_REFUSED, "reason" => reason).increment(1);
}

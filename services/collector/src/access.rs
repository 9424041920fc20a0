//! Who may call the collector.

use xdr_mesh::{AccessPolicy, identity::Identity};

pub fn policy() -> AccessPolicy {
    AccessPolicy::new().allow_service("xdr.v1.Collector", &["gateway", Identity::OPERATOR])
}

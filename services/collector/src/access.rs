//! Who may call the collector.

use xdr_mesh::{
    AccessPolicy,
    directory::{GATEWAY, OPERATOR},
};

pub fn policy() -> AccessPolicy {
    AccessPolicy::new().allow_service("xdr.v1.Collector", &[GATEWAY.name, OPERATOR])
}

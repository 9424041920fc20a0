//! Who may call the enrichment service: collectors stream events through it; rules and
//! filters are managed through the gateway or by operators.

use xdr_mesh::{AccessPolicy, identity::Identity};

pub fn policy() -> AccessPolicy {
    AccessPolicy::new()
        .allow_service("xdr.v1.Enrichment", &["gateway", Identity::OPERATOR])
        .allow_method(
            "xdr.v1.Enrichment",
            "Enrich",
            &["collector", Identity::OPERATOR],
        )
}

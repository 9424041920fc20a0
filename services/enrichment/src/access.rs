//! Who may call the enrichment service: collectors stream events through it and read the
//! rules they link; rules and filters are managed through the gateway or by operators.

use xdr_mesh::{
    AccessPolicy,
    directory::{COLLECTOR, GATEWAY, OPERATOR},
};

pub fn policy() -> AccessPolicy {
    AccessPolicy::new()
        .allow_service("xdr.v1.Enrichment", &[GATEWAY.name, OPERATOR])
        .allow_method("xdr.v1.Enrichment", "Enrich", &[COLLECTOR.name, OPERATOR])
        .allow_method(
            "xdr.v1.Enrichment",
            "GetRule",
            &[COLLECTOR.name, GATEWAY.name, OPERATOR],
        )
}

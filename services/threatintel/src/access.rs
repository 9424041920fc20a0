//! Who may call the threat-intel service: lookups are open to the enrichment service, the
//! gateway and operators; changing indicators, suppliers and feeds only to the latter two.

use xdr_mesh::{
    AccessPolicy,
    directory::{ENRICHMENT, GATEWAY, OPERATOR},
};

const LOOKUP_CALLERS: &[&str] = &[ENRICHMENT.name, GATEWAY.name, OPERATOR];

pub fn policy() -> AccessPolicy {
    AccessPolicy::new()
        .allow_service("xdr.v1.ThreatIntel", &[GATEWAY.name, OPERATOR])
        .allow_method("xdr.v1.ThreatIntel", "Lookup", LOOKUP_CALLERS)
        .allow_method("xdr.v1.ThreatIntel", "LookupStream", LOOKUP_CALLERS)
}

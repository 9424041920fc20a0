//! Who may call the playbook service: collectors raise alerts from threat-intel matches;
//! people reach alerts, playbooks and secrets through the gateway, or are operators.

use xdr_mesh::{
    AccessPolicy,
    directory::{COLLECTOR, GATEWAY, OPERATOR},
};

pub fn policy() -> AccessPolicy {
    AccessPolicy::new()
        .allow_service("xdr.v1.Playbook", &[GATEWAY.name, OPERATOR])
        .allow_method(
            "xdr.v1.Playbook",
            "RaiseAlerts",
            &[COLLECTOR.name, OPERATOR],
        )
}

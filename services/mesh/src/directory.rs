//! The one table of the mesh's services: each is one binary (`xdr-<name>`) with one mesh
//! identity of the same name and fixed default ports. Binaries take their defaults from it,
//! the gateway its upstreams, `xdrctl` what it starts and probes, the dev PKI the certificates
//! it writes, and access policies the identities they may name.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One mesh service as every other part of the mesh knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Identity, certificate file stem, data folder and binary suffix.
    pub name: &'static str,
    /// Default port of its gRPC server; the gateway has none.
    pub grpc_port: Option<u16>,
    /// Default port of its plain-HTTP server: `/metrics` for the gRPC services, the JSON API
    /// (with `/metrics` on it) for the gateway.
    pub http_port: u16,
    /// The `xdr.v1` gRPC service it serves (`xdr.v1.ThreatIntel`); the gateway serves none.
    pub grpc_service: Option<&'static str>,
}

impl ServiceEntry {
    pub fn binary(&self) -> String {
        format!("xdr-{}", self.name)
    }

    /// The gRPC address it listens on by default: loopback, so a mesh started on one
    /// machine is not reachable from the network unless asked.
    pub fn default_grpc_listen(&self) -> Option<SocketAddr> {
        self.grpc_port.map(loopback)
    }

    /// Where a client on the same machine reaches its gRPC server by default (`host:port`);
    /// empty for the gateway, which has none.
    pub fn dial_addr(&self) -> String {
        self.default_grpc_listen()
            .map(|addr| addr.to_string())
            .unwrap_or_default()
    }

    pub fn default_http_listen(&self) -> SocketAddr {
        loopback(self.http_port)
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

pub const COLLECTOR: ServiceEntry = ServiceEntry {
    name: "collector",
    grpc_service: Some("xdr.v1.Collector"),
    grpc_port: Some(7201),
    http_port: 9201,
};
pub const ENRICHMENT: ServiceEntry = ServiceEntry {
    name: "enrichment",
    grpc_service: Some("xdr.v1.Enrichment"),
    grpc_port: Some(7202),
    http_port: 9202,
};
pub const THREATINTEL: ServiceEntry = ServiceEntry {
    name: "threatintel",
    grpc_service: Some("xdr.v1.ThreatIntel"),
    grpc_port: Some(7203),
    http_port: 9203,
};
pub const PLAYBOOK: ServiceEntry = ServiceEntry {
    name: "playbook",
    grpc_service: Some("xdr.v1.Playbook"),
    grpc_port: Some(7204),
    http_port: 9204,
};
pub const GATEWAY: ServiceEntry = ServiceEntry {
    name: "gateway",
    grpc_service: None,
    grpc_port: None,
    http_port: 8080,
};

/// Every service, in the order a mesh starts them: each after those it calls.
pub const SERVICES: [ServiceEntry; 5] = [THREATINTEL, ENRICHMENT, PLAYBOOK, COLLECTOR, GATEWAY];

/// The identity of people and scripts (`xdrctl`, grpcurl): it acts as a Main administrator.
pub const OPERATOR: &str = "operator";

/// The service named `name`, if the mesh has one.
pub fn service(name: &str) -> Option<ServiceEntry> {
    SERVICES.into_iter().find(|s| s.name == name)
}

/// The service serving the `xdr.v1` gRPC service `grpc_service` (`xdr.v1.ThreatIntel`).
pub fn serving(grpc_service: &str) -> Option<ServiceEntry> {
    SERVICES
        .into_iter()
        .find(|s| s.grpc_service == Some(grpc_service))
}

/// The gRPC services, in start order.
pub fn grpc_services() -> impl Iterator<Item = ServiceEntry> {
    SERVICES.into_iter().filter(|s| s.grpc_port.is_some())
}

/// Whether `name` is an identity the mesh issues certificates for: a service or the operator.
pub fn is_identity(name: &str) -> bool {
    name == OPERATOR || service(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports_are_unique() {
        let mut names: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
        let mut ports: Vec<_> = SERVICES
            .iter()
            .flat_map(|s| [s.grpc_port, Some(s.http_port)])
            .flatten()
            .collect();
        let (n, p) = (names.len(), ports.len());
        names.sort();
        names.dedup();
        ports.sort();
        ports.dedup();
        assert_eq!((names.len(), ports.len()), (n, p));
    }

    #[test]
    fn identities_are_the_services_and_the_operator() {
        assert!(is_identity("enrichment"));
        assert!(is_identity(OPERATOR));
        assert!(!is_identity("enrichmnet"));
        assert_eq!(grpc_services().count(), 4);
        assert_eq!(
            ENRICHMENT.default_grpc_listen(),
            Some("127.0.0.1:7202".parse().unwrap())
        );
    }
}

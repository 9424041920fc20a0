//! Where the services of a one-machine mesh live: ports (the design's defaults) and the
//! folders under the mesh home.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

/// The gRPC services, in start order: a service starts after the ones it calls.
pub const GRPC_SERVICES: [(&str, u16); 4] = [
    ("threatintel", 7203),
    ("enrichment", 7202),
    ("playbook", 7204),
    ("collector", 7201),
];

pub const GATEWAY: &str = "gateway";
pub const GATEWAY_HTTP_PORT: u16 = 8080;
/// The threat-intel service's CyberTrace-compatible TCP port.
pub const CYBERTRACE_PORT: u16 = 9999;

/// The folders of a mesh home.
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: &Path) -> Self {
        Home {
            root: root.to_owned(),
        }
    }

    pub fn certs(&self) -> PathBuf {
        self.root.join("certs")
    }

    pub fn data(&self, service: &str) -> PathBuf {
        self.root.join("data").join(service)
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log(&self, service: &str) -> PathBuf {
        self.logs().join(format!("{service}.log"))
    }
}

/// The address to dial for a service bound to `bind`: an unspecified bind address
/// (`0.0.0.0`) listens on loopback too.
pub fn dial_addr(bind: IpAddr, port: u16) -> SocketAddr {
    let host = if bind.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bind
    };
    SocketAddr::new(host, port)
}

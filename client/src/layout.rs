//! Where the services of a one-machine mesh live: the folders under the mesh home, and the
//! addresses to dial (ports are the directory's, `xdr_mesh::directory`).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

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

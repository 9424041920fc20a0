//! Dialing a mesh service as the operator: where it is (the service's default port on
//! `--host`, or `--addr`) and the operator certificate from the mesh home.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use tonic::transport::Channel;
use xdr_mesh::{channel, directory::ServiceEntry};

use crate::{
    layout::{self, Home},
    probe,
};

#[derive(clap::Args, Clone)]
pub struct Target {
    /// The mesh home (its `certs/` holds the operator certificate).
    #[arg(long, env = "XDR_HOME", default_value = xdr_mesh::config::DEFAULT_HOME)]
    pub home: PathBuf,
    /// The address the services listen on; the port is the service's default.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The server's `host:port`, instead of the service's default address on `--host`.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Dial each service at its own name and default port (`collector:7201`), as the
    /// services of docker-compose are reached, instead of at `--host`.
    #[arg(long, env = "XDR_DIAL_BY_NAME", conflicts_with = "addr")]
    pub by_name: bool,
    /// Longest one call may take.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl Target {
    /// A connected channel to `service`, each call on it bounded by `--timeout`.
    pub async fn channel(&self, service: &ServiceEntry) -> anyhow::Result<Channel> {
        let port = service.grpc_port.context("no gRPC port")?;
        let addr = match &self.addr {
            Some(addr) => addr.clone(),
            None if self.by_name => format!("{}:{port}", service.name),
            None => layout::dial_addr(self.host, port).to_string(),
        };
        let tls = probe::operator_tls(&Home::new(&self.home).certs())?;
        channel::endpoint(&addr, service.name, &tls)?
            .timeout(self.timeout)
            .connect()
            .await
            .with_context(|| format!("connecting to {} at {addr}", service.name))
    }
}

/// A failed call as the operator reads it.
pub fn failed(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

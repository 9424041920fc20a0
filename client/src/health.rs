//! `xdrctl health SERVICE`: exits 0 when the service answers SERVING (a container's health
//! check: the service's own gRPC health over mTLS, or the gateway's `/healthz`).

use anyhow::{Context, bail};
use xdr_mesh::directory::{self, GATEWAY};

use crate::{connect::Target, layout::Home, probe};

#[derive(clap::Args)]
pub struct Args {
    /// `collector`, `enrichment`, `threatintel`, `playbook` or `gateway`.
    service: String,
    #[command(flatten)]
    target: Target,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let entry = directory::SERVICES
        .iter()
        .find(|s| s.name == args.service)
        .with_context(|| format!("{:?} is not a mesh service", args.service))?;
    let port = entry.grpc_port.unwrap_or(GATEWAY.http_port);
    let addr = match &args.target.addr {
        Some(addr) => addr.clone(),
        None if args.target.by_name => format!("{}:{port}", entry.name),
        None => crate::layout::dial_addr(args.target.host, port).to_string(),
    };
    let resolved = tokio::net::lookup_host(&addr)
        .await
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let state = if entry.grpc_port.is_some() {
        let tls = probe::operator_tls(&Home::new(&args.target.home).certs())?;
        probe::grpc_health(resolved, entry.name, &tls)
            .await
            .map(|status| status.as_str_name().to_owned())
    } else {
        probe::gateway_health(resolved).await.map(|code| {
            if code == 200 {
                "SERVING".into()
            } else {
                format!("HTTP {code}")
            }
        })
    };
    match state {
        Ok(state) if state == "SERVING" => {
            println!("{} {addr} SERVING", entry.name);
            Ok(())
        }
        Ok(state) => bail!("{} {addr} {state}", entry.name),
        Err(why) => bail!("{} {addr} unreachable: {why}", entry.name),
    }
}

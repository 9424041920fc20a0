//! `xdrctl status`: one line per service of a running mesh.

use std::{net::IpAddr, path::PathBuf};

use xdr_mesh::directory::{self, GATEWAY};

use crate::{
    layout::{self, Home},
    probe,
};

#[derive(clap::Args)]
pub struct Args {
    /// The mesh home (its `certs/` holds the operator certificate).
    #[arg(long, env = "XDR_HOME", default_value = xdr_mesh::config::DEFAULT_HOME)]
    home: PathBuf,
    /// The address the services listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let tls = probe::operator_tls(&Home::new(&args.home).certs())?;
    let mut all_serving = true;
    for service in directory::grpc_services() {
        let port = service.grpc_port.expect("a gRPC service has a gRPC port");
        let addr = layout::dial_addr(args.host, port);
        let service = service.name;
        let state = match probe::grpc_health(addr, service, &tls).await {
            Ok(status) => status.as_str_name().to_owned(),
            Err(why) => format!("UNREACHABLE ({why})"),
        };
        all_serving &= state == "SERVING";
        println!("{service:<12} {addr:<21} {state}");
    }
    let addr = layout::dial_addr(args.host, GATEWAY.http_port);
    let state = match probe::gateway_health(addr).await {
        Ok(200) => "SERVING".to_owned(),
        Ok(code) => format!("NOT_SERVING (HTTP {code})"),
        Err(why) => format!("UNREACHABLE ({why})"),
    };
    all_serving &= state == "SERVING";
    println!("{:<12} {addr:<21} {state}", GATEWAY.name);
    anyhow::ensure!(all_serving, "not every service is SERVING");
    Ok(())
}

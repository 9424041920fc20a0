//! `xdrctl call`: any unary RPC of the mesh with a JSON request, its JSON reply printed —
//! through the mesh's one JSON codec (`xdr_proto::json`), as the operator over mTLS.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use tonic::client::Grpc;
use xdr_mesh::{channel, directory};
use xdr_proto::json::{self, EncodedCodec};

use crate::{
    layout::{self, Home},
    probe,
};

/// Replies larger than this are refused: a reply is printed whole.
const MAX_REPLY: usize = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// The RPC: `xdr.v1.<Service>/<Method>`, e.g. `xdr.v1.ThreatIntel/Lookup`.
    rpc: String,
    /// The request, in the proto3 JSON mapping (`{"objects": [{"value": "192.0.2.1"}]}`).
    #[arg(default_value = "{}")]
    request: String,
    /// The mesh home (its `certs/` holds the operator certificate).
    #[arg(long, env = "XDR_HOME", default_value = xdr_mesh::config::DEFAULT_HOME)]
    home: PathBuf,
    /// The address the services listen on; the port is the service's default.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The server's `host:port`, instead of the service's default address on `--host`.
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Longest the call may take.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let path = args.rpc.trim_start_matches('/');
    let method = json::method(path).with_context(|| {
        format!("no RPC {path:?} in xdr.v1 (expected xdr.v1.<Service>/<Method>)")
    })?;
    if method.is_client_streaming() || method.is_server_streaming() {
        bail!("{path} streams; xdrctl call makes unary calls (use grpcurl for streams)");
    }
    let grpc_service = method.parent_service().full_name().to_owned();
    let service = directory::serving(&grpc_service)
        .with_context(|| format!("no mesh service serves {grpc_service}"))?;
    let addr = match &args.addr {
        Some(addr) => addr.clone(),
        None => {
            layout::dial_addr(args.host, service.grpc_port.expect("it serves gRPC")).to_string()
        }
    };
    let request = json::json_to_protobuf(method.input(), &args.request)
        .with_context(|| format!("the request is not a {}", method.input().full_name()))?;

    let tls = probe::operator_tls(&Home::new(&args.home).certs())?;
    let endpoint = channel::endpoint(&addr, service.name, &tls)?.timeout(args.timeout);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {} at {addr}", service.name))?;
    let mut grpc = Grpc::new(channel).max_decoding_message_size(MAX_REPLY);
    grpc.ready().await.context("the connection")?;
    let route = http::uri::PathAndQuery::try_from(format!("/{path}"))?;
    let reply = grpc
        .unary(tonic::Request::new(request), route, EncodedCodec)
        .await;
    match reply {
        Ok(reply) => {
            let text = json::protobuf_to_json(method.output(), &reply.into_inner())?;
            let value: serde_json::Value = serde_json::from_str(&text)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Err(status) => bail!("{:?}: {}", status.code(), status.message()),
    }
}

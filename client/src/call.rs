//! `xdrctl call`: any unary RPC of the mesh with a JSON request, its JSON reply printed —
//! through the mesh's one JSON codec (`xdr_proto::json`), as the operator over mTLS.

use anyhow::{Context, bail};
use tonic::client::Grpc;
use xdr_mesh::directory;
use xdr_proto::json::{self, EncodedCodec};

use crate::connect::Target;

/// Replies larger than this are refused: a reply is printed whole.
const MAX_REPLY: usize = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// The RPC: `xdr.v1.<Service>/<Method>`, e.g. `xdr.v1.ThreatIntel/Lookup`.
    rpc: String,
    /// The request, in the proto3 JSON mapping (`{"objects": [{"value": "192.0.2.1"}]}`).
    #[arg(default_value = "{}")]
    request: String,
    #[command(flatten)]
    target: Target,
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
    let request = json::json_to_protobuf(method.input(), &args.request)
        .with_context(|| format!("the request is not a {}", method.input().full_name()))?;

    let channel = args.target.channel(&service).await?;
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

//! The mesh services behind the gateway, one lazily connected mTLS channel each.

use tonic::transport::Channel;
use xdr_mesh::{channel, tls::TlsMaterial};

/// Where the gateway reaches each service (`host:port`; the host may be a compose name).
#[derive(clap::Args, Clone, Debug)]
pub struct UpstreamArgs {
    /// Address of the collector service's gRPC server.
    #[arg(
        long,
        env = "XDR_COLLECTOR_ADDR",
        default_value = "127.0.0.1:7201",
        value_name = "HOST:PORT"
    )]
    collector_addr: String,
    /// Address of the enrichment service's gRPC server.
    #[arg(
        long,
        env = "XDR_ENRICHMENT_ADDR",
        default_value = "127.0.0.1:7202",
        value_name = "HOST:PORT"
    )]
    enrichment_addr: String,
    /// Address of the threatintel service's gRPC server.
    #[arg(
        long,
        env = "XDR_THREATINTEL_ADDR",
        default_value = "127.0.0.1:7203",
        value_name = "HOST:PORT"
    )]
    threatintel_addr: String,
    /// Address of the playbook service's gRPC server.
    #[arg(
        long,
        env = "XDR_PLAYBOOK_ADDR",
        default_value = "127.0.0.1:7204",
        value_name = "HOST:PORT"
    )]
    playbook_addr: String,
}

/// One channel per service, named by the service's mesh identity.
#[derive(Clone)]
pub struct Upstreams {
    pub services: Vec<(&'static str, Channel)>,
}

impl Upstreams {
    pub fn dial(args: &UpstreamArgs, tls: &TlsMaterial) -> Result<Self, channel::ChannelError> {
        let targets = [
            ("collector", &args.collector_addr),
            ("enrichment", &args.enrichment_addr),
            ("threatintel", &args.threatintel_addr),
            ("playbook", &args.playbook_addr),
        ];
        let services = targets
            .into_iter()
            .map(|(name, addr)| Ok((name, channel::lazy(addr, name, tls)?)))
            .collect::<Result<_, channel::ChannelError>>()?;
        Ok(Upstreams { services })
    }
}

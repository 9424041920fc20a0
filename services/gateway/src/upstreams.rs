//! The mesh services behind the gateway: each one address, or its replicas' addresses
//! (`A,B`), dialled over mTLS and balanced by health (`xdr_mesh::replicas`).

use xdr_mesh::replicas::Balanced as Channel;
use xdr_mesh::{
    channel,
    directory::{self, COLLECTOR, ENRICHMENT, PLAYBOOK, THREATINTEL},
    replicas::Replicas,
    tls::TlsMaterial,
};

/// Where the gateway reaches each service (`host:port`; the host may be a compose name).
#[derive(clap::Args, Clone, Debug)]
pub struct UpstreamArgs {
    /// Address of the collector service's gRPC server, or its replicas' (`A,B`).
    #[arg(
        long,
        env = "XDR_COLLECTOR_ADDR",
        default_value_t = COLLECTOR.dial_addr(),
        value_name = "HOST:PORT"
    )]
    collector_addr: String,
    /// Address of the enrichment service's gRPC server, or its replicas' (`A,B`).
    #[arg(
        long,
        env = "XDR_ENRICHMENT_ADDR",
        default_value_t = ENRICHMENT.dial_addr(),
        value_name = "HOST:PORT"
    )]
    enrichment_addr: String,
    /// Address of the threatintel service's gRPC server, or its replicas' (`A,B`).
    #[arg(
        long,
        env = "XDR_THREATINTEL_ADDR",
        default_value_t = THREATINTEL.dial_addr(),
        value_name = "HOST:PORT"
    )]
    threatintel_addr: String,
    /// Address of the playbook service's gRPC server, or its replicas' (`A,B`).
    #[arg(
        long,
        env = "XDR_PLAYBOOK_ADDR",
        default_value_t = PLAYBOOK.dial_addr(),
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
            (COLLECTOR, &args.collector_addr),
            (ENRICHMENT, &args.enrichment_addr),
            (THREATINTEL, &args.threatintel_addr),
            (PLAYBOOK, &args.playbook_addr),
        ];
        let services = targets
            .into_iter()
            .map(|(service, addr)| {
                Ok((
                    service.name,
                    Replicas::new(addr, service.name, tls)?.service(),
                ))
            })
            .collect::<Result<_, channel::ChannelError>>()?;
        Ok(Upstreams { services })
    }

    /// The channel to the service that serves the gRPC service `full_name`
    /// (`xdr.v1.ThreatIntel`), if one does.
    pub fn serving(&self, full_name: &str) -> Option<Channel> {
        let entry = directory::grpc_services().find(|s| s.grpc_service == Some(full_name))?;
        Some(self.channel(entry.name))
    }

    /// The channel to the service named `name` (a directory entry's name).
    pub fn channel(&self, name: &str) -> Channel {
        self.services
            .iter()
            .find(|(service, _)| *service == name)
            .map(|(_, channel)| channel.clone())
            .expect("every service in the directory is dialled")
    }
}

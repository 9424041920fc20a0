//! `xdr-gateway`: the HTTP JSON front door of the mesh. People and scripts use plain HTTP;
//! the gateway calls the services over mTLS with its own identity.

mod health;
mod http;
mod upstreams;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::Parser;
use xdr_mesh::config::{ConfigFileArg, LogArgs, TlsArgs};

const NAME: &str = "gateway";

#[derive(Parser, Debug)]
#[command(
    name = "xdr-gateway",
    version,
    about = "HTTP JSON gateway in front of the xdr mesh services."
)]
struct Config {
    #[command(flatten)]
    config_file: ConfigFileArg,
    /// Address of the HTTP server (plain HTTP, for curl and scripts). Port 0 picks a free port.
    #[arg(long, env = "XDR_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    #[command(flatten)]
    upstreams: upstreams::UpstreamArgs,
    /// Longest the gateway waits for a service to answer a health check.
    #[arg(long, env = "XDR_HEALTH_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    health_timeout: Duration,
    /// After SIGTERM/SIGINT, how long requests in flight may run before the gateway stops anyway.
    #[arg(long, env = "XDR_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    xdr_mesh::tls::install_crypto_provider();
    xdr_mesh::telemetry::init(&config.log).context("log filter")?;
    let tls = config.tls.load(NAME).context("loading TLS files")?;
    let upstreams =
        upstreams::Upstreams::dial(&config.upstreams, &tls).context("upstream addresses")?;
    let shutdown = xdr_mesh::shutdown::on_signal().context("installing signal handlers")?;

    let state = http::AppState {
        upstreams,
        health_timeout: config.health_timeout,
    };
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding {}", config.http_listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(service = NAME, %addr, "listening");

    let stopping = shutdown.clone();
    let serve = axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move { stopping.cancelled().await });
    tokio::select! {
        served = serve => served.context("serving HTTP")?,
        _ = xdr_mesh::shutdown::drain_deadline(shutdown, config.shutdown_grace) => tracing::warn!(grace = ?config.shutdown_grace, "requests still in flight after the shutdown grace; stopping anyway"),
    }
    tracing::info!(service = NAME, "stopped");
    Ok(())
}

//! `xdr-gateway`: the HTTP JSON front door of the mesh. People and scripts use plain HTTP;
//! the gateway calls the services over mTLS with its own identity.

mod connect;
mod console;
mod health;
mod http;
mod input;
mod metrics;
mod on_behalf;
mod openapi;
mod people;
mod problem;
mod rest;
mod trace_context;
mod upstreams;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::Parser;
use xdr_mesh::{
    config::{ConfigFileArg, LogArgs, TlsArgs},
    directory::{COLLECTOR, GATEWAY},
    http::HttpLimits,
};

/// Every request allocates and frees its head, body and answer: glibc's malloc and free were a
/// fifth of the gateway's time in `perf` under one-event posts.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "xdr-gateway",
    version,
    about = "HTTP JSON gateway in front of the xdr mesh services."
)]
struct Config {
    #[command(flatten)]
    config_file: ConfigFileArg,
    /// Address of the HTTP server (plain HTTP, for curl and scripts; `/metrics` too). Port 0
    /// picks a free port, logged as `listening`.
    #[arg(long, env = "XDR_HTTP_LISTEN", default_value_t = GATEWAY.default_http_listen())]
    http_listen: SocketAddr,
    #[command(flatten)]
    upstreams: upstreams::UpstreamArgs,
    #[command(flatten)]
    input: input::InputArgs,
    /// Folder of the gateway's state: its users and tokens [default: .xdr/data/gateway].
    #[arg(long, env = "XDR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Take API tokens over plain HTTP from any address, not only loopback (a token on the
    /// wire can be read: prefer HTTPS).
    #[arg(long, env = "XDR_ALLOW_PLAIN_HTTP_TOKENS")]
    allow_plain_http_tokens: bool,
    /// Sign-ins (`/v1/people/login`) a client address may try a minute; past it the answer is
    /// 429. 0: no limit.
    #[arg(long, env = "XDR_LOGIN_RATE", default_value_t = 30)]
    login_rate: u32,
    /// Serve HTTPS with this certificate chain (PEM; `xdrctl certs` writes
    /// `gateway-https.crt`). `--tls-cert` is the gateway's mesh identity, as for every service.
    #[arg(
        long,
        env = "XDR_HTTPS_CERT",
        value_name = "FILE",
        requires = "https_key"
    )]
    https_cert: Option<std::path::PathBuf>,
    /// The HTTPS certificate's private key (PEM).
    #[arg(
        long,
        env = "XDR_HTTPS_KEY",
        value_name = "FILE",
        requires = "https_cert"
    )]
    https_key: Option<std::path::PathBuf>,
    /// Longest the gateway waits for a service to answer a health check.
    #[arg(long, env = "XDR_HEALTH_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    health_timeout: Duration,
    /// Longest one HTTP request may take; past it the reply is 408.
    #[arg(long, env = "XDR_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// After SIGTERM/SIGINT, how long requests in flight may run before the gateway stops anyway.
    #[arg(long, env = "XDR_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// Open HTTP connections at once; one more is closed as soon as it is accepted.
const MAX_CONNECTIONS: usize = 1024;
/// Longest a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = xdr_mesh::config::parse();
    xdr_mesh::tls::install_crypto_provider();
    let _telemetry =
        xdr_mesh::telemetry::init(&config.log, "xdr-gateway").context("logs and spans")?;
    let tls = config.tls.load(GATEWAY.name).context("loading TLS files")?;
    let upstreams =
        upstreams::Upstreams::dial(&config.upstreams, &tls).context("upstream addresses")?;
    let shutdown = xdr_mesh::shutdown::on_signal().context("installing signal handlers")?;

    let https = match (&config.https_cert, &config.https_key) {
        (Some(cert), Some(key)) => Some(
            xdr_mesh::tls::https_server_config(cert, key)
                .context("loading the HTTPS certificate")?,
        ),
        _ => None,
    };
    let data_dir = config
        .data_dir
        .clone()
        .unwrap_or_else(|| std::path::Path::new(".xdr/data").join(GATEWAY.name));
    let data_dir = xdr_mesh::data_dir::DataDir::open(&data_dir).context("data directory")?;
    let people = people::People::open(data_dir.path()).context("opening the people store")?;
    people::bootstrap::first_admin(&people, data_dir.path())
        .context("making the first Main administrator")?;
    let people = people::routes::PeopleState {
        people,
        policy: people::TokenPolicy {
            // Over HTTPS a token cannot be read on the wire.
            plain_http_from_anywhere: config.allow_plain_http_tokens || https.is_some(),
        },
        login_rate: std::num::NonZeroU32::new(config.login_rate).map(|rate| {
            std::sync::Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                rate,
            )))
        }),
    };
    if let Some(rate) = people.login_rate.clone() {
        // The sign-in rate holds one entry per address seen lately, not for ever.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                rate.retain_recent();
                rate.shrink_to_fit();
            }
        });
    }
    let input = input::Input::new(&config.input, upstreams.channel(COLLECTOR.name));
    let state = http::AppState {
        upstreams,
        health_timeout: config.health_timeout,
    };
    let listener = xdr_mesh::http::bind(config.http_listen)?;
    let limits = HttpLimits {
        max_connections: MAX_CONNECTIONS,
        header_timeout: HEADER_TIMEOUT,
        request_timeout: config.request_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    // Each collector's own input port, bound before anything is served: a taken port is a
    // start-up error.
    let mut own_ports = Vec::new();
    for (collector, addr) in &config.input.input_listen {
        let listener = xdr_mesh::http::bind(*addr)?;
        let routes = input::own_port_router(input.clone(), collector.clone())
            .layer(axum::middleware::from_fn(metrics::count_requests));
        own_ports.push((listener, routes));
    }
    for (listener, routes) in own_ports {
        tokio::spawn(xdr_mesh::http::serve(
            "input listening",
            listener,
            routes,
            limits,
            shutdown.clone(),
            https.clone(),
        ));
    }
    let routes = http::router(state, input, people, https.is_some());
    xdr_mesh::http::serve("listening", listener, routes, limits, shutdown, https).await;
    tracing::info!(service = GATEWAY.name, "stopped");
    Ok(())
}

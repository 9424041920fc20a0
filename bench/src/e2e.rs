//! The end-to-end scenario against a running mesh (docker-compose, or `xdrctl up` on the
//! host): NDJSON posts to the gateway's `/input` for the quickstart collector `http-input`
//! (events looked up by the seed's rule against the threat intel the mesh was started with,
//! stored, matches raised as alerts), acknowledged events per second; and, while that load
//! runs, probes — one marked event posted, then searched for until the search finds it —
//! timed from the post to the answer that holds it (the search itself waits for the store to
//! hold what was acknowledged before it).
//!
//! `bench/e2e/run.sh` starts both meshes on the same generated feed and runs this twice.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{collector::raw_batches, dataset, gateway::post_for};

#[derive(clap::Args)]
pub struct Args {
    /// What the figures are printed under (`compose`, `host`).
    #[arg(long, default_value = "mesh")]
    label: String,
    /// The gateway's `host:port`.
    #[arg(long)]
    gateway: SocketAddr,
    /// A token that may search events (the first Main administrator's).
    #[arg(long, env = "XDR_TOKEN", hide_env_values = true)]
    token: String,
    /// Indicators in the feed the mesh runs with (the events' values are drawn from it: half
    /// of them hits).
    #[arg(long, default_value_t = 1_000_000)]
    indicators: u64,
    /// Connections posting at once, each waiting for its answer.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Set the seed's rule's requests-per-second limit to this first (its default, KUMA's,
    /// is 1,000 lookups a second: the mesh's figure is then the rule's).
    #[arg(long)]
    rule_rps: Option<u32>,
}

/// Writes the generated feed of `indicators` and prints its folder (for the run script).
#[derive(clap::Args)]
pub struct FeedArgs {
    #[arg(long, default_value_t = 1_000_000)]
    indicators: u64,
    #[arg(long, default_value = "target/bench/e2e")]
    dir: PathBuf,
}

pub fn feed(args: FeedArgs) -> anyhow::Result<()> {
    let (feeds, bytes) = dataset::generated_feed(&args.dir, args.indicators)?;
    eprintln!("{} indicators, {bytes} bytes", args.indicators);
    println!("{}", feeds.display());
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(rps) = args.rule_rps {
        set_rule_rps(args.gateway, &args.token, rps).await?;
    }
    let bodies = raw_batches(args.indicators, args.batch);
    // Warm-up: connections, the collector's stream, the store's first partition.
    post_for(
        args.gateway,
        "/input",
        &bodies,
        args.connections,
        Duration::from_secs(2),
    )
    .await?;
    let load = post_for(
        args.gateway,
        "/input",
        &bodies,
        args.connections,
        args.duration,
    );
    let probes = probe_for(args.gateway, &args.token, args.duration);
    let (load, mut latencies) = tokio::try_join!(load, probes)?;
    let (p50, p99) = super::percentiles(&mut latencies);
    println!(
        "{}: {:.0} events/s acknowledged through /input ({} connections x {} events; post p50 {:.2?}, p99 {:.2?})",
        args.label, load.events_per_second, args.connections, args.batch, load.p50, load.p99
    );
    println!(
        "{}: /input to searchable, {} probes under that load: p50 {:.2?}, p99 {:.2?}",
        args.label,
        latencies.len(),
        p50,
        p99
    );
    Ok(())
}

/// Sets the RPS limit of the seed's rule "Test CT enrichment" (tenant Shared).
async fn set_rule_rps(gateway: SocketAddr, token: &str, rps: u32) -> anyhow::Result<()> {
    let (status, listed) = http(
        gateway,
        "GET",
        "/v1/enrichment/rules?tenant=Shared",
        Some(token),
        None,
    )
    .await?;
    anyhow::ensure!(status == 200, "listing rules: {status} {listed}");
    let mut rule = listed["rules"]
        .as_array()
        .and_then(|rules| {
            rules
                .iter()
                .find(|r| r["name"] == "Test CT enrichment")
                .cloned()
        })
        .ok_or_else(|| anyhow::anyhow!("no rule \"Test CT enrichment\": {listed}"))?;
    rule["rps"] = rps.into();
    let path = format!(
        "/v1/enrichment/rules/{}",
        rule["id"].as_str().unwrap_or_default()
    );
    let (status, saved) = http(gateway, "PUT", &path, Some(token), Some(rule.to_string())).await?;
    anyhow::ensure!(status == 200, "updating the rule: {status} {saved}");
    println!("the seed's rule now allows {rps} lookups a second");
    Ok(())
}

/// Posts a marked event every 200 ms for `duration` and times each until a search finds it.
async fn probe_for(
    gateway: SocketAddr,
    token: &str,
    duration: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let run = std::process::id();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut n = 0;
    while started.elapsed() < duration {
        n += 1;
        let url = format!("http://probe-{run}-{n}.example/");
        let at = Instant::now();
        let (status, answer) = http(
            gateway,
            "POST",
            "/input",
            None,
            Some(format!("{{\"RequestUrl\":\"{url}\"}}")),
        )
        .await?;
        anyhow::ensure!(status == 200, "probe {n}: {status} {answer}");
        let sql = format!("SELECT count() FROM events WHERE RequestUrl = '{url}'");
        let path = format!("/v1/events?sql={}", encoded(&sql));
        loop {
            let (status, found) = http(gateway, "GET", &path, Some(token), None).await?;
            anyhow::ensure!(status == 200, "search: {status} {found}");
            let count = &found["rows"][0]["cells"][0]["integer"];
            if count == "1" || count == 1 {
                break;
            }
            anyhow::ensure!(
                at.elapsed() < Duration::from_secs(60),
                "probe {n} never found: {found}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(at.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(latencies)
}

/// One request on a connection of its own: the status and the JSON answer.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
}

/// `text` percent-encoded for a query string.
fn encoded(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

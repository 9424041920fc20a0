//! `xdr-bench`: measured scenarios whose figures go into issue notes. Benchmarks are
//! commands, never timed assertions in tests. A crate of its own, so the operator CLI does
//! not link the threat-intel engine the in-process figures need.

mod collector;
mod cpu;
mod dataset;
mod e2e;
mod enrichment;
mod gateway;
mod server;
mod threatintel;

use clap::Parser;

/// The same allocator as xdr-threatintel, so the in-process figures compare.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "xdr-bench",
    version,
    about = "Benchmark scenarios of the xdr mesh; run a release build."
)]
enum Scenario {
    /// Indicator index and LookupStream: load time, memory, lookups per second, batch latency.
    Threatintel(threatintel::Args),
    /// Enrich over mTLS against in-process enrichment: events per second, batch latency.
    Enrichment(enrichment::Args),
    /// IngestStream acknowledged events per second with and without the seed's rule; the
    /// seed's SELECT and a GROUP BY over millions of stored events.
    Collector(collector::Args),
    /// HTTP input through the gateway, one and 1,000 events per request, against the
    /// collector's IngestStream directly.
    Gateway(gateway::Args),
    /// A running mesh end to end (compose or `xdrctl up`): events/s through `/input`, and
    /// the time from a post to a search that finds it, under that load.
    E2e(e2e::Args),
    /// Writes the generated feed (for `bench/e2e/run.sh`) and prints its folder.
    Feed(e2e::FeedArgs),
}

/// The median and the 99th percentile of `latencies` (sorted here); zero when empty.
fn percentiles(
    latencies: &mut [std::time::Duration],
) -> (std::time::Duration, std::time::Duration) {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (at(0.50), at(0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    xdr_mesh::tls::install_crypto_provider();
    match Scenario::parse() {
        Scenario::Threatintel(args) => threatintel::run(args).await,
        Scenario::Enrichment(args) => enrichment::run(args).await,
        Scenario::Collector(args) => collector::run(args).await,
        Scenario::Gateway(args) => gateway::run(args).await,
        Scenario::E2e(args) => e2e::run(args).await,
        Scenario::Feed(args) => e2e::feed(args),
    }
}

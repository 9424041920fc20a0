//! `xdrctl bench`: measured scenarios whose figures go into issue notes. Benchmarks are
//! commands, never timed assertions in tests.

mod dataset;
mod enrichment;
mod server;
mod threatintel;

#[derive(clap::Subcommand)]
pub enum Scenario {
    /// Indicator index and LookupStream: load time, memory, lookups per second, batch latency.
    Threatintel(threatintel::Args),
    /// Enrich over mTLS against in-process enrichment: events per second, batch latency.
    Enrichment(enrichment::Args),
}

pub async fn run(scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::Threatintel(args) => threatintel::run(args).await,
        Scenario::Enrichment(args) => enrichment::run(args).await,
    }
}

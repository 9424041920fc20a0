//! `xdrctl bench`: measured scenarios whose figures go into issue notes. Benchmarks are
//! commands, never timed assertions in tests.

mod dataset;
mod server;
mod threatintel;

#[derive(clap::Subcommand)]
pub enum Scenario {
    /// Indicator index and LookupStream: load time, memory, lookups per second, batch latency.
    Threatintel(threatintel::Args),
}

pub async fn run(scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::Threatintel(args) => threatintel::run(args).await,
    }
}

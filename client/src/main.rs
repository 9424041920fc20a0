//! `xdrctl`: the operator's command line for the xdr mesh.

mod alerts;
mod call;
mod certs;
mod child;
mod collector;
mod connect;
mod health;
mod ingest;
mod layout;
mod people;
mod playbook;
mod probe;
mod quickstart;
mod rules;
mod search;
mod secret;
mod status;
mod ti;
mod traces;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xdrctl",
    version,
    about = "Operate the xdr mesh: certificates, starting it, checking it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a development PKI: a mesh CA, one certificate per service and an operator one.
    Certs(certs::Args),
    /// Start the whole mesh on this machine and keep it up until Ctrl-C.
    Up(up::Args),
    /// Show whether each service of a running mesh is SERVING.
    Status(status::Args),
    /// Exits 0 when one service answers SERVING (for container health checks).
    Health(health::Args),
    /// Call a unary RPC with a JSON request and print its JSON reply.
    Call(call::Args),
    /// Create the seed's enrichment rule and collector (`http-input`) unless they exist.
    Quickstart(quickstart::Args),
    /// Collectors: list, show, create, delete.
    #[command(subcommand)]
    Collector(collector::Command),
    /// Search events with KUMA's SQL and print the rows.
    Search(search::Args),
    /// Send a file of events (NDJSON) to a collector.
    Ingest(ingest::Args),
    /// The gateway's users: list, create, delete.
    #[command(subcommand)]
    User(people::UserCommand),
    /// API tokens: list, create, revoke.
    #[command(subcommand)]
    Token(people::TokenCommand),
    /// Alerts raised from threat-intel matches.
    #[command(subcommand)]
    Alerts(alerts::Command),
    /// Response playbooks: list them, launch one on an alert.
    #[command(subcommand)]
    Playbook(playbook::Command),
    /// Credentials the playbooks sign in with (passwords never shown).
    #[command(subcommand)]
    Secret(secret::Command),
    /// A small OTLP trace receiver, and a trace it received shown as a tree.
    #[command(subcommand)]
    Traces(traces::Command),
    /// Threat intel: suppliers and how their feeds and polls fared; reload the feeds.
    #[command(subcommand)]
    Ti(ti::Command),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    xdr_mesh::tls::install_crypto_provider();
    match Cli::parse().command {
        Command::Certs(args) => certs::run(&args),
        Command::Up(args) => up::run(args).await,
        Command::Status(args) => status::run(&args).await,
        Command::Health(args) => health::run(&args).await,
        Command::Call(args) => call::run(&args).await,
        Command::Quickstart(args) => quickstart::run(&args).await,
        Command::Collector(command) => collector::run(command).await,
        Command::Search(args) => search::run(&args).await,
        Command::Ingest(args) => ingest::run(&args).await,
        Command::User(command) => people::users(command).await,
        Command::Token(command) => people::tokens(command).await,
        Command::Alerts(command) => alerts::run(command).await,
        Command::Playbook(command) => playbook::run(command).await,
        Command::Secret(command) => secret::run(command).await,
        Command::Traces(command) => traces::run(command).await,
        Command::Ti(command) => ti::run(command).await,
    }
}

/// `message` (of protobuf type `type_name`) as pretty JSON on standard output.
pub fn print_json(type_name: &str, message: &impl prost::Message) -> anyhow::Result<()> {
    let text = xdr_proto::json::to_json(type_name, message)?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

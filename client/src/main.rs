//! `xdrctl`: the operator's command line for the xdr mesh.

mod call;
mod certs;
mod child;
mod layout;
mod probe;
mod status;
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
    /// Call a unary RPC with a JSON request and print its JSON reply.
    Call(call::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    xdr_mesh::tls::install_crypto_provider();
    match Cli::parse().command {
        Command::Certs(args) => certs::run(&args),
        Command::Up(args) => up::run(args).await,
        Command::Status(args) => status::run(&args).await,
        Command::Call(args) => call::run(&args).await,
    }
}

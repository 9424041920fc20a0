//! `xdrctl certs`: the development PKI.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write `ca.crt`, `ca.key`, `<service>.crt|key` and `operator.crt|key` into.
    #[arg(long, default_value = ".xdr/certs")]
    out: PathBuf,
    /// Replace an existing CA (every certificate it signed stops being trusted).
    #[arg(long, conflicts_with = "if_missing")]
    force: bool,
    /// Leave an existing PKI as it is (and succeed): for a start script run every time.
    #[arg(long)]
    if_missing: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.if_missing && args.out.join(xdr_mesh::pki::CA_CERT_FILE).exists() {
        println!("{} holds a PKI: left as it is", args.out.display());
        return Ok(());
    }
    let written = xdr_mesh::pki::write_dev_pki(&args.out, args.force)
        .context("writing the development PKI")?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

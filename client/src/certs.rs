//! `xdrctl certs`: the development PKI.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write `ca.crt`, `ca.key`, `<service>.crt|key` and `operator.crt|key` into.
    #[arg(long, default_value = ".xdr/certs")]
    out: PathBuf,
    /// Replace an existing CA (every certificate it signed stops being trusted).
    #[arg(long)]
    force: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let written = xdr_mesh::pki::write_dev_pki(&args.out, args.force)
        .context("writing the development PKI")?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

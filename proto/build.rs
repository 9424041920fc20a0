//! Compiles `xdr/v1/*.proto` with protox (pure Rust, no system `protoc`), writes the encoded
//! descriptor set for server reflection, and generates prost messages and tonic services.
//!
//! `compile_fds` ignores `file_descriptor_set_path`, so the descriptor set is encoded here.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "xdr/v1/common.proto",
    "xdr/v1/diagnostics.proto",
    "xdr/v1/threatintel.proto",
    "xdr/v1/enrichment.proto",
    "xdr/v1/collector.proto",
    "xdr/v1/playbook.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=xdr");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["."])?;
    // Source info carries the proto comments into generated docs and into `grpcurl describe`.
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();
    fs::write(out_dir.join("xdr_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        // RPCs of services not yet built answer UNIMPLEMENTED from the generated defaults; each
        // service overrides the methods it implements.
        .generate_default_stubs(true)
        // Requests that do not decode are INVALID_ARGUMENT, not INTERNAL: see src/codec.rs.
        .codec_path("crate::codec::XdrCodec")
        // Event fields and match context are a handful of entries each: a B-tree inserts
        // them faster than a SipHash map (measured with `xdrctl bench enrichment`) and keeps
        // them in order, so JSON output reads the same every time.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}

//! Compiles `xdr/v1/*.proto` with protox (pure Rust, no system `protoc`), writes the encoded
//! descriptor set for server reflection, and generates prost messages and tonic services.
//!
//! `compile_fds` ignores `file_descriptor_set_path`, so the descriptor set is encoded here.

use std::{env, fs, path::PathBuf};

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
    println!("cargo:rerun-if-changed=google");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut compiler = protox::Compiler::new(["."])?;
    // Source info carries the proto comments into generated docs and into `grpcurl describe`.
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();
    // Encoded by protox itself: `prost_types` drops the method options' extensions (the
    // `google.api.http` REST bindings the gateway reads).
    fs::write(
        out_dir.join("xdr_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // RPCs of services not yet built answer UNIMPLEMENTED from the generated defaults; each
        // service overrides the methods it implements.
        .generate_default_stubs(true)
        // Requests that do not decode are INVALID_ARGUMENT, not INTERNAL: see src/codec.rs.
        .codec_path("crate::codec::XdrCodec")
        // Event fields and match context are a handful of entries each: a B-tree inserts
        // them faster than a SipHash map (measured with `xdr-bench enrichment`) and keeps
        // them in order, so JSON output reads the same every time.
        .btree_map(".")
        // Requests that carry a password get a Debug of their own that masks it
        // (src/redacted.rs): a debug dump never shows a secret.
        .skip_debug([".xdr.v1.CreateSecretRequest", ".xdr.v1.UpdateSecretRequest"])
        .compile_fds(fds.clone())?;

    // Second `xdr.v1.Enrichment` and `xdr.v1.ThreatIntel` servers whose bulk streams move
    // wire views (see src/wire.rs): `Enrich` takes and gives `crate::wire::WireEnrichBatch`,
    // each event kept as it arrived; `LookupStream` answers `crate::wire::WireLookupReply`,
    // each match encoded once, straight from the index. The bytes on the wire are the same;
    // every other type is the one generated above.
    let wire_dir = out_dir.join("wire");
    fs::create_dir_all(&wire_dir)?;
    let mut wire_services = fds;
    wire_services.file.retain(|file| {
        matches!(
            file.name(),
            "xdr/v1/enrichment.proto" | "xdr/v1/threatintel.proto"
        )
    });
    tonic_prost_build::configure()
        .build_client(false)
        .generate_default_stubs(true)
        .codec_path("crate::codec::XdrCodec")
        .extern_path(".xdr.v1", "crate::pb")
        .extern_path(".xdr.v1.EnrichBatch", "crate::wire::WireEnrichBatch")
        .extern_path(".xdr.v1.LookupBatchReply", "crate::wire::WireLookupReply")
        .out_dir(&wire_dir)
        .compile_fds(wire_services)?;
    Ok(())
}

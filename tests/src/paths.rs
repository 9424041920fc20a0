//! Where the binaries and tools under test are.

use std::path::PathBuf;

/// The cargo target folder of the running test binary (`target/debug`), which holds the
/// service binaries built by `cargo build --bins` (the README's test command does that).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/debug/deps/<test-binary>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps")
        .to_owned()
}

/// The path of a workspace binary, checked to exist.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (tests/run does)",
        path.display()
    );
    path
}

/// The grpcurl binary: `$XDR_GRPCURL`, else the one tests/run installs under target/, else PATH.
pub fn grpcurl() -> PathBuf {
    tool("XDR_GRPCURL", "grpcurl")
}

/// schemathesis' `st`, as tests/run.sh installs it (or `XDR_SCHEMATHESIS`).
pub fn schemathesis() -> PathBuf {
    tool("XDR_SCHEMATHESIS", "st")
}

/// The venv's Python, which has selenium (tests/run.sh installs it), or `XDR_PYTHON`.
pub fn python() -> PathBuf {
    tool("XDR_PYTHON", "python3")
}

/// OASIS's TAXII 2.1 server `medallion`, as tests/run.sh installs it (or `XDR_MEDALLION`).
pub fn medallion() -> PathBuf {
    tool("XDR_MEDALLION", "medallion")
}

/// A tool from PyPI: where `variable` says, else in the venv tests/run.sh makes, else on
/// `PATH`.
fn tool(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let installed = bin_dir()
        .parent()
        .map(|target| target.join("tools/venv/bin").join(name));
    match installed {
        Some(path) if path.exists() => path,
        _ => PathBuf::from(name),
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

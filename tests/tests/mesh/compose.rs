//! The docker-compose file stays valid.

use std::process::Command;

use xdr_tests::paths;

#[test]
fn compose_file_is_valid() {
    let output = Command::new("docker-compose")
        .arg("--file")
        .arg(paths::workspace().join("docker-compose.yml"))
        .args(["config", "--quiet"])
        .output()
        .expect("docker-compose is installed (tests/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The image built here (`docker/runtime.Dockerfile`) and the runtime stage of the top-level
/// `Dockerfile` (for Dockers that can pull) say the same below their marker line.
#[test]
fn the_local_image_is_the_dockerfiles_runtime_stage() {
    let shared = |path: &str| -> Vec<String> {
        let text = std::fs::read_to_string(paths::workspace().join(path)).unwrap();
        let (_, rest) = text
            .split_once("# --- runtime (shared with")
            .unwrap_or_else(|| panic!("{path} has the marker line"));
        rest.lines().skip(1).map(str::to_owned).collect()
    };
    let local = shared("docker/runtime.Dockerfile");
    assert!(
        local.iter().any(|l| l.starts_with("ENV XDR_TLS_DIR")),
        "{local:?}"
    );
    assert_eq!(local, shared("Dockerfile"));
}

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

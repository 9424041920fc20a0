//! xdrctl: the development PKI, and the whole mesh started by one command and stopped by
//! Ctrl-C.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::PermissionsExt,
    process::Command,
    time::Duration,
};

use xdr_mesh::{identity::Identity, pki};
use xdr_tests::{Cert, Grpcurl, ServiceProcess, TestPki, mesh_up, paths};

fn xdrctl(args: &[&str]) -> std::process::Output {
    Command::new(paths::binary("xdrctl"))
        .args(args)
        .output()
        .expect("xdrctl runs")
}

fn identity_of(cert_file: &std::path::Path) -> Identity {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_file(cert_file).unwrap();
    Identity::from_certificate(&der).unwrap()
}

#[test]
fn certs_writes_a_pki_and_refuses_to_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_arg = out.to_str().unwrap();
    let first = xdrctl(&["certs", "--out", out_arg]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );

    let mut names: Vec<&str> = xdr_mesh::directory::SERVICES.map(|s| s.name).to_vec();
    names.push(Identity::OPERATOR);
    for name in names {
        assert_eq!(identity_of(&out.join(pki::cert_file(name))).name(), name);
        let mode = std::fs::metadata(out.join(pki::key_file(name)))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}.key is readable by others");
    }
    assert_eq!(
        std::fs::metadata(out.join(pki::CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let ca = std::fs::read(out.join(pki::CA_CERT_FILE)).unwrap();
    let again = xdrctl(&["certs", "--out", out_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(out.join(pki::CA_CERT_FILE)).unwrap(),
        ca,
        "a refused run changed the CA"
    );

    assert!(
        xdrctl(&["certs", "--out", out_arg, "--force"])
            .status
            .success()
    );
    assert_ne!(std::fs::read(out.join(pki::CA_CERT_FILE)).unwrap(), ca);
}

#[test]
fn up_starts_the_whole_mesh_and_ctrl_c_stops_it_cleanly() {
    const HOST: &str = "127.0.0.77";
    let home = tempfile::tempdir().unwrap();
    let mut up = mesh_up::up(home.path(), HOST);

    let certs = home.path().join("certs");
    for (service, port) in [
        ("collector", 7201),
        ("enrichment", 7202),
        ("threatintel", 7203),
        ("playbook", 7204),
    ] {
        let addr = format!("{HOST}:{port}").parse().unwrap();
        let health = Grpcurl::with_certs(&certs, Cert::Named("operator"))
            .server_name(service)
            .ok(addr, &["grpc.health.v1.Health/Check"]);
        assert!(health.contains("SERVING"), "{service}: {health}");
        assert!(
            home.path().join("data").join(service).join("LOCK").exists(),
            "{service} has no data directory"
        );
    }
    let status = Command::new(paths::binary("xdrctl"))
        .arg("status")
        .arg("--home")
        .arg(home.path())
        .args(["--host", HOST])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(table.matches("SERVING").count(), 5, "{table}");

    up.signal(libc::SIGINT);
    let exit = up.wait_exit(Duration::from_secs(60));
    let output = up.log_lines().join("\n");
    assert!(exit.success(), "xdrctl up exited with {exit}:\n{output}");
    assert_eq!(
        output.matches("stopped (exit status: 0)").count(),
        5,
        "{output}"
    );
    assert!(output.contains("mesh stopped"), "{output}");
}

/// `xdrctl up` under `cargo run` brings the services up to date with `cargo build`; after the
/// test command's own build that is a no-op. It used to pass on the variables `cargo run`
/// set for xdrctl, which made ring's build script, and everything above it, build again.
#[test]
fn up_under_cargo_run_builds_nothing_after_the_test_build() {
    const HOST: &str = "127.0.0.78";
    let home = tempfile::tempdir().unwrap();
    let mut command = mesh_up::up_command(home.path(), HOST);
    command
        // What `cargo run -p xdrctl` sets for the program it runs.
        .env("CARGO", env!("CARGO"))
        .env("CARGO_MANIFEST_DIR", paths::workspace().join("client"))
        .env(
            "CARGO_MANIFEST_PATH",
            paths::workspace().join("client/Cargo.toml"),
        )
        .env("CARGO_PKG_NAME", "xdrctl")
        .env("CARGO_PKG_VERSION", env!("CARGO_PKG_VERSION"));
    command.env_remove("XDR_CONFIG");
    let mut up = ServiceProcess::watch_as_set("xdrctl up", command);
    up.wait_for_line("the mesh being up", Duration::from_secs(600), |l| {
        l.starts_with("xdr mesh is up")
    });
    up.signal(libc::SIGINT);
    let exit = up.wait_exit(Duration::from_secs(60));
    let output = up.log_lines().join("\n");
    assert!(exit.success(), "xdrctl up exited with {exit}:\n{output}");
    let compiled: Vec<&str> = output.lines().filter(|l| l.contains("Compiling")).collect();
    assert!(
        compiled.is_empty(),
        "up's build compiled again: {compiled:?}"
    );
}

/// The packages `cargo <selection> tree` resolves for normal and build dependencies, each with
/// its feature sets (a package built for build scripts and for the binaries has two).
fn resolved_features(selection: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .current_dir(paths::workspace())
        .arg("tree")
        .args(selection)
        .args(["--offline", "--edges", "normal,build", "--prefix", "none"])
        .args(["--format", "{p}|{f}"])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut resolved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).expect("UTF-8").lines() {
        if let Some((package, features)) = line.trim_end_matches(" (*)").split_once('|') {
            resolved
                .entry(package.to_owned())
                .or_default()
                .insert(features.to_owned());
        }
    }
    resolved
}

/// A cold `cargo run -p xdrctl -- up` builds xdrctl's dependencies for xdrctl alone, then
/// `up` builds the services for the workspace. Every package both builds must resolve the
/// same features, or it and every package above it are compiled twice (it was 16 crates
/// and minutes on this machine).
#[test]
fn xdrctl_alone_resolves_the_features_the_workspace_build_does() {
    let alone = resolved_features(&["-p", "xdrctl"]);
    let workspace = resolved_features(&["--workspace"]);
    let differing: Vec<String> = alone
        .iter()
        .filter_map(|(package, features)| {
            let theirs = workspace.get(package)?;
            (theirs != features).then(|| format!("{package}: {features:?} vs {theirs:?}"))
        })
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");
}

/// `xdrctl call`: a unary RPC with a JSON request, through the mesh's JSON codec.
fn call(pki: &TestPki, addr: std::net::SocketAddr, args: &[&str]) -> std::process::Output {
    let home = pki.scratch();
    Command::new(paths::binary("xdrctl"))
        .arg("call")
        .args(args)
        .arg("--home")
        .arg(home)
        .args(["--addr", &addr.to_string()])
        .output()
        .expect("xdrctl runs")
}

#[test]
fn xdrctl_call_sends_json_and_prints_the_json_reply() {
    let pki = TestPki::new();
    let server = xdr_tests::threatintel::start_with_demo_feed(&pki, &[]);
    let addr = server.listening_addr();
    let looked_up = call(
        &pki,
        addr,
        &[
            "xdr.v1.ThreatIntel/Lookup",
            r#"{"objects": [{"value": "http://fakess123.nu"}]}"#,
        ],
    );
    let stdout = String::from_utf8_lossy(&looked_up.stdout);
    assert!(
        looked_up.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&looked_up.stderr)
    );
    let reply: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        reply["results"][0]["matches"][0]["category"], "KL_Malicious_URL",
        "{reply}"
    );

    // A request that is not the RPC's message is refused here, naming the field.
    let misspelt = call(
        &pki,
        addr,
        &["xdr.v1.ThreatIntel/Lookup", r#"{"objcts": []}"#],
    );
    assert!(!misspelt.status.success());
    let stderr = String::from_utf8_lossy(&misspelt.stderr);
    assert!(stderr.contains("objcts"), "{stderr}");
    // The server's refusal comes back with its code.
    let refused = call(
        &pki,
        addr,
        &[
            "xdr.v1.ThreatIntel/Lookup",
            r#"{"objects": [{"value": ""}]}"#,
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("objects[0]"),
        "{stderr}"
    );
    // Streams are grpcurl's.
    let stream = call(&pki, addr, &["xdr.v1.ThreatIntel/LookupStream"]);
    let stderr = String::from_utf8_lossy(&stream.stderr);
    assert!(
        !stream.status.success() && stderr.contains("streams"),
        "{stderr}"
    );
}

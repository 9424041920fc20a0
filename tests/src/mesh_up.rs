//! The whole mesh started by `xdrctl up`, for the stories that need every service.

use std::{path::Path, process::Command, time::Duration};

use crate::{Cert, Grpcurl, ServiceProcess, paths};

/// `xdrctl up` with its home in `home`, its services on `host` (each test its own loopback
/// address: the design's fixed ports stay clear of other tests and of a developer's own
/// `xdrctl up` on 127.0.0.1).
pub fn up_command(home: &Path, host: &str) -> Command {
    let mut command = Command::new(paths::binary("xdrctl"));
    command
        .arg("up")
        .arg("--home")
        .arg(home)
        .args(["--bind", host]);
    command
}

/// `xdrctl up` with the test build's binaries, once it says the mesh is up.
pub fn up(home: &Path, host: &str) -> ServiceProcess {
    up_with_env(home, host, &[])
}

/// As [`up`], with `env` set for `xdrctl up` and the services it starts.
pub fn up_with_env(home: &Path, host: &str, env: &[(&str, &str)]) -> ServiceProcess {
    let mut command = up_command(home, host);
    command.arg("--bin-dir").arg(paths::bin_dir());
    command.envs(env.iter().copied());
    let up = ServiceProcess::watch("xdrctl up", command);
    up.wait_for_line("the mesh being up", Duration::from_secs(90), |l| {
        l.starts_with("xdr mesh is up")
    });
    up
}

/// `xdrctl <args>` against the mesh in `home` on `host`, `stdin` as its first input line (a
/// password); its standard output, once it succeeded.
pub fn xdrctl_with_input(home: &Path, host: &str, args: &[&str], stdin: &str) -> String {
    use std::{io::Write, process::Stdio};
    let mut child = Command::new(paths::binary("xdrctl"))
        .args(args)
        .arg("--home")
        .arg(home)
        .args(["--host", host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xdrctl runs");
    writeln!(child.stdin.take().expect("piped"), "{stdin}").expect("xdrctl reads its input");
    let out = child.wait_with_output().expect("xdrctl ends");
    assert!(out.status.success(), "xdrctl {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `xdrctl <args>` against the mesh `up` started in `home` on `host`.
pub fn xdrctl(home: &Path, host: &str, args: &[&str]) -> std::process::Output {
    Command::new(paths::binary("xdrctl"))
        .args(args)
        .arg("--home")
        .arg(home)
        .args(["--host", host])
        .output()
        .expect("xdrctl runs")
}

/// `xdr.v1.Collector/<method>` with `request` (JSON), through grpcurl as the operator, to the
/// collector of the mesh in `home` on `host`; its JSON reply. Fails the test on an error.
pub fn collector_call(
    home: &Path,
    host: &str,
    method: &str,
    request: &serde_json::Value,
) -> serde_json::Value {
    let out = Grpcurl::with_certs(&home.join("certs"), Cert::Named("operator"))
        .server_name("collector")
        .data(&request.to_string())
        .ok(
            format!("{host}:7201").parse().expect("a host address"),
            &[&format!("xdr.v1.Collector/{method}")],
        );
    serde_json::from_str(&out).expect("grpcurl prints JSON")
}

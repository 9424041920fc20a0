//! The real grpcurl binary, as an operator would run it.

use std::{net::SocketAddr, path::Path, process::Command};

use crate::{ServiceProcess, TestPki, paths};

/// Which client certificate a call presents.
#[derive(Clone, Copy, Debug)]
pub enum Cert<'a> {
    /// `<stem>.crt` and `<stem>.key` from the test PKI (`operator`, `collector`, ...).
    Named(&'a str),
    /// Only the CA, to check the server: no client certificate at all.
    None,
    /// No TLS at all.
    Plaintext,
}

pub struct Grpcurl {
    command: Command,
    described: String,
    stdin: Option<String>,
}

/// What grpcurl printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Grpcurl {
    pub fn new(pki: &TestPki, cert: Cert<'_>) -> Self {
        Self::with_certs(&pki.certs(), cert)
    }

    /// With the certificates of a folder laid out as `xdrctl certs` writes it.
    pub fn with_certs(certs: &Path, cert: Cert<'_>) -> Self {
        let file = |name: String| certs.join(name);
        let ca = file(xdr_mesh::pki::CA_CERT_FILE.to_owned());
        let mut command = Command::new(paths::grpcurl());
        // Bound every call: a hung server must fail the test, not stall it.
        command.args(["-connect-timeout", "10", "-max-time", "20"]);
        match cert {
            Cert::Named(stem) => {
                command.arg("-cacert").arg(&ca);
                command
                    .arg("-cert")
                    .arg(file(xdr_mesh::pki::cert_file(stem)));
                command.arg("-key").arg(file(xdr_mesh::pki::key_file(stem)));
            }
            Cert::None => {
                command.arg("-cacert").arg(&ca);
            }
            Cert::Plaintext => {
                command.arg("-plaintext");
            }
        }
        Grpcurl {
            command,
            described: format!("grpcurl as {cert:?}"),
            stdin: None,
        }
    }

    /// The name the server's certificate must carry, when dialing an address it does not name.
    pub fn server_name(mut self, name: &str) -> Self {
        self.command.args(["-servername", name]);
        self
    }

    /// Gives up dialing after `secs` (a later flag wins over the default of 10).
    /// Gives up on the whole call after `secs` (the last `-max-time` given wins).
    pub fn max_time_secs(mut self, secs: f32) -> Self {
        self.command.args(["-max-time", &secs.to_string()]);
        self
    }

    pub fn connect_timeout_secs(mut self, secs: u32) -> Self {
        self.command.args(["-connect-timeout", &secs.to_string()]);
        self
    }

    /// Accepts reply messages of up to `bytes` (grpcurl's default is 4 MiB).
    pub fn max_reply_bytes(mut self, bytes: usize) -> Self {
        self.command.args(["-max-msg-sz", &bytes.to_string()]);
        self
    }

    /// Sends the metadata `name: value` with the call (not with grpcurl's reflection calls).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.command
            .args(["-rpc-header", &format!("{name}: {value}")]);
        self
    }

    /// Sends `data` as the JSON request body.
    pub fn data(mut self, json: &str) -> Self {
        self.command.args(["-d", json]);
        self
    }

    /// Streams `messages` (JSON objects, one after another) as the requests, via stdin.
    pub fn stream(mut self, messages: &str) -> Self {
        self.command.args(["-d", "@"]);
        self.stdin = Some(messages.to_owned());
        self
    }

    /// Runs `grpcurl <options> <addr> <args...>`.
    pub fn call(mut self, addr: SocketAddr, args: &[&str]) -> Outcome {
        use std::{io::Write, process::Stdio};
        self.command.arg(addr.to_string()).args(args);
        let stdin = if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        self.command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (tests/run.sh installs grpcurl; or set XDR_GRPCURL)",
                paths::grpcurl().display()
            )
        });
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(input.as_bytes())
                .expect("writing grpcurl's stdin");
        }
        let output = child.wait_with_output().expect("waiting for grpcurl");
        Outcome {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs the call and returns its stdout, failing the test if grpcurl failed.
    pub fn ok(self, addr: SocketAddr, args: &[&str]) -> String {
        let described = format!("{} {addr} {args:?}", self.described);
        let outcome = self.call(addr, args);
        assert!(
            outcome.success,
            "{described} failed:\n{}{}",
            outcome.stdout, outcome.stderr
        );
        outcome.stdout
    }
}

/// Starts an operator's `xdr.v1.Diagnostics/Ping` held open for `delay_ms` on its own thread,
/// and returns once the server logged receiving it: the call is then in flight.
pub fn ping_in_flight(
    pki: &TestPki,
    server: &ServiceProcess,
    delay_ms: u32,
) -> std::thread::JoinHandle<Outcome> {
    let addr = server.listening_addr();
    let ping =
        Grpcurl::new(pki, Cert::Named("operator")).data(&format!(r#"{{"delayMs": {delay_ms}}}"#));
    let call = std::thread::spawn(move || ping.call(addr, &["xdr.v1.Diagnostics/Ping"]));
    server.wait_for_log("the ping arriving", |l| {
        l["message"] == "ping" && l["delay_ms"] == delay_ms
    });
    call
}

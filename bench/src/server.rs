//! A real service binary started for a benchmark: free loopback ports, JSON logs read until it
//! listens (handing each line to the caller on the way), then drained so it never blocks.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};
use xdr_mesh::{config::TlsArgs, tls::TlsMaterial};

/// Loading 10 M indicators in a debug build takes minutes; a release build, seconds.
const START_TIMEOUT: Duration = Duration::from_secs(600);
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

pub struct BenchServer {
    name: String,
    child: tokio::process::Child,
    /// The gRPC address it logged as `listening`.
    pub addr: String,
}

/// Where the service binaries are: `--bin-dir`, else xdr-bench's own folder.
pub fn bin_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(dir) => Ok(dir.to_owned()),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("xdr-bench's folder")?
            .to_owned()),
    }
}

/// The operator's TLS material from the dev PKI in `certs`: how the bench calls the servers.
pub fn operator_tls(certs: &Path) -> anyhow::Result<TlsMaterial> {
    TlsArgs::in_dir(certs)
        .load(xdr_mesh::directory::OPERATOR)
        .with_context(|| format!("loading the operator certificate from {}", certs.display()))
}

/// Asks `child` to stop and drain (SIGTERM); a child already reaped is left alone.
fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid this process spawned and has not reaped (`id` is None once
        // it has), so it cannot name another process.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}

impl BenchServer {
    /// Starts `bin_dir/name` on free ports (`--listen`, `--metrics-listen`) with JSON logs, the dev PKI in
    /// `certs`, a fresh data folder `data` and `args`; `on_log` sees each log line until the
    /// server listens.
    pub async fn start<S: AsRef<OsStr>>(
        bin_dir: &Path,
        name: &str,
        certs: &Path,
        data: &Path,
        args: &[S],
        on_log: impl FnMut(&serde_json::Value),
    ) -> anyhow::Result<Self> {
        let _ = std::fs::remove_dir_all(data);
        Self::start_on(bin_dir, name, certs, data, args, on_log).await
    }

    /// As [`start`](Self::start), keeping what `data` holds (a store prepared beforehand).
    pub async fn start_on<S: AsRef<OsStr>>(
        bin_dir: &Path,
        name: &str,
        certs: &Path,
        data: &Path,
        args: &[S],
        mut on_log: impl FnMut(&serde_json::Value),
    ) -> anyhow::Result<Self> {
        // The gateway's one listener is HTTP (with /metrics on it).
        let listen: &[&str] = if name == "xdr-gateway" {
            &["--http-listen", "127.0.0.1:0"]
        } else {
            &["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(bin_dir.join(name))
            .args(listen)
            .args(["--log-format", "json"])
            .arg("--tls-dir")
            .arg(certs)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr is piped")?).lines();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let addr = loop {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .with_context(|| format!("{name} did not start within {START_TIMEOUT:?}"))??
                .with_context(|| format!("{name} exited while starting"))?;
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            on_log(&event);
            if event["message"] == "listening"
                && let Some(addr) = event["addr"].as_str()
            {
                break addr.to_owned();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(BenchServer {
            name: name.to_owned(),
            child,
            addr,
        })
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The most memory it has held resident so far (the kernel's `VmHWM`), in bytes.
    pub fn peak_resident_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.pid().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = (status.lines())
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .context("no VmHWM in /proc/PID/status")?;
        Ok(kib * 1024)
    }

    pub async fn stop(&mut self) -> anyhow::Result<()> {
        terminate(&self.child);
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .with_context(|| format!("{} did not stop", self.name))??;
        anyhow::ensure!(status.success(), "{} exited with {status}", self.name);
        Ok(())
    }
}

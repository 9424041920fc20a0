//! `xdrctl up`: the whole mesh on this machine, from nothing. Certificates are generated if
//! absent, binaries are brought up to date when run through cargo, every service starts on
//! the design's ports with its data under one home folder, and the command returns control
//! only when each reports SERVING. Ctrl-C (or SIGTERM) stops them all, each draining first.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use tokio::process::{Child, Command};
use tonic_health::pb::health_check_response::ServingStatus;

use xdr_mesh::directory::{
    self, COLLECTOR, ENRICHMENT, GATEWAY, PLAYBOOK, ServiceEntry, THREATINTEL,
};

use crate::{
    connect::Target,
    layout::{self, CYBERTRACE_PORT, Home},
    probe,
};

/// Services get their own shutdown grace (30 s by default) and a little more.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(100);

#[derive(clap::Args)]
pub struct Args {
    /// Folder for certificates, data and logs; created, certificates generated if absent.
    #[arg(long, env = "XDR_HOME", default_value = xdr_mesh::config::DEFAULT_HOME)]
    home: PathBuf,
    /// Address every service listens on; ports are the defaults (gRPC 7201-7204, HTTP 8080).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Folder with the xdr-* binaries [default: xdrctl's own folder, rebuilt by cargo when
    /// xdrctl runs through `cargo run`].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// How long the services get to report SERVING.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
}

/// A started service process.
struct Process {
    service: &'static str,
    child: Child,
    log: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let home = Home::new(&args.home);
    ensure_certs(&home)?;
    ensure_demo_feed(&home)?;
    let bin_dir = ensure_binaries(args.bin_dir.as_deref())?;
    let shutdown = xdr_mesh::shutdown::on_signal().context("installing signal handlers")?;
    std::fs::create_dir_all(home.logs())
        .with_context(|| format!("creating {}", home.logs().display()))?;

    // Fresh data gets the seed's rule and collector once the services are up.
    let fresh = !home.data("collector").exists() && !home.data("enrichment").exists();
    let mut processes = Vec::new();
    let started = start_all(&args, &home, &bin_dir, &mut processes).await;
    let ready = match started {
        Ok(()) => wait_ready(&args, &home, &mut processes).await,
        Err(error) => Err(error),
    };
    let ready = match ready {
        Ok(()) if fresh => quickstart(&args).await,
        ready => ready,
    };
    if let Err(error) = ready {
        stop_all(&mut processes).await;
        return Err(error);
    }
    print_summary(&args, &home);

    let failure = tokio::select! {
        _ = shutdown.cancelled() => None,
        exited = first_exit(&mut processes) => Some(exited),
    };
    println!("stopping the mesh");
    let clean = stop_all(&mut processes).await;
    if let Some((service, status)) = failure {
        bail!(
            "xdr-{service} exited on its own ({status}); see {}",
            home.log(service).display()
        );
    }
    ensure!(
        clean,
        "not every service stopped cleanly; see the logs in {}",
        home.logs().display()
    );
    println!("mesh stopped");
    Ok(())
}

async fn quickstart(args: &Args) -> anyhow::Result<()> {
    let target = Target {
        home: args.home.clone(),
        host: layout::dial_addr(args.bind, 0).ip(),
        addr: None,
        by_name: false,
        timeout: Duration::from_secs(30),
    };
    crate::quickstart::run(&crate::quickstart::Args { target })
        .await
        .context("xdrctl quickstart on fresh data")
}

fn ensure_certs(home: &Home) -> anyhow::Result<()> {
    let certs = home.certs();
    if !certs.join(xdr_mesh::pki::CA_CERT_FILE).exists() {
        xdr_mesh::pki::write_dev_pki(&certs, false).context("writing the development PKI")?;
        println!("wrote a development PKI to {}", certs.display());
    }
    Ok(())
}

/// The demo feed (the seeds' test indicators), so a fresh mesh finds `http://fakess123.nu`.
const DEMO_FEED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../services/threatintel/feeds/Demo.json"
));

fn ensure_demo_feed(home: &Home) -> anyhow::Result<()> {
    let feeds = home.data("threatintel").join("feeds");
    if !feeds.exists() {
        std::fs::create_dir_all(&feeds).with_context(|| format!("creating {}", feeds.display()))?;
        std::fs::write(feeds.join("Demo.json"), DEMO_FEED).context("writing the demo feed")?;
        println!("wrote the demo feed to {}", feeds.display());
    }
    Ok(())
}

fn service_names() -> impl Iterator<Item = &'static str> {
    directory::SERVICES.iter().map(|s| s.name)
}

/// The folder of the service binaries. Under `cargo run`, cargo first rebuilds whatever is
/// stale with the same profile (a no-op when nothing changed).
fn ensure_binaries(bin_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match bin_dir {
        Some(dir) => dir.to_owned(),
        None => {
            let exe = std::env::current_exe().context("locating xdrctl")?;
            let dir = exe
                .parent()
                .context("xdrctl has no parent folder")?
                .to_owned();
            if let Some(cargo) = std::env::var_os("CARGO") {
                cargo_build(&cargo, dir.ends_with("release"))?;
            }
            dir
        }
    };
    for service in service_names() {
        let binary = dir.join(format!("xdr-{service}"));
        ensure!(
            binary.exists(),
            "{} is missing: run `cargo build --bins` or pass --bin-dir",
            binary.display()
        );
    }
    Ok(dir)
}

fn cargo_build(cargo: &std::ffi::OsStr, release: bool) -> anyhow::Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml");
    let mut build = std::process::Command::new(cargo);
    // What `cargo run` set for xdrctl is not the build's: ring's build script reruns when
    // CARGO_MANIFEST_DIR changes, and everything above ring with it, once here and once more
    // at the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let run_only = name.to_str().is_some_and(|name| {
            name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || matches!(
                    name,
                    "CARGO_PRIMARY_PACKAGE" | "CARGO_CRATE_NAME" | "CARGO_BIN_NAME"
                )
        });
        if run_only {
            build.env_remove(name);
        }
    }
    // The same selection as the test command's build, so the two share one set of artifacts
    // (a narrower `-p` list unifies features differently and rebuilds the dependencies).
    build
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--workspace", "--bins"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().context("running cargo build")?;
    ensure!(
        status.success(),
        "cargo build of the services failed ({status})"
    );
    Ok(())
}

async fn start_all(
    args: &Args,
    home: &Home,
    bin_dir: &Path,
    processes: &mut Vec<Process>,
) -> anyhow::Result<()> {
    let certs = home.certs();
    for service in directory::grpc_services() {
        let mut command = service_command(bin_dir, service.name, &certs);
        command
            .arg("--listen")
            .arg(format!("{}:{}", args.bind, grpc_port(service)))
            .arg("--metrics-listen")
            .arg(format!("{}:{}", args.bind, service.http_port))
            .arg("--data-dir")
            .arg(home.data(service.name));
        if service == THREATINTEL {
            command
                .arg("--cybertrace-listen")
                .arg(format!("{}:{CYBERTRACE_PORT}", args.bind));
        }
        // The services they call, on the same address: their defaults are 127.0.0.1.
        let upstreams: &[ServiceEntry] = match service.name {
            name if name == ENRICHMENT.name => &[THREATINTEL],
            name if name == COLLECTOR.name => &[ENRICHMENT, PLAYBOOK],
            _ => &[],
        };
        for &upstream in upstreams {
            command
                .arg(format!("--{}-addr", upstream.name))
                .arg(layout::dial_addr(args.bind, grpc_port(upstream)).to_string());
        }
        processes.push(spawn(command, service.name, home)?);
    }
    let mut gateway = service_command(bin_dir, GATEWAY.name, &certs);
    gateway
        .arg("--http-listen")
        .arg(format!("{}:{}", args.bind, GATEWAY.http_port))
        .arg("--data-dir")
        .arg(home.data(GATEWAY.name));
    for service in directory::grpc_services() {
        gateway
            .arg(format!("--{}-addr", service.name))
            .arg(layout::dial_addr(args.bind, grpc_port(service)).to_string());
    }
    processes.push(spawn(gateway, GATEWAY.name, home)?);
    Ok(())
}

fn grpc_port(service: ServiceEntry) -> u16 {
    service.grpc_port.expect("a gRPC service has a gRPC port")
}

fn service_command(bin_dir: &Path, service: &str, certs: &Path) -> Command {
    let mut command = Command::new(bin_dir.join(format!("xdr-{service}")));
    command.arg("--tls-dir").arg(certs);
    command
}

fn spawn(mut command: Command, service: &'static str, home: &Home) -> anyhow::Result<Process> {
    let log = home.log(service);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // Its own process group: a Ctrl-C at the terminal reaches xdrctl only, which then
        // stops the services in order instead of all of them at once.
        .process_group(0)
        .kill_on_drop(true);
    // If xdrctl itself dies (even by SIGKILL), each service gets SIGTERM and drains, instead
    // of living on as an orphan holding the mesh's ports.
    // SAFETY: prctl(2) is async-signal-safe, as a pre_exec hook requires.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting xdr-{service}"))?;
    Ok(Process {
        service,
        child,
        log,
    })
}

async fn wait_ready(args: &Args, home: &Home, processes: &mut [Process]) -> anyhow::Result<()> {
    let tls = probe::operator_tls(&home.certs())?;
    let deadline = Instant::now() + args.ready_timeout;
    for process in processes.iter_mut() {
        let service = directory::service(process.service).expect("xdrctl starts mesh services");
        let port = service.grpc_port;
        let addr = layout::dial_addr(args.bind, port.unwrap_or(service.http_port));
        let mut last;
        loop {
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "xdr-{} exited before it was ready ({status}):\n{}",
                    process.service,
                    tail(&process.log)
                );
            }
            let ready = match port {
                Some(_) => probe::grpc_health(addr, process.service, &tls)
                    .await
                    .map(|s| s == ServingStatus::Serving),
                None => probe::gateway_health(addr).await.map(|code| code == 200),
            };
            match ready {
                Ok(true) => break,
                Ok(false) => last = "answers, but is not SERVING".to_owned(),
                Err(why) => last = why,
            }
            if Instant::now() >= deadline {
                bail!(
                    "xdr-{} at {addr} was not SERVING within {:?}: {last}\n{}",
                    process.service,
                    args.ready_timeout,
                    tail(&process.log)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

fn print_summary(args: &Args, home: &Home) {
    let certs = home.certs();
    println!("xdr mesh is up (home {}):", home.root.display());
    for service in directory::grpc_services() {
        println!(
            "  {:<12} {:<22} gRPC over mTLS   log {}  metrics http://{}:{}/metrics",
            service.name,
            format!("{}:{}", args.bind, grpc_port(service)),
            home.log(service.name).display(),
            args.bind,
            service.http_port
        );
    }
    println!(
        "  {:<12} {:<22} CyberTrace TCP   (served by threatintel)",
        "cybertrace",
        format!("{}:{CYBERTRACE_PORT}", args.bind)
    );
    println!(
        "  {:<12} {:<22} HTTP JSON        log {}",
        GATEWAY.name,
        format!("http://{}:{}", args.bind, GATEWAY.http_port),
        home.log(GATEWAY.name).display()
    );
    let threatintel = layout::dial_addr(args.bind, grpc_port(THREATINTEL));
    println!("try:");
    println!(
        "  grpcurl -cacert {c}/ca.crt -cert {c}/operator.crt -key {c}/operator.key {threatintel} list",
        c = certs.display()
    );
    println!(
        "  bash -c 'exec 3<>/dev/tcp/{}/{CYBERTRACE_PORT}; printf \"X-KF-ReplyBackurl=http://fakess123.nu \\n\" >&3; head -1 <&3'",
        layout::dial_addr(args.bind, CYBERTRACE_PORT).ip()
    );
    println!(
        "  curl http://{}/healthz",
        layout::dial_addr(args.bind, GATEWAY.http_port)
    );
    let home_flag = format!("--home {}", home.root.display());
    println!("  echo '{{\"RequestUrl\":\"http://fakess123bn.nu\"}}' | xdrctl ingest {home_flag} -");
    println!(
        "  xdrctl search {home_flag} \"SELECT * FROM \\`events\\` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250\""
    );
    if let Some((token, file)) = crate::people::first_admin_token(home) {
        println!(
            "the first Main administrator's token (kept in {}):",
            file.display()
        );
        println!("  {token}");
        println!(
            "  curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"sql\":\"SELECT count() FROM events\"}}' http://{}/xdr.v1.Collector/SearchEvents",
            layout::dial_addr(args.bind, GATEWAY.http_port)
        );
        println!(
            "  the web console: http://{}/console (sign in with this token, or a user's password)",
            layout::dial_addr(args.bind, GATEWAY.http_port)
        );
    }
    println!("Ctrl-C stops the mesh.");
}

/// The first service to exit, polled: the mesh is small and this runs idle.
async fn first_exit(processes: &mut [Process]) -> (&'static str, std::process::ExitStatus) {
    loop {
        for process in processes.iter_mut() {
            if let Ok(Some(status)) = process.child.try_wait() {
                return (process.service, status);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// SIGTERM to every service, the gateway first (it calls the others), then waits for each.
/// Returns whether all exited with status 0.
async fn stop_all(processes: &mut [Process]) -> bool {
    for process in processes.iter().rev() {
        crate::child::terminate(&process.child);
    }
    let mut clean = true;
    for process in processes.iter_mut().rev() {
        let status = match tokio::time::timeout(STOP_TIMEOUT, process.child.wait()).await {
            Ok(Ok(status)) => status,
            _ => {
                let _ = process.child.kill().await;
                println!(
                    "  xdr-{} did not stop within {STOP_TIMEOUT:?}; killed",
                    process.service
                );
                clean = false;
                continue;
            }
        };
        clean &= status.success();
        println!("  xdr-{} stopped ({status})", process.service);
    }
    clean
}

/// The last lines of a service's log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

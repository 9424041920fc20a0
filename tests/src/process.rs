//! One binary under test: started with JSON logs on stderr, which a thread collects so a test
//! can wait for a line (readiness, an event) instead of sleeping. Killed on drop; if the test
//! is failing, its log is printed to help the reader.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{TestPki, paths};

/// Generous: debug binaries on a loaded two-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

struct Log {
    lines: Vec<String>,
    /// stdout and stderr, until each reaches its end.
    open_streams: usize,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            lines: Vec::new(),
            open_streams: 2,
        }
    }
}

#[derive(Default)]
struct SharedLog {
    log: Mutex<Log>,
    changed: Condvar,
}

pub struct ServiceProcess {
    name: String,
    child: Child,
    log: Arc<SharedLog>,
}

impl ServiceProcess {
    /// Starts mesh service `service` (`threatintel`, ...) on a free loopback port with the
    /// test PKI and its own data folder, and waits until it listens.
    pub fn start(service: &str, pki: &TestPki) -> Self {
        Self::start_with(service, pki, &[])
    }

    /// As [`start`](Self::start), with extra flags.
    pub fn start_with(service: &str, pki: &TestPki, extra: &[&str]) -> Self {
        static INSTANCE: AtomicUsize = AtomicUsize::new(0);
        let data = pki.scratch().join("data").join(format!(
            "{service}-{}",
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        Self::start_in(service, pki, &data, extra)
    }

    /// As [`start_with`](Self::start_with), with its data in `data`: a restart given the same
    /// folder finds what the last process saved.
    pub fn start_in(service: &str, pki: &TestPki, data: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<&OsStr> = vec!["--data-dir".as_ref(), data.as_os_str()];
        // A free port unless the test names one (a restart where clients dial).
        if !extra.contains(&"--listen") {
            args.extend([OsStr::new("--listen"), OsStr::new("127.0.0.1:0")]);
        }
        if service == "threatintel" {
            // Its CyberTrace port too, or tests running side by side would share 9999.
            args.extend([OsStr::new("--cybertrace-listen"), OsStr::new("127.0.0.1:0")]);
        }
        args.extend(extra.iter().map(OsStr::new));
        let process = Self::spawn(&format!("xdr-{service}"), pki, &args);
        process.listening_addr();
        process
    }

    /// Starts binary `name` with the test PKI, JSON logs and `args`; does not wait. A gRPC
    /// service's `/metrics` is on a free port unless `args` name one: tests run side by side.
    pub fn spawn<S: AsRef<OsStr>>(name: &str, pki: &TestPki, args: &[S]) -> Self {
        let mut command = Command::new(paths::binary(name));
        command
            .arg("--tls-dir")
            .arg(pki.certs())
            .args(["--log-format", "json"]);
        let names_metrics = args.iter().any(|a| a.as_ref() == "--metrics-listen");
        if name != "xdr-gateway" && !names_metrics {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        command.args(args);
        Self::watch(name, command)
    }

    /// Starts `command`, collecting the lines of its stdout and stderr; does not wait. The
    /// test's own `XDR_CONFIG` and `CARGO` (which makes `xdrctl up` build) are not passed on.
    pub fn watch(name: &str, mut command: Command) -> Self {
        command.env_remove("XDR_CONFIG").env_remove("CARGO");
        Self::watch_as_set(name, command)
    }

    /// As [`watch`](Self::watch), with the environment exactly as `command` sets it.
    pub fn watch_as_set(name: &str, mut command: Command) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let log = Arc::new(SharedLog::default());
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        collect_lines(stdout, log.clone());
        collect_lines(stderr, log.clone());
        ServiceProcess {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// The address from the process's `listening` log line.
    pub fn listening_addr(&self) -> SocketAddr {
        let line = self.wait_for_log("the `listening` line", |l| l["message"] == "listening");
        let addr = line["addr"].as_str().expect("`listening` carries addr");
        addr.parse().expect("addr is a socket address")
    }

    /// The address of its `/metrics` endpoint, from its `metrics listening` log line.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self.wait_for_log("the `metrics listening` line", |l| {
            l["message"] == "metrics listening"
        });
        let addr = line["addr"]
            .as_str()
            .expect("`metrics listening` carries addr");
        addr.parse().expect("addr is a socket address")
    }

    /// Waits (bounded) for a JSON log line matching `matches`, and returns it.
    pub fn wait_for_log(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let line = self.wait_for_line(what, WAIT, |line| {
            serde_json::from_str(line).is_ok_and(|json| matches(&json))
        });
        serde_json::from_str(&line).expect("the line parsed a moment ago")
    }

    /// Waits (bounded by `timeout`) for an output line matching `matches`, and returns it.
    pub fn wait_for_line(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut log = self.log.log.lock().unwrap();
        loop {
            if let Some(line) = log.lines[seen..].iter().find(|line| matches(line)) {
                return line.clone();
            }
            seen = log.lines.len();
            let now = Instant::now();
            let failure = if log.open_streams == 0 {
                Some(format!("{} exited without printing {what}", self.name))
            } else if now >= deadline {
                Some(format!(
                    "{} did not print {what} within {timeout:?}",
                    self.name
                ))
            } else {
                None
            };
            if let Some(failure) = failure {
                fail_with_log(log, &failure);
            }
            log = self
                .log
                .changed
                .wait_timeout(log, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        // A failed assertion may have panicked while holding the lock; the lines are intact.
        self.log
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lines
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on a child this struct owns and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signalling {}", self.name);
    }

    /// Waits (bounded) for the process to exit: its stdout and stderr close when it does.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let mut log = self.log.log.lock().unwrap();
        while log.open_streams > 0 {
            let now = Instant::now();
            if now >= deadline {
                fail_with_log(
                    log,
                    &format!("{} still running after {timeout:?}", self.name),
                );
            }
            log = self
                .log
                .changed
                .wait_timeout(log, deadline - now)
                .unwrap()
                .0;
        }
        drop(log);
        self.child.wait().expect("waiting for an exited child")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}",
                self.name,
                self.log_lines().join("\n")
            );
        }
    }
}

/// Fails the test with the output so far, after releasing the lock: panicking while holding
/// it would poison it for the threads still collecting lines.
fn fail_with_log(log: std::sync::MutexGuard<'_, Log>, failure: &str) -> ! {
    let lines = log.lines.join("\n");
    drop(log);
    panic!("{failure}:\n{lines}");
}

fn collect_lines(stream: impl std::io::Read + Send + 'static, sink: Arc<SharedLog>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.log.lock().unwrap().lines.push(line);
            sink.changed.notify_all();
        }
        sink.log.lock().unwrap().open_streams -= 1;
        sink.changed.notify_all();
    });
}

//! The mesh in docker-compose for a test: the image built (`docker/build-image.sh`), a project
//! of its own with its certificates in a temporary folder and its ports published on a
//! loopback address of its own, taken down with its volumes when dropped.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
    time::Duration,
};

use serde_json::Value;

use crate::paths;

/// Builds the image once per test process (tests of one binary share it).
static IMAGE: Mutex<bool> = Mutex::new(false);

pub struct Compose {
    project: String,
    dir: tempfile::TempDir,
    /// The address the ports are published on.
    pub bind: &'static str,
    pub usergate_password: String,
    /// Whether the `tracing` profile runs, every service exporting spans to `traces`.
    traced: bool,
}

impl Compose {
    /// `docker-compose up -d` as project `name` on `bind`; returns once the quickstart has run.
    /// What a killed earlier run of the same project left is taken down first.
    pub fn up(name: &str, bind: &'static str) -> Self {
        Self::start(name, bind, false)
    }

    /// As [`up`](Self::up), with the `tracing` profile: the services export their spans
    /// (every 100 ms) to the `traces` receiver.
    pub fn up_traced(name: &str, bind: &'static str) -> Self {
        Self::start(name, bind, true)
    }

    fn start(name: &str, bind: &'static str, traced: bool) -> Self {
        build_image();
        let compose = Compose {
            project: name.to_owned(),
            dir: tempfile::tempdir().expect("a temporary folder"),
            bind,
            usergate_password: format!("ug-{}", std::process::id()),
            traced,
        };
        let _ = compose.run(&["down", "--volumes", "--remove-orphans", "--timeout", "2"]);
        let up = compose.run(&["up", "-d", "--quiet-pull"]);
        assert!(up.status.success(), "up: {}", text(&up));
        // The quickstart runs once every service it needs is healthy (the health checks retry
        // for 60 s); `timeout` bounds the wait should it never start.
        let id = compose.container("quickstart");
        let waited = Command::new("timeout")
            .args(["180", "docker", "wait", &id])
            .output()
            .expect("docker wait runs");
        let code = String::from_utf8_lossy(&waited.stdout).trim().to_owned();
        assert_eq!(
            code,
            "0",
            "quickstart: {}",
            text(&compose.run(&["logs", "quickstart"]))
        );
        compose
    }

    /// `docker-compose <args>` in this project.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new("docker-compose");
        command
            .arg("--file")
            .arg(paths::workspace().join("docker-compose.yml"))
            .args(["--project-name", &self.project])
            .env("XDR_COMPOSE_DIR", self.dir.path())
            .env("XDR_COMPOSE_BIND", self.bind)
            .env("USERGATE_PASSWORD", &self.usergate_password)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        if self.traced {
            command
                .args(["--profile", "tracing"])
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://traces:4317")
                .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        }
        command
            .args(args)
            .output()
            .expect("docker-compose is installed (tests/run.sh installs it)")
    }

    /// Every span the `traces` receiver has written so far.
    pub fn spans(&self) -> Vec<crate::traces::Span> {
        let out = self.run(&["exec", "-T", "traces", "cat", "/var/lib/xdr/spans.jsonl"]);
        crate::traces::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// The id of `service`'s container.
    pub fn container(&self, service: &str) -> String {
        let ps = self.run(&["ps", "-q", service]);
        let id = String::from_utf8_lossy(&ps.stdout).trim().to_owned();
        assert!(!id.is_empty(), "no container for {service}: {}", text(&ps));
        id
    }

    /// The certificate folder the `certs` service wrote.
    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The first Main administrator's token, from the gateway's data.
    pub fn admin_token(&self) -> String {
        let out = self.run(&[
            "exec",
            "-T",
            "gateway",
            "cat",
            "/var/lib/xdr/first-admin-token",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `curl` to the gateway: `method path` with `token` and an optional JSON body; the
    /// status and the JSON answer.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.http_with(method, path, token, body, &[])
    }

    /// As [`http`](Self::http), with more request `headers` (`Name: value`).
    pub fn http_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[&str],
    ) -> (u16, Value) {
        let mut command = Command::new("curl");
        for header in headers {
            command.args(["-H", header]);
        }
        command.args([
            "-sS",
            "--max-time",
            "60",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ]);
        if let Some(token) = token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            command
                .args(["-H", "Content-Type: application/json", "--data"])
                .arg(body.to_string());
        }
        let output = command
            .arg(format!("http://{}:8080{path}", self.bind))
            .output()
            .expect("curl runs");
        assert!(output.status.success(), "{}", text(&output));
        let body = String::from_utf8_lossy(&output.stdout).into_owned();
        let (json, code) = body.rsplit_once('\n').expect("curl wrote the status");
        (
            code.parse().expect("an HTTP status"),
            serde_json::from_str(json).unwrap_or(Value::Null),
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- compose logs ---\n{}",
                text(&self.run(&["logs", "--tail", "40"]))
            );
        }
        let _ = self.run(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
    }
}

fn build_image() {
    let mut built = IMAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *built {
        return;
    }
    // The binaries tests/run.sh built, packaged: a cargo build from the test's environment
    // would see other variables and rebuild C crates (then `xdrctl up` would rebuild them back).
    let output = Command::new(paths::workspace().join("docker/build-image.sh"))
        .env("XDR_IMAGE_SKIP_BUILD", "1")
        .output()
        .expect("docker/build-image.sh runs");
    assert!(
        output.status.success(),
        "building the image: {}",
        text(&output)
    );
    *built = true;
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits (bounded) until `check` is true, looking every 100 ms.
pub fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `text` percent-encoded for a query string.
pub fn query_encoded(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

//! The playbook service's stories: the UserGate emulator started and read back, and calls to
//! `xdr.v1.Playbook` as the operator, a collector, or a person through the gateway's
//! identity.

use std::{net::SocketAddr, process::Command};

use serde_json::{Value, json};

use crate::{Cert, Grpcurl, ServiceProcess, TestPki, grpcurl::Outcome, paths};

/// The emulator's administrator; its password is each test's own.
pub const USERGATE_LOGIN: &str = "xdr-api";

/// A running `usergate-emulator`.
pub struct UserGate {
    pub process: ServiceProcess,
    pub addr: SocketAddr,
    https: bool,
}

impl UserGate {
    /// An emulator on a free loopback port taking `password`, sessions expiring after
    /// `session_ttl` (`5m`, `2s`).
    pub fn start(password: &str, session_ttl: &str) -> Self {
        Self::start_with(password, session_ttl, &[])
    }

    /// As [`start`](Self::start), with more flags (`--tls-cert`, `--tls-key`).
    pub fn start_with(password: &str, session_ttl: &str, extra: &[&str]) -> Self {
        let mut command = Command::new(paths::binary("usergate-emulator"));
        command
            .args(["--listen", "127.0.0.1:0", "--login", USERGATE_LOGIN])
            .args(["--session-ttl", session_ttl])
            .args(extra)
            .env("USERGATE_PASSWORD", password);
        let process = ServiceProcess::watch("usergate-emulator", command);
        let addr = process.listening_addr();
        let https = extra.contains(&"--tls-cert");
        UserGate {
            process,
            addr,
            https,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/rpc", self.addr)
    }

    /// What the appliance holds now.
    pub fn state(&self) -> Value {
        self.control("GET", "state", None)
    }

    /// `POST /control/<path>` with `body`; its JSON answer (null when empty).
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut command = Command::new("curl");
        let scheme = if self.https { "https" } else { "http" };
        command
            .args(["-sS", "--fail", "--max-time", "10", "-X", method])
            .arg(format!("{scheme}://{}/control/{path}", self.addr));
        if self.https {
            // The test's side door; what the playbook service checks is its own connection.
            command.arg("--insecure");
        }
        if let Some(body) = body {
            command
                .args(["-H", "content-type: application/json", "--data"])
                .arg(body.to_string());
        }
        let output = command.output().expect("curl runs");
        assert!(
            output.status.success(),
            "control {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    /// The values in the list named `name`.
    pub fn list_items(&self, name: &str) -> Vec<String> {
        let state = self.state();
        let list = state["lists"]
            .as_array()
            .expect("lists")
            .iter()
            .find(|l| l["name"] == name);
        list.map(|l| {
            l["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|v| v.as_str().expect("a value").to_owned())
                .collect()
        })
        .unwrap_or_default()
    }
}

/// Who calls: the operator, a service, or a person the gateway calls for.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Operator,
    Service(&'a str),
    /// User, tenant and role (`tier1-analyst`, ...).
    Person(&'a str, &'a str, &'a str),
}

/// `xdr.v1.Playbook/<method>` as `who`, however it ends.
pub fn rpc(
    pki: &TestPki,
    server: &ServiceProcess,
    who: As<'_>,
    method: &str,
    request: &Value,
) -> Outcome {
    let cert = match who {
        As::Operator => "operator",
        As::Service(name) => name,
        As::Person(..) => "gateway",
    };
    let mut grpcurl = Grpcurl::new(pki, Cert::Named(cert)).data(&request.to_string());
    if let As::Person(user, tenant, role) = who {
        grpcurl = grpcurl
            .header("x-xdr-user", user)
            .header("x-xdr-tenant", tenant)
            .header("x-xdr-role", role);
    }
    grpcurl.call(
        server.listening_addr(),
        &[&format!("xdr.v1.Playbook/{method}")],
    )
}

/// As [`rpc`]; the JSON reply, failing the test on an error.
pub fn ok(
    pki: &TestPki,
    server: &ServiceProcess,
    who: As<'_>,
    method: &str,
    request: &Value,
) -> Value {
    let outcome = rpc(pki, server, who, method, request);
    assert!(outcome.success, "{method}: {}", outcome.stderr);
    serde_json::from_str(&outcome.stdout).expect("grpcurl prints JSON")
}

/// The secret `usergate` of `tenant` pointing at `usergate`, made by the operator.
pub fn usergate_secret(
    pki: &TestPki,
    server: &ServiceProcess,
    tenant: &str,
    usergate: &UserGate,
    password: &str,
) -> Value {
    ok(
        pki,
        server,
        As::Operator,
        "CreateSecret",
        &json!({
            "name": "usergate", "tenant": tenant, "type": "SECRET_TYPE_CREDENTIALS",
            "user": USERGATE_LOGIN, "password": password, "url": usergate.url(),
            "description": "the test appliance",
        }),
    )
}

/// An event of `tenant` with id `id` whose `RequestUrl` matched `KL_Malicious_URL` and whose
/// `DestinationAddress` matched `KL_IP_Reputation`.
pub fn matched_event(id: &str, tenant: &str, url: &str, ip: &str) -> Value {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    json!({
        "id": id, "tenant": tenant, "collector": "http-input",
        "fields": {
            "RequestUrl": {"text": url},
            "DestinationAddress": {"text": ip},
            "SourceAddress": {"text": "10.0.0.5"},
        },
        "ti": [
            {"field": "RequestUrl", "value": url, "indicatorType": "INDICATOR_TYPE_URL",
             "category": "KL_Malicious_URL", "matchedIndicator": host, "supplier": "Demo"},
            {"field": "DestinationAddress", "value": ip, "indicatorType": "INDICATOR_TYPE_IP",
             "category": "KL_IP_Reputation", "matchedIndicator": ip, "supplier": "Demo"},
        ],
    })
}

/// Raises `events` as the collector; the reply.
pub fn raise(pki: &TestPki, server: &ServiceProcess, events: &[Value]) -> Value {
    ok(
        pki,
        server,
        As::Service("collector"),
        "RaiseAlerts",
        &json!({ "events": events }),
    )
}

//! `usergate-emulator`: a stand-in for a UserGate UTM appliance's XML-RPC API v7 that keeps
//! state, for the tests and the compose environment. `POST /rpc` speaks the API (the methods
//! and faults of `rpc.rs`); `/control/*` is the test's side door: read the state, expire
//! sessions, log users in, add a list fed from a URL, arm a fault.
//!
//! Prints `{"message":"listening","addr":…}` on stdout once it accepts connections.

mod params;
mod rpc;
mod state;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State as Shared,
    http::StatusCode,
    routing::{get, post},
};
use clap::Parser;
use dxr::{Fault, FaultResponse, MethodCall, MethodResponse};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};

use state::{ArmedFault, NamedList, State};

#[derive(Parser)]
#[command(
    name = "usergate-emulator",
    about = "A stateful UserGate UTM API v7 emulator"
)]
struct Args {
    #[arg(long, env = "USERGATE_LISTEN", default_value = "127.0.0.1:4040")]
    listen: SocketAddr,
    #[arg(long, env = "USERGATE_LOGIN", default_value = "admin")]
    login: String,
    #[arg(long, env = "USERGATE_PASSWORD", hide_env_values = true)]
    password: String,
    /// Serve HTTPS with this PEM certificate chain (and `--tls-key`) instead of HTTP.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// A session unused for this long expires (fault 104).
    #[arg(long, env = "USERGATE_SESSION_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    session_ttl: Duration,
}

type AppState = Arc<Mutex<State>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state: AppState = Arc::new(Mutex::new(State::new(
        args.login.clone(),
        args.password.clone(),
        args.session_ttl,
    )));
    let app = Router::new()
        .route("/rpc", post(rpc_call))
        .route("/control/state", get(snapshot))
        .route("/control/expire-sessions", post(expire_sessions))
        .route("/control/users", post(add_user))
        .route("/control/lists", post(add_list))
        .route("/control/faults", post(arm_fault))
        .route("/control/delays", post(add_delay))
        .with_state(state);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            xdr_mesh::tls::install_crypto_provider();
            Some(xdr_mesh::tls::https_server_config(cert, key)?)
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "{}",
        json!({"message": "listening", "addr": listener.local_addr()?.to_string()})
    );
    let limits = xdr_mesh::http::HttpLimits {
        max_connections: 256,
        header_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(1),
    };
    let never = tokio_util::sync::CancellationToken::new();
    xdr_mesh::http::serve(
        "usergate emulator listening",
        listener,
        app,
        limits,
        never,
        tls,
    )
    .await;
    Ok(())
}

async fn rpc_call(
    Shared(state): Shared<AppState>,
    headers: axum::http::HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let answer = match MethodCall::from_xml(&body) {
        Ok(call) => {
            // Recorded as it arrives: a test sees a slow call while it is being answered.
            let delay = {
                let mut state = state.lock().expect("state lock");
                state.calls.push(call.name.to_string());
                if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok())
                {
                    state.traceparents.push(traceparent.to_owned());
                }
                state.delays.get(call.name.as_ref()).copied()
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let mut state = state.lock().expect("state lock");
            rpc::call(&mut state, &call.name, &call.params)
        }
        Err(_) => Err(Fault::new(
            -32700,
            "parse error: not an XML-RPC method call".into(),
        )),
    };
    let xml = match answer {
        Ok(value) => MethodResponse { value }.to_xml(),
        Err(fault) => FaultResponse { fault }.to_xml(),
    };
    match xml {
        Ok(xml) => (StatusCode::OK, xml),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn snapshot(Shared(state): Shared<AppState>) -> Json<JsonValue> {
    Json(state.lock().expect("state lock").snapshot())
}

#[derive(Deserialize)]
struct Expiry {
    /// Expire after this many more authenticated calls; none: now.
    #[serde(default)]
    after_calls: Option<u32>,
}

async fn expire_sessions(
    Shared(state): Shared<AppState>,
    Json(expiry): Json<Expiry>,
) -> Json<JsonValue> {
    let mut state = state.lock().expect("state lock");
    match expiry.after_calls {
        Some(calls) => {
            state.expire_after_calls = Some(calls);
            Json(json!({ "expire_after_calls": calls }))
        }
        None => Json(json!({ "expired": state.expire_sessions() })),
    }
}

#[derive(Deserialize)]
struct NewUser {
    login: String,
    ip: String,
}

async fn add_user(Shared(state): Shared<AppState>, Json(user): Json<NewUser>) -> Json<JsonValue> {
    let id = rpc::add_user(&mut state.lock().expect("state lock"), user.login, user.ip);
    Json(json!({ "id": id }))
}

#[derive(Deserialize)]
struct NewList {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: String,
}

async fn add_list(Shared(state): Shared<AppState>, Json(list): Json<NewList>) -> Json<JsonValue> {
    let mut state = state.lock().expect("state lock");
    let id = state.next_id();
    state.lists.push(NamedList {
        id,
        name: list.name,
        kind: list.kind,
        url: list.url,
        items: Vec::new(),
    });
    Json(json!({ "id": id }))
}

#[derive(Deserialize)]
struct NewFault {
    method: String,
    code: i32,
    message: String,
    #[serde(default = "once")]
    times: u32,
}

fn once() -> u32 {
    1
}

async fn arm_fault(Shared(state): Shared<AppState>, Json(fault): Json<NewFault>) -> StatusCode {
    state.lock().expect("state lock").faults.push(ArmedFault {
        method: fault.method,
        code: fault.code,
        message: fault.message,
        times: fault.times,
    });
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct NewDelay {
    method: String,
    ms: u64,
}

async fn add_delay(Shared(state): Shared<AppState>, Json(delay): Json<NewDelay>) -> StatusCode {
    state
        .lock()
        .expect("state lock")
        .delays
        .insert(delay.method, Duration::from_millis(delay.ms));
    StatusCode::NO_CONTENT
}

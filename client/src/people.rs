//! `xdrctl user …` and `xdrctl token …`: the gateway's people, over its HTTP JSON API
//! (`/v1/people/…`) with an API token — `--token`, `XDR_TOKEN`, or the first Main
//! administrator's token the gateway wrote into the mesh home on fresh data.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use xdr_mesh::directory::GATEWAY;

use crate::layout::{self, Home};

/// The file the gateway writes its first token to, in its data directory.
const FIRST_TOKEN_FILE: &str = "first-admin-token";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The first Main administrator's token of the mesh in `home`, and its file, if there is one.
pub fn first_admin_token(home: &Home) -> Option<(String, PathBuf)> {
    let file = home.data(GATEWAY.name).join(FIRST_TOKEN_FILE);
    let token = std::fs::read_to_string(&file).ok()?;
    Some((token.trim().to_owned(), file))
}

#[derive(clap::Args)]
pub struct Gateway {
    /// The mesh home (where the first Main administrator's token is).
    #[arg(long, env = "XDR_HOME", default_value = xdr_mesh::config::DEFAULT_HOME)]
    home: PathBuf,
    /// The address the gateway listens on; the port is its default.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// An API token [default: the first Main administrator's, from the mesh home].
    #[arg(long, env = "XDR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Users of your tenant (every tenant's for a Main administrator).
    List(Gateway),
    /// A new user: a name, a role, a tenant (yours by default).
    Create {
        name: String,
        /// main-administrator, tenant-administrator, tier2-analyst, tier1-analyst,
        /// junior-analyst or observer.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        tenant: String,
        /// A console password, read as the first line of standard input (12 to 256
        /// characters).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Deletes a user and their tokens.
    Delete {
        name: String,
        #[command(flatten)]
        gateway: Gateway,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Your tokens (and your tenant's users' when you manage them); never their secrets.
    List(Gateway),
    /// A new token; its secret is printed once.
    Create {
        /// Whose token [default: yours].
        #[arg(long, default_value = "")]
        user: String,
        /// How long it lasts (`30d`, `12h`) [default: until revoked].
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Revokes a token by its id.
    Revoke {
        id: String,
        #[command(flatten)]
        gateway: Gateway,
    },
}

pub async fn users(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::List(gateway) => {
            let listed = gateway.call("GET", "/v1/people/users", None).await?;
            for user in listed["users"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}/{}",
                    text(&user["name"]),
                    text(&user["tenant"]),
                    text(&user["role"])
                );
            }
        }
        UserCommand::Create {
            name,
            role,
            tenant,
            password_stdin,
            gateway,
        } => {
            let mut body = json!({"name": name, "role": role, "tenant": tenant});
            if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                body["password"] = json!(line.trim_end_matches(['\r', '\n']));
            }
            let made = gateway.call("POST", "/v1/people/users", Some(body)).await?;
            println!(
                "created user {} in {} as {}",
                made["name"], made["tenant"], made["role"]
            );
        }
        UserCommand::Delete { name, gateway } => {
            gateway
                .call("DELETE", &format!("/v1/people/users/{name}"), None)
                .await?;
            println!("deleted user {name:?} and their tokens");
        }
    }
    Ok(())
}

pub async fn tokens(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::List(gateway) => {
            let listed = gateway.call("GET", "/v1/people/tokens", None).await?;
            for token in listed["tokens"].as_array().into_iter().flatten() {
                let state = if token["revoked"] == true {
                    "revoked"
                } else {
                    "live"
                };
                println!(
                    "{}  {}  {state}  {}",
                    text(&token["id"]),
                    text(&token["user"]),
                    text(&token["description"])
                );
            }
        }
        TokenCommand::Create {
            user,
            expires,
            description,
            gateway,
        } => {
            let body = json!({
                "user": user,
                "description": description,
                "expiresInSeconds": expires.map_or(0, |d| d.as_secs().max(1)),
            });
            let made = gateway
                .call("POST", "/v1/people/tokens", Some(body))
                .await?;
            eprintln!(
                "token {} for {} (its secret is shown once):",
                text(&made["id"]),
                text(&made["user"])
            );
            println!("{}", text(&made["secret"]));
        }
        TokenCommand::Revoke { id, gateway } => {
            gateway
                .call("DELETE", &format!("/v1/people/tokens/{id}"), None)
                .await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

/// A new input token for a collector (256 random bits, base64url) and its SHA-256, hex.
pub fn new_input_token() -> (String, String) {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (token, digest)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

impl Gateway {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        first_admin_token(&Home::new(Path::new(&self.home)))
            .map(|(token, _)| token)
            .context("no token: give --token or XDR_TOKEN (the mesh home holds no first token)")
    }

    /// `method path` with `body`, answered JSON; an error answer is the error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let addr = layout::dial_addr(self.host, GATEWAY.http_port);
        let token = self.token()?;
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to the gateway at {addr}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(connection);
            let request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, addr.to_string())
                .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(
                    body.map(|b| b.to_string()).unwrap_or_default(),
                )))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("the gateway did not answer in {CALL_TIMEOUT:?}"))??;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{} ({}): {}",
                status.as_u16(),
                text(&answer["code"]),
                text(&answer["message"])
            );
        }
        Ok(answer)
    }
}

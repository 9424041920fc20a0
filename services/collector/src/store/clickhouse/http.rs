//! ClickHouse's HTTP interface: a statement POSTed to `/` with its settings in the query
//! string, the answer read with a deadline and a size cap. A connection per statement: the
//! loader sends one large insert at a time and searches are few, so a pool would buy little.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;

/// The largest answer read whole (schema statements, id checks, errors).
const MAX_TEXT_BYTES: usize = 16 << 20;
/// The longest error message kept from ClickHouse.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse at {host} is unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("ClickHouse at {host} did not answer within {timeout:?}")]
    Timeout { host: String, timeout: Duration },
    #[error("ClickHouse refused (code {code}): {message}")]
    Refused { code: u32, message: String },
    #[error("ClickHouse's answer is unreadable: {0}")]
    Protocol(String),
}

impl ClickHouseError {
    /// Whether the server that took a statement lost its connection to another shard
    /// (SOCKET_TIMEOUT, NETWORK_ERROR, ALL_CONNECTION_TRIES_FAILED): a read that fails so
    /// before answering anything may succeed at once when sent again.
    pub fn is_shard_connection_failure(&self) -> bool {
        matches!(
            self,
            ClickHouseError::Refused {
                code: 209 | 210 | 279,
                ..
            }
        )
    }

    /// Whether trying again later may succeed: the server or a shard is away, busy or slow.
    pub fn is_transient(&self) -> bool {
        match self {
            ClickHouseError::Unreachable { .. } | ClickHouseError::Timeout { .. } => true,
            // NETWORK_ERROR, SOCKET_TIMEOUT, TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES,
            // MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY, TOO_MANY_PARTS, ALL_CONNECTION_TRIES_FAILED,
            // ALL_REPLICAS_ARE_STALE, UNKNOWN_TABLE and UNKNOWN_DATABASE (a server whose
            // tables are not made yet).
            ClickHouseError::Refused { code, .. } => {
                matches!(
                    code,
                    60 | 81 | 159 | 202 | 209 | 210 | 241 | 242 | 252 | 279 | 285
                )
            }
            ClickHouseError::Protocol(_) => false,
        }
    }
}

/// Posts statements to ClickHouse servers.
#[derive(Clone)]
pub struct Http {
    /// `Authorization: Basic …`, when a user is given.
    authorization: Option<String>,
    timeout: Duration,
}

impl Http {
    pub fn new(user: &str, password: &str, timeout: Duration) -> Self {
        use base64::Engine as _;
        let authorization = (!user.is_empty()).then(|| {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {pair}")
        });
        Http {
            authorization,
            timeout,
        }
    }

    /// Posts `body` to `host` with `settings` in the query string; the answer's body once
    /// ClickHouse has accepted the statement (an error status is read and returned).
    pub async fn send(
        &self,
        host: &str,
        settings: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Incoming, ClickHouseError> {
        let timeout = self.timeout;
        let timed_out = || ClickHouseError::Timeout {
            host: host.to_owned(),
            timeout,
        };
        let unreachable = |reason: String| ClickHouseError::Unreachable {
            host: host.to_owned(),
            reason,
        };
        let response = tokio::time::timeout(timeout, async {
            let tcp = tokio::net::TcpStream::connect(host)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            tokio::spawn(connection);
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(settings)
                .finish();
            let mut request = hyper::Request::post(format!("/?{query}"))
                .header(hyper::header::HOST, host)
                .header(hyper::header::USER_AGENT, "xdr-collector");
            if let Some(authorization) = &self.authorization {
                request = request.header(hyper::header::AUTHORIZATION, authorization);
            }
            let request = request
                .body(Full::new(body))
                .map_err(|e| ClickHouseError::Protocol(e.to_string()))?;
            sender
                .send_request(request)
                .await
                .map_err(|e| unreachable(e.to_string()))
        })
        .await
        .map_err(|_| timed_out())??;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(response.into_body());
        }
        let text = tokio::time::timeout(timeout, read_all(response.into_body()))
            .await
            .map_err(|_| timed_out())??;
        Err(refusal(&text).unwrap_or_else(|| {
            ClickHouseError::Protocol(format!("HTTP status {status}: {}", short(&text)))
        }))
    }

    /// Posts `body` and reads the whole answer as text.
    pub async fn text(
        &self,
        host: &str,
        settings: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<String, ClickHouseError> {
        let answer = self.send(host, settings, body.into()).await?;
        tokio::time::timeout(self.timeout, read_all(answer))
            .await
            .map_err(|_| ClickHouseError::Timeout {
                host: host.to_owned(),
                timeout: self.timeout,
            })?
    }
}

async fn read_all(body: Incoming) -> Result<String, ClickHouseError> {
    let bytes = Limited::new(body, MAX_TEXT_BYTES)
        .collect()
        .await
        .map_err(|e| ClickHouseError::Protocol(format!("reading the answer: {e}")))?
        .to_bytes();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ClickHouseError::Protocol("the answer is not UTF-8".into()))
}

/// The error ClickHouse wrote, `Code: N, e.displayText() = DB::Exception: …`, if `text` is one
/// (also how an error that happens while an answer streams shows in its body).
pub fn refusal(text: &str) -> Option<ClickHouseError> {
    let rest = text.trim_start().strip_prefix("Code: ")?;
    let (code, rest) = rest.split_once(',')?;
    let code = code.trim().parse().ok()?;
    let message = rest
        .split_once("Exception: ")
        .map_or(rest, |(_, m)| m)
        .split(", e.what()")
        .next()
        .unwrap_or_default();
    Some(ClickHouseError::Refused {
        code,
        message: short(message),
    })
}

fn short(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_short_with_their_code() {
        let error = refusal("Code: 47, e.displayText() = DB::Exception: Unknown identifier: x, e.what() = DB::Exception\n").unwrap();
        assert!(
            matches!(&error, ClickHouseError::Refused { code: 47, message } if message == "Unknown identifier: x"),
            "{error:?}"
        );
        assert!(!error.is_transient());
        let long = format!(
            "Code: 210, e.displayText() = DB::Exception: {}",
            "x".repeat(5000)
        );
        let error = refusal(&long).unwrap();
        assert!(error.is_transient());
        assert!(error.to_string().len() < 300);
        assert!(refusal("{\"a\":1}").is_none());
    }
}

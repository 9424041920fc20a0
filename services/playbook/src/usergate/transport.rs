//! One XML-RPC call over HTTP or HTTPS: the method call serialized by `dxr`, POSTed to the
//! appliance's `/rpc` URL, the answer read with a size cap and a deadline, then parsed as a
//! value or a fault. A connection per call: a launch makes a dozen calls, and an appliance
//! that drops idle keep-alive connections then costs nothing to handle.

use std::{sync::Arc, time::Duration};
use tracing::Instrument;

use bytes::Bytes;
use dxr::{FaultResponse, MethodCall, MethodResponse, Value};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::error::CallError;

/// The largest answer read: a list of a few thousand items fits many times over.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Where and how to reach one appliance.
#[derive(Clone)]
pub struct Endpoint {
    url: url::Url,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
}

impl Endpoint {
    /// The endpoint at `url` (`http` or `https`); an `https` one trusts `ca_pem` only, as
    /// appliances carry certificates of their own CA.
    pub fn new(url: &str, ca_pem: &str, timeout: Duration) -> Result<Self, CallError> {
        let url =
            url::Url::parse(url).map_err(|e| CallError::Config(format!("url: not a URL ({e})")))?;
        if url.host_str().is_none() {
            return Err(CallError::Config("url: no host".into()));
        }
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some(client_config(ca_pem)?),
            other => {
                return Err(CallError::Config(format!(
                    "url: scheme {other} is neither http nor https"
                )));
            }
        };
        Ok(Endpoint { url, tls, timeout })
    }

    /// The URL without credentials, for messages.
    pub fn display(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.to_string()
    }

    /// Calls `method` with `params`: its return value, or the fault or failure.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, CallError> {
        let call = MethodCall {
            name: method.into(),
            params,
        };
        let body = call
            .to_xml()
            .map_err(|e| CallError::Protocol(format!("encoding the call: {e}")))?;
        let span = tracing::info_span!(
            "usergate",
            otel.name = %format_args!("usergate {method}"),
            otel.kind = "client",
            rpc.system = "xmlrpc",
            rpc.method = method,
        );
        let answer = tokio::time::timeout(self.timeout, self.post(body))
            .instrument(span)
            .await
            .map_err(|_| CallError::Timeout(self.timeout))??;
        parse_answer(&answer)
    }

    async fn post(&self, body: String) -> Result<Bytes, CallError> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.exchange(tcp, body).await,
            Some(config) => {
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| CallError::Config(format!("url: host {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| CallError::Unreachable(format!("TLS: {e}")))?;
                self.exchange(tls, body).await
            }
        }
    }

    async fn exchange<S>(&self, stream: S, body: String) -> Result<Bytes, CallError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        tokio::spawn(connection);
        let authority = self.url[url::Position::BeforeHost..url::Position::AfterPort].to_owned();
        let mut request = hyper::Request::post(&self.url[url::Position::BeforePath..])
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "text/xml")
            .header(hyper::header::USER_AGENT, "xdr-playbook");
        // The appliance, or a proxy before it, may trace the call too.
        let traceparent = xdr_mesh::trace::current();
        if !traceparent.is_empty() {
            request = request.header(xdr_mesh::trace::TRACEPARENT, traceparent);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| CallError::Protocol(format!("reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(CallError::Protocol(format!("HTTP status {status}")));
        }
        Ok(bytes)
    }
}

/// Arrays and structs nested in an answer at most (UserGate's answers nest two or three).
/// dxr 0.9 refuses a 200,000-deep answer by itself (checked), but how deep a recursive parser
/// may be driven is ours to bound, not a parser version's: a broken appliance or someone in
/// the middle of plain HTTP gets a short refusal before any parsing.
const MAX_NESTING: usize = 32;

/// Whether no array or struct in `text` sits deeper than [`MAX_NESTING`].
fn nesting_within_bounds(text: &str) -> bool {
    let mut depth = 0_usize;
    for (at, _) in text.match_indices('<') {
        let tag = &text[at + 1..];
        if tag.starts_with("array") || tag.starts_with("struct") {
            depth += 1;
            if depth > MAX_NESTING {
                return false;
            }
        } else if tag.starts_with("/array") || tag.starts_with("/struct") {
            depth = depth.saturating_sub(1);
        }
    }
    true
}

/// The value or the fault an answer carries.
fn parse_answer(answer: &[u8]) -> Result<Value, CallError> {
    let text = std::str::from_utf8(answer)
        .map_err(|_| CallError::Protocol("the answer is not UTF-8".into()))?;
    if !nesting_within_bounds(text) {
        return Err(CallError::Protocol(format!(
            "the answer nests arrays and structs more than {MAX_NESTING} deep"
        )));
    }
    if let Ok(response) = MethodResponse::from_xml(text) {
        return Ok(response.value);
    }
    match FaultResponse::from_xml(text) {
        Ok(fault) => Err(CallError::Fault {
            code: fault.fault.code(),
            message: fault.fault.string().to_owned(),
        }),
        Err(_) => Err(CallError::Protocol(
            "the answer is neither an XML-RPC value nor a fault".into(),
        )),
    }
}

fn client_config(ca_pem: &str) -> Result<Arc<ClientConfig>, CallError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| CallError::Config(format!("ca_pem: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| CallError::Config(format!("ca_pem: {e}")))?;
    }
    if roots.is_empty() {
        return Err(CallError::Config(
            "ca_pem: an https URL needs the appliance's CA certificate (PEM)".into(),
        ));
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CallError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_values_or_faults() {
        let value = MethodResponse {
            value: Value::String("ok".into()),
        }
        .to_xml()
        .unwrap();
        assert_eq!(
            parse_answer(value.as_bytes()).unwrap(),
            Value::String("ok".into())
        );
        let fault = FaultResponse {
            fault: dxr::Fault::new(104, "session expired".into()),
        }
        .to_xml()
        .unwrap();
        match parse_answer(fault.as_bytes()) {
            Err(CallError::Fault { code: 104, message }) => assert_eq!(message, "session expired"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_answer(b"<html>busy</html>"),
            Err(CallError::Protocol(_))
        ));
    }

    #[test]
    fn an_answer_nested_too_deep_is_refused_before_it_is_parsed() {
        let depth = 200_000;
        let answer = format!(
            "<?xml version=\"1.0\"?><methodResponse><params><param><value>{}{}</value></param></params></methodResponse>",
            "<array><data><value>".repeat(depth),
            "</value></data></array>".repeat(depth)
        );
        match parse_answer(answer.as_bytes()) {
            Err(CallError::Protocol(why)) => assert!(why.contains("nests"), "{why}"),
            other => panic!("{other:?}"),
        }
        let shallow = MethodResponse {
            value: Value::Array(vec![Value::Array(vec![Value::Integer(1)])]),
        }
        .to_xml()
        .unwrap();
        assert!(parse_answer(shallow.as_bytes()).is_ok());
    }

    #[test]
    fn endpoints_need_a_known_scheme_and_a_ca_for_https() {
        let timeout = Duration::from_secs(1);
        assert!(Endpoint::new("http://10.0.0.1:4040/rpc", "", timeout).is_ok());
        let https = Endpoint::new("https://ug:4040/rpc", "", timeout)
            .err()
            .unwrap();
        assert!(https.to_string().contains("ca_pem"), "{https}");
        let ftp = Endpoint::new("ftp://ug/rpc", "", timeout).err().unwrap();
        assert!(ftp.to_string().contains("scheme ftp"), "{ftp}");
    }
}

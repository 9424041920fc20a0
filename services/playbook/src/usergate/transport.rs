//! One XML-RPC call over HTTP or HTTPS: the method call serialized by `dxr`, POSTed to the
//! appliance's `/rpc` URL, the answer read with a size cap and a deadline, then parsed as a
//! value or a fault. A connection per call: a launch makes a dozen calls, and an appliance
//! that drops idle keep-alive connections then costs nothing to handle.

use std::time::Duration;
use tracing::Instrument;

use bytes::Bytes;
use dxr::{FaultResponse, MethodCall, MethodResponse, Value};
use http::{HeaderMap, HeaderValue, Method, header};
use xdr_mesh::http_client::{HttpClient, HttpClientError, display_url};

use super::error::CallError;

/// The largest answer read: a list of a few thousand items fits many times over.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Where and how to reach one appliance.
#[derive(Clone)]
pub struct Endpoint {
    url: url::Url,
    client: HttpClient,
}

impl Endpoint {
    /// The endpoint at `url` (`http` or `https`); an `https` one trusts `ca_pem` only, as
    /// appliances carry certificates of their own CA.
    pub fn new(url: &str, ca_pem: &str, timeout: Duration) -> Result<Self, CallError> {
        let url =
            url::Url::parse(url).map_err(|e| CallError::Config(format!("url: not a URL ({e})")))?;
        let ca_pem = match url.scheme() {
            "https" if ca_pem.trim().is_empty() => {
                return Err(CallError::Config(
                    "ca_pem: an https URL needs the appliance's CA certificate (PEM)".into(),
                ));
            }
            "https" => Some(ca_pem),
            _ => None,
        };
        let client = HttpClient::new(ca_pem, timeout, MAX_RESPONSE_BYTES, "xdr-playbook")
            .map_err(|e| CallError::Config(format!("ca_pem: {e}")))?;
        client
            .check_url(&url)
            .map_err(|e| CallError::Config(e.to_string()))?;
        Ok(Endpoint { url, client })
    }

    /// The URL without credentials, for messages.
    pub fn display(&self) -> String {
        display_url(&self.url)
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
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        let answer = self
            .client
            .exchange(Method::POST, &self.url, headers, Bytes::from(body))
            .instrument(span)
            .await
            .map_err(|e| match e {
                HttpClientError::Timeout(after) => CallError::Timeout(after),
                HttpClientError::Unreachable(why) => CallError::Unreachable(why),
                HttpClientError::Config(why) => CallError::Config(why),
                HttpClientError::Protocol(why) => CallError::Protocol(why),
            })?;
        if !answer.status.is_success() {
            return Err(CallError::Protocol(format!(
                "HTTP status {}",
                answer.status
            )));
        }
        parse_answer(&answer.body)
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

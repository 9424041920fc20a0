//! One bounded HTTP/1.1 exchange with a server outside the mesh (a UserGate appliance, a
//! TAXII server, a MISP feed): a connection per exchange, TLS trusting only the CA the
//! operator gave, the whole exchange within a deadline (a server that drips bytes is cut
//! off at it), and the answer's body read up to a cap.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The URL or the CA cannot be used.
    #[error("{0}")]
    Config(String),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An answer that cannot be read: a body over the cap, a broken exchange.
    #[error("{0}")]
    Protocol(String),
}

/// How to reach one server: its TLS settings and the bounds of an exchange with it.
#[derive(Clone)]
pub struct HttpClient {
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
    max_body: usize,
    user_agent: &'static str,
}

/// A server's answer, its body whole.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpClient {
    /// A client for `http` URLs, and for `https` ones trusting the CA certificates in
    /// `ca_pem` only (servers of an operator's own CA are the rule here); none means `https`
    /// is refused.
    pub fn new(
        ca_pem: Option<&str>,
        timeout: Duration,
        max_body: usize,
        user_agent: &'static str,
    ) -> Result<Self, HttpClientError> {
        let tls = ca_pem.map(client_config).transpose()?;
        Ok(HttpClient {
            tls,
            timeout,
            max_body,
            user_agent,
        })
    }

    /// Checks that `url` can be asked by this client: http, or https with a CA, and a host.
    pub fn check_url(&self, url: &url::Url) -> Result<(), HttpClientError> {
        if url.host_str().is_none() {
            return Err(HttpClientError::Config("url: no host".into()));
        }
        match url.scheme() {
            "http" => Ok(()),
            "https" if self.tls.is_some() => Ok(()),
            "https" => Err(HttpClientError::Config(
                "url: an https URL needs the server's CA certificate (PEM)".into(),
            )),
            other => Err(HttpClientError::Config(format!(
                "url: scheme {other} is neither http nor https"
            ))),
        }
    }

    /// Sends `method` to `url` with `headers` and `body`; the answer, whatever its status.
    pub async fn exchange(
        &self,
        method: Method,
        url: &url::Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpAnswer, HttpClientError> {
        self.check_url(url)?;
        tokio::time::timeout(
            self.timeout,
            self.connect_and_send(method, url, headers, body),
        )
        .await
        .map_err(|_| HttpClientError::Timeout(self.timeout))?
    }

    async fn connect_and_send(
        &self,
        method: Method,
        url: &url::Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpAnswer, HttpClientError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| HttpClientError::Unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, url.scheme()) {
            (Some(config), "https") => {
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| HttpClientError::Config(format!("url: host {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| HttpClientError::Unreachable(format!("TLS: {e}")))?;
                self.send(tls, method, url, headers, body).await
            }
            _ => self.send(tcp, method, url, headers, body).await,
        }
    }

    async fn send<S>(
        &self,
        stream: S,
        method: Method,
        url: &url::Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpAnswer, HttpClientError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpClientError::Unreachable(e.to_string()))?;
        tokio::spawn(connection);
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
            .body(Full::new(body))
            .map_err(|e| HttpClientError::Config(format!("url: {e}")))?;
        *request.headers_mut() = headers;
        let host = HeaderValue::from_str(authority)
            .map_err(|e| HttpClientError::Config(format!("url: host {e}")))?;
        request.headers_mut().insert(header::HOST, host);
        request.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static(self.user_agent),
        );
        // The server, or a proxy before it, may trace the exchange too.
        let traceparent = crate::trace::current();
        if let Ok(value) = HeaderValue::from_str(&traceparent)
            && !traceparent.is_empty()
        {
            request
                .headers_mut()
                .insert(crate::trace::TRACEPARENT, value);
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpClientError::Unreachable(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpClientError::Protocol(format!("the answer is over {} bytes", self.max_body))
                } else {
                    HttpClientError::Protocol(format!("reading the answer: {e}"))
                }
            })?
            .to_bytes();
        Ok(HttpAnswer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// The URL without credentials, for messages and logs.
pub fn display_url(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn client_config(ca_pem: &str) -> Result<Arc<ClientConfig>, HttpClientError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| HttpClientError::Config(format!("ca: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| HttpClientError::Config(format!("ca: {e}")))?;
    }
    if roots.is_empty() {
        return Err(HttpClientError::Config(
            "ca: no CA certificate (PEM) in it".into(),
        ));
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpClientError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A server on loopback that answers every connection with `answer`, `pause` between
    /// its bytes after the first `head` of them.
    async fn server(answer: Vec<u8>, head: usize, pause: Duration) -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                    let _ = socket.write_all(&answer[..head]).await;
                    for byte in &answer[head..] {
                        tokio::time::sleep(pause).await;
                        if socket.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url::Url::parse(&format!("http://{addr}/feed")).unwrap()
    }

    #[tokio::test]
    async fn a_server_that_drips_is_cut_off_at_the_deadline_and_a_large_body_at_the_cap() {
        let body = vec![b'x'; 2048];
        let mut answer =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend(&body);
        let head = answer.len() - body.len();
        let timeout = Duration::from_millis(300);
        let client = HttpClient::new(None, timeout, 1024, "test").unwrap();
        let dripping = server(answer.clone(), head, Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let error = client
            .exchange(Method::GET, &dripping, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(error, HttpClientError::Timeout(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let large = server(answer.clone(), answer.len(), Duration::ZERO).await;
        let error = client
            .exchange(Method::GET, &large, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "the answer is over 1024 bytes");
        let roomy = HttpClient::new(None, timeout, 4096, "test").unwrap();
        let answer = roomy
            .exchange(Method::GET, &large, HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!((answer.status, answer.body.len()), (StatusCode::OK, 2048));
    }

    #[test]
    fn urls_need_a_known_scheme_a_host_and_a_ca_for_https() {
        let timeout = Duration::from_secs(1);
        let plain = HttpClient::new(None, timeout, 1024, "test").unwrap();
        let url = |text: &str| url::Url::parse(text).unwrap();
        assert!(plain.check_url(&url("http://10.0.0.1:4040/rpc")).is_ok());
        let https = plain.check_url(&url("https://ug:4040/rpc")).unwrap_err();
        assert!(https.to_string().contains("CA certificate"), "{https}");
        let ftp = plain.check_url(&url("ftp://ug/rpc")).unwrap_err();
        assert!(ftp.to_string().contains("scheme ftp"), "{ftp}");
        let no_ca = HttpClient::new(Some("not a certificate"), timeout, 1024, "test")
            .err()
            .unwrap();
        assert!(no_ca.to_string().starts_with("ca: "), "{no_ca}");
        assert_eq!(
            display_url(&url("https://user:secret@taxii.example/api1/")),
            "https://taxii.example/api1/"
        );
    }
}

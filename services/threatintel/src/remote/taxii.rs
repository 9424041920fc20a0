//! One poll of a TAXII 2.1 collection (OASIS TAXII 2.1, §5.3 "Get Objects"): `GET
//! {api-root}/collections/{id}/objects/` with `Accept: application/taxii+json;version=2.1`,
//! `added_after` the `X-TAXII-Date-Added-Last` of the previous poll, following the envelope's
//! `more`/`next` until the server has no more. Every page is bounded in size and time, and a
//! poll in pages and objects, so no server can make a poll hold or last without end.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;
use xdr_mesh::http_client::HttpClient;

use super::config::RemoteSource;

/// TAXII 2.1's media type, asked for and expected.
const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// Pages one poll follows at most; a server still saying `more` past it is polled again next
/// time from where this poll ended.
pub const MAX_PAGES: usize = 1000;
/// The most bytes of pages one poll holds; a poll that reaches it ends there, and the next
/// goes on from the last page's `X-TAXII-Date-Added-Last`.
pub const MAX_POLL_BYTES: usize = 256 << 20;
/// Objects a page is asked for (the server may send fewer). Asked on every page: some
/// servers (medallion) need it beside `next`.
const PAGE_LIMIT: usize = 1000;

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    objects: Vec<Box<RawValue>>,
}

/// What a poll brought.
pub struct Fetched {
    pub objects: Vec<Box<RawValue>>,
    /// The `added_after` of the next poll.
    pub added_after: Option<String>,
}

/// Fetches what the collection `collection` under `api_root` added after `added_after`.
pub async fn poll(
    client: &HttpClient,
    source: &RemoteSource,
    (api_root, collection): (&url::Url, &str),
    added_after: Option<String>,
) -> Result<Fetched, String> {
    let objects_url = api_root
        .join(&format!("collections/{collection}/objects/"))
        .map_err(|e| format!("api_root: {e}"))?;
    let mut headers = super::request_headers(source)?;
    headers.insert(header::ACCEPT, HeaderValue::from_static(TAXII_MEDIA_TYPE));
    let mut fetched = Fetched {
        objects: Vec::new(),
        added_after: added_after.clone(),
    };
    // The filter every page of one listing repeats; `next` names the page.
    let mut since = added_after;
    let mut next: Option<String> = None;
    let mut held = 0;
    for _ in 0..MAX_PAGES {
        let mut url = objects_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &PAGE_LIMIT.to_string());
            if let Some(since) = &since {
                query.append_pair("added_after", since);
            }
            if let Some(next) = &next {
                query.append_pair("next", next);
            }
        }
        let answer = client
            .exchange(Method::GET, &url, headers.clone(), Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err("no such API root or collection (HTTP 404)".into());
        }
        super::check_status(answer.status)?;
        held += answer.body.len();
        let envelope: Envelope = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("the answer is not a TAXII envelope: {e}"))?;
        let last_added = (answer.headers.get("X-TAXII-Date-Added-Last"))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if let Some(last) = &last_added {
            fetched.added_after = Some(last.clone());
        }
        let page_objects = envelope.objects.len();
        fetched.objects.extend(envelope.objects);
        if fetched.objects.len() > super::cache::MAX_CACHED_OBJECTS {
            return Err(format!(
                "over {} objects in one poll",
                super::cache::MAX_CACHED_OBJECTS
            ));
        }
        if held >= MAX_POLL_BYTES {
            return Ok(fetched);
        }
        match (envelope.more, envelope.next) {
            (true, Some(token)) if !token.is_empty() => next = Some(token),
            // More without a `next`: the next page is what was added after this one's last.
            (true, _) if page_objects > 0 && last_added.is_some() => {
                since = last_added;
                next = None;
            }
            _ => return Ok(fetched),
        }
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::remote::config::{RemoteSource, SourceKind};

    /// A TAXII server on loopback whose first page says `more` and which then goes away:
    /// the connection asking for the second page is closed unanswered.
    async fn server_gone_after_one_page() -> url::Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let page = r#"{"more": true, "next": "p2", "objects": [{"type": "indicator", "id": "indicator--1"}]}"#;
            let mut pages = 0;
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                pages += 1;
                if pages == 1 {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {TAXII_MEDIA_TYPE}\r\n\
                         x-taxii-date-added-last: 2024-01-01T00:00:00Z\r\n\
                         content-length: {}\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
                // Later pages: dropped unanswered, as by a server that died.
            }
        });
        url::Url::parse(&format!("http://{addr}/api1/")).unwrap()
    }

    #[tokio::test]
    async fn a_server_gone_mid_poll_fails_the_poll_with_nothing_taken() {
        let api_root = server_gone_after_one_page().await;
        let source = RemoteSource {
            supplier: "Cti".into(),
            kind: SourceKind::Taxii {
                api_root: api_root.clone(),
                collection: "c".into(),
            },
            credentials: None,
            ca_pem: None,
            poll_interval: Duration::from_secs(1),
        };
        let client = HttpClient::new(None, Duration::from_secs(5), 1 << 20, "test").unwrap();
        let polled = poll(&client, &source, (&api_root, "c"), None).await;
        let error = polled.err().expect("the poll fails");
        assert!(error.starts_with("unreachable: "), "{error}");
    }
}

//! The `cybertrace` source: a real CyberTrace (or our own listener) at `host:port`, spoken to
//! with its ReplyBack protocol. A connection opens with `X-KF-SendFinishedEventX-KF-ReplyBack`;
//! each value is one line (`url=… `, `ip=… `, `md5=… `), answered in order by its detections
//! and a `LookupFinished` line. Detections are read back with the seed's formats
//! (`Category=…|MatchedIndicator=…|name=value…`) into structured matches.
//!
//! One event value is exactly one lookup: a value that would be read as more than one (a
//! space or a line break in it) is escaped where URLs allow it and refused elsewhere, and a
//! value the listener would refuse (too long, empty) is answered here, never sent. Every
//! exchange has a deadline and every reply line a bound; a connection that breaks either, or
//! fails, is dropped and the next exchange dials a new one.

use std::{io, num::NonZeroU32, time::Duration};

use prost::Message;
use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::mpsc,
};
use xdr_cybertrace::{
    MAX_LINE, ValueKind,
    format::{Detection, is_finished},
    opening::CLIENT_OPENING,
    request,
};
use xdr_mesh::lines::{Delimited, read_delimited};
use xdr_proto::{
    pb::{IndicatorType, LookupObject, TiMatch},
    wire::WireLookupResult,
};

use super::{
    Unavailable,
    lanes::{Exchange, Lanes},
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// CyberTrace names no supplier in its detections.
const SUPPLIER: &str = "CyberTrace";
/// Detections of one value, at most: past this the peer is not CyberTrace talking either.
const MAX_DETECTIONS: usize = 1024;

/// `connections` lanes to the CyberTrace at `target` (`host:port`), each one TCP connection
/// at a time.
pub fn lanes(target: &str, connections: NonZeroU32) -> Lanes {
    let target = target.to_owned();
    Lanes::spawn(connections, move |_, exchanges| {
        run_lane(target.clone(), exchanges)
    })
}

type Connection = BufReader<TcpStream>;

async fn run_lane(target: String, mut exchanges: mpsc::Receiver<Exchange>) {
    let mut open: Option<Connection> = None;
    while let Some(exchange) = exchanges.recv().await {
        let requests: Vec<Result<String, &'static str>> =
            exchange.objects.iter().map(request_line).collect();
        let result = match tokio::time::timeout_at(
            exchange.deadline,
            exchange_with_retry(&target, &mut open, &requests, &exchange.objects),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer by the deadline",
            )),
        };
        if result.is_err() {
            // Whatever was half-written or half-read is lost with the connection.
            open = None;
        }
        let answer = result.map_err(|e| Unavailable(format!("cybertrace {target}: {e}")));
        let _ = exchange.answer.send(answer);
    }
}

/// One exchange; on a connection kept from an earlier exchange, a failure is retried once on
/// a new connection (the peer may have closed it while it was idle). Lookups are idempotent.
async fn exchange_with_retry(
    target: &str,
    open: &mut Option<Connection>,
    requests: &[Result<String, &'static str>],
    objects: &[LookupObject],
) -> io::Result<Vec<WireLookupResult>> {
    let reused = open.is_some();
    match exchange(target, open, requests, objects).await {
        Err(error) if reused => {
            tracing::debug!(%target, %error, "cybertrace: a kept connection failed; dialling again");
            *open = None;
            exchange(target, open, requests, objects).await
        }
        result => result,
    }
}

async fn exchange(
    target: &str,
    open: &mut Option<Connection>,
    requests: &[Result<String, &'static str>],
    objects: &[LookupObject],
) -> io::Result<Vec<WireLookupResult>> {
    if requests.iter().all(Result::is_err) {
        // Every value was refused here: nothing to send, no connection needed.
        return Ok(refused_results(requests));
    }
    let connection = match open {
        Some(connection) => connection,
        None => {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            stream.set_nodelay(true)?;
            let mut connection = BufReader::new(stream);
            connection
                .get_mut()
                .write_all(CLIENT_OPENING.as_bytes())
                .await?;
            open.insert(connection)
        }
    };
    let request: String = requests.iter().flatten().map(String::as_str).collect();
    connection.get_mut().write_all(request.as_bytes()).await?;
    let mut results = Vec::with_capacity(objects.len());
    let mut line = Vec::new();
    for (object, request) in objects.iter().zip(requests) {
        let mut result = WireLookupResult::default();
        if let Err(refused) = request {
            result.error = (*refused).to_owned();
            results.push(result);
            continue;
        }
        loop {
            match read_delimited(connection, b'\n', MAX_LINE, &mut line).await? {
                Delimited::End => return Err(io::ErrorKind::UnexpectedEof.into()),
                Delimited::TooLong => return Err(io::Error::other("a reply line is too long")),
                Delimited::Item => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            if is_finished(text) {
                break;
            }
            if let Some(found) = detection_of(text, object) {
                if result.matches.len() == MAX_DETECTIONS {
                    return Err(io::Error::other("too many detections for one value"));
                }
                result.matches.push(found.encode_to_vec().into());
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// The answers of a batch none of whose values is sent: each the reason it was refused.
fn refused_results(requests: &[Result<String, &'static str>]) -> Vec<WireLookupResult> {
    requests
        .iter()
        .map(|request| WireLookupResult {
            matches: Vec::new(),
            error: request
                .as_ref()
                .err()
                .copied()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

/// The request line for `object` (`xdr_cybertrace::request`), or why it is not sent.
pub(crate) fn request_line(object: &LookupObject) -> Result<String, &'static str> {
    let kind = match IndicatorType::try_from(object.r#type).unwrap_or_default() {
        IndicatorType::Ip => ValueKind::Ip,
        IndicatorType::Hash => ValueKind::Hash,
        _ => ValueKind::Url,
    };
    request::request_line(kind, &object.value)
}

/// A detection line as a match of `object`.
pub(crate) fn detection_of(text: &str, object: &LookupObject) -> Option<TiMatch> {
    let found = Detection::parse(text)?;
    Some(TiMatch {
        field: String::new(),
        value: object.value.clone(),
        indicator_type: object.r#type,
        category: found.category,
        matched_indicator: found.matched,
        supplier: SUPPLIER.to_owned(),
        context: found.context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(value: &str) -> LookupObject {
        LookupObject {
            r#type: IndicatorType::Url as i32,
            value: value.into(),
        }
    }

    #[test]
    fn detections_read_back_into_matches() {
        let found = detection_of(
            "Category=KL_Malicious_URL|MatchedIndicator=fakess123.nu|threat=Demo|popularity=1",
            &url("http://fakess123.nu"),
        )
        .unwrap();
        assert_eq!(found.category, "KL_Malicious_URL");
        assert_eq!(found.matched_indicator, "fakess123.nu");
        assert_eq!(found.context["threat"], "Demo");
        assert_eq!(found.supplier, "CyberTrace");
        assert!(detection_of("not a detection", &url("x")).is_none());
    }
}

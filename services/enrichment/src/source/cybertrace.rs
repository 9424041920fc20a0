//! The `cybertrace` source: a real CyberTrace (or our own listener) at `host:port`, spoken to
//! with its ReplyBack protocol. A connection opens with `X-KF-SendFinishedEventX-KF-ReplyBack`;
//! each value is one line (`url=… `, `ip=… `, `md5=… `), answered in order by its detections
//! and a `LookupFinished` line. Detections are read back with the seed's formats
//! (`Category=…|MatchedIndicator=…|name=value…`) into structured matches.

use std::{collections::HashMap, time::Duration};

use prost::Message;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::{mpsc, oneshot},
};
use xdr_proto::{
    pb::{IndicatorType, LookupObject, TiMatch},
    wire::WireLookupResult,
};

use super::{Answer, Unavailable};

const HANDSHAKE: &[u8] = b"X-KF-SendFinishedEventX-KF-ReplyBack";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// CyberTrace names no supplier in its detections.
const SUPPLIER: &str = "CyberTrace";
/// A detection line longer than this is not CyberTrace talking.
const MAX_LINE: usize = 64 * 1024;

pub struct CyberTraceSource {
    lanes: Vec<mpsc::Sender<(Vec<LookupObject>, oneshot::Sender<Answer>)>>,
    next: std::sync::atomic::AtomicUsize,
}

impl CyberTraceSource {
    pub fn new(target: &str, connections: u32) -> Self {
        let lanes = (0..connections.max(1))
            .map(|_| {
                let (sender, batches) = mpsc::channel(16);
                tokio::spawn(run_lane(target.to_owned(), batches));
                sender
            })
            .collect();
        CyberTraceSource {
            lanes,
            next: Default::default(),
        }
    }

    pub async fn lookup(&self, objects: Vec<LookupObject>) -> Answer {
        let lane = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.lanes.len();
        let (answer, answered) = oneshot::channel();
        self.lanes[lane]
            .send((objects, answer))
            .await
            .map_err(|_| Unavailable("the source was closed".to_owned()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Unavailable("the lane stopped".to_owned())))
    }
}

type Connection = BufReader<TcpStream>;

async fn run_lane(
    target: String,
    mut batches: mpsc::Receiver<(Vec<LookupObject>, oneshot::Sender<Answer>)>,
) {
    let mut open: Option<Connection> = None;
    while let Some((objects, answer)) = batches.recv().await {
        let result = exchange(&target, &mut open, &objects).await;
        if result.is_err() {
            // Whatever was half-read is lost with the connection; the next batch reconnects.
            open = None;
        }
        let _ = answer.send(result.map_err(|e| Unavailable(format!("cybertrace {target}: {e}"))));
    }
}

async fn exchange(
    target: &str,
    open: &mut Option<Connection>,
    objects: &[LookupObject],
) -> std::io::Result<Vec<WireLookupResult>> {
    if open.is_none() {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        let mut connection = BufReader::new(stream);
        connection.get_mut().write_all(HANDSHAKE).await?;
        *open = Some(connection);
    }
    let connection = open.as_mut().expect("opened above");
    let mut request = String::new();
    for object in objects {
        request.push_str(&line_of(object));
    }
    connection.get_mut().write_all(request.as_bytes()).await?;
    let mut results = Vec::with_capacity(objects.len());
    let mut line = String::new();
    for object in objects {
        let mut result = WireLookupResult::default();
        loop {
            line.clear();
            let read = connection.read_line(&mut line).await?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.len() > MAX_LINE {
                return Err(std::io::Error::other("an answer line is too long"));
            }
            let text = line.trim_end_matches(['\r', '\n']);
            if text.starts_with("LookupFinished") {
                break;
            }
            if let Some(found) = detection_of(text, object) {
                result.matches.push(found.encode_to_vec().into());
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// The request line for `object`: its parameter by kind, the value with any line break
/// removed (a value must not be able to start a second request).
fn line_of(object: &LookupObject) -> String {
    let value: String = object
        .value
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let param = match IndicatorType::try_from(object.r#type).unwrap_or_default() {
        IndicatorType::Ip => "ip",
        IndicatorType::Hash => match value.trim().len() {
            40 => "sha1",
            64 => "sha256",
            _ => "md5",
        },
        _ => "url",
    };
    format!("{param}={value} \n")
}

/// A detection line of the seed's format as a match of `object`.
fn detection_of(text: &str, object: &LookupObject) -> Option<TiMatch> {
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut context = std::collections::BTreeMap::new();
    for part in text.split('|') {
        let (name, value) = part.split_once('=')?;
        match name {
            "Category" | "MatchedIndicator" => {
                fields.insert(name.to_owned(), value.to_owned());
            }
            _ => {
                context.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    Some(TiMatch {
        field: String::new(),
        value: object.value.clone(),
        indicator_type: object.r#type,
        category: fields.remove("Category")?,
        matched_indicator: fields.remove("MatchedIndicator").unwrap_or_default(),
        supplier: SUPPLIER.to_owned(),
        context,
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
    fn requests_are_one_line_each() {
        assert_eq!(
            line_of(&url("http://a.example/\r\nip=1.2.3.4")),
            "url=http://a.example/ip=1.2.3.4 \n"
        );
        let hash = LookupObject {
            r#type: IndicatorType::Hash as i32,
            value: "a".repeat(64),
        };
        assert!(line_of(&hash).starts_with("sha256="));
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

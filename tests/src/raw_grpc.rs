//! gRPC calls whose request bytes the test writes itself: frames a well-behaved client never
//! sends (a bad compressed flag, a length prefix that lies), sent over a real mTLS channel.

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, StreamBody};
use tonic::{Status, body::Body, transport::Channel};
use tower::ServiceExt;

/// A gRPC message frame: flag, big-endian length, payload.
pub fn frame(payload: &[u8]) -> Bytes {
    frame_with(0, payload.len() as u32, payload)
}

/// A frame with the given compressed flag and declared length, whatever the payload is.
pub fn frame_with(flag: u8, declared_len: u32, payload: &[u8]) -> Bytes {
    let mut bytes = Vec::with_capacity(5 + payload.len());
    bytes.push(flag);
    bytes.extend_from_slice(&declared_len.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes.into()
}

/// What came back: the reply messages' payloads, in order, and the final status.
#[derive(Debug)]
pub struct RawReply {
    pub messages: Vec<Bytes>,
    pub status: Status,
}

/// Calls `path` (`/xdr.v1.Enrichment/Enrich`) with `chunks` as the request body, then ends it.
pub async fn call(channel: Channel, path: &'static str, chunks: Vec<Bytes>) -> RawReply {
    let frames = tokio_stream::iter(
        chunks
            .into_iter()
            .map(|chunk| Ok::<_, Status>(http_body::Frame::data(chunk))),
    );
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(StreamBody::new(frames)))
        .expect("a valid request");
    let response = channel.oneshot(request).await.expect("the call is made");
    let headers_status = Status::from_header_map(response.headers());
    let mut body = response.into_body();
    let mut data = Vec::new();
    let mut trailers_status = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(status) => {
                trailers_status = Some(status);
                break;
            }
        };
        match frame.into_data() {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(frame) => {
                if let Some(trailers) = frame.trailers_ref() {
                    trailers_status = Status::from_header_map(trailers);
                }
            }
        }
    }
    let status = trailers_status
        .or(headers_status)
        .expect("the server ends the call with a status");
    RawReply {
        messages: split_frames(Bytes::from(data)),
        status,
    }
}

fn split_frames(mut data: Bytes) -> Vec<Bytes> {
    let mut messages = Vec::new();
    while data.remaining() >= 5 {
        let _flag = data.get_u8();
        let len = data.get_u32() as usize;
        messages.push(data.split_to(len.min(data.len())));
    }
    messages
}

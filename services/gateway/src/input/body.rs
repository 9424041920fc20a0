//! An input body read whole, within bounds: at most `max` bytes as sent, and — decompressed
//! (`Content-Encoding: gzip` or `deflate`) — at most `max` bytes as events, so a small bomb
//! cannot make the gateway hold gigabytes. The request's deadline bounds a slow sender.

use std::io::Read;

use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
};
use bytes::BytesMut;
use flate2::read::{GzDecoder, ZlibDecoder};
use http_body_util::{BodyExt, Limited};

use crate::problem::Problem;

/// The body of an input request, decompressed.
pub async fn read(headers: &HeaderMap, body: Body, max: usize) -> Result<BytesMut, Problem> {
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        None => Encoding::Identity,
        Some(value) => match value.to_str().map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "identity" => Encoding::Identity,
            Ok(v) if v == "gzip" || v == "x-gzip" => Encoding::Gzip,
            Ok(v) if v == "deflate" => Encoding::Deflate,
            _ => {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_argument",
                    "Content-Encoding: the gateway takes gzip, deflate or none",
                ));
            }
        },
    };
    let sent = Limited::new(body, max)
        .collect()
        .await
        .map_err(
            |error| match error.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => too_large(max),
                Err(other) => Problem::bad_request(format!("body: could not be read: {other}")),
            },
        )?
        .to_bytes();
    if let Encoding::Identity = encoding {
        return Ok(BytesMut::from(sent));
    }
    // Up to `max` bytes of inflating: off the async threads.
    tokio::task::spawn_blocking(move || decompress(&sent, encoding, max))
        .await
        .map_err(|e| Problem::bad_request(format!("body: could not be decompressed: {e}")))?
}

fn decompress(sent: &[u8], encoding: Encoding, max: usize) -> Result<BytesMut, Problem> {
    let decoder: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(GzDecoder::new(sent)),
        _ => Box::new(ZlibDecoder::new(sent)),
    };
    // One byte past the bound tells a body that is too large from one exactly at it.
    let mut events = Vec::new();
    decoder
        .take(max as u64 + 1)
        .read_to_end(&mut events)
        .map_err(|error| {
            Problem::bad_request(format!("body: not valid {encoding:?} data: {error}"))
        })?;
    if events.len() > max {
        return Err(too_large(max));
    }
    Ok(BytesMut::from(&events[..]))
}

fn too_large(max: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "resource_exhausted",
        format!("body: larger than the gateway takes ({max} bytes)"),
    )
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

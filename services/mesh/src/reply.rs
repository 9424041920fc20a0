//! The status of every reply a server sends, checked on its way out (a tower layer outside
//! every other): whatever produced it — a handler, tonic's decoder, a layer — the caller gets
//!
//! - a message of at most [`MAX_STATUS_MESSAGE`] bytes: gRPC clients refuse a status past
//!   their metadata limit and report RESOURCE_EXHAUSTED in place of the real error;
//! - RESOURCE_EXHAUSTED for a message over the size limit, as the gRPC status code spec says;
//!   tonic's decoder answers OUT_OF_RANGE.
//!
//! A unary error travels in the response headers, a stream's final status in its trailers:
//! both are looked at.

use http::HeaderMap;
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::{Code, Status, body::Body};

use crate::quote::truncated;

/// Longest status message sent, in bytes (before percent-encoding).
pub const MAX_STATUS_MESSAGE: usize = 1024;

/// How tonic's decoder begins the message of a message over the size limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// `response` with its status checked, in the headers now and in the trailers as they pass
/// (apply with `ServiceBuilder::map_response`).
pub fn checked_reply(response: http::Response<Body>) -> http::Response<Body> {
    let (mut parts, body) = response.into_parts();
    fix_status(&mut parts.headers);
    let body = body.map_frame(|frame: Frame<bytes::Bytes>| match frame.into_trailers() {
        Ok(mut trailers) => {
            fix_status(&mut trailers);
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    });
    http::Response::from_parts(parts, Body::new(body))
}

/// Rewrites the status in `headers` (response headers or trailers) if it breaks a rule above.
pub fn fix_status(headers: &mut HeaderMap) {
    let Some(code) = headers.get(Status::GRPC_STATUS) else {
        return;
    };
    let long = headers
        .get(Status::GRPC_MESSAGE)
        .is_some_and(|m| m.len() > MAX_STATUS_MESSAGE);
    if code == "0" && !long {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let code = match status.code() {
        Code::OutOfRange if status.message().starts_with(TONIC_TOO_LARGE) => {
            Code::ResourceExhausted
        }
        code => code,
    };
    let message = truncated(status.message(), MAX_STATUS_MESSAGE);
    if code == status.code() && message.len() == status.message().len() {
        return;
    }
    headers.remove(Status::GRPC_MESSAGE);
    // Only the code and message are written: what else the status carried stays as it was.
    let fixed = Status::new(code, message);
    if fixed.add_header(headers).is_err() {
        headers.insert(Status::GRPC_STATUS, http::HeaderValue::from(code as i32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(headers: &HeaderMap) -> Status {
        Status::from_header_map(headers).expect("a status")
    }

    #[test]
    fn long_messages_are_cut() {
        let mut headers = HeaderMap::new();
        Status::not_found(format!("no rule `{}`", "x".repeat(300_000)))
            .add_header(&mut headers)
            .unwrap();
        fix_status(&mut headers);
        let status = status_of(&headers);
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().len() <= MAX_STATUS_MESSAGE);
        assert!(status.message().starts_with("no rule `xxx"));
    }

    #[test]
    fn a_message_over_the_size_limit_is_resource_exhausted() {
        let mut headers = HeaderMap::new();
        Status::out_of_range(format!(
            "{TONIC_TOO_LARGE}: found 5 bytes, the limit is: 4 bytes"
        ))
        .add_header(&mut headers)
        .unwrap();
        fix_status(&mut headers);
        assert_eq!(status_of(&headers).code(), Code::ResourceExhausted);

        // A handler's own OUT_OF_RANGE stays what it is.
        let mut headers = HeaderMap::new();
        Status::out_of_range("page 9 of 3")
            .add_header(&mut headers)
            .unwrap();
        fix_status(&mut headers);
        assert_eq!(status_of(&headers).code(), Code::OutOfRange);
    }

    #[test]
    fn ok_and_short_statuses_are_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(Status::GRPC_STATUS, http::HeaderValue::from_static("0"));
        let before = headers.clone();
        fix_status(&mut headers);
        assert_eq!(headers, before);
        let mut none = HeaderMap::new();
        fix_status(&mut none);
        assert!(none.is_empty());
    }
}

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

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};

use crate::{BoxFuture, quote::truncated};

/// Longest status message sent, in bytes (before percent-encoding).
pub const MAX_STATUS_MESSAGE: usize = 1024;

/// How tonic's decoder begins the message of a message over the size limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyStatusLayer;

impl<S> Layer<S> for ReplyStatusLayer {
    type Service = ReplyStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReplyStatus { inner }
    }
}

#[derive(Clone)]
pub struct ReplyStatus<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for ReplyStatus<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let reply = self.inner.call(request);
        Box::pin(async move {
            let mut response = reply.await?;
            fix_status(response.headers_mut());
            Ok(response.map(|body| Body::new(CheckedTrailers { inner: body })))
        })
    }
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

/// A response body whose trailers go through [`fix_status`].
struct CheckedTrailers {
    inner: Body,
}

impl HttpBody for CheckedTrailers {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = polled {
            let frame = match frame.into_trailers() {
                Ok(mut trailers) => {
                    fix_status(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            };
            return Poll::Ready(Some(Ok(frame)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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

//! W3C Trace Context at the door: a request's `traceparent` is taken when well formed, else a
//! trace is started; the gateway's own span is its child, sent to the services as `traceparent`
//! metadata on every call made for the request (and with each event posted), and answered in
//! the response's `traceparent` header so a client can find its request in the traces.
//!
//! When spans are exported, the gateway's span is a real one (`xdr_mesh::trace`), exported
//! with the request's method, route and status; otherwise its context is still made here, so
//! a caller's trace goes on through the services' logs and answers.

use std::fmt;

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

pub use xdr_mesh::trace::TRACEPARENT;

/// A trace and the gateway's span in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// A random id, never all zero (invalid in a traceparent). Ids need to be unique, not secret:
/// a fast generator, not a system call per request (that was visible in `perf`).
fn random<const N: usize>() -> [u8; N] {
    loop {
        let mut bytes = [0u8; N];
        fastrand::fill(&mut bytes);
        if bytes != [0; N] {
            return bytes;
        }
    }
}

fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut bytes = [0u8; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

impl TraceContext {
    /// `traceparent` read whole (version 00, non-zero ids), or `None` when it is malformed.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        Some(TraceContext {
            trace_id: hex::<16>(trace).filter(|id| id != &[0; 16])?,
            span_id: hex::<8>(span).filter(|id| id != &[0; 8])?,
            flags: hex::<1>(flags)?[0],
        })
    }

    /// The gateway's span as a child of `traceparent`, or of a new trace when it is absent
    /// or malformed.
    pub fn child_of(traceparent: Option<&str>) -> Self {
        let parent = traceparent.and_then(Self::parse);
        let (trace_id, flags) = parent.map_or_else(|| (random(), 1), |p| (p.trace_id, p.flags));
        TraceContext {
            trace_id,
            span_id: random(),
            flags,
        }
    }
}

impl TraceContext {
    /// `00-<trace id>-<span id>-<flags>`, 55 characters.
    fn header_value(&self) -> HeaderValue {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 55];
        text[..3].copy_from_slice(b"00-");
        let mut at = 3;
        let mut put = |bytes: &[u8], text: &mut [u8; 55]| {
            for b in bytes {
                text[at] = DIGITS[usize::from(b >> 4)];
                text[at + 1] = DIGITS[usize::from(b & 0xf)];
                at += 2;
            }
            at += 1;
        };
        put(&self.trace_id, &mut text);
        put(&self.span_id, &mut text);
        put(&[self.flags], &mut text);
        text[35] = b'-';
        text[52] = b'-';
        HeaderValue::from_bytes(&text).expect("hex digits and dashes are a header value")
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_value().to_str().expect("ASCII"))
    }
}

/// Middleware: the request's span (its context in the request's extensions, the handler
/// running inside it), and its context in the answer's header.
pub async fn propagate(mut request: Request, next: Next) -> Response {
    if !xdr_mesh::trace::exporting() {
        // No span to export: the context alone, without a span's cost per request.
        return untraced(request, next).await;
    }
    // The route, not the path: ids in paths would make every span name its own.
    let route =
        (request.extensions().get::<MatchedPath>()).map_or("unmatched", |matched| matched.as_str());
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    let span = xdr_mesh::trace::continued_from(span, request.headers());
    let Some(context) = TraceContext::parse(&xdr_mesh::trace::traceparent(&span)) else {
        // The log filter turned the span off: as without spans.
        return untraced(request, next).await;
    };
    request.extensions_mut().insert(context);
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
        .headers_mut()
        .insert(HeaderName::from_static(TRACEPARENT), context.header_value());
    response
}

/// The request's context made here (a child of the caller's, or a new trace), no span.
async fn untraced(mut request: Request, next: Next) -> Response {
    let context = TraceContext::child_of(
        request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok()),
    );
    request.extensions_mut().insert(context);
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(HeaderName::from_static(TRACEPARENT), context.header_value());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_parent_keeps_its_trace_and_anything_else_starts_one() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let child = TraceContext::child_of(Some(parent)).to_string();
        assert!(
            child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{child}"
        );
        assert!(child.ends_with("-01"));
        assert_ne!(
            &child[36..52],
            "00f067aa0ba902b7",
            "the gateway's span is new"
        );
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            let started = TraceContext::child_of(Some(bad)).to_string();
            assert_eq!(started.len(), 55, "{started}");
            assert!(!started.contains("4bf92f3577b34da6"), "{bad} → {started}");
        }
    }
}

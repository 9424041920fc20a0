//! W3C trace context across the mesh's hops. Calls carry it as `traceparent` metadata; events
//! travel in batches on long-lived streams, where a stream's context is not an event's, so
//! each event carries the `traceparent` of the request that brought it, and the span of a
//! batch is a child of its first member's context and links to the others'. A request alone
//! in its batch thus gets one trace holding every hop; under load, each event's trace is
//! linked from the batches that carried it.
//!
//! Without an OTLP exporter nothing here computes anything: contexts are empty strings.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rustc_hash::FxHashSet;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";

/// Links a batch span keeps, at most: the OpenTelemetry SDK's own default limit, and what a
/// trace viewer can show.
pub const MAX_LINKS: usize = 128;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called once spans are exported: from then on contexts are computed and carried.
pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether spans are exported, so that contexts are worth computing.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// One `traceparent` value read as a carrier.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// Takes the `traceparent` the propagator writes.
#[derive(Default)]
struct Written(String);

impl Injector for Written {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = value;
        }
    }
}

/// The context a `traceparent` value names; empty (no parent) when it is malformed.
pub fn context_of(traceparent: &str) -> Context {
    if traceparent.is_empty() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&One(traceparent))
}

/// The `traceparent` of `span`, empty when it has none (nothing exported, or a span the
/// log filter turned off).
pub fn traceparent(span: &Span) -> String {
    if !exporting() {
        return String::new();
    }
    let mut written = Written::default();
    TraceContextPropagator::new().inject_context(&span.context(), &mut written);
    written.0
}

/// The `traceparent` of the current span.
pub fn current() -> String {
    traceparent(&Span::current())
}

/// Makes `span` the span of a batch: a child of `parent` (the first member's context, or
/// what the sender of the batch sent), a root when that is empty, and linked to the distinct
/// contexts of `members` other than the parent, at most [`MAX_LINKS`]. Returns `span`.
pub fn batch<'a>(span: Span, parent: &str, members: impl IntoIterator<Item = &'a str>) -> Span {
    if !exporting() || span.is_disabled() {
        return span;
    }
    let parent = context_of(parent);
    let mut seen = FxHashSet::default();
    seen.insert(parent.span().span_context().span_id());
    // Failing only when the span is off or already started: neither is the case here.
    let _ = span.set_parent(parent);
    let mut previous = "";
    // Malformed contexts are skipped, but only so many are read: a batch's cost stays bounded.
    let mut read = 0;
    for member in members {
        // Events of one request come together: one parse for the run.
        if member == previous || member.is_empty() {
            continue;
        }
        previous = member;
        read += 1;
        if read > 8 * MAX_LINKS {
            break;
        }
        let linked: SpanContext = context_of(member).span().span_context().clone();
        if linked.is_valid() && seen.insert(linked.span_id()) {
            span.add_link(linked);
            if seen.len() > MAX_LINKS {
                break;
            }
        }
    }
    span
}

/// Makes `span` a child of the `traceparent` a peer sent in `headers`, a root when it sent
/// none. Returns `span`.
pub fn continued_from(span: Span, headers: &http::HeaderMap) -> Span {
    if !exporting() || span.is_disabled() {
        return span;
    }
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(context_of)
        .unwrap_or_default();
    let _ = span.set_parent(parent);
    span
}

/// Sends the current span's context with an outgoing call.
pub fn inject<T>(request: &mut tonic::Request<T>) {
    let traceparent = current();
    if !traceparent.is_empty()
        && let Ok(value) = traceparent.parse()
    {
        request.metadata_mut().insert(TRACEPARENT, value);
    }
}

//! Prometheus metrics: the process-wide recorder behind the `metrics` facade, the `/metrics`
//! route that renders it, and the gRPC calls every mesh server counts. Services declare their
//! own metrics in one module each (as Vector's `internal_events`) and record through the
//! facade; nothing here knows them.

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use http_body_util::BodyExt;
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tonic::body::Body;
use tower::{Layer, Service};

use crate::BoxFuture;

/// Buckets of every `*_seconds` histogram: from a cached lookup to a slow batch.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const GRPC_CALLS: &str = "xdr_grpc_calls_total";
const GRPC_CALL_SECONDS: &str = "xdr_grpc_call_duration_seconds";
/// The method label of a path this server does not serve: paths come from the network, and
/// a label per path would let any client grow the registry without end.
const UNKNOWN_METHOD: &str = "unknown";

/// The process's recorder, installed on first use.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed; then this process's metrics go there.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only its own");
        }
        metrics::describe_counter!(GRPC_CALLS, "gRPC calls answered, by method and status code");
        metrics::describe_histogram!(
            GRPC_CALL_SECONDS,
            metrics::Unit::Seconds,
            "time from a gRPC call's arrival to the end of its reply, by method"
        );
        handle
    })
}

/// `GET /metrics` in the Prometheus text format.
pub fn router() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            let handle = recorder();
            // Histograms and summaries are drained into the exposition lazily.
            handle.run_upkeep();
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
        }),
    )
}

/// Counts every call of a server and times it to the end of its reply (a stream to its end).
#[derive(Clone)]
pub struct CallMetricsLayer {
    /// `/pkg.Service/Method` of every RPC served: the only method labels recorded, shared
    /// with the registry rather than copied per call.
    served: Arc<HashSet<Arc<str>>>,
}

impl CallMetricsLayer {
    /// `served` are the served RPCs as `pkg.Service/Method`.
    pub fn new(served: impl IntoIterator<Item = String>) -> Self {
        recorder();
        CallMetricsLayer {
            served: Arc::new(
                served
                    .into_iter()
                    .map(|rpc| Arc::from(format!("/{rpc}")))
                    .collect(),
            ),
        }
    }
}

impl<S> Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallMetrics {
            inner,
            served: self.served.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallMetrics<S> {
    inner: S,
    served: Arc<HashSet<Arc<str>>>,
}

impl<S> Service<http::Request<Body>> for CallMetrics<S>
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
        let method = match self.served.get(request.uri().path()) {
            Some(path) => SharedString::from(path.clone()),
            None => SharedString::const_str(UNKNOWN_METHOD),
        };
        let mut call = CallRecord {
            method,
            started: Instant::now(),
            code: None,
        };
        let reply = self.inner.call(request);
        Box::pin(async move {
            let response = reply.await?;
            // A trailers-only reply (every error) carries its status in the head.
            call.code = grpc_status(response.headers());
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    // The whole record moves in: it is written when the body is dropped.
                    let call = &mut call;
                    if let Some(trailers) = frame.trailers_ref() {
                        call.code = grpc_status(trailers).or(call.code);
                    }
                    frame
                }))
            }))
        })
    }
}

/// One call, recorded when dropped: after its reply was sent whole, or when the client left.
struct CallRecord {
    method: SharedString,
    started: Instant,
    code: Option<tonic::Code>,
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // No status at all: the reply was cut off before its end (the client went away).
        let code = self.code.map_or("Cancelled", code_name);
        metrics::counter!(GRPC_CALLS, "method" => self.method.clone(), "code" => code).increment(1);
        metrics::histogram!(GRPC_CALL_SECONDS, "method" => self.method.clone())
            .record(self.started.elapsed().as_secs_f64());
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(value))
}

/// The label of a status code: its name as tonic spells it, without a string made per call.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "Ok",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_labels_are_tonics_names() {
        for number in 0..17 {
            let code = tonic::Code::from_i32(number);
            assert_eq!(super::code_name(code), format!("{code:?}"));
        }
    }
}

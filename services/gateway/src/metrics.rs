//! The gateway's Prometheus metrics, declared here and nowhere else. Labels come from the
//! gateway's own route table (a route's pattern, never the path a client sent) and status
//! codes, so no client can grow the registry.

use std::{sync::Once, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

const REQUESTS: &str = "xdr_gateway_http_requests_total";
const REQUEST_SECONDS: &str = "xdr_gateway_http_request_duration_seconds";
const INPUT_EVENTS: &str = "xdr_gateway_input_events_total";
/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Names, units and help of every metric; once per process.
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!(REQUESTS, "HTTP requests answered, by route and status");
        describe_histogram!(
            REQUEST_SECONDS,
            Unit::Seconds,
            "time from an HTTP request's arrival to its answer's head, by route"
        );
        describe_counter!(
            INPUT_EVENTS,
            "events posted to input routes, by the collector's outcome: accepted or refused"
        );
    });
}

/// Middleware: counts and times every request by its route.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!(REQUESTS, "route" => route.clone(), "status" => status).increment(1);
    histogram!(REQUEST_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// Events a collector accepted and refused from one input request.
pub fn input_events(accepted: usize, refused: usize) {
    counter!(INPUT_EVENTS, "outcome" => "accepted").increment(accepted as u64);
    counter!(INPUT_EVENTS, "outcome" => "refused").increment(refused as u64);
}

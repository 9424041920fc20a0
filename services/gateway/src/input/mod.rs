//! Event input over HTTP, as KUMA's http collector takes it: `POST /input` (the quickstart's
//! collector `http-input`) and `POST /collectors/{id}/input`, a body of events in the
//! collector's delimiter (the seed's one JSON object, or NDJSON), plain or gzip/deflate. The
//! answer comes once the collector has acknowledged the events (they are durable) and says
//! how many it accepted and why it refused the others. The source is not a person: input
//! needs no person's token, only the collector's own input token when it was given one.
//!
//! Bounded: a client past its request rate is told 429 with `Retry-After`, a gateway at its
//! requests in flight 503, a body past the size 413 — each a JSON error, never a dropped
//! connection.

mod batcher;
mod body;
mod collectors;

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use serde::Serialize;
use tokio::sync::Semaphore;
use xdr_mesh::caller::MAIN_TENANT;
use xdr_mesh::replicas::Balanced as Channel;
use xdr_proto::pb::EventError;

use crate::problem::Problem;

/// The collector `/input` feeds: the one `xdrctl quickstart` makes.
pub const QUICKSTART_COLLECTOR: &str = "http-input";
/// How often the per-client rate state forgets clients that went quiet.
const FORGET_CLIENTS_EVERY: Duration = Duration::from_secs(60);
/// Collector ids and names are at most 128 characters: a longer key is no collector, and is
/// not looked up (nor kept in the lookup cache).
const MAX_COLLECTOR_KEY_BYTES: usize = 512;
/// Refusals listed in an answer at most (the counts are always whole).
const MAX_ERRORS_LISTED: usize = 100;

#[derive(clap::Args, Clone, Debug)]
pub struct InputArgs {
    /// Largest input body taken, in bytes, as sent and once decompressed; past it the answer
    /// is 413.
    #[arg(long, env = "XDR_INPUT_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    input_max_body_bytes: usize,
    /// Input requests the gateway holds at once; past it the answer is 503.
    #[arg(long, env = "XDR_INPUT_MAX_IN_FLIGHT", default_value_t = 4096)]
    input_max_in_flight: usize,
    /// Bytes of input bodies the gateway holds at once, as sent and inflated, until the
    /// collector answers; a request that would pass it is answered 503. Each request reserves
    /// its `Content-Length` (the largest body when it sends none) and, when compressed, room
    /// for the largest body inflated.
    #[arg(long, env = "XDR_INPUT_MAX_BUFFERED_BYTES", default_value_t = 512 << 20)]
    input_max_buffered_bytes: usize,
    /// Input requests a second one client address may make (bursts of as many); past it the
    /// answer is 429 with `Retry-After`. 0: no limit.
    #[arg(long, env = "XDR_INPUT_CLIENT_RATE", default_value_t = 50_000)]
    input_client_rate: u32,
    /// A port of a collector's own, as each KUMA http collector has: `COLLECTOR=ADDR` (the
    /// collector's id, or its name in Main), serving `POST /input` for it alone. Repeatable.
    #[arg(
        long,
        env = "XDR_INPUT_LISTEN",
        value_name = "COLLECTOR=ADDR",
        value_delimiter = ',',
        value_parser = own_port
    )]
    pub input_listen: Vec<(String, std::net::SocketAddr)>,
}

fn own_port(text: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (collector, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: COLLECTOR=ADDR"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr:?}: not an address: {e}"))?;
    if collector.is_empty() {
        return Err(format!("{text:?}: name the collector before `=`"));
    }
    Ok((collector.to_owned(), addr))
}

pub struct Input {
    collectors: collectors::Collectors,
    batcher: batcher::Batcher,
    max_body_bytes: usize,
    in_flight: Arc<Semaphore>,
    /// Bytes of bodies held, one permit a byte (see `input_max_buffered_bytes`).
    buffered: Arc<Semaphore>,
    max_buffered_bytes: usize,
    client_rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Input {
    pub fn new(args: &InputArgs, collector: Channel) -> Arc<Self> {
        let client_rate = NonZeroU32::new(args.input_client_rate)
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate)));
        let input = Arc::new(Input {
            collectors: collectors::Collectors::new(collector.clone()),
            batcher: batcher::Batcher::new(collector),
            max_body_bytes: args.input_max_body_bytes,
            in_flight: Arc::new(Semaphore::new(args.input_max_in_flight)),
            buffered: Arc::new(Semaphore::new(
                args.input_max_buffered_bytes.min(Semaphore::MAX_PERMITS),
            )),
            max_buffered_bytes: args.input_max_buffered_bytes,
            client_rate,
        });
        // The rate state holds one entry per client address seen lately, not for ever.
        let weak = Arc::downgrade(&input);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FORGET_CLIENTS_EVERY);
            loop {
                every.tick().await;
                let Some(input) = weak.upgrade() else { break };
                if let Some(rate) = &input.client_rate {
                    rate.retain_recent();
                    rate.shrink_to_fit();
                }
            }
        });
        input
    }
}

pub fn router(input: Arc<Input>) -> Router {
    Router::new()
        .route("/input", post(quickstart_input))
        .route("/collectors/{id}/input", post(collector_input))
        .with_state(input)
}

/// `POST /input` for `collector` alone: a port of the collector's own.
pub fn own_port_router(input: Arc<Input>, collector: String) -> Router {
    let handler = move |State(input): State<Arc<Input>>,
                        ConnectInfo(peer): ConnectInfo<SocketAddr>,
                        headers: HeaderMap,
                        body: Body| {
        let collector = collector.clone();
        async move {
            take(&input, peer, &collector, "", &headers, body)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
    };
    Router::new()
        .route("/input", post(handler))
        .with_state(input)
        .layer(axum::middleware::from_fn(crate::trace_context::propagate))
}

async fn quickstart_input(
    State(input): State<Arc<Input>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    take(
        &input,
        peer,
        QUICKSTART_COLLECTOR,
        MAIN_TENANT,
        &headers,
        body,
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

async fn collector_input(
    State(input): State<Arc<Input>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    take(&input, peer, &id, "", &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// What an input request is answered.
#[derive(Serialize)]
struct Taken {
    accepted: usize,
    refused: usize,
    ids: Vec<String>,
    errors: Vec<Refusal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize)]
struct Refusal {
    index: u32,
    reason: String,
}

impl Input {
    /// Room in the buffered bytes for the body `headers` announce, held until the answer: a
    /// flood of large posts is refused, never all held.
    fn room_for(&self, headers: &HeaderMap) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
        let max = self.max_body_bytes;
        let sent = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(max, |length| length.min(max));
        let inflated = if headers.contains_key(axum::http::header::CONTENT_ENCODING) {
            max
        } else {
            0
        };
        let bytes = (sent + inflated).clamp(1, self.max_buffered_bytes.max(1));
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.buffered
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the gateway holds as many input bytes as it takes; retry",
                )
                .retry_after(Duration::from_secs(1))
            })
    }
}

async fn take(
    input: &Input,
    peer: SocketAddr,
    collector: &str,
    tenant: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    if let Some(rate) = &input.client_rate
        && let Err(not_until) = rate.check_key(&peer.ip())
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "resource_exhausted",
            format!(
                "{} sends input faster than the gateway allows it",
                peer.ip()
            ),
        )
        .retry_after(wait));
    }
    let Ok(_slot) = input.in_flight.clone().try_acquire_owned() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the gateway holds as many input requests as it takes; retry",
        )
        .retry_after(Duration::from_secs(1)));
    };
    if collector.len() > MAX_COLLECTOR_KEY_BYTES {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("collector: an id or name of at most {MAX_COLLECTOR_KEY_BYTES} bytes"),
        ));
    }
    let collector = input.collectors.find(collector, tenant).await?;
    if let Some(digest) = &collector.token_sha256 {
        check_source_token(headers, digest)?;
    }
    let _room = input.room_for(headers)?;
    let raw = body::read(headers, body, input.max_body_bytes).await?;
    let events = xdr_mesh::lines::events_in(&raw, collector.delimiter).count();
    if events == 0 {
        return Err(Problem::bad_request(
            "body: no events (an event is a JSON object; several go one per line)",
        ));
    }
    let events = u32::try_from(events)
        .map_err(|_| Problem::bad_request("body: more events than one request may hold"))?;
    let outcome = input.batcher.post(&collector, raw, events).await?;
    crate::metrics::input_events(outcome.ids.len(), outcome.errors.len());
    Ok(answer(outcome.ids, outcome.errors))
}

/// A collector with an input token takes input only with it: `Authorization: Bearer <token>`.
fn check_source_token(headers: &HeaderMap, digest: &str) -> Result<(), Problem> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Digests are compared: the time a comparison takes says nothing of the token.
    match presented {
        Some(token) if crate::people::digest_of(token) == digest => Ok(()),
        Some(_) => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the input token is not this collector's",
        )),
        None => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this collector takes input with its token: Authorization: Bearer <token>",
        )),
    }
}

/// 200 when the collector took any event (or refused none), else 400 with the refusals.
fn answer(ids: Vec<String>, errors: Vec<EventError>) -> Response {
    let (accepted, refused) = (ids.len(), errors.len());
    let all_refused = accepted == 0 && refused > 0;
    let message = all_refused.then(|| {
        format!(
            "every event was refused; the first (event {}): {}",
            errors[0].index, errors[0].reason
        )
    });
    let taken = Taken {
        accepted,
        refused,
        ids,
        errors: errors
            .into_iter()
            .take(MAX_ERRORS_LISTED)
            .map(|e| Refusal {
                index: e.index,
                reason: e.reason,
            })
            .collect(),
        code: all_refused.then_some("invalid_argument"),
        message,
    };
    let status = if all_refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, Json(taken)).into_response()
}

//! Every RPC of `xdr.v1` over HTTP JSON, with no handler per RPC: `POST /xdr.v1.<Service>/<Method>`
//! with a JSON body is the Connect protocol's unary form. The method is found in the
//! descriptor set `xdr-proto` embeds, the body becomes its request message through the
//! canonical proto3 JSON mapping (unknown fields refused by name), and the call goes to the
//! service over mTLS on the gateway's identity with the person in `x-xdr-*` metadata. The
//! reply comes back as JSON; an error as Connect's `{"code", "message"}` with its HTTP status.
//! A server-streaming RPC (event search) answers NDJSON, one message a line, and a failure
//! after the first line is the last line, `{"error": {"code", "message"}}`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Extension, Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Limited};
use prost_reflect::MethodDescriptor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::client::Grpc;
use xdr_mesh::replicas::Balanced as Channel;
use xdr_proto::json::{self, EncodedCodec};

use crate::{
    people::{Person, routes::PeopleState},
    problem::{Problem, connect_code},
    trace_context::TraceContext,
    upstreams::Upstreams,
};

/// Largest JSON request body.
const MAX_BODY_BYTES: usize = 4 << 20;
/// Largest reply message taken from a service (event search answers up to 4 MiB).
const MAX_REPLY_BYTES: usize = 8 << 20;
/// Longest a call may take unless the client asks for less (`Connect-Timeout-Ms`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ConnectState {
    pub upstreams: Upstreams,
    pub people: PeopleState,
    /// Calls held at once (each may hold a 4 MiB body and an 8 MiB reply).
    pub in_flight: Arc<Semaphore>,
}

/// Calls the gateway makes for people at once; past it the answer is 503.
pub const MAX_CALLS_IN_FLIGHT: usize = 256;

impl ConnectState {
    pub fn new(upstreams: Upstreams, people: PeopleState) -> Self {
        ConnectState {
            upstreams,
            people,
            in_flight: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
        }
    }

    /// A slot for one call, held until it is answered, or 503.
    pub fn slot(&self) -> Result<OwnedSemaphorePermit, Problem> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the gateway holds as many calls as it takes; retry",
            )
            .retry_after(Duration::from_secs(1))
        })
    }
}

pub fn router(state: Arc<ConnectState>) -> Router {
    Router::new()
        .route("/{service}/{method}", post(call))
        .with_state(state)
}

async fn call(
    State(state): State<Arc<ConnectState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(trace): Extension<TraceContext>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match prepare(&state, peer, trace, &service, &method, &headers, body).await {
        Ok(call) => call.run().await,
        Err(problem) => problem.into_response(),
    }
}

/// A call ready to go: where, what, for whom.
pub struct Call {
    pub channel: Channel,
    pub method: MethodDescriptor,
    /// The request message, encoded.
    pub request: Vec<u8>,
    pub person: Person,
    pub timeout: Duration,
    /// Sent on as `traceparent`.
    pub trace: TraceContext,
    /// Its place among the calls in flight, given back when it is answered.
    pub slot: OwnedSemaphorePermit,
}

async fn prepare(
    state: &ConnectState,
    peer: SocketAddr,
    trace: TraceContext,
    service: &str,
    method: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Call, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no RPC {service}/{method} is served over HTTP"),
        )
    };
    let descriptor = json::method(&format!("{service}/{method}")).ok_or_else(not_found)?;
    if descriptor.is_client_streaming() {
        return Err(not_found());
    }
    let channel = state.upstreams.serving(service).ok_or_else(not_found)?;
    // Who first: an unauthenticated caller learns nothing about the body.
    let person = state.people.person(peer, headers)?;
    let slot = state.slot()?;
    let text = json_body(headers, body).await?;
    let text = if text.trim().is_empty() { "{}" } else { &text };
    let request = json::json_to_protobuf(descriptor.input(), text)
        .map_err(|e| Problem::bad_request(format!("body: {e}")))?;
    let timeout = headers
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(CALL_TIMEOUT, |ms| {
            Duration::from_millis(ms).min(CALL_TIMEOUT)
        });
    Ok(Call {
        channel,
        method: descriptor,
        request,
        person,
        timeout,
        trace,
        slot,
    })
}

/// A JSON request body, read within [`MAX_BODY_BYTES`]; 415 when it is not declared JSON
/// (a request without a body may leave the type out).
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<String, Problem> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "resource_exhausted",
                format!("body: larger than {MAX_BODY_BYTES} bytes, or cut short"),
            )
        })?
        .to_bytes();
    let json = declared.as_deref() == Some("application/json");
    let nothing = declared.is_none() && bytes.is_empty();
    if !(json || nothing) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_argument",
            "Content-Type: the gateway takes application/json",
        ));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Problem::bad_request("body: not UTF-8 JSON"))
}

impl Call {
    fn grpc_request<T>(&self, message: T) -> Result<tonic::Request<T>, Problem> {
        crate::on_behalf::request(&self.person, self.trace, self.timeout, message)
    }

    /// Calls the service and answers: JSON, NDJSON for a server stream, or the error.
    pub async fn run(mut self) -> Response {
        let path = format!(
            "/{}/{}",
            self.method.parent_service().full_name(),
            self.method.name()
        );
        let path = http::uri::PathAndQuery::try_from(path).expect("a descriptor names a path");
        let message = std::mem::take(&mut self.request);
        let request = match self.grpc_request(message) {
            Ok(request) => request,
            Err(problem) => return problem.into_response(),
        };
        let mut grpc = Grpc::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY_BYTES);
        if let Err(error) = grpc.ready().await {
            return Problem::from_status(&tonic::Status::unavailable(format!(
                "the service is unreachable: {error}"
            )))
            .into_response();
        }
        if !self.method.is_server_streaming() {
            return match grpc.unary(request, path, EncodedCodec).await {
                Ok(reply) => self.json_reply(&reply.into_inner()),
                Err(status) => Problem::from_status(&status).into_response(),
            };
        }
        match grpc.server_streaming(request, path, EncodedCodec).await {
            Ok(replies) => self.ndjson_replies(replies.into_inner()),
            Err(status) => Problem::from_status(&status).into_response(),
        }
    }

    fn json_reply(&self, encoded: &[u8]) -> Response {
        match json::protobuf_to_json(self.method.output(), encoded) {
            Ok(text) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                text,
            )
                .into_response(),
            Err(error) => Problem::new(
                StatusCode::BAD_GATEWAY,
                "internal",
                format!("the service's reply does not decode: {error}"),
            )
            .into_response(),
        }
    }

    /// The stream's messages as lines; the call keeps its slot until the stream ends.
    fn ndjson_replies(self, replies: tonic::Streaming<Vec<u8>>) -> Response {
        let output = self.method.output();
        let slot = self.slot;
        let lines = replies
            .map(move |reply| {
                let line = match reply {
                    Ok(encoded) => json::protobuf_to_json(output.clone(), &encoded)
                        .map_err(|e| (tonic::Code::Internal, e.to_string())),
                    Err(status) => Err((status.code(), status.message().to_owned())),
                };
                match line {
                    Ok(text) => (Ok(text), false),
                    Err((code, message)) => {
                        let error = serde_json::json!({
                            "error": {"code": connect_code(code), "message": message}
                        });
                        (Ok(error.to_string()), true)
                    }
                }
            })
            // Nothing follows an error line.
            .scan(false, |ended, (line, error)| {
                if *ended {
                    return std::future::ready(None);
                }
                *ended = error;
                std::future::ready(Some(line))
            })
            .map(move |line: Result<String, std::convert::Infallible>| {
                let _held = &slot;
                line.map(|text| Bytes::from(text + "\n"))
            });
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            )],
            Body::from_stream(lines),
        )
            .into_response()
    }
}

//! Errors as the gateway answers them: a JSON body `{"code": …, "message": …}` with the HTTP
//! status a client can act on. A gRPC status from a service maps as grpc-gateway maps it, so
//! a script sees 404 for `NOT_FOUND` and 429 for `RESOURCE_EXHAUSTED` whichever route it used;
//! the code is Connect's name for the gRPC code, the message the service's, cut short.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tonic::Code;

/// The longest message the gateway passes on.
const MAX_MESSAGE_CHARS: usize = 512;
/// What a service asks a refused client to wait, in gRPC metadata (milliseconds).
const RETRY_AFTER_MS: &str = "retry-after-ms";

/// An error answer.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Retry-After` for 429 and 503.
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        Problem {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// A service's gRPC status, as grpc-gateway maps it to HTTP.
    pub fn from_status(status: &tonic::Status) -> Self {
        let code = status.code();
        let mut problem = Self::new(http_status(code), connect_code(code), status.message());
        if matches!(code, Code::ResourceExhausted | Code::Unavailable) {
            let asked = status
                .metadata()
                .get(RETRY_AFTER_MS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis);
            problem.retry_after = Some(asked.unwrap_or(Duration::from_secs(1)));
        }
        problem
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                code: self.code,
                message: &self.message,
            }),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: `Retry-After: 0` would invite a tight loop.
            let seconds = wait.as_millis().div_ceil(1000).max(1);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits are a header value"),
            );
        }
        response
    }
}

/// grpc-gateway's mapping of gRPC codes to HTTP statuses.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a status code"),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The Connect protocol's name of a gRPC code.
pub fn connect_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// grpc-gateway's table (runtime/errors.go `HTTPStatusFromCode`), and Connect's code names.
    #[test]
    fn every_grpc_code_has_grpc_gateways_status_and_connects_name() {
        let table = [
            (Code::Ok, 200, "ok"),
            (Code::Cancelled, 499, "canceled"),
            (Code::Unknown, 500, "unknown"),
            (Code::InvalidArgument, 400, "invalid_argument"),
            (Code::DeadlineExceeded, 504, "deadline_exceeded"),
            (Code::NotFound, 404, "not_found"),
            (Code::AlreadyExists, 409, "already_exists"),
            (Code::PermissionDenied, 403, "permission_denied"),
            (Code::ResourceExhausted, 429, "resource_exhausted"),
            (Code::FailedPrecondition, 400, "failed_precondition"),
            (Code::Aborted, 409, "aborted"),
            (Code::OutOfRange, 400, "out_of_range"),
            (Code::Unimplemented, 501, "unimplemented"),
            (Code::Internal, 500, "internal"),
            (Code::Unavailable, 503, "unavailable"),
            (Code::DataLoss, 500, "data_loss"),
            (Code::Unauthenticated, 401, "unauthenticated"),
        ];
        for (code, status, name) in table {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
            assert_eq!(connect_code(code), name, "{code:?}");
        }
    }

    #[test]
    fn a_busy_service_says_when_to_come_back_and_long_messages_are_cut() {
        let mut status = tonic::Status::resource_exhausted("full");
        status
            .metadata_mut()
            .insert(RETRY_AFTER_MS, "2500".parse().unwrap());
        let problem = Problem::from_status(&status);
        assert_eq!(problem.retry_after, Some(Duration::from_millis(2500)));
        let response = problem.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let unavailable = Problem::from_status(&tonic::Status::unavailable("down"));
        assert_eq!(unavailable.retry_after, Some(Duration::from_secs(1)));
        let long = Problem::bad_request("x".repeat(10_000));
        assert_eq!(long.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}

//! One set of error codes for the whole mesh, each with its gRPC status code and its HTTP
//! status: a service's error type says which code it is ([`ServiceError`]), the gRPC handler
//! turns it into a `Status`, and the gateway turns a `Status` back into the same HTTP status
//! whichever service answered.

use tonic::{Code, Status};

use crate::quote::truncated;

/// The longest message a status carries: messages name the field and the value, never dump
/// a request or a backtrace.
const MAX_MESSAGE: usize = 512;

/// What went wrong, as a caller can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is wrong; the message names the field.
    InvalidArgument,
    /// The caller may not do this.
    PermissionDenied,
    NotFound,
    /// A thing with that name or id is already there.
    AlreadyExists,
    /// The request is fine, the state is not (a resource in use, a rule not active).
    FailedPrecondition,
    /// A quota or limit is reached: try with less, or later.
    ResourceExhausted,
    /// Not now: a store or an upstream is down; retrying later may work.
    Unavailable,
    /// The deadline passed before the work was done.
    DeadlineExceeded,
    /// Stored data cannot be read back.
    DataLoss,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    pub fn grpc(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorCode::DataLoss => Code::DataLoss,
            ErrorCode::Internal => Code::Internal,
        }
    }

    pub fn http(self) -> http::StatusCode {
        use http::StatusCode as H;
        match self {
            ErrorCode::InvalidArgument => H::BAD_REQUEST,
            ErrorCode::PermissionDenied => H::FORBIDDEN,
            ErrorCode::NotFound => H::NOT_FOUND,
            ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition => H::CONFLICT,
            ErrorCode::ResourceExhausted => H::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => H::SERVICE_UNAVAILABLE,
            ErrorCode::DeadlineExceeded => H::GATEWAY_TIMEOUT,
            ErrorCode::DataLoss | ErrorCode::Internal => H::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code of a status a service answered (for the gateway's HTTP reply). Codes no
    /// service answers on purpose (`Unknown`, `Cancelled`, ...) are `Internal`, except
    /// `OutOfRange` (a bad argument) and `Unauthenticated` (refused).
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
            Code::PermissionDenied | Code::Unauthenticated => ErrorCode::PermissionDenied,
            Code::NotFound => ErrorCode::NotFound,
            Code::AlreadyExists => ErrorCode::AlreadyExists,
            Code::FailedPrecondition | Code::Aborted => ErrorCode::FailedPrecondition,
            Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            Code::Unavailable => ErrorCode::Unavailable,
            Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Code::DataLoss => ErrorCode::DataLoss,
            _ => ErrorCode::Internal,
        }
    }
}

/// An error a service answers with: its display is the message, `code` its kind.
pub trait ServiceError: std::fmt::Display {
    fn code(&self) -> ErrorCode;

    /// The gRPC status for this error, its message bounded.
    fn to_status(&self) -> Status {
        Status::new(
            self.code().grpc(),
            truncated(&self.to_string(), MAX_MESSAGE),
        )
    }
}

/// A setting that cannot be taken, named by its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", short_path(.field))]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

/// A field path as shown in an error: a deep one (saved filters within saved filters) keeps
/// its start and its end, so the reason after it is never cut off the message.
fn short_path(field: &str) -> std::borrow::Cow<'_, str> {
    const HEAD: usize = 60;
    const TAIL: usize = 140;
    if field.len() <= HEAD + TAIL {
        return field.into();
    }
    let mut head = HEAD;
    while !field.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = field.len() - TAIL;
    while !field.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…{}", &field[..head], &field[tail..]).into()
}

pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl ServiceError for Invalid {
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failed(String);

    impl ServiceError for Failed {
        fn code(&self) -> ErrorCode {
            ErrorCode::Unavailable
        }
    }

    #[test]
    fn every_code_round_trips_through_grpc() {
        use ErrorCode::*;
        for code in [
            InvalidArgument,
            PermissionDenied,
            NotFound,
            AlreadyExists,
            FailedPrecondition,
            ResourceExhausted,
            Unavailable,
            DeadlineExceeded,
            DataLoss,
            Internal,
        ] {
            assert_eq!(ErrorCode::from_grpc(code.grpc()), code);
        }
        assert_eq!(Unavailable.http(), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn statuses_carry_the_code_and_a_bounded_message() {
        let status = Failed("x".repeat(10_000)).to_status();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().len() <= MAX_MESSAGE + 8,
            "{}",
            status.message().len()
        );
    }
}

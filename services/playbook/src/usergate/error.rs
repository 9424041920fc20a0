//! How a call to UserGate fails, and the fault codes whose meaning the client acts on.

use std::time::Duration;

/// The session token is unknown or expired: sign in again.
pub const FAULT_SESSION_EXPIRED: i32 = 104;
/// A list or rule with that name exists already.
pub const FAULT_EXISTS: i32 = 409;
/// An item is in the list already.
pub const FAULT_ITEM_PRESENT: i32 = 2001;
/// The list is fed from a URL: UserGate refuses items added by hand.
pub const FAULT_LIST_FROM_URL: i32 = 2003;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// UserGate answered with an XML-RPC fault.
    #[error("UserGate fault {code}: {message}")]
    Fault { code: i32, message: String },
    /// The login was refused (a wrong login or password, a locked account).
    #[error("UserGate refused the login of {login}: fault {code}: {message}")]
    LoginRefused {
        login: String,
        code: i32,
        message: String,
    },
    #[error("UserGate is unreachable: {0}")]
    Unreachable(String),
    #[error("UserGate did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer is not what the API gives (HTTP error, not XML-RPC, unexpected shape).
    #[error("unexpected answer from UserGate: {0}")]
    Protocol(String),
    /// The secret or the method table cannot be used as they are.
    #[error("UserGate settings: {0}")]
    Config(String),
}

impl CallError {
    /// The kind of failure, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Fault { .. } => "fault",
            CallError::LoginRefused { .. } => "login_refused",
            CallError::Unreachable(_) => "unreachable",
            CallError::Timeout(_) => "timeout",
            CallError::Protocol(_) => "protocol",
            CallError::Config(_) => "config",
        }
    }

    pub fn fault_code(&self) -> Option<i32> {
        match self {
            CallError::Fault { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_fault(&self, code: i32) -> bool {
        self.fault_code() == Some(code)
    }

    /// Whether nothing more can be done in this session: no appliance, no login, settings
    /// that cannot work. Other failures concern one call.
    pub fn ends_session(&self) -> bool {
        !matches!(self, CallError::Fault { .. } | CallError::Protocol(_))
    }
}

//! Requests about secrets checked into what the store keeps, and how secret operations fail.

use std::time::Duration;

use xdr_mesh::{
    error::{ErrorCode, Invalid, ServiceError, invalid},
    quote::quoted,
    store::StoreFailure,
};
use xdr_proto::pb::{CreateSecretRequest, Secret, SecretType, UpdateSecretRequest};

use super::cipher::CipherError;
use crate::usergate::{CallError, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("secret {}: not found", quoted(.0))]
    NotFound(String),
    #[error("name: a secret named {} exists in this tenant", quoted(.0))]
    Exists(String),
    #[error("a tenant holds at most {0} secrets")]
    TooMany(usize),
    #[error("no secret {} in tenant {} or Shared", quoted(.name), quoted(.tenant))]
    Missing { name: String, tenant: String },
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Store(#[from] StoreFailure),
}

impl ServiceError for SecretError {
    fn code(&self) -> ErrorCode {
        match self {
            SecretError::Invalid(_) => ErrorCode::InvalidArgument,
            SecretError::NotFound(_) => ErrorCode::NotFound,
            SecretError::Exists(_) => ErrorCode::AlreadyExists,
            SecretError::TooMany(_) => ErrorCode::ResourceExhausted,
            SecretError::Missing { .. } => ErrorCode::FailedPrecondition,
            SecretError::Cipher(_) => ErrorCode::DataLoss,
            SecretError::Store(e) => e.code(),
        }
    }
}

/// A secret as it will be kept, and the password when the request sets one.
pub struct SecretChange {
    pub secret: Secret,
    pub password: Option<String>,
}

const MAX_NAME_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 4000;
const MAX_USER_CHARS: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_URL_BYTES: usize = 2048;
const MAX_CA_BYTES: usize = 64 << 10;

pub fn create(request: CreateSecretRequest, tenant: String) -> Result<SecretChange, SecretError> {
    let chars = request.name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || request.name.chars().any(char::is_control) {
        return Err(invalid("name", "1 to 128 characters, no control characters").into());
    }
    if request.r#type != SecretType::Credentials as i32 {
        return Err(invalid("type", "must be SECRET_TYPE_CREDENTIALS").into());
    }
    if request.password.is_empty() {
        return Err(invalid("password", "required").into());
    }
    let secret = Secret {
        id: String::new(),
        name: request.name,
        tenant,
        r#type: request.r#type,
        user: request.user,
        description: request.description,
        url: request.url,
        ca_pem: request.ca_pem,
        updated_at_ms: 0,
    };
    checked(secret, Some(request.password))
}

pub fn update(request: UpdateSecretRequest, tenant: String) -> Result<SecretChange, SecretError> {
    let password = (!request.password.is_empty()).then_some(request.password);
    let secret = Secret {
        id: request.id,
        name: String::new(),
        tenant,
        r#type: SecretType::Credentials as i32,
        user: request.user,
        description: request.description,
        url: request.url,
        ca_pem: request.ca_pem,
        updated_at_ms: 0,
    };
    checked(secret, password)
}

fn checked(secret: Secret, password: Option<String>) -> Result<SecretChange, SecretError> {
    let user_chars = secret.user.chars().count();
    if user_chars == 0 || user_chars > MAX_USER_CHARS {
        return Err(invalid("user", "1 to 256 characters").into());
    }
    if secret.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid("description", "at most 4000 characters").into());
    }
    if password
        .as_ref()
        .is_some_and(|p| p.len() > MAX_PASSWORD_BYTES)
    {
        return Err(invalid("password", "at most 1024 bytes").into());
    }
    if secret.url.len() > MAX_URL_BYTES {
        return Err(invalid("url", "at most 2048 bytes").into());
    }
    if secret.ca_pem.len() > MAX_CA_BYTES {
        return Err(invalid("ca_pem", "at most 64 KiB").into());
    }
    // The URL and CA are checked as a session will use them.
    if let Err(CallError::Config(text)) = Endpoint::new(&secret.url, &secret.ca_pem, Duration::ZERO)
    {
        let (field, reason) = text.split_once(": ").unwrap_or(("url", text.as_str()));
        return Err(invalid(field, reason).into());
    }
    Ok(SecretChange { secret, password })
}

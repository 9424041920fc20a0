//! The people who may use the gateway: users and their API tokens (`store`), who a request
//! comes from (`authenticate`), and the HTTP routes that manage them (`routes`). A person's
//! role and tenant travel to the services as `x-xdr-*` metadata; the services apply the
//! design's role table.

pub mod bootstrap;
pub mod passwords;
pub mod routes;
pub mod store;

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use ring::{
    digest::{SHA256, digest},
    rand::{SecureRandom, SystemRandom},
};
use xdr_mesh::caller::Role;

use crate::problem::Problem;
pub use store::People;

/// What an API token starts with, so a leaked one is recognisable (secret scanners, logs).
const TOKEN_PREFIX: &str = "xdr_";
/// The longest `Authorization` value looked at.
const MAX_TOKEN_CHARS: usize = 256;

/// The person a request comes from.
#[derive(Clone, Debug)]
pub struct Person {
    pub user: String,
    pub tenant: String,
    pub role: Role,
}

impl Person {
    /// May this person manage users and tokens of `tenant` (the design's "secrets, users,
    /// tokens" row)?
    pub fn may_manage_people_of(&self, tenant: &str) -> Result<(), Problem> {
        let allowed = match self.role {
            Role::MainAdministrator => true,
            Role::TenantAdministrator => tenant == self.tenant,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                format!(
                    "{:?} ({}) may not manage secrets, users, tokens in tenant {tenant:?}",
                    self.user, self.role
                ),
            ))
        }
    }
}

/// A new token secret (256 random bits) and its digest.
pub fn new_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let digest = digest_of(&secret);
    (secret, digest)
}

/// SHA-256 of a secret, hex: what the store keeps and looks up.
pub fn digest_of(secret: &str) -> String {
    digest(&SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where tokens are taken from: over plain HTTP a token could be read on the wire, so it is
/// taken only from loopback unless the operator allows it.
#[derive(Clone, Copy, Debug)]
pub struct TokenPolicy {
    pub plain_http_from_anywhere: bool,
}

/// The person `headers` carry a token of, or 401.
pub fn authenticate(
    people: &People,
    policy: TokenPolicy,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Person, Problem> {
    let unauthenticated =
        |message: &str| Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthenticated(
            "Authorization: missing; send `Authorization: Bearer <token>` (xdrctl token create)",
        ));
    };
    let value = value
        .to_str()
        .ok()
        .filter(|v| v.len() <= MAX_TOKEN_CHARS)
        .ok_or_else(|| unauthenticated("Authorization: not a bearer token"))?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthenticated("Authorization: not a bearer token"))?;
    if !policy.plain_http_from_anywhere && !peer.ip().is_loopback() {
        return Err(unauthenticated(
            "tokens are taken over plain HTTP from loopback only (serve HTTPS, or --allow-plain-http-tokens)",
        ));
    }
    let (user, _) = people
        .authenticate(&digest_of(secret))
        .ok_or_else(|| unauthenticated("the token is unknown, expired or revoked"))?;
    Ok(Person {
        role: user.role(),
        user: user.name,
        tenant: user.tenant,
    })
}

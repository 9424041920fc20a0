//! `/v1/people/…`: users and tokens over HTTP JSON, for `xdrctl user …` and `xdrctl token …`.
//! Managing users and tokens is the design's "secrets, users, tokens" permission (Main
//! administrators anywhere, tenant administrators in their tenant); anyone may make and list
//! tokens of their own. A token's secret is answered once, when it is made.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use xdr_mesh::caller::Role;

use super::{
    Person, TokenPolicy, authenticate, new_secret,
    store::{People, PeopleError, Token, User, now_ms},
};
use crate::problem::Problem;

/// The longest user or tenant name (as the services take them from metadata).
const MAX_NAME_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 4000;

#[derive(Clone)]
pub struct PeopleState {
    pub people: Arc<People>,
    pub policy: TokenPolicy,
}

pub fn router(state: PeopleState) -> Router {
    Router::new()
        .route("/v1/people/users", get(list_users).post(create_user))
        .route("/v1/people/users/{name}", delete(delete_user))
        .route("/v1/people/tokens", get(list_tokens).post(create_token))
        .route("/v1/people/tokens/{id}", delete(revoke_token))
        .with_state(state)
}

impl PeopleState {
    pub fn person(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<Person, Problem> {
        authenticate(&self.people, self.policy, peer, headers)
    }
}

fn problem(error: PeopleError) -> Problem {
    let (status, code) = match &error {
        PeopleError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
        PeopleError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        PeopleError::Exists(_) => (StatusCode::CONFLICT, "already_exists"),
        PeopleError::Full(_) => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        PeopleError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    Problem::new(status, code, error.to_string())
}

fn invalid(message: String) -> Problem {
    problem(PeopleError::Invalid(message))
}

/// A user or tenant name as it can travel in gRPC metadata: 1..=128 visible ASCII characters.
fn checked_name(field: &str, value: &str) -> Result<(), Problem> {
    if value.is_empty()
        || value.len() > MAX_NAME_CHARS
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(format!(
            "{field}: 1 to {MAX_NAME_CHARS} visible ASCII characters, no spaces"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewUser {
    name: String,
    /// The creator's when absent.
    #[serde(default)]
    tenant: String,
    role: String,
}

#[derive(Serialize)]
struct Users {
    users: Vec<User>,
}

async fn list_users(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Users>, Problem> {
    let person = state.person(peer, &headers)?;
    person.may_manage_people_of(&person.tenant)?;
    let users = (state.people.users().into_iter())
        .filter(|u| person.role == Role::MainAdministrator || u.tenant == person.tenant)
        .collect();
    Ok(Json(Users { users }))
}

async fn create_user(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let person = state.person(peer, &headers)?;
    let Json(new) = body.map_err(|e| invalid(format!("body: {}", e.body_text())))?;
    let tenant = if new.tenant.is_empty() {
        person.tenant.clone()
    } else {
        new.tenant
    };
    checked_name("name", &new.name)?;
    checked_name("tenant", &tenant)?;
    person.may_manage_people_of(&tenant)?;
    let role = Role::from_name(&new.role).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
        invalid(format!(
            "role: {:?} is not one of {}",
            new.role,
            names.join(", ")
        ))
    })?;
    if role == Role::MainAdministrator && person.role != Role::MainAdministrator {
        return Err(person
            .may_manage_people_of("")
            .expect_err("only Main administrators manage every tenant"));
    }
    let user = state
        .people
        .add_user(User {
            name: new.name,
            tenant,
            role: role.name().to_owned(),
            created_ms: now_ms(),
        })
        .map_err(problem)?;
    tracing::info!(user = %user.name, tenant = %user.tenant, role = %user.role, by = %person.user, "user created");
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn delete_user(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<User>, Problem> {
    let person = state.person(peer, &headers)?;
    let user = (state.people.user(&name))
        .ok_or_else(|| problem(PeopleError::NotFound(format!("user {name:?}"))))?;
    person.may_manage_people_of(&user.tenant)?;
    let deleted = state.people.delete_user(&name).map_err(problem)?;
    tracing::info!(user = %deleted.name, by = %person.user, "user deleted with their tokens");
    Ok(Json(deleted))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewToken {
    /// The caller when absent.
    #[serde(default)]
    user: String,
    #[serde(default)]
    description: String,
    /// Seconds from now; 0 or absent: never.
    #[serde(default)]
    expires_in_seconds: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MadeToken {
    #[serde(flatten)]
    token: Token,
    /// Shown once: the gateway keeps only its digest.
    secret: String,
}

#[derive(Serialize)]
struct Tokens {
    tokens: Vec<Token>,
}

async fn list_tokens(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Tokens>, Problem> {
    let person = state.person(peer, &headers)?;
    let manages = person.may_manage_people_of(&person.tenant).is_ok();
    let tokens = (state.people.tokens().into_iter())
        .filter(|t| {
            t.user == person.user
                || (manages
                    && state.people.user(&t.user).is_some_and(|u| {
                        person.role == Role::MainAdministrator || u.tenant == person.tenant
                    }))
        })
        .collect();
    Ok(Json(Tokens { tokens }))
}

async fn create_token(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let person = state.person(peer, &headers)?;
    let Json(new) = body.map_err(|e| invalid(format!("body: {}", e.body_text())))?;
    let user = if new.user.is_empty() {
        person.user.clone()
    } else {
        new.user
    };
    if user != person.user {
        let owner = (state.people.user(&user))
            .ok_or_else(|| problem(PeopleError::NotFound(format!("user {user:?}"))))?;
        person.may_manage_people_of(&owner.tenant)?;
    }
    if new.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let expires_ms = match new.expires_in_seconds {
        0 => 0,
        seconds => i64::try_from(seconds)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .and_then(|ms| ms.checked_add(now_ms()))
            .ok_or_else(|| invalid("expiresInSeconds: too far ahead".into()))?,
    };
    let (secret, digest) = new_secret();
    let token = state
        .people
        .add_token(Token {
            id: xdr_mesh::id::new_uuid(),
            digest,
            user,
            description: new.description,
            created_ms: now_ms(),
            expires_ms,
            revoked: false,
        })
        .map_err(problem)?;
    tracing::info!(token = %token.id, user = %token.user, by = %person.user, "token created");
    Ok((StatusCode::CREATED, Json(MadeToken { token, secret })).into_response())
}

async fn revoke_token(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Token>, Problem> {
    let person = state.person(peer, &headers)?;
    let token = (state.people.tokens().into_iter())
        .find(|t| t.id == id)
        .ok_or_else(|| problem(PeopleError::NotFound(format!("token {id:?}"))))?;
    if token.user != person.user {
        let owner_tenant = state.people.user(&token.user).map(|u| u.tenant);
        person.may_manage_people_of(owner_tenant.as_deref().unwrap_or(""))?;
    }
    let revoked = state.people.revoke(&id).map_err(problem)?;
    tracing::info!(token = %revoked.id, by = %person.user, "token revoked");
    Ok(Json(revoked))
}

//! `/v1/people/…`: users and tokens over HTTP JSON, for `xdrctl user …` and `xdrctl token …`.
//! Managing users and tokens is the design's "secrets, users, tokens" permission (Main
//! administrators anywhere, tenant administrators in their tenant); anyone may make and list
//! tokens of their own. A token's secret is answered once, when it is made.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use governor::{
    DefaultKeyedRateLimiter,
    clock::{Clock, DefaultClock},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use xdr_mesh::caller::Role;

use super::{
    Person, TokenPolicy, authenticate, new_secret, passwords,
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
    /// Sign-ins a client address may try, when limited.
    pub login_rate: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

pub fn router(state: PeopleState) -> Router {
    Router::new()
        .route("/v1/people/users", get(list_users).post(create_user))
        .route("/v1/people/users/{name}", delete(delete_user))
        .route("/v1/people/users/{name}/password", put(set_password))
        .route("/v1/people/login", post(login))
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

/// A JSON body, or a 400 saying what is wrong with it.
fn json_of<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    body.map(|Json(value)| value)
        .map_err(|e| invalid(format!("body: {}", e.body_text())))
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
    /// For the console; tokens work without one.
    #[serde(default)]
    password: Option<String>,
}

/// A user as answered: never the password's hash.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView {
    name: String,
    tenant: String,
    role: String,
    created_ms: i64,
    has_password: bool,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            has_password: !user.password_hash.is_empty(),
            name: user.name,
            tenant: user.tenant,
            role: user.role,
            created_ms: user.created_ms,
        }
    }
}

#[derive(Serialize)]
struct Users {
    users: Vec<UserView>,
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
        .map(UserView::from)
        .collect();
    Ok(Json(Users { users }))
}

async fn create_user(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, Problem> {
    let person = state.person(peer, &headers)?;
    let new = json_of(body)?;
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
    let password_hash = match new.password {
        Some(password) => hashed(password).await?,
        None => String::new(),
    };
    let user = state
        .people
        .add_user(User {
            name: new.name,
            tenant,
            role: role.name().to_owned(),
            created_ms: now_ms(),
            password_hash,
        })
        .map_err(problem)?;
    tracing::info!(user = %user.name, tenant = %user.tenant, role = %user.role, by = %person.user, "user created");
    Ok((StatusCode::CREATED, Json(UserView::from(user))).into_response())
}

async fn delete_user(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<UserView>, Problem> {
    let person = state.person(peer, &headers)?;
    let user = (state.people.user(&name))
        .ok_or_else(|| problem(PeopleError::NotFound(format!("user {name:?}"))))?;
    person.may_manage_people_of(&user.tenant)?;
    let deleted = state.people.delete_user(&name).map_err(problem)?;
    tracing::info!(user = %deleted.name, by = %person.user, "user deleted with their tokens");
    Ok(Json(deleted.into()))
}

/// `password` hashed off the async threads, at most [`HASHING_AT_ONCE`] at a time.
async fn hashed(password: String) -> Result<String, Problem> {
    if let Some(why) = passwords::refusal(&password) {
        return Err(invalid(why));
    }
    let _turn = hashing_turn().await?;
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|_| problem(PeopleError::Store("hashing failed".into())))
}

/// Password hashes computed at once (each holds ~19 MiB for tens of milliseconds).
const HASHING_AT_ONCE: usize = 2;
/// Longest a sign-in waits for its turn.
const HASHING_WAIT: Duration = Duration::from_secs(5);

async fn hashing_turn() -> Result<tokio::sync::SemaphorePermit<'static>, Problem> {
    static TURNS: Semaphore = Semaphore::const_new(HASHING_AT_ONCE);
    match tokio::time::timeout(HASHING_WAIT, TURNS.acquire()).await {
        Ok(Ok(turn)) => Ok(turn),
        _ => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the gateway is checking as many passwords as it can; retry",
        )
        .retry_after(Duration::from_secs(1))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// A user's own password, or one of their tenant's for whoever manages its people.
async fn set_password(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> Result<Json<UserView>, Problem> {
    let person = state.person(peer, &headers)?;
    let new = json_of(body)?;
    let user = (state.people.user(&name))
        .ok_or_else(|| problem(PeopleError::NotFound(format!("user {name:?}"))))?;
    if user.name != person.user {
        person.may_manage_people_of(&user.tenant)?;
    }
    let hash = hashed(new.password).await?;
    let changed = state.people.set_password(&name, hash).map_err(problem)?;
    tracing::info!(user = %changed.name, by = %person.user, "password set");
    Ok(Json(changed.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Login {
    name: String,
    password: String,
    /// Seconds the token lasts: 12 hours unless asked, at most 30 days.
    #[serde(default)]
    expires_in_seconds: u64,
}

/// Sign-in lifetimes: the default and the longest.
pub const LOGIN_TOKEN_SECONDS: u64 = 12 * 3600;
const MAX_LOGIN_TOKEN_SECONDS: u64 = 30 * 24 * 3600;

/// A user's name and password for a token that expires (what the console signs in with).
/// Unknown users and wrong passwords are answered alike, in about the same time.
async fn login(
    State(state): State<PeopleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, Problem> {
    let login = json_of(body)?;
    let seconds = match login.expires_in_seconds {
        0 => LOGIN_TOKEN_SECONDS,
        asked => asked.min(MAX_LOGIN_TOKEN_SECONDS),
    };
    let (token, secret) = sign_in(&state, peer, &login.name, login.password, seconds).await?;
    Ok((StatusCode::CREATED, Json(MadeToken { token, secret })).into_response())
}

/// A token lasting `seconds` for user `name` when `password` is theirs: the token and its
/// secret. Tries are limited per address; unknown users and wrong passwords are answered
/// alike, in about the same time.
pub async fn sign_in(
    state: &PeopleState,
    peer: SocketAddr,
    name: &str,
    password: String,
    seconds: u64,
) -> Result<(Token, String), Problem> {
    if let Some(rate) = &state.login_rate
        && let Err(not_until) = rate.check_key(&peer.ip())
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "resource_exhausted",
            format!("{} signs in more often than the gateway allows", peer.ip()),
        )
        .retry_after(wait));
    }
    if password.chars().count() > passwords::MAX_CHARS {
        return Err(invalid(passwords::refusal(&password).unwrap_or_default()));
    }
    let user = state.people.user(name);
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| passwords::decoy().to_owned());
    let turn = hashing_turn().await?;
    let matches = tokio::task::spawn_blocking(move || passwords::verify(&password, &phc))
        .await
        .unwrap_or(false);
    drop(turn);
    let Some(user) = user.filter(|_| matches) else {
        tracing::warn!(user = %name, %peer, "sign-in refused");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "wrong user name or password",
        ));
    };
    let (secret, digest) = new_secret();
    let token = state
        .people
        .add_token(Token {
            id: xdr_mesh::id::new_uuid(),
            digest,
            user: user.name.clone(),
            description: SIGNED_IN.into(),
            created_ms: now_ms(),
            expires_ms: now_ms() + 1000 * seconds as i64,
            revoked: false,
        })
        .map_err(problem)?;
    tracing::info!(user = %user.name, token = %token.id, "signed in");
    Ok((token, secret))
}

/// The description of the tokens a sign-in makes: signing out revokes those, and only those.
pub const SIGNED_IN: &str = "signed in with a password";

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
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, Problem> {
    let person = state.person(peer, &headers)?;
    let new = json_of(body)?;
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

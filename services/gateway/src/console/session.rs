//! Console sessions. Signing in with a user and password makes a token that expires, as
//! `POST /v1/people/login` does; signing in with an API token uses that token. Either way the
//! cookie holds the token (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS), the gateway
//! keeps only its digest, and every page authenticates it as the JSON routes do a bearer
//! token — expiry and revocation included. Forms carry a CSRF value derived from the token:
//! a page of another site can neither read it nor post without it. Signing out revokes a
//! sign-in's token (never an API token) and clears the cookie.

use std::net::SocketAddr;

use axum::{
    Form,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::html;
use ring::digest::{SHA256, digest};
use serde::Deserialize;

use super::{
    Console,
    page::{notice, page_with},
};
use crate::{
    people::{
        Person, digest_of,
        routes::{LOGIN_TOKEN_SECONDS, SIGNED_IN, sign_in},
    },
    trace_context::TraceContext,
};

pub const COOKIE: &str = "xdr_session";
/// The longest cookie value looked at (a token is 47 characters).
const MAX_COOKIE_CHARS: usize = 256;
const MAX_FIELD_CHARS: usize = 1024;

/// The person signed in, what their forms must carry, and the request's trace. A page holds
/// one of the gateway's call slots (shared with the JSON routes) while it is made, so pages
/// cannot make the gateway hold more replies than it takes.
#[derive(Clone, Debug)]
pub struct Session {
    pub person: Person,
    pub csrf: String,
    secret: String,
    pub trace: TraceContext,
    _slot: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl Session {
    /// Whether `form_csrf` is this session's. Their digests are compared, so the time the
    /// comparison takes says nothing about how much of a guess was right.
    pub fn checks(&self, form_csrf: &str) -> bool {
        let of = |text: &str| digest(&SHA256, text.as_bytes());
        of(&self.csrf).as_ref() == of(form_csrf).as_ref()
    }
}

fn csrf_of(secret: &str) -> String {
    let tagged = format!("xdr-console-csrf\0{secret}");
    digest(&SHA256, tagged.as_bytes()).as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The session cookie's token, if the request carries one.
fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && value.len() <= MAX_COOKIE_CHARS)
}

/// Handlers taking a `Session` run for people signed in; anyone else goes to the sign-in
/// page and comes back.
impl axum::extract::FromRequestParts<std::sync::Arc<Console>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        console: &std::sync::Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        let mut session = peer
            .and_then(|peer| console.session(peer, &parts.headers))
            .ok_or_else(|| to_sign_in(&parts.uri))?;
        if let Some(trace) = parts.extensions.get::<TraceContext>() {
            session.trace = *trace;
        }
        let slot = console.calls.slot().map_err(|problem| {
            super::page::page_with(
                problem.status,
                Some(&session),
                "Busy",
                super::page::notice("error", &problem.message),
            )
        })?;
        session._slot = Some(std::sync::Arc::new(slot));
        Ok(session)
    }
}

impl Console {
    /// The session of a request, when it carries a live one (from loopback or over HTTPS,
    /// unless plain-HTTP tokens are allowed, as for bearer tokens).
    pub fn session(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<Session> {
        let secret = cookie_secret(headers)?;
        let people = &self.calls.people;
        if !people.policy.plain_http_from_anywhere && !peer.ip().is_loopback() {
            return None;
        }
        let (user, _) = people.people.authenticate(&digest_of(secret))?;
        Some(Session {
            person: Person {
                role: user.role(),
                user: user.name,
                tenant: user.tenant,
            },
            csrf: csrf_of(secret),
            secret: secret.to_owned(),
            trace: TraceContext::child_of(None),
            _slot: None,
        })
    }

    fn cookie(&self, secret: &str, max_age: Option<u64>) -> HeaderValue {
        let mut cookie = format!("{COOKIE}={secret}; Path=/console; HttpOnly; SameSite=Strict");
        if self.secure_cookies {
            cookie.push_str("; Secure");
        }
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        HeaderValue::try_from(cookie).expect("a token is a cookie value")
    }
}

/// Where an unauthenticated request is sent: the sign-in page, coming back afterwards.
pub fn to_sign_in(uri: &axum::http::Uri) -> Response {
    let back = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with("/console/") && p.len() < 2048)
        .unwrap_or("/console/alerts");
    let query = percent_encoding::utf8_percent_encode(back, percent_encoding::NON_ALPHANUMERIC);
    Redirect::to(&format!("/console/sign-in?next={query}")).into_response()
}

#[derive(Deserialize, Default)]
pub struct Next {
    #[serde(default)]
    next: String,
}

/// `next` if it is a console page (never another site), else the alerts.
fn safe_next(next: &str) -> &str {
    if next.starts_with("/console/") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/console/alerts"
    }
}

fn sign_in_page(next: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        @if let Some(problem) = problem { (notice("error", problem)) }
        form.stack method="post" action="/console/sign-in" {
            input type="hidden" name="next" value=(safe_next(next));
            label { "User" input name="user" autocomplete="username" maxlength="128"; }
            label { "Password" input name="password" type="password" autocomplete="current-password" maxlength="1024"; }
            p.muted { "Or an API token (xdrctl token create) instead of a user and password:" }
            label { "API token" input name="token" type="password" autocomplete="off" maxlength="256"; }
            button type="submit" { "Sign in" }
        }
    };
    page_with(status, None, "Sign in", body)
}

pub async fn sign_in_form(axum::extract::Query(next): axum::extract::Query<Next>) -> Response {
    sign_in_page(&next.next, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignIn {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// Whether a request's `Origin`, when the browser sends one, is the gateway itself: a page
/// of another site may not sign a browser in (as someone else) behind its user's back.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = (origin.to_str().ok())
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    origin_host.is_some() && origin_host == host
}

pub async fn sign_in_post(
    State(console): State<std::sync::Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let refuse = |message: &str, status| sign_in_page(&form.next, Some(message), status);
    if !same_origin(&headers) {
        return refuse(
            "sign-in comes from another site's page; sign in here",
            StatusCode::FORBIDDEN,
        );
    }
    if [&form.user, &form.password, &form.token]
        .iter()
        .any(|f| f.len() > MAX_FIELD_CHARS)
    {
        return refuse("a field is too long", StatusCode::BAD_REQUEST);
    }
    let people = &console.calls.people;
    if !people.policy.plain_http_from_anywhere && !peer.ip().is_loopback() {
        return refuse(
            "over plain HTTP the console takes sign-ins from this machine only; use HTTPS",
            StatusCode::FORBIDDEN,
        );
    }
    let token = form.token.trim();
    let (secret, max_age) = if !token.is_empty() {
        if people.people.authenticate(&digest_of(token)).is_none() {
            return refuse(
                "the token is unknown, expired or revoked",
                StatusCode::UNAUTHORIZED,
            );
        }
        (token.to_owned(), None)
    } else {
        match sign_in(
            people,
            peer,
            form.user.trim(),
            form.password.clone(),
            LOGIN_TOKEN_SECONDS,
        )
        .await
        {
            Ok((_, secret)) => (secret, Some(LOGIN_TOKEN_SECONDS)),
            Err(problem) => return refuse(&problem.message, problem.status),
        }
    };
    let mut response = Redirect::to(safe_next(&form.next)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, console.cookie(&secret, max_age));
    response
}

#[derive(Deserialize)]
pub struct Csrf {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(console): State<std::sync::Arc<Console>>,
    session: Session,
    Form(form): Form<Csrf>,
) -> Response {
    if !session.checks(&form.csrf) {
        return super::forbidden_form(&session);
    }
    let people = &console.calls.people.people;
    if let Some((_, token)) = people.authenticate(&digest_of(&session.secret))
        && token.description == SIGNED_IN
        && let Err(error) = people.revoke(&token.id)
    {
        tracing::warn!(%error, "the sign-in token was not revoked at sign-out");
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, console.cookie("", Some(0)));
    response
}

//! The HTTP routes of the gateway.

use std::sync::Arc;
use std::time::Duration;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use crate::{health, input::Input, people::routes::PeopleState, upstreams::Upstreams};

#[derive(Clone)]
pub struct AppState {
    pub upstreams: Upstreams,
    pub health_timeout: Duration,
}

pub fn router(
    state: AppState,
    input: Arc<Input>,
    people: PeopleState,
    secure_cookies: bool,
) -> Router {
    // Installed before anything is counted: counts made before the recorder are lost.
    xdr_mesh::metrics::recorder();
    crate::metrics::describe();
    let calls = Arc::new(crate::connect::ConnectState::new(
        state.upstreams.clone(),
        people.clone(),
    ));
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state.clone())
        .merge(crate::input::router(input))
        .merge(crate::people::routes::router(people.clone()))
        .merge(crate::connect::router(calls.clone()))
        .merge(crate::rest::router(calls.clone()))
        .merge(crate::console::router(crate::console::Console::new(
            calls,
            secure_cookies,
        )))
        .merge(crate::openapi::router(&state.upstreams))
        .merge(xdr_mesh::metrics::router())
        .layer(axum::middleware::from_fn(crate::trace_context::propagate))
        .layer(axum::middleware::from_fn(crate::metrics::count_requests))
}

/// 200 with every service's status when all are SERVING, else 503 with the same body.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let health = health::check(&state.upstreams, state.health_timeout).await;
    let code = if health.all_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health))
}

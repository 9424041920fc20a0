//! The web console for analysts, served by the gateway under `/console/`: server-rendered
//! HTML (maud), no script. Each page calls the same gRPC methods as everything else, on the
//! signed-in person's behalf (`on_behalf`), so the services apply the role table and tenancy:
//! a page only leaves out what a role may not do, and a forged form is refused by the
//! service. Sessions are the gateway's tokens in a cookie (`session`).

// A handler's error is the page saying why (`Page`): made once per request and answered at
// once, never carried far, so its size does not matter.
#![allow(clippy::result_large_err)]

mod alerts;
mod catalog;
mod enrichment;
mod events;
mod page;
mod session;

use std::sync::Arc;

use axum::{
    Router,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use maud::html;
use xdr_mesh::directory::{COLLECTOR, ENRICHMENT, PLAYBOOK, THREATINTEL};
use xdr_mesh::replicas::Balanced as Channel;
use xdr_proto::pb::{
    collector_client::CollectorClient, enrichment_client::EnrichmentClient,
    playbook_client::PlaybookClient, threat_intel_client::ThreatIntelClient,
};

use crate::{
    connect::{CALL_TIMEOUT, ConnectState},
    problem::Problem,
};
pub use session::Session;

/// Largest reply taken from a service for a page (an alert with its history is under 3 MiB).
const MAX_REPLY_BYTES: usize = 8 << 20;

pub struct Console {
    calls: Arc<ConnectState>,
    /// Cookies only over TLS: when the gateway serves HTTPS.
    secure_cookies: bool,
}

impl Console {
    pub fn new(calls: Arc<ConnectState>, secure_cookies: bool) -> Arc<Self> {
        Arc::new(Console {
            calls,
            secure_cookies,
        })
    }

    /// `message` as a call made for the person signed in, or the page titled `title` saying
    /// why it cannot be made.
    fn ask<T>(
        &self,
        session: &Session,
        title: &str,
        message: T,
    ) -> Result<tonic::Request<T>, Response> {
        crate::on_behalf::request(&session.person, session.trace, CALL_TIMEOUT, message)
            .map_err(|problem| refused(session, title, problem))
    }

    fn channel(&self, service: &str) -> Channel {
        self.calls.upstreams.channel(service)
    }

    fn playbook(&self) -> PlaybookClient<Channel> {
        PlaybookClient::new(self.channel(PLAYBOOK.name)).max_decoding_message_size(MAX_REPLY_BYTES)
    }

    fn collector(&self) -> CollectorClient<Channel> {
        CollectorClient::new(self.channel(COLLECTOR.name))
            .max_decoding_message_size(MAX_REPLY_BYTES)
    }

    fn enrichment(&self) -> EnrichmentClient<Channel> {
        EnrichmentClient::new(self.channel(ENRICHMENT.name))
            .max_decoding_message_size(MAX_REPLY_BYTES)
    }

    fn threatintel(&self) -> ThreatIntelClient<Channel> {
        ThreatIntelClient::new(self.channel(THREATINTEL.name))
            .max_decoding_message_size(MAX_REPLY_BYTES)
    }
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/alerts") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/alerts") }),
        )
        .route("/console/style.css", get(page::stylesheet))
        .route(
            "/console/sign-in",
            get(session::sign_in_form).post(session::sign_in_post),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/alerts", get(alerts::list_alerts))
        .route("/console/alerts/{id}", get(alerts::alert_card))
        .route("/console/alerts/by-event/{id}", get(alerts::alert_of_event))
        .route("/console/alerts/{id}/update", post(alerts::update_alert))
        .route("/console/alerts/{id}/launch", post(alerts::launch_on_alert))
        .route("/console/incidents", get(alerts::list_incidents))
        .route("/console/incidents/{id}", get(alerts::incident_card))
        .route(
            "/console/incidents/{id}/update",
            post(alerts::update_incident),
        )
        .route(
            "/console/incidents/{id}/launch",
            post(alerts::launch_on_incident),
        )
        .route("/console/events", get(events::search))
        .route("/console/enrichment", get(enrichment::enrichment))
        .route(
            "/console/enrichment/rules/{id}",
            get(enrichment::rule).post(enrichment::save_rule),
        )
        .route(
            "/console/enrichment/filters/{id}",
            get(enrichment::filter).post(enrichment::save_filter),
        )
        .route(
            "/console/threatintel",
            get(catalog::threatintel).post(catalog::add_indicator),
        )
        .route("/console/collectors", get(catalog::collectors))
        .route("/console/secrets", get(catalog::secrets))
        .with_state(console)
}

/// What a console handler answers: the page, or (as `Err`, so `?` ends the handler) the page
/// saying why it could not be made.
type Page = Result<Response, Response>;

/// A service's answer, or the page titled `title` saying why it refused.
fn answered<T>(
    session: &Session,
    title: &str,
    answer: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, Response> {
    answer
        .map(tonic::Response::into_inner)
        .map_err(|status| failed(session, title, &status))
}

/// A page saying what went wrong, with the HTTP status of the service's answer (403 for a
/// role that may not, 404 for what is not there or not the person's tenant's).
fn failed(session: &Session, title: &str, status: &tonic::Status) -> Response {
    let problem = Problem::from_status(status);
    page::page_with(
        problem.status,
        Some(session),
        title,
        page::notice("error", &problem.message),
    )
}

/// A form whose CSRF value is not the session's: refused, nothing done.
fn forbidden_form(session: &Session) -> Response {
    page::page_with(
        StatusCode::FORBIDDEN,
        Some(session),
        "Refused",
        html! {
            (page::notice("error", "the form is out of date or from another site; nothing was changed"))
            p { a href="/console/alerts" { "Back to the alerts" } }
        },
    )
}

/// A problem made before a call (a bad form field) as a page.
fn refused(session: &Session, title: &str, problem: Problem) -> Response {
    page::page_with(
        problem.status,
        Some(session),
        title,
        page::notice("error", &problem.message),
    )
    .into_response()
}

//! What a person does from a card: change the status or assignee, launch a playbook (a dry
//! run first, if they like), and go from an event to its alert. Every form carries the
//! session's CSRF value; the service decides whether the person's role may.

use std::sync::Arc;

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use xdr_proto::pb::{
    AlertStatus, LaunchPlaybookRequest, ListAlertsRequest, Observable, PageRequest,
    UpdateAlertRequest, UpdateIncidentRequest,
};

use super::{
    MAX_ASSIGNEE_CHARS,
    card::{Subject, card, get_alert, get_incident, run_outcome},
};
use crate::{
    console::{
        Console, Page, Session, answered, forbidden_form,
        page::{notice, page},
        refused,
    },
    problem::Problem,
};

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    assignee: String,
}

impl UpdateForm {
    /// The status and assignee, once the form is the session's and its fields are right; else
    /// the page saying why not.
    fn checked(&self, session: &Session, title: &str) -> Result<(i32, String), Response> {
        if !session.checks(&self.csrf) {
            return Err(forbidden_form(session));
        }
        let status = AlertStatus::from_str_name(&self.status)
            .filter(|s| *s != AlertStatus::Unspecified)
            .ok_or_else(|| Problem::bad_request("status: new, in progress or closed"));
        let assignee = self.assignee.trim();
        let checked = status.and_then(|status| {
            if assignee.chars().count() > MAX_ASSIGNEE_CHARS {
                return Err(Problem::bad_request(format!(
                    "assignee: at most {MAX_ASSIGNEE_CHARS} characters"
                )));
            }
            Ok((status as i32, assignee.to_owned()))
        });
        checked.map_err(|problem| refused(session, title, problem))
    }
}

pub async fn update_alert(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<UpdateForm>,
) -> Page {
    let (status, assignee) = form.checked(&session, "Alert")?;
    let message = UpdateAlertRequest {
        id,
        status,
        assignee: Some(assignee),
        ..Default::default()
    };
    let request = console.ask(&session, "Alert", message)?;
    let alert = answered(
        &session,
        "Alert",
        console.playbook().update_alert(request).await,
    )?;
    let saved = Some(notice("ok", "Saved."));
    Ok(card(&console, &session, Subject::Alert(alert), saved).await)
}

pub async fn update_incident(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<UpdateForm>,
) -> Page {
    let (status, assignee) = form.checked(&session, "Incident")?;
    let message = UpdateIncidentRequest {
        id,
        status,
        assignee: Some(assignee),
        ..Default::default()
    };
    let request = console.ask(&session, "Incident", message)?;
    let incident = answered(
        &session,
        "Incident",
        console.playbook().update_incident(request).await,
    )?;
    let saved = Some(notice("ok", "Saved."));
    Ok(card(&console, &session, Subject::Incident(incident), saved).await)
}

#[derive(Deserialize)]
pub struct LaunchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    playbook: String,
    /// `dry-run` or `launch`.
    #[serde(default)]
    mode: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    block_seconds: String,
}

impl LaunchForm {
    /// The launch request (its alert or incident set by the caller).
    fn request(&self) -> Result<LaunchPlaybookRequest, Problem> {
        if self.playbook.is_empty() || self.playbook.len() > 128 {
            return Err(Problem::bad_request("playbook: choose one"));
        }
        let block_seconds = match self.block_seconds.trim() {
            "" => 0,
            text => text
                .parse::<u32>()
                .map_err(|_| Problem::bad_request("block for: a whole number of seconds"))?,
        };
        let ip = self.ip.trim();
        let observables = if ip.is_empty() {
            Vec::new()
        } else {
            ip.parse::<std::net::IpAddr>().map_err(|_| {
                Problem::bad_request("also block this IP address: not an IP address")
            })?;
            vec![Observable {
                r#type: xdr_proto::pb::IndicatorType::Ip as i32,
                value: ip.to_owned(),
                ..Default::default()
            }]
        };
        Ok(LaunchPlaybookRequest {
            playbook_id: self.playbook.clone(),
            dry_run: self.mode != "launch",
            observables,
            block_seconds,
            ..Default::default()
        })
    }
}

/// Launches `form`'s playbook on `on`'s alert or incident and shows the card again with
/// the outcome (the service refuses a role that may not: 403).
async fn launch(console: &Console, session: &Session, form: LaunchForm, on: LaunchOn) -> Page {
    let title = on.title();
    if !session.checks(&form.csrf) {
        return Err(forbidden_form(session));
    }
    let mut message = form
        .request()
        .map_err(|problem| refused(session, title, problem))?;
    match &on {
        LaunchOn::Alert(id) => message.alert_id = id.clone(),
        LaunchOn::Incident(id) => message.incident_id = id.clone(),
    }
    let request = console.ask(session, title, message)?;
    let run = answered(
        session,
        title,
        console.playbook().launch_playbook(request).await,
    )?;
    let subject = match on {
        LaunchOn::Alert(id) => Subject::Alert(get_alert(console, session, id).await?),
        LaunchOn::Incident(id) => Subject::Incident(get_incident(console, session, id).await?),
    };
    Ok(card(console, session, subject, Some(run_outcome(&run))).await)
}

enum LaunchOn {
    Alert(String),
    Incident(String),
}

impl LaunchOn {
    fn title(&self) -> &'static str {
        match self {
            LaunchOn::Alert(_) => "Alert",
            LaunchOn::Incident(_) => "Incident",
        }
    }
}

pub async fn launch_on_alert(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<LaunchForm>,
) -> Page {
    launch(&console, &session, form, LaunchOn::Alert(id)).await
}

pub async fn launch_on_incident(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<LaunchForm>,
) -> Page {
    launch(&console, &session, form, LaunchOn::Incident(id)).await
}

/// Alerts looked through, newest first, for the one holding an event.
const MAX_ALERTS_SCANNED: usize = 2000;

/// From an event to its alert: the newest alert holding event `id`.
pub async fn alert_of_event(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let mut token = String::new();
    let mut scanned = 0;
    while scanned < MAX_ALERTS_SCANNED {
        let request = ListAlertsRequest {
            page: Some(PageRequest {
                page_size: 200,
                page_token: token.clone(),
            }),
            ..Default::default()
        };
        let request = console.ask(&session, "Alert", request)?;
        let reply = answered(
            &session,
            "Alert",
            console.playbook().list_alerts(request).await,
        )?;
        scanned += reply.alerts.len();
        if let Some(alert) = reply.alerts.iter().find(|a| a.event_ids.contains(&id)) {
            return Ok(Redirect::to(&format!("/console/alerts/{}", alert.id)).into_response());
        }
        token = reply.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    let said = format!("No alert among the newest {scanned} holds event {id}.");
    Ok(page(Some(&session), "Alert", notice("warn", &said)))
}

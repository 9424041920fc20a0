//! The card of an alert or an incident: its facts, observables with their TI matches, events
//! (or alerts), the status and assignee form and **Launch playbook** where the person's role
//! allows them, the outcome of what was just done, and the History.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    response::Response,
};
use maud::{Markup, html};
use xdr_mesh::caller::Action;
use xdr_proto::pb::{
    Alert, AlertStatus, GetAlertRequest, GetIncidentRequest, HistoryEntry, Incident,
    ListPlaybooksRequest, Observable, PlaybookInfo, PlaybookRun, RunOutcome, history_entry::Change,
};

use super::{severity, status};
use crate::console::{
    Console, Page, Session, answered,
    page::{csrf_field, nothing, notice, page, short, time},
};

/// An alert or an incident, as a card shows it.
pub(super) enum Subject {
    Alert(Alert),
    Incident(Incident),
}

impl Subject {
    fn path(&self) -> String {
        match self {
            Subject::Alert(a) => format!("/console/alerts/{}", a.id),
            Subject::Incident(i) => format!("/console/incidents/{}", i.id),
        }
    }
    fn title(&self) -> &str {
        match self {
            Subject::Alert(a) => &a.title,
            Subject::Incident(i) => &i.title,
        }
    }
    fn history(&self) -> &[HistoryEntry] {
        match self {
            Subject::Alert(a) => &a.history,
            Subject::Incident(i) => &i.history,
        }
    }
    fn facts(&self) -> Markup {
        let (sev, st, assignee, created) = match self {
            Subject::Alert(a) => (a.severity, a.status, &a.assignee, a.created_at_ms),
            Subject::Incident(i) => (i.severity, i.status, &i.assignee, i.created_at_ms),
        };
        html! {
            dl {
                dt { "Severity" } dd { (severity(sev)) }
                dt { "Status" } dd { (status(st)) }
                dt { "Assignee" } dd { (if assignee.is_empty() { "—" } else { assignee }) }
                dt { "Opened" } dd { (time(created)) }
                @if let Subject::Alert(a) = self {
                    dt { "Events" } dd { (a.event_count) " (last " (time(a.last_event_at_ms)) ")" }
                    @if !a.incident_id.is_empty() {
                        dt { "Incident" } dd { a href=(format!("/console/incidents/{}", a.incident_id)) { (a.incident_id) } }
                    }
                }
            }
        }
    }
}

fn observables_table(observables: &[Observable]) -> Markup {
    html! {
        div.box {
            table {
                thead { tr { th scope="col" { "Type" } th scope="col" { "Value" } th scope="col" { "TI category" }
                             th scope="col" { "Matched indicator" } th scope="col" { "Supplier" } th scope="col" { "Field" } } }
                tbody {
                    @for o in observables {
                        tr {
                            td { (short(o.r#type().as_str_name(), "INDICATOR_TYPE_")) }
                            td { code { (o.value) } }
                            td { (if o.category.is_empty() { "—" } else { &o.category }) }
                            td { (o.matched_indicator) }
                            td { (o.supplier) }
                            td { (o.field) }
                        }
                    }
                }
            }
        }
    }
}

fn history_table(history: &[HistoryEntry]) -> Markup {
    html! {
        @if history.is_empty() { p.muted { "Nothing launched or changed yet." } }
        @else {
            div.box {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for entry in history.iter().rev() {
                            tr {
                                td { (time(entry.at_ms)) }
                                td { (entry.by) }
                                @match &entry.change {
                                    Some(Change::Launch(run)) => {
                                        td { "launched " code { (run.playbook) } }
                                        td { (short(run.outcome().as_str_name(), "RUN_OUTCOME_")) ": " (run.message) }
                                    }
                                    Some(Change::Status(s)) => { td { "status → " (status(*s)) } td { "—" } }
                                    Some(Change::Assignee(a)) => { td { "assigned to " (if a.is_empty() { "nobody" } else { a }) } td { "—" } }
                                    Some(Change::LinkedToIncident(i)) => { td { "linked to incident " (i) } td { "—" } }
                                    Some(Change::AlertLinked(a)) => { td { "alert " (a) " linked" } td { "—" } }
                                    None => { td { "—" } td { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a launch did (or, dry, would do): the outcome as a notice, the items, the actions.
pub(super) fn run_outcome(run: &PlaybookRun) -> Markup {
    let (kind, headline) = match run.outcome() {
        RunOutcome::Succeeded => ("ok", "Succeeded"),
        RunOutcome::Partial => ("warn", "Partly done"),
        RunOutcome::DryRun => ("ok", "Dry run — nothing was sent"),
        _ => ("error", "Failed"),
    };
    html! {
        section aria-labelledby="outcome" {
            h2 #outcome { "Outcome of " code { (run.playbook) } }
            (notice(kind, &format!("{headline}: {}", run.message)))
            @if !run.items.is_empty() {
                div.box {
                    table {
                        thead { tr { th scope="col" { "Item" } th scope="col" { "Where" } th scope="col" { "Done" } th scope="col" { "Note" } } }
                        tbody {
                            @for item in &run.items {
                                tr { td { code { (item.value) } } td { (item.target) } td { (if item.done { "yes" } else { "no" }) } td { (item.note) } }
                            }
                        }
                    }
                }
            }
            @if !run.protected.is_empty() { p { "Protected, not blocked: " (run.protected.join(", ")) } }
            @if !run.actions.is_empty() {
                h2 { @if run.outcome() == RunOutcome::DryRun { "What would be sent to UserGate" } @else { "What was sent to UserGate" } }
                ol { @for action in &run.actions { li { code { (action) } } } }
            }
        }
    }
}

fn update_form(subject: &Subject, session: &Session) -> Markup {
    let (current, assignee) = match subject {
        Subject::Alert(a) => (a.status, a.assignee.as_str()),
        Subject::Incident(i) => (i.status, i.assignee.as_str()),
    };
    let option = |value: AlertStatus, label: &str| {
        html! { option value=(value.as_str_name()) selected[value as i32 == current] { (label) } }
    };
    html! {
        form.inline method="post" action=(format!("{}/update", subject.path())) {
            (csrf_field(session))
            label { "Status"
                select name="status" {
                    (option(AlertStatus::New, "new"))
                    (option(AlertStatus::InProgress, "in progress"))
                    (option(AlertStatus::Closed, "closed"))
                }
            }
            label { "Assignee" input name="assignee" value=(assignee) maxlength="128"; }
            button type="submit" { "Save" }
        }
    }
}

fn launch_form(subject: &Subject, session: &Session, playbooks: &[PlaybookInfo]) -> Markup {
    html! {
        form.stack method="post" action=(format!("{}/launch", subject.path())) {
            (csrf_field(session))
            label { "Playbook"
                select name="playbook" {
                    @for p in playbooks { option value=(p.id) { (p.title) } }
                }
            }
            label { "Also block this IP address (optional)" input name="ip" maxlength="64" inputmode="decimal"; }
            label { "Block for (seconds; empty: until unblocked)" input name="block_seconds" inputmode="numeric" maxlength="10"; }
            div.inline {
                button.secondary type="submit" name="mode" value="dry-run" { "Preview (dry run)" }
                button type="submit" name="mode" value="launch" { "Launch playbook" }
            }
        }
        @if !playbooks.is_empty() {
            details {
                summary { "What each playbook does" }
                dl { @for p in playbooks { dt { (p.title) } dd { (p.description) } } }
            }
        }
    }
}

/// The card of `subject`, with the outcome of a launch or change just made.
pub(super) async fn card(
    console: &Console,
    session: &Session,
    subject: Subject,
    outcome: Option<Markup>,
) -> Response {
    let may_launch = session.person.role.allows(Action::LaunchPlaybooks);
    // A card still shows when the playbooks cannot be listed; only its choice is empty.
    let playbooks = match console.ask(session, "", ListPlaybooksRequest {}) {
        Ok(request) if may_launch => console
            .playbook()
            .list_playbooks(request)
            .await
            .map(|r| r.into_inner().playbooks)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let body = html! {
        (outcome.unwrap_or_else(nothing))
        nav aria-label="Card sections" {
            ul { li { a href="#details" { "Details" } } li { a href="#launch" { "Launch playbook" } } li { a href="#history" { "History" } } }
        }
        section #details aria-label="Details" {
            (subject.facts())
            @match &subject {
                Subject::Alert(alert) => {
                    h2 { "Observables" }
                    (observables_table(&alert.observables))
                    h2 { "Events" }
                    ul {
                        @for id in &alert.event_ids {
                            li { a href=(events_link(id)) { code { (id) } } }
                        }
                    }
                }
                Subject::Incident(incident) => {
                    h2 { "Alerts" }
                    ul { @for id in &incident.alert_ids { li { a href=(format!("/console/alerts/{id}")) { (id) } } } }
                }
            }
            @if session.person.role.allows(Action::ChangeAlerts) {
                h2 { "Status and assignee" }
                (update_form(&subject, session))
            }
        }
        section #launch aria-label="Launch playbook" {
            h2 { "Launch playbook" }
            @if may_launch { (launch_form(&subject, session, &playbooks)) }
            @else { p.muted { "Your role (" (session.person.role.name()) ") may not launch playbooks." } }
        }
        section #history aria-label="History" {
            h2 { "History" }
            (history_table(subject.history()))
        }
    };
    page(Some(session), subject.title(), body)
}

/// The event search for one event, by its id.
fn events_link(id: &str) -> String {
    let sql = format!(
        "SELECT * FROM `events` WHERE Id = '{}'",
        id.replace('\'', "")
    );
    format!(
        "/console/events?sql={}",
        percent_encoding::utf8_percent_encode(&sql, percent_encoding::NON_ALPHANUMERIC)
    )
}

pub(super) async fn get_alert(
    console: &Console,
    session: &Session,
    id: String,
) -> Result<Alert, Response> {
    let message = GetAlertRequest {
        id,
        tenant: String::new(),
    };
    let request = console.ask(session, "Alert", message)?;
    answered(
        session,
        "Alert",
        console.playbook().get_alert(request).await,
    )
}

pub(super) async fn get_incident(
    console: &Console,
    session: &Session,
    id: String,
) -> Result<Incident, Response> {
    let message = GetIncidentRequest {
        id,
        tenant: String::new(),
    };
    let request = console.ask(session, "Incident", message)?;
    answered(
        session,
        "Incident",
        console.playbook().get_incident(request).await,
    )
}

pub async fn alert_card(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let alert = get_alert(&console, &session, id).await?;
    Ok(card(&console, &session, Subject::Alert(alert), None).await)
}

pub async fn incident_card(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    let incident = get_incident(&console, &session, id).await?;
    Ok(card(&console, &session, Subject::Incident(incident), None).await)
}

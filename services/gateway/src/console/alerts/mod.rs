//! Alerts and incidents: the lists with their filters, counts and paging (here), the card of
//! one (`card`), and what a person does from it (`actions`): change the status or assignee,
//! launch a playbook (a dry run previews what UserGate would be sent), find an event's alert.

mod actions;
mod card;

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;
use xdr_proto::pb::{AlertStatus, ListAlertsRequest, ListIncidentsRequest, PageRequest, Severity};

pub use actions::{
    alert_of_event, launch_on_alert, launch_on_incident, update_alert, update_incident,
};
pub use card::{alert_card, incident_card};

use super::{
    Console, Page, Session, answered,
    page::{page, short, time},
};
const PAGE_SIZE: u32 = 50;
/// The longest assignee (a user name).
pub(super) const MAX_ASSIGNEE_CHARS: usize = 128;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// `new`, `in_progress`, `closed`; empty: open ones (new and in progress); `any`.
    #[serde(default)]
    status: String,
    /// `low` … `critical`: at least this severe.
    #[serde(default)]
    severity: String,
    /// Raised within this many hours; 0 or empty: any time.
    #[serde(default)]
    hours: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    page: String,
}

impl ListQuery {
    fn statuses(&self) -> Vec<i32> {
        let one = |s: AlertStatus| vec![s as i32];
        match self.status.as_str() {
            "new" => one(AlertStatus::New),
            "in_progress" => one(AlertStatus::InProgress),
            "closed" => one(AlertStatus::Closed),
            "any" => Vec::new(),
            _ => vec![AlertStatus::New as i32, AlertStatus::InProgress as i32],
        }
    }

    fn min_severity(&self) -> i32 {
        match self.severity.as_str() {
            "low" => Severity::Low as i32,
            "medium" => Severity::Medium as i32,
            "high" => Severity::High as i32,
            "critical" => Severity::Critical as i32,
            _ => Severity::Unspecified as i32,
        }
    }

    fn since_ms(&self) -> i64 {
        match self.hours.parse::<i64>() {
            Ok(hours) if hours > 0 => xdr_mesh::clock::now_ms() - hours.min(24 * 366) * 3_600_000,
            _ => 0,
        }
    }

    fn page(&self) -> Option<PageRequest> {
        Some(PageRequest {
            page_size: PAGE_SIZE,
            page_token: self.page.chars().take(512).collect(),
        })
    }

    /// The query string of the next page.
    fn next(&self, token: &str) -> String {
        let encode = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "?status={}&severity={}&hours={}&assignee={}&page={}",
            encode(&self.status),
            encode(&self.severity),
            encode(&self.hours),
            encode(&self.assignee),
            encode(token)
        )
    }

    fn form(&self, action: &str) -> Markup {
        let option = |value: &str, label: &str, current: &str| {
            html! { option value=(value) selected[value == current] { (label) } }
        };
        html! {
            form.inline method="get" action=(action) role="search" {
                label { "Status"
                    select name="status" {
                        (option("", "open", &self.status))
                        (option("new", "new", &self.status))
                        (option("in_progress", "in progress", &self.status))
                        (option("closed", "closed", &self.status))
                        (option("any", "any", &self.status))
                    }
                }
                label { "Severity at least"
                    select name="severity" {
                        (option("", "any", &self.severity))
                        (option("low", "low", &self.severity))
                        (option("medium", "medium", &self.severity))
                        (option("high", "high", &self.severity))
                        (option("critical", "critical", &self.severity))
                    }
                }
                label { "Raised within"
                    select name="hours" {
                        (option("", "any time", &self.hours))
                        (option("1", "1 hour", &self.hours))
                        (option("24", "24 hours", &self.hours))
                        (option("168", "7 days", &self.hours))
                        (option("720", "30 days", &self.hours))
                    }
                }
                label { "Assignee" input name="assignee" value=(self.assignee) maxlength="128"; }
                button type="submit" { "Filter" }
            }
        }
    }
}

pub(super) fn severity(value: i32) -> String {
    Severity::try_from(value).map_or_else(
        |_| "unknown".to_owned(),
        |s| short(s.as_str_name(), "SEVERITY_"),
    )
}

pub(super) fn status(value: i32) -> String {
    AlertStatus::try_from(value).map_or_else(
        |_| "unknown".to_owned(),
        |s| short(s.as_str_name(), "ALERT_STATUS_"),
    )
}

/// Counts of `severities` by severity, most severe first: `2 high, 1 low`.
fn counts(severities: impl Iterator<Item = i32>) -> String {
    let mut by = [0usize; 5];
    for s in severities {
        by[usize::try_from(s).unwrap_or(0).min(4)] += 1;
    }
    (1..=4)
        .rev()
        .filter(|&s| by[s] > 0)
        .map(|s| format!("{} {}", by[s], severity(s as i32)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn list_alerts(
    State(console): State<Arc<Console>>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Page {
    let request = ListAlertsRequest {
        page: query.page(),
        statuses: query.statuses(),
        min_severity: query.min_severity(),
        since_ms: query.since_ms(),
        assignee: query.assignee.chars().take(MAX_ASSIGNEE_CHARS).collect(),
        ..Default::default()
    };
    let request = console.ask(&session, "Alerts", request)?;
    let reply = answered(
        &session,
        "Alerts",
        console.playbook().list_alerts(request).await,
    )?;
    let next = reply.page.map(|p| p.next_page_token).unwrap_or_default();
    let body = html! {
        (query.form("/console/alerts"))
        p.muted role="status" {
            (reply.alerts.len()) " alerts on this page"
            @if !reply.alerts.is_empty() { " (" (counts(reply.alerts.iter().map(|a| a.severity))) ")" }
            @if !next.is_empty() { "; more on the next page" }
        }
        div.box {
            table {
                thead { tr { th scope="col" { "Alert" } th scope="col" { "Severity" } th scope="col" { "Status" }
                             th scope="col" { "Assignee" } th scope="col" { "Events" } th scope="col" { "Last event" } } }
                tbody {
                    @for alert in &reply.alerts {
                        tr {
                            td { a href=(format!("/console/alerts/{}", alert.id)) { (alert.title) } }
                            td { (severity(alert.severity)) }
                            td { (status(alert.status)) }
                            td { (if alert.assignee.is_empty() { "—" } else { &alert.assignee }) }
                            td { (alert.event_count) }
                            td { (time(alert.last_event_at_ms)) }
                        }
                    }
                }
            }
        }
        @if !next.is_empty() { p { a href=(format!("/console/alerts{}", query.next(&next))) { "Next page" } } }
    };
    Ok(page(Some(&session), "Alerts", body))
}

pub async fn list_incidents(
    State(console): State<Arc<Console>>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Page {
    let request = ListIncidentsRequest {
        page: query.page(),
        statuses: query.statuses(),
        min_severity: query.min_severity(),
        since_ms: query.since_ms(),
        assignee: query.assignee.chars().take(MAX_ASSIGNEE_CHARS).collect(),
        ..Default::default()
    };
    let request = console.ask(&session, "Incidents", request)?;
    let reply = answered(
        &session,
        "Incidents",
        console.playbook().list_incidents(request).await,
    )?;
    let next = reply.page.map(|p| p.next_page_token).unwrap_or_default();
    let body = html! {
        (query.form("/console/incidents"))
        p.muted role="status" { (reply.incidents.len()) " incidents on this page" }
        div.box {
            table {
                thead { tr { th scope="col" { "Incident" } th scope="col" { "Severity" } th scope="col" { "Status" }
                             th scope="col" { "Assignee" } th scope="col" { "Alerts" } th scope="col" { "Opened" } } }
                tbody {
                    @for incident in &reply.incidents {
                        tr {
                            td { a href=(format!("/console/incidents/{}", incident.id)) { (incident.title) } }
                            td { (severity(incident.severity)) }
                            td { (status(incident.status)) }
                            td { (if incident.assignee.is_empty() { "—" } else { &incident.assignee }) }
                            td { (incident.alert_ids.len()) }
                            td { (time(incident.created_at_ms)) }
                        }
                    }
                }
            }
        }
        @if !next.is_empty() { p { a href=(format!("/console/incidents{}", query.next(&next))) { "Next page" } } }
    };
    Ok(page(Some(&session), "Incidents", body))
}

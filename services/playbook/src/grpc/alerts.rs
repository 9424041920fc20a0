//! Alert and incident requests: checked, authorized, and handed to the store.

use std::sync::Arc;
use tracing::Instrument;

use tonic::{Request, Status};
use xdr_mesh::{
    caller::{Action, Caller},
    error::ServiceError,
    error::invalid,
};
use xdr_proto::pb::{
    Alert, AlertStatus, CreateAlertRequest, CreateIncidentRequest, Incident, ListAlertsReply,
    ListAlertsRequest, ListIncidentsReply, ListIncidentsRequest, Observable, RaiseAlertsReply,
    RaiseAlertsRequest, Severity, UpdateAlertRequest, UpdateIncidentRequest,
};

use super::{authorized, blocking};
use crate::alerts::{AlertFilter, AlertStore, IncidentChange};

/// Observables an analyst may name in one request.
pub const MAX_NAMED_OBSERVABLES: usize = 100;
const MAX_TITLE_CHARS: usize = 512;
const MAX_ASSIGNEE_CHARS: usize = 128;

pub async fn raise(
    store: &Arc<AlertStore>,
    request: Request<RaiseAlertsRequest>,
) -> Result<RaiseAlertsReply, Status> {
    let caller = Caller::of(&request)?.clone();
    let events = request.into_inner().events;
    // A collector acts for the tenants of the events it carries; a person may not raise.
    if caller.person.is_some() {
        return Err(Status::permission_denied(
            "alerts are raised by collectors from events, not by people: use CreateAlert",
        ));
    }
    let span = xdr_mesh::trace::batch(
        tracing::info_span!("raise", otel.name = "playbook.raise", events = events.len()),
        events.first().map_or("", |e| e.traceparent.as_str()),
        events.iter().map(|e| e.traceparent.as_str()),
    );
    let store = store.clone();
    blocking(move || store.raise(&events))
        .instrument(span)
        .await
}

pub async fn create(
    store: &Arc<AlertStore>,
    request: Request<CreateAlertRequest>,
) -> Result<Alert, Status> {
    let (tenant, _) = authorized(&request, Action::ChangeAlerts, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let title_chars = request.title.chars().count();
    if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
        return Err(invalid("title", "1 to 512 characters").to_status());
    }
    let severity = Severity::try_from(request.severity)
        .ok()
        .filter(|s| *s != Severity::Unspecified)
        .ok_or_else(|| invalid("severity", "one of LOW, MEDIUM, HIGH, CRITICAL").to_status())?;
    let observables = checked_observables(request.observables, "observables")?;
    let store = store.clone();
    blocking(move || store.create(&tenant, request.title, severity, observables)).await
}

pub async fn list(
    store: &Arc<AlertStore>,
    request: Request<ListAlertsRequest>,
) -> Result<ListAlertsReply, Status> {
    let (tenant, _) = authorized(&request, Action::Read, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let filter = filter_of(
        request.statuses,
        request.min_severity,
        request.since_ms,
        request.until_ms,
        request.assignee,
    )?;
    let store = store.clone();
    let page = request.page;
    let (alerts, page) = blocking(move || store.list(&tenant, &filter, page.as_ref())).await?;
    Ok(ListAlertsReply {
        alerts,
        page: Some(page),
    })
}

pub async fn list_incidents(
    store: &Arc<AlertStore>,
    request: Request<ListIncidentsRequest>,
) -> Result<ListIncidentsReply, Status> {
    let (tenant, _) = authorized(&request, Action::Read, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let filter = filter_of(
        request.statuses,
        request.min_severity,
        request.since_ms,
        request.until_ms,
        request.assignee,
    )?;
    let store = store.clone();
    let page = request.page;
    let (incidents, page) =
        blocking(move || store.list_incidents(&tenant, &filter, page.as_ref())).await?;
    Ok(ListIncidentsReply {
        incidents,
        page: Some(page),
    })
}

/// A listing's filter, its statuses checked.
fn filter_of(
    statuses: Vec<i32>,
    min_severity: i32,
    since_ms: i64,
    until_ms: i64,
    assignee: String,
) -> Result<AlertFilter, Status> {
    for (i, status) in statuses.iter().enumerate() {
        if AlertStatus::try_from(*status).is_err() {
            return Err(invalid(format!("statuses[{i}]"), "not an alert status").to_status());
        }
    }
    Ok(AlertFilter {
        statuses,
        min_severity,
        since_ms,
        until_ms,
        assignee,
    })
}

pub async fn update(
    store: &Arc<AlertStore>,
    request: Request<UpdateAlertRequest>,
) -> Result<Alert, Status> {
    let (tenant, by) = authorized(&request, Action::ChangeAlerts, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let status = status_change(request.status)?;
    let assignee = assignee_change(request.assignee)?;
    let store = store.clone();
    blocking(move || store.update(&tenant, &request.id, status, assignee, &by)).await
}

pub async fn create_incident(
    store: &Arc<AlertStore>,
    request: Request<CreateIncidentRequest>,
) -> Result<Incident, Status> {
    let (tenant, by) = authorized(&request, Action::ChangeAlerts, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let title_chars = request.title.chars().count();
    if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
        return Err(invalid("title", "1 to 512 characters").to_status());
    }
    let store = store.clone();
    blocking(move || store.create_incident(&tenant, request.title, &request.alert_ids, &by)).await
}

pub async fn update_incident(
    store: &Arc<AlertStore>,
    request: Request<UpdateIncidentRequest>,
) -> Result<Incident, Status> {
    let (tenant, by) = authorized(&request, Action::ChangeAlerts, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let change = IncidentChange {
        status: status_change(request.status)?,
        assignee: assignee_change(request.assignee)?,
        add_alert_ids: request.add_alert_ids,
    };
    let store = store.clone();
    blocking(move || store.update_incident(&tenant, &request.id, change, &by)).await
}

fn status_change(status: i32) -> Result<Option<AlertStatus>, Status> {
    match AlertStatus::try_from(status) {
        Ok(AlertStatus::Unspecified) => Ok(None),
        Ok(status) => Ok(Some(status)),
        Err(_) => Err(invalid("status", "not an alert status").to_status()),
    }
}

fn assignee_change(assignee: Option<String>) -> Result<Option<String>, Status> {
    match assignee {
        Some(a) if a.chars().count() > MAX_ASSIGNEE_CHARS || a.chars().any(char::is_control) => {
            Err(invalid("assignee", "at most 128 characters, no control characters").to_status())
        }
        other => Ok(other),
    }
}

/// Observables an analyst names: a known type, a value of sensible size, not too many.
pub fn checked_observables(
    observables: Vec<Observable>,
    field: &str,
) -> Result<Vec<Observable>, Status> {
    if observables.len() > MAX_NAMED_OBSERVABLES {
        return Err(invalid(field, format!("at most {MAX_NAMED_OBSERVABLES}")).to_status());
    }
    for (i, observable) in observables.iter().enumerate() {
        let known = matches!(observable.r#type, 1..=4);
        if !known {
            return Err(
                invalid(format!("{field}[{i}].type"), "IP, URL, DOMAIN or HASH").to_status(),
            );
        }
        if observable.value.is_empty()
            || observable.value.len() > 2048
            || observable.value.chars().any(char::is_control)
        {
            return Err(invalid(
                format!("{field}[{i}].value"),
                "1 to 2048 bytes, no control characters",
            )
            .to_status());
        }
    }
    Ok(observables)
}

//! What analysts and administrators look up: threat intel (look a value up, add it to
//! Internal TI or FalsePositive), collectors, and secrets (names and types, never a
//! password).

use std::sync::Arc;

use axum::{
    Form,
    extract::{Query, State},
};
use maud::{Markup, html};
use serde::Deserialize;
use xdr_mesh::caller::Action;
use xdr_proto::pb::{
    AddIndicatorsRequest, Indicator, IndicatorType, ListCollectorsRequest, ListRequest,
    ListSecretsRequest, LookupObject, LookupRequest, PageRequest, SecretType,
};

use super::{
    Console, Page, Session, answered, failed, forbidden_form,
    page::{csrf_field, notice, page, short, time},
    refused,
};
use crate::problem::Problem;

/// Rows a list shows (the services page larger lists).
const LIST_SIZE: u32 = 200;
const MAX_VALUE_CHARS: usize = 2048;

/// The first page of a listing in the person's tenant.
pub(super) fn list_request() -> ListRequest {
    ListRequest {
        tenant: String::new(),
        page: Some(PageRequest {
            page_size: LIST_SIZE,
            page_token: String::new(),
        }),
    }
}

#[derive(Deserialize, Default)]
pub struct LookupQuery {
    #[serde(default)]
    value: String,
}

fn lookup_form(value: &str) -> Markup {
    html! {
        form.inline method="get" action="/console/threatintel" role="search" {
            label { "Value (IP, URL, domain or hash)" input name="value" value=(value) maxlength="2048" required; }
            button type="submit" { "Look up" }
        }
    }
}

fn add_form(session: &Session, value: &str) -> Markup {
    html! {
        h2 { "Add to Internal TI or FalsePositive" }
        form.stack method="post" action="/console/threatintel" {
            (csrf_field(session))
            label { "Value" input name="value" value=(value) maxlength="2048" required; }
            label { "List"
                select name="supplier" {
                    option value="InternalTI" { "Internal TI (a known threat)" }
                    option value="FalsePositive" { "FalsePositive (never a threat)" }
                }
            }
            label { "Category" input name="category" placeholder="KL_InternalTI_URL" maxlength="128"; }
            button type="submit" { "Add" }
        }
    }
}

pub async fn threatintel(
    State(console): State<Arc<Console>>,
    session: Session,
    Query(query): Query<LookupQuery>,
) -> Page {
    let title = "Threat intel";
    let value = query.value.trim().to_owned();
    let may_add = session.person.role.allows(Action::ChangeInternalTi);
    if value.is_empty() {
        let body = html! { (lookup_form("")) @if may_add { (add_form(&session, "")) } };
        return Ok(page(Some(&session), title, body));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(refused(
            &session,
            title,
            Problem::bad_request("value: too long"),
        ));
    }
    let request = LookupRequest {
        objects: vec![LookupObject {
            r#type: IndicatorType::Unspecified as i32,
            value: value.clone(),
        }],
    };
    let request = console.ask(&session, title, request)?;
    let looked = console.threatintel().lookup(request).await;
    let (matches, error) = match looked {
        Ok(reply) => (
            reply
                .into_inner()
                .results
                .into_iter()
                .next()
                .map(|r| r.matches)
                .unwrap_or_default(),
            None,
        ),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            (Vec::new(), Some(status.message().to_owned()))
        }
        Err(status) => return Err(failed(&session, title, &status)),
    };
    let body = html! {
        (lookup_form(&value))
        @if let Some(error) = &error { (notice("error", error)) }
        @else if matches.is_empty() { (notice("ok", "No indicator matches this value.")) }
        @else {
            div.box {
                table {
                    thead { tr { th scope="col" { "Category" } th scope="col" { "Matched indicator" } th scope="col" { "Supplier" } th scope="col" { "Type" } } }
                    tbody {
                        @for m in &matches {
                            tr { td { (m.category) } td { code { (m.matched_indicator) } } td { (m.supplier) }
                                 td { (short(m.indicator_type().as_str_name(), "INDICATOR_TYPE_")) } }
                        }
                    }
                }
            }
        }
        @if may_add { (add_form(&session, &value)) }
    };
    Ok(page(Some(&session), title, body))
}

#[derive(Deserialize, Default)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    supplier: String,
    #[serde(default)]
    category: String,
}

pub async fn add_indicator(
    State(console): State<Arc<Console>>,
    session: Session,
    Form(form): Form<AddForm>,
) -> Page {
    let title = "Threat intel";
    if !session.checks(&form.csrf) {
        return Err(forbidden_form(&session));
    }
    if !matches!(form.supplier.as_str(), "InternalTI" | "FalsePositive") {
        return Err(refused(
            &session,
            title,
            Problem::bad_request("list: Internal TI or FalsePositive"),
        ));
    }
    let value = form.value.trim().to_owned();
    if value.is_empty() || value.chars().count() > MAX_VALUE_CHARS || form.category.len() > 128 {
        return Err(refused(
            &session,
            title,
            Problem::bad_request("value: 1 to 2048 characters; category: at most 128"),
        ));
    }
    let request = AddIndicatorsRequest {
        indicators: vec![Indicator {
            value: value.clone(),
            category: form.category.trim().to_owned(),
            supplier: form.supplier.clone(),
            ..Default::default()
        }],
    };
    let request = console.ask(&session, title, request)?;
    answered(
        &session,
        title,
        console.threatintel().add_indicators(request).await,
    )?;
    let said = format!("{value} added to {}.", form.supplier);
    let body = html! { (notice("ok", &said)) (lookup_form(&value)) (add_form(&session, "")) };
    Ok(page(Some(&session), title, body))
}

pub async fn collectors(State(console): State<Arc<Console>>, session: Session) -> Page {
    let title = "Collectors";
    let request = ListCollectorsRequest {
        tenant: String::new(),
        page: list_request().page,
    };
    let request = console.ask(&session, title, request)?;
    let collectors = answered(
        &session,
        title,
        console.collector().list_collectors(request).await,
    )?
    .collectors;
    let body = html! {
        div.box {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Tenant" } th scope="col" { "Input" }
                             th scope="col" { "Linked rules" } th scope="col" { "Destinations" } th scope="col" { "Description" } } }
                tbody {
                    @for c in &collectors {
                        tr {
                            td { (c.name) }
                            td { (c.tenant) }
                            td { (short(c.transport().as_str_name(), "TRANSPORT_"))
                                 @if c.transport() == xdr_proto::pb::Transport::Http { " " code { (format!("/collectors/{}/input", c.id)) } } }
                            td { (c.rule_ids.len()) }
                            td { (c.destinations.iter().map(|d| short(d.kind().as_str_name(), "DESTINATION_KIND_")).collect::<Vec<_>>().join(", ")) }
                            td { (c.description) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(Some(&session), title, body))
}

pub async fn secrets(State(console): State<Arc<Console>>, session: Session) -> Page {
    let title = "Secrets";
    let request = ListSecretsRequest {
        tenant: String::new(),
        page: list_request().page,
    };
    let request = console.ask(&session, title, request)?;
    let secrets = answered(
        &session,
        title,
        console.playbook().list_secrets(request).await,
    )?
    .secrets;
    let body = html! {
        p.muted { "Names and types only: passwords never leave the playbook service." }
        div.box {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Tenant" } th scope="col" { "Changed" } } }
                tbody {
                    @for s in &secrets {
                        tr {
                            td { (s.name) }
                            td { (SecretType::try_from(s.r#type).map_or_else(|_| "unknown".to_owned(), |t| short(t.as_str_name(), "SECRET_TYPE_"))) }
                            td { (s.tenant) }
                            td { (time(s.updated_at_ms)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(Some(&session), title, body))
}

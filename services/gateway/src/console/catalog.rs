//! What analysts and administrators look up and set: enrichment rules (viewed, and edited
//! with each validation error at its field) and saved filters, threat intel (look a value
//! up, add it to Internal TI or FalsePositive), collectors, and secrets (names and types,
//! never a password).

use std::sync::Arc;

use axum::{
    Form,
    extract::{Path, Query, State},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use xdr_mesh::caller::Action;
use xdr_proto::pb::{
    AddIndicatorsRequest, EnrichmentRule, GetRequest, Indicator, IndicatorType,
    ListCollectorsRequest, ListRequest, ListSecretsRequest, LookupObject, LookupRequest,
    PageRequest, SecretType,
};

use super::{
    Console, Session, failed, forbidden_form,
    page::{csrf_field, notice, page, page_with, short, time},
    refused,
};
use crate::problem::Problem;

/// Rows a list shows (the services page larger lists).
const LIST_SIZE: u32 = 200;
const MAX_VALUE_CHARS: usize = 2048;

fn list_request() -> ListRequest {
    ListRequest {
        tenant: String::new(),
        page: Some(PageRequest {
            page_size: LIST_SIZE,
            page_token: String::new(),
        }),
    }
}

pub async fn enrichment(State(console): State<Arc<Console>>, session: Session) -> Response {
    let title = "Enrichment";
    let rules = match console.request(&session, list_request()) {
        Ok(request) => console.enrichment().list_rules(request).await,
        Err(problem) => return refused(&session, title, problem),
    };
    let rules = match rules {
        Ok(reply) => reply.into_inner().rules,
        Err(status) => return failed(&session, title, &status),
    };
    let filters = match console.request(&session, list_request()) {
        Ok(request) => console.enrichment().list_filters(request).await,
        Err(problem) => return refused(&session, title, problem),
    };
    let filters = match filters {
        Ok(reply) => reply.into_inner().filters,
        Err(status) => return failed(&session, title, &status),
    };
    let body = html! {
        h2 { "Enrichment rules" }
        div.box {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Tenant" } th scope="col" { "Source" }
                             th scope="col" { "RPS" } th scope="col" { "Timeout" } th scope="col" { "Looks up" } } }
                tbody {
                    @for rule in &rules {
                        tr {
                            td { a href=(format!("/console/enrichment/rules/{}", rule.id)) { (rule.name) } }
                            td { (rule.tenant) }
                            td { (short(rule.source_kind().as_str_name(), "SOURCE_KIND_")) }
                            td { (rule.rps) }
                            td { (rule.timeout_seconds) " s" }
                            td { (mapping(rule)) }
                        }
                    }
                }
            }
        }
        h2 { "Saved filters" }
        div.box {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Tenant" } th scope="col" { "Description" } } }
                tbody {
                    @for filter in &filters {
                        tr { td { (filter.name) } td { (filter.tenant) } td { (filter.description) } }
                    }
                }
            }
        }
    };
    page(Some(&session), title, body)
}

fn mapping(rule: &EnrichmentRule) -> String {
    (rule.mapping.iter())
        .map(|m| {
            format!(
                "{} as {}",
                m.field,
                short(m.indicator_type().as_str_name(), "INDICATOR_TYPE_")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rule's fields a form changes, and the error the service gave for each.
#[derive(Deserialize, Default)]
pub struct RuleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rps: String,
    #[serde(default)]
    timeout_seconds: String,
    #[serde(default)]
    connections: String,
    #[serde(default)]
    debug: Option<String>,
}

const RULE_FIELDS: [&str; 5] = [
    "name",
    "description",
    "rps",
    "timeout_seconds",
    "connections",
];

/// A service's `field: reason` message, split when it names a field of the form.
fn field_error(message: &str) -> Option<(&'static str, &str)> {
    let (field, reason) = message.split_once(": ")?;
    let field = field.trim();
    RULE_FIELDS
        .iter()
        .find(|f| **f == field)
        .map(|f| (*f, reason))
}

fn rule_view(
    session: &Session,
    rule: &EnrichmentRule,
    form: Option<&RuleForm>,
    error: Option<&str>,
) -> Markup {
    let may_edit = session.person.role.allows(Action::Configure);
    let at = error.and_then(field_error);
    let field = |name: &'static str, label: &str, value: String, kind: &str| {
        let error = at.filter(|(f, _)| *f == name).map(|(_, reason)| reason);
        let id = format!("rule-{name}");
        html! {
            label for=(id) {
                (label)
                input #(id) name=(name) type=(kind) value=(value) aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[error.map(|_| format!("{id}-error"))];
                @if let Some(error) = error { span.field-error id=(format!("{id}-error")) { (error) } }
            }
        }
    };
    let text = |name: &str, current: String| {
        form.map(|f| match name {
            "name" => f.name.clone(),
            "description" => f.description.clone(),
            "rps" => f.rps.clone(),
            "timeout_seconds" => f.timeout_seconds.clone(),
            _ => f.connections.clone(),
        })
        .unwrap_or(current)
    };
    html! {
        @if let Some(error) = error.filter(|_| at.is_none()) { (notice("error", error)) }
        dl {
            dt { "Tenant" } dd { (rule.tenant) }
            dt { "Source" } dd { (short(rule.source_kind().as_str_name(), "SOURCE_KIND_")) " " (rule.server_url) }
            dt { "Looks up" } dd { (mapping(rule)) }
            dt { "Debug" } dd { (if rule.debug { "on" } else { "off" }) }
        }
        @if may_edit {
            h2 { "Edit" }
            form.stack method="post" action=(format!("/console/enrichment/rules/{}", rule.id)) novalidate {
                (csrf_field(session))
                (field("name", "Name", text("name", rule.name.clone()), "text"))
                (field("description", "Description", text("description", rule.description.clone()), "text"))
                (field("rps", "Lookups a second (RPS)", text("rps", rule.rps.to_string()), "text"))
                (field("timeout_seconds", "Timeout (seconds)", text("timeout_seconds", rule.timeout_seconds.to_string()), "text"))
                (field("connections", "Connections", text("connections", rule.connections.to_string()), "text"))
                label { input name="debug" type="checkbox" value="on" checked[form.map_or(rule.debug, |f| f.debug.is_some())]; "Debug (log each lookup)" }
                button type="submit" { "Save rule" }
            }
        } @else {
            dl {
                dt { "Name" } dd { (rule.name) }
                dt { "Description" } dd { (rule.description) }
                dt { "RPS" } dd { (rule.rps) }
                dt { "Timeout" } dd { (rule.timeout_seconds) " s" }
            }
        }
    }
}

async fn get_rule(
    console: &Console,
    session: &Session,
    id: String,
) -> Result<EnrichmentRule, Response> {
    let request = GetRequest {
        id,
        tenant: String::new(),
    };
    let got = match console.request(session, request) {
        Ok(request) => console.enrichment().get_rule(request).await,
        Err(problem) => return Err(refused(session, "Enrichment rule", problem)),
    };
    got.map(|r| r.into_inner())
        .map_err(|status| failed(session, "Enrichment rule", &status))
}

pub async fn rule(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    match get_rule(&console, &session, id).await {
        Ok(rule) => page(
            Some(&session),
            &rule.name.clone(),
            rule_view(&session, &rule, None, None),
        ),
        Err(page) => page,
    }
}

/// A number field: the field named in the error when it is not one.
fn number(field: &str, text: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{field}: a whole number"))
}

pub async fn save_rule(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<RuleForm>,
) -> Response {
    if !session.checks(&form.csrf) {
        return forbidden_form(&session);
    }
    let mut rule = match get_rule(&console, &session, id).await {
        Ok(rule) => rule,
        Err(page) => return page,
    };
    let shown = rule.clone();
    let invalid = |message: String| {
        page_with(
            axum::http::StatusCode::BAD_REQUEST,
            Some(&session),
            &shown.name,
            rule_view(&session, &shown, Some(&form), Some(&message)),
        )
    };
    if form.name.len() > MAX_VALUE_CHARS || form.description.len() > 16 * 1024 {
        return invalid("a field is too long".to_owned());
    }
    rule.name = form.name.trim().to_owned();
    rule.description = form.description.clone();
    rule.debug = form.debug.is_some();
    match (
        number("rps", &form.rps),
        number("timeout_seconds", &form.timeout_seconds),
        number("connections", &form.connections),
    ) {
        (Ok(rps), Ok(timeout), Ok(connections)) => {
            rule.rps = rps;
            rule.timeout_seconds = timeout;
            rule.connections = connections;
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return invalid(e),
    }
    let saved = match console.request(&session, rule) {
        Ok(request) => console.enrichment().update_rule(request).await,
        Err(problem) => return refused(&session, "Enrichment rule", problem),
    };
    match saved {
        Ok(rule) => {
            let rule = rule.into_inner();
            let body = html! { (notice("ok", "Saved.")) (rule_view(&session, &rule, None, None)) };
            page(Some(&session), &rule.name.clone(), body)
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            invalid(status.message().to_owned())
        }
        Err(status) => failed(&session, "Enrichment rule", &status),
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
) -> Response {
    let title = "Threat intel";
    let value = query.value.trim().to_owned();
    let may_add = session.person.role.allows(Action::ChangeInternalTi);
    if value.is_empty() {
        let body = html! { (lookup_form("")) @if may_add { (add_form(&session, "")) } };
        return page(Some(&session), title, body);
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return refused(&session, title, Problem::bad_request("value: too long"));
    }
    let request = LookupRequest {
        objects: vec![LookupObject {
            r#type: IndicatorType::Unspecified as i32,
            value: value.clone(),
        }],
    };
    let looked = match console.request(&session, request) {
        Ok(request) => console.threatintel().lookup(request).await,
        Err(problem) => return refused(&session, title, problem),
    };
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
        Err(status) => return failed(&session, title, &status),
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
    page(Some(&session), title, body)
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
) -> Response {
    let title = "Threat intel";
    if !session.checks(&form.csrf) {
        return forbidden_form(&session);
    }
    if !matches!(form.supplier.as_str(), "InternalTI" | "FalsePositive") {
        return refused(
            &session,
            title,
            Problem::bad_request("list: Internal TI or FalsePositive"),
        );
    }
    let value = form.value.trim().to_owned();
    if value.is_empty() || value.chars().count() > MAX_VALUE_CHARS || form.category.len() > 128 {
        return refused(
            &session,
            title,
            Problem::bad_request("value: 1 to 2048 characters; category: at most 128"),
        );
    }
    let request = AddIndicatorsRequest {
        indicators: vec![Indicator {
            value: value.clone(),
            category: form.category.trim().to_owned(),
            supplier: form.supplier.clone(),
            ..Default::default()
        }],
    };
    let added = match console.request(&session, request) {
        Ok(request) => console.threatintel().add_indicators(request).await,
        Err(problem) => return refused(&session, title, problem),
    };
    match added {
        Ok(_) => {
            let said = format!("{value} added to {}.", form.supplier);
            let body =
                html! { (notice("ok", &said)) (lookup_form(&value)) (add_form(&session, "")) };
            page(Some(&session), title, body)
        }
        Err(status) => failed(&session, title, &status),
    }
}

pub async fn collectors(State(console): State<Arc<Console>>, session: Session) -> Response {
    let title = "Collectors";
    let request = ListCollectorsRequest {
        tenant: String::new(),
        page: list_request().page,
    };
    let listed = match console.request(&session, request) {
        Ok(request) => console.collector().list_collectors(request).await,
        Err(problem) => return refused(&session, title, problem),
    };
    let collectors = match listed {
        Ok(reply) => reply.into_inner().collectors,
        Err(status) => return failed(&session, title, &status),
    };
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
    page(Some(&session), title, body)
}

pub async fn secrets(State(console): State<Arc<Console>>, session: Session) -> Response {
    let title = "Secrets";
    let request = ListSecretsRequest {
        tenant: String::new(),
        page: list_request().page,
    };
    let listed = match console.request(&session, request) {
        Ok(request) => console.playbook().list_secrets(request).await,
        Err(problem) => return refused(&session, title, problem),
    };
    let secrets = match listed {
        Ok(reply) => reply.into_inner().secrets,
        Err(status) => return failed(&session, title, &status),
    };
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
    page(Some(&session), title, body)
}

//! Enrichment as KUMA's Resources show it: the rules and saved filters of the person's
//! tenant (and `Shared`), each viewed, and edited by those whose role may — a rule's fields in
//! a form with each validation error at its field, a filter's tree as its JSON (the proto3
//! mapping every other client uses), refused with the service's message naming the node.

use std::sync::Arc;

use axum::{
    Form,
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use xdr_mesh::caller::{Action, SHARED_TENANT};
use xdr_proto::pb::{EnrichmentRule, Filter, FilterNode, GetRequest, ListRequest};

use super::{
    Console, Page, Session, answered,
    catalog::list_request,
    failed, forbidden_form,
    page::{csrf_field, notice, page, page_with, short},
};

const MAX_VALUE_CHARS: usize = 2048;
/// The longest filter tree taken as JSON.
const MAX_FILTER_JSON_BYTES: usize = 256 * 1024;

/// Whose a rule or filter is: the person's tenant when empty, or `Shared`.
#[derive(Deserialize, Default)]
pub struct Owner {
    #[serde(default)]
    tenant: String,
}

fn owned_path(kind: &str, id: &str, tenant: &str) -> String {
    let encode = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "/console/enrichment/{kind}/{}?tenant={}",
        encode(id),
        encode(tenant)
    )
}

fn rule_path(rule: &EnrichmentRule) -> String {
    owned_path("rules", &rule.id, &rule.tenant)
}

fn filter_path(filter: &Filter) -> String {
    owned_path("filters", &filter.id, &filter.tenant)
}

/// The tenants whose resources a person sees: their own, and `Shared`.
fn tenants(session: &Session) -> Vec<String> {
    let mut tenants = vec![String::new()];
    if session.person.tenant != SHARED_TENANT {
        tenants.push(SHARED_TENANT.to_owned());
    }
    tenants
}

pub async fn enrichment(State(console): State<Arc<Console>>, session: Session) -> Page {
    let title = "Enrichment";
    let (mut rules, mut filters) = (Vec::new(), Vec::new());
    for tenant in tenants(&session) {
        let listing = ListRequest {
            tenant,
            ..list_request()
        };
        let request = console.ask(&session, title, listing.clone())?;
        let listed = console.enrichment().list_rules(request).await;
        match listed {
            Ok(reply) => rules.extend(reply.into_inner().rules),
            Err(status) => return Err(failed(&session, title, &status)),
        }
        let request = console.ask(&session, title, listing)?;
        let listed = console.enrichment().list_filters(request).await;
        match listed {
            Ok(reply) => filters.extend(reply.into_inner().filters),
            Err(status) => return Err(failed(&session, title, &status)),
        }
    }
    let body = html! {
        h2 { "Enrichment rules" }
        div.box {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Tenant" } th scope="col" { "Source" }
                             th scope="col" { "RPS" } th scope="col" { "Timeout" } th scope="col" { "Looks up" } } }
                tbody {
                    @for rule in &rules {
                        tr {
                            td { a href=(rule_path(rule)) { (rule.name) } }
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
                        tr {
                            td { a href=(filter_path(filter)) { (filter.name) } }
                            td { (filter.tenant) } td { (filter.description) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(Some(&session), title, body))
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
            form.stack method="post" action=(rule_path(rule)) novalidate {
                (csrf_field(session))
                (field("name", "Name", text("name", rule.name.clone()), "text"))
                (field("description", "Description", text("description", rule.description.clone()), "text"))
                (field("rps", "Lookups a second (RPS)", text("rps", rule.rps.to_string()), "text"))
                (field("timeout_seconds", "Timeout (seconds)", text("timeout_seconds", rule.timeout_seconds.to_string()), "text"))
                (field("connections", "Connections", text("connections", rule.connections.to_string()), "text"))
                label.check { input name="debug" type="checkbox" value="on" checked[form.map_or(rule.debug, |f| f.debug.is_some())]; "Debug (log each lookup)" }
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
    owner: Owner,
) -> Result<EnrichmentRule, Response> {
    let request = GetRequest {
        id,
        tenant: owner.tenant,
    };
    let request = console.ask(session, "Enrichment rule", request)?;
    answered(
        session,
        "Enrichment rule",
        console.enrichment().get_rule(request).await,
    )
}

pub async fn rule(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Query(owner): Query<Owner>,
) -> Page {
    let rule = get_rule(&console, &session, id, owner).await?;
    let view = rule_view(&session, &rule, None, None);
    Ok(page(Some(&session), &rule.name, view))
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
    Query(owner): Query<Owner>,
    Form(form): Form<RuleForm>,
) -> Page {
    if !session.checks(&form.csrf) {
        return Err(forbidden_form(&session));
    }
    let mut rule = get_rule(&console, &session, id, owner).await?;
    let shown = rule.clone();
    let invalid = |message: String| {
        page_with(
            StatusCode::BAD_REQUEST,
            Some(&session),
            &shown.name,
            rule_view(&session, &shown, Some(&form), Some(&message)),
        )
    };
    if form.name.len() > MAX_VALUE_CHARS || form.description.len() > 16 * 1024 {
        return Err(invalid("a field is too long".to_owned()));
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
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(invalid(e)),
    }
    let request = console.ask(&session, "Enrichment rule", rule)?;
    match console.enrichment().update_rule(request).await {
        Ok(rule) => {
            let rule = rule.into_inner();
            let body = html! { (notice("ok", "Saved.")) (rule_view(&session, &rule, None, None)) };
            Ok(page(Some(&session), &rule.name, body))
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            Err(invalid(status.message().to_owned()))
        }
        Err(status) => Err(failed(&session, "Enrichment rule", &status)),
    }
}

/// A filter's tree as indented JSON (empty when it has none).
fn tree_json(root: Option<&FilterNode>) -> String {
    root.and_then(|root| xdr_proto::json::to_json("xdr.v1.FilterNode", root).ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_default()
}

fn filter_view(
    session: &Session,
    filter: &Filter,
    text: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let may_edit = session.person.role.allows(Action::Configure);
    let tree = text.map_or_else(|| tree_json(filter.root.as_ref()), str::to_owned);
    html! {
        dl {
            dt { "Tenant" } dd { (filter.tenant) }
            dt { "Description" } dd { (filter.description) }
        }
        @if may_edit {
            h2 { "Edit" }
            form.stack method="post" action=(filter_path(filter)) {
                (csrf_field(session))
                label for="filter-root" {
                    "Conditions (JSON: a condition, or a group of AND / OR / NOT)"
                    textarea #filter-root name="root" rows="16" aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| "filter-root-error")] { (tree) }
                    @if let Some(error) = error { span.field-error #filter-root-error { (error) } }
                }
                button type="submit" { "Save filter" }
            }
        } @else {
            div.box { pre { code { (tree) } } }
        }
    }
}

async fn get_filter(
    console: &Console,
    session: &Session,
    id: String,
    owner: Owner,
) -> Result<Filter, Response> {
    let request = GetRequest {
        id,
        tenant: owner.tenant,
    };
    let request = console.ask(session, "Filter", request)?;
    answered(
        session,
        "Filter",
        console.enrichment().get_filter(request).await,
    )
}

pub async fn filter(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Query(owner): Query<Owner>,
) -> Page {
    let filter = get_filter(&console, &session, id, owner).await?;
    let view = filter_view(&session, &filter, None, None);
    Ok(page(Some(&session), &filter.name, view))
}

#[derive(Deserialize, Default)]
pub struct FilterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    root: String,
}

pub async fn save_filter(
    State(console): State<Arc<Console>>,
    session: Session,
    Path(id): Path<String>,
    Query(owner): Query<Owner>,
    Form(form): Form<FilterForm>,
) -> Page {
    if !session.checks(&form.csrf) {
        return Err(forbidden_form(&session));
    }
    let mut filter = get_filter(&console, &session, id, owner).await?;
    let invalid = |filter: &Filter, message: &str| {
        page_with(
            StatusCode::BAD_REQUEST,
            Some(&session),
            &filter.name,
            filter_view(&session, filter, Some(&form.root), Some(message)),
        )
    };
    if form.root.len() > MAX_FILTER_JSON_BYTES {
        return Err(invalid(&filter, "conditions: at most 256 KiB of JSON"));
    }
    let root = match xdr_proto::json::from_json::<FilterNode>("xdr.v1.FilterNode", &form.root) {
        Ok(root) => root,
        Err(error) => return Err(invalid(&filter, &format!("conditions: {error}"))),
    };
    filter.root = Some(root);
    let shown = filter.clone();
    let request = console.ask(&session, "Filter", filter)?;
    match console.enrichment().update_filter(request).await {
        Ok(filter) => {
            let filter = filter.into_inner();
            let body =
                html! { (notice("ok", "Saved.")) (filter_view(&session, &filter, None, None)) };
            Ok(page(Some(&session), &filter.name, body))
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            Err(invalid(&shown, status.message()))
        }
        Err(status) => Err(failed(&session, "Filter", &status)),
    }
}

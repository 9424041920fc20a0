//! Event search: an SQL box (the seed's SELECT as the example) and the answer as a table,
//! streamed to the browser piece by piece as `SearchEventsStream` answers, so a large answer
//! starts showing at once and the gateway holds one piece at a time. A refused query is
//! shown with the checker's message; each event links to the alert that holds it.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;
use xdr_proto::pb::{Event, Row, SearchEventsReply, SearchEventsRequest, cell::Kind, field_value};

use super::{
    Console, Page, Session, failed,
    page::{notice, page, shell, time},
    refused,
};
use crate::{connect::CALL_TIMEOUT, problem::Problem};

const SEED_SELECT: &str = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";
/// The longest query taken (the collector's checker has its own bound too).
const MAX_SQL_CHARS: usize = 16 * 1024;
/// Rows shown at most; the rest of a larger answer is left out, and said so.
const MAX_ROWS: usize = 10_000;

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    sql: String,
}

fn form(sql: &str) -> Markup {
    html! {
        form.stack method="get" action="/console/events" role="search" {
            label { "SQL (KUMA's search: one SELECT on `events`)"
                textarea name="sql" rows="4" maxlength="16384" placeholder=(SEED_SELECT) {
                    (if sql.is_empty() { SEED_SELECT } else { sql })
                }
            }
            button type="submit" { "Search" }
        }
    }
}

fn field_text(value: &xdr_proto::pb::FieldValue) -> String {
    match &value.kind {
        Some(field_value::Kind::Text(t)) => t.clone(),
        Some(field_value::Kind::Number(n)) => n.to_string(),
        Some(field_value::Kind::Integer(i)) => i.to_string(),
        Some(field_value::Kind::Flag(b)) => b.to_string(),
        Some(field_value::Kind::TimestampMs(ms)) => time(*ms),
        Some(field_value::Kind::List(list)) => list.values.join(", "),
        None => String::new(),
    }
}

fn event_row(event: &Event) -> Markup {
    let mut fields: Vec<(&String, String)> = event
        .fields
        .iter()
        .map(|(k, v)| (k, field_text(v)))
        .collect();
    fields.sort();
    html! {
        tr {
            td { (time(event.timestamp_ms)) }
            td { code { (event.id) } }
            td { (event.collector) }
            td { @for (name, value) in &fields { div { strong { (name) } " " (value) } } }
            td {
                @for m in &event.ti { div { (m.category) " — " code { (m.matched_indicator) } " (" (m.field) ")" } }
                @if !event.ti.is_empty() {
                    a href=(format!("/console/alerts/by-event/{}", event.id)) { "Its alert" }
                }
            }
        }
    }
}

fn cells_row(row: &Row) -> Markup {
    html! {
        tr {
            @for cell in &row.cells {
                td {
                    @match &cell.kind {
                        Some(Kind::Text(t)) => (t),
                        Some(Kind::Integer(i)) => (i),
                        Some(Kind::Number(n)) => (n),
                        None => span.muted { "NULL" },
                    }
                }
            }
        }
    }
}

/// The head of the table for the first piece of an answer.
fn table_head(first: &SearchEventsReply) -> Markup {
    html! {
        thead {
            tr {
                @if first.columns.is_empty() {
                    th scope="col" { "Time" } th scope="col" { "Id" } th scope="col" { "Collector" }
                    th scope="col" { "Fields" } th scope="col" { "Threat intel" }
                } @else {
                    @for column in &first.columns { th scope="col" { (column) } }
                }
            }
        }
    }
}

/// The rows of one piece, at most `room` of them.
fn rows(piece: &SearchEventsReply, room: usize) -> (Markup, usize) {
    let events = piece.events.iter().take(room);
    let cells = piece
        .rows
        .iter()
        .take(room.saturating_sub(piece.events.len()));
    let shown = events.len() + cells.len();
    let markup = html! {
        @for event in events { (event_row(event)) }
        @for row in cells { (cells_row(row)) }
    };
    (markup, shown)
}

pub async fn search(
    State(console): State<Arc<Console>>,
    session: Session,
    Query(query): Query<SearchQuery>,
) -> Page {
    let sql = query.sql.trim().to_owned();
    if sql.is_empty() {
        return Ok(page(Some(&session), "Events", form("")));
    }
    if sql.chars().count() > MAX_SQL_CHARS {
        return Err(refused(
            &session,
            "Events",
            Problem::bad_request(format!("sql: at most {MAX_SQL_CHARS} characters")),
        ));
    }
    let request = SearchEventsRequest {
        sql: sql.clone(),
        ..Default::default()
    };
    let request = console.ask(&session, "Events", request)?;
    let mut pieces = match console.collector().search_events_stream(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return Err(refused_query(&session, &sql, &status)),
    };
    // The first piece decides the page: a refused query is a page of its own, with its status.
    let first = match pieces.message().await {
        Ok(Some(first)) => first,
        Ok(None) => SearchEventsReply::default(),
        Err(status) => return Err(refused_query(&session, &sql, &status)),
    };
    let (before, after) = shell(&session, "Events");
    let (first_rows, shown) = rows(&first, MAX_ROWS);
    let opening = html! {
        (form(&sql))
        div.box { table { (table_head(&first)) tbody { (first_rows) } } }
    }
    .into_string();
    // Rows of later pieces go into a table of their own each: the browser shows every one
    // as it arrives.
    let head = table_head(&first).into_string();
    // The session holds the page's call slot until the last piece is sent, and the search
    // gets as long as any call: a search (or a page) cannot hold the slot for longer.
    let held = session.clone();
    let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
    let rest = futures_util::stream::unfold(
        (pieces, shown, false),
        move |(mut pieces, mut shown, done)| {
            let _held = held.clone();
            let head = head.clone();
            async move {
                if done {
                    return None;
                }
                let next = tokio::time::timeout_at(deadline, pieces.message()).await;
                let next = next.unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(format!(
                        "no answer within {CALL_TIMEOUT:?}"
                    )))
                });
                let chunk = match next {
                    Ok(Some(piece)) if shown < MAX_ROWS => {
                        let (markup, n) = rows(&piece, MAX_ROWS - shown);
                        shown += n;
                        format!(
                            "<div class=\"box\"><table>{head}<tbody>{}</tbody></table></div>",
                            markup.into_string()
                        )
                    }
                    Ok(Some(_)) => {
                        let text = format!("only the first {MAX_ROWS} rows are shown");
                        return Some((notice("warn", &text).into_string(), (pieces, shown, true)));
                    }
                    Ok(None) => return None,
                    Err(status) => {
                        let text = format!("the search stopped: {}", status.message());
                        return Some((notice("error", &text).into_string(), (pieces, shown, true)));
                    }
                };
                Some((chunk, (pieces, shown, false)))
            }
        },
    );
    let body = futures_util::stream::iter([opening])
        .chain(rest)
        .chain(futures_util::stream::iter([after]))
        .map(|chunk| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk)));
    let mut response = (Body::from_stream(
        futures_util::stream::iter([Ok(bytes::Bytes::from(before))]).chain(body),
    ))
    .into_response();
    super::page::html_headers(response.headers_mut());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response)
}

/// The query again, with why it was refused (the SQL checker names what it does not take).
fn refused_query(session: &Session, sql: &str, status: &tonic::Status) -> Response {
    if status.code() != tonic::Code::InvalidArgument {
        return failed(session, "Events", status);
    }
    let problem = Problem::from_status(status);
    super::page::page_with(
        problem.status,
        Some(session),
        "Events",
        html! { (notice("error", &problem.message)) (form(sql)) },
    )
}

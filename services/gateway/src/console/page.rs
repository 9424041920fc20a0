//! The shell every console page shares — head, navigation, the person signed in, sign-out —
//! and small pieces pages are made of (notices, forms with their CSRF field, times). Plain
//! HTML that reads without JavaScript; the one stylesheet is the gateway's own.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use xdr_mesh::caller::Action;

use super::session::Session;

/// The console's stylesheet: narrow screens stack, wide tables scroll inside their own box,
/// long values wrap, so no page scrolls sideways at 390 or 1280 pixels.
pub const STYLESHEET: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1b1f24;background:#f6f7f9;overflow-wrap:anywhere}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1rem;background:#17324d;color:#fff}
header a{color:#fff}
header .who{margin-left:auto;display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem 1rem;list-style:none;margin:0;padding:0}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.5rem 0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
a{color:#0b5cad}
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #f0a500;outline-offset:1px}
.box{overflow-x:auto;max-width:100%;background:#fff;border:1px solid #d6dae0;border-radius:4px;margin:.5rem 0}
table{border-collapse:collapse;width:100%;min-width:36rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{overflow-wrap:normal}
th{background:#eef1f4;font-weight:600}
form.inline{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
form.stack{display:grid;gap:.6rem;max-width:32rem}
label{display:flex;flex-direction:column;gap:.15rem;font-weight:600;font-size:.9rem}
input,select,textarea,button{font:inherit;font-weight:400;padding:.35rem .5rem;border:1px solid #9aa4b0;border-radius:4px;max-width:100%}
label.check{flex-direction:row;align-items:center;gap:.5rem;font-weight:400}
textarea{width:100%;min-height:6rem;font-family:ui-monospace,monospace}
button{background:#17324d;color:#fff;border-color:#17324d;cursor:pointer}
button.secondary{background:#fff;color:#17324d}
.notice{padding:.6rem .8rem;border-radius:4px;margin:.75rem 0;border:1px solid}
.ok{background:#e7f6ec;border-color:#4c9a62}
.warn{background:#fff6e0;border-color:#c79a1e}
.error{background:#fdecea;border-color:#c0392b}
.field-error{color:#a12a1c;font-weight:400}
.muted{color:#5b6470}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dt{font-weight:600}
dd{margin:0}
code{font-family:ui-monospace,monospace;font-size:.9em}
@media (max-width:40rem){dl{grid-template-columns:1fr}header .who{margin-left:0}}
"#;

/// A page for `session` titled `title` with `body`, `200 OK`.
pub fn page(session: Option<&Session>, title: &str, body: Markup) -> Response {
    page_with(StatusCode::OK, session, title, body)
}

/// A page with another status.
pub fn page_with(
    status: StatusCode,
    session: Option<&Session>,
    title: &str,
    body: Markup,
) -> Response {
    let mut response = (status, document(session, title, body).into_string()).into_response();
    html_headers(response.headers_mut());
    response
}

/// The page's text before and after its body, for a body streamed in pieces.
pub fn shell(session: &Session, title: &str) -> (String, String) {
    const MARK: &str = "\u{0}body\u{0}";
    let whole = document(Some(session), title, PreEscaped(MARK.to_owned())).into_string();
    let (before, after) = whole.split_once(MARK).expect("the mark is in the page");
    (before.to_owned(), after.to_owned())
}

fn document(session: Option<&Session>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · xdr console" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    a href="/console/alerts" { strong { "xdr console" } }
                    @if let Some(session) = session {
                        nav aria-label="Sections" {
                            ul {
                                li { a href="/console/alerts" { "Alerts" } }
                                li { a href="/console/incidents" { "Incidents" } }
                                li { a href="/console/events" { "Events" } }
                                li { a href="/console/enrichment" { "Enrichment" } }
                                li { a href="/console/threatintel" { "Threat intel" } }
                                li { a href="/console/collectors" { "Collectors" } }
                                @if session.person.role.allows(Action::ManageSecrets) {
                                    li { a href="/console/secrets" { "Secrets" } }
                                }
                            }
                        }
                        div.who {
                            span { (session.person.user) " · " (session.person.role.name()) " · " (session.person.tenant) }
                            form method="post" action="/console/sign-out" {
                                (csrf_field(session))
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The headers of every console page: HTML, never cached, our stylesheet and nothing else.
pub fn html_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Our own stylesheet and nothing else: no script, no frame, no form posting elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The hidden field every form that changes something carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A notice: `kind` is `ok`, `warn` or `error`.
pub fn notice(kind: &str, text: &str) -> Markup {
    let role = if kind == "error" { "alert" } else { "status" };
    html! { div class=(format!("notice {kind}")) role=(role) { (text) } }
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "—".to_owned();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// The enum value name without its type prefix, lower case: `SEVERITY_HIGH` → `high`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .replace('_', " ")
        .to_lowercase()
}

/// The stylesheet, served by the gateway (the only thing the pages load).
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Marks up nothing: for optional parts.
pub fn nothing() -> Markup {
    PreEscaped(String::new())
}

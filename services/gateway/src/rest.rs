//! Resource-style REST paths, generated from the `google.api.http` options of the `.proto`
//! files as grpc-gateway reads them: `GET /v1/enrichment/rules`, `PUT /v1/collectors/{id}`,
//! `GET /v1/events?sql=…`. The request message is made from the path's variables, the query
//! string (fields by name, dotted for nested ones, repeated by repeating the key) and the body
//! (the whole request for `body: "*"`), then called as the Connect route calls it.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::{
    Extension, Router,
    body::Body,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::HeaderMap,
    response::IntoResponse,
    routing::{MethodRouter, delete, get, patch, post, put},
};
use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{Map, Value};
use xdr_proto::{
    http::{HttpBinding, http_bindings},
    json,
};

use crate::{
    connect::{CALL_TIMEOUT, Call, ConnectState, json_body},
    problem::Problem,
    trace_context::TraceContext,
};

/// Query parameters taken at most.
const MAX_QUERY_PAIRS: usize = 64;

/// A route for every annotated RPC a service behind the gateway serves.
pub fn router(state: Arc<ConnectState>) -> Router {
    let mut paths: BTreeMap<String, MethodRouter<Arc<ConnectState>>> = BTreeMap::new();
    for binding in http_bindings() {
        let service = binding.method.parent_service().full_name().to_owned();
        if binding.method.is_client_streaming() || state.upstreams.serving(&service).is_none() {
            continue;
        }
        let path = binding.path.clone();
        let verb = binding.verb;
        let binding = Arc::new(binding);
        let handler = move |State(state): State<Arc<ConnectState>>,
                            ConnectInfo(peer): ConnectInfo<SocketAddr>,
                            Extension(trace): Extension<TraceContext>,
                            Path(variables): Path<BTreeMap<String, String>>,
                            RawQuery(query): RawQuery,
                            headers: HeaderMap,
                            body: Body| {
            let binding = binding.clone();
            async move {
                let parameters = Parameters { variables, query };
                match prepare(&state, &binding, peer, trace, parameters, &headers, body).await {
                    Ok(call) => call.run().await,
                    Err(problem) => problem.into_response(),
                }
            }
        };
        let route = match verb {
            "get" => get(handler),
            "put" => put(handler),
            "post" => post(handler),
            "delete" => delete(handler),
            _ => patch(handler),
        };
        let merged = match paths.remove(&path) {
            Some(existing) => existing.merge(route),
            None => route,
        };
        paths.insert(path, merged);
    }
    paths
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(&path, route)
        })
        .with_state(state)
}

/// What a request's URL gives: the path's variables and the query string.
struct Parameters {
    variables: BTreeMap<String, String>,
    query: Option<String>,
}

async fn prepare(
    state: &ConnectState,
    binding: &HttpBinding,
    peer: SocketAddr,
    trace: TraceContext,
    Parameters { variables, query }: Parameters,
    headers: &HeaderMap,
    body: Body,
) -> Result<Call, Problem> {
    let service = binding.method.parent_service().full_name();
    let channel = state
        .upstreams
        .serving(service)
        .expect("routes are made for served services only");
    let person = state.people.person(peer, headers)?;
    let slot = state.slot()?;
    let input = binding.method.input();
    let mut request = match binding.body.as_str() {
        "" => Map::new(),
        "*" => object_of(&json_body(headers, body).await?)?,
        field => {
            let text = json_body(headers, body).await?;
            let mut request = Map::new();
            if !text.trim().is_empty() {
                let value = serde_json::from_str(&text)
                    .map_err(|e| Problem::bad_request(format!("body: {e}")))?;
                request.insert(field.to_owned(), value);
            }
            request
        }
    };
    if binding.body != "*" {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query.as_deref().unwrap_or(""))?;
        for (name, value) in pairs {
            set_field(&mut request, &input, &name, &value, "query")?;
        }
    }
    for (name, value) in variables {
        set_field(&mut request, &input, &name, &value, "path")?;
    }
    let request = json::json_to_protobuf(input, &Value::Object(request).to_string())
        .map_err(|e| Problem::bad_request(format!("request: {e}")))?;
    Ok(Call {
        channel,
        method: binding.method.clone(),
        request,
        person,
        timeout: CALL_TIMEOUT,
        trace,
        slot,
    })
}

fn object_of(text: &str) -> Result<Map<String, Value>, Problem> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Problem::bad_request("body: a JSON object")),
        Err(e) => Err(Problem::bad_request(format!("body: {e}"))),
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, Problem> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.len() > MAX_QUERY_PAIRS {
        return Err(Problem::bad_request(format!(
            "query: at most {MAX_QUERY_PAIRS} parameters"
        )));
    }
    Ok(pairs)
}

/// Sets the field `dotted` (names as in the `.proto` or in JSON) of the request `object` of
/// type `message` to the text `value`, typed by the field: a repeated field collects every
/// value given.
fn set_field(
    object: &mut Map<String, Value>,
    message: &MessageDescriptor,
    dotted: &str,
    value: &str,
    place: &str,
) -> Result<(), Problem> {
    let (name, rest) = match dotted.split_once('.') {
        Some((name, rest)) => (name, Some(rest)),
        None => (dotted, None),
    };
    let field = message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
        .ok_or_else(|| {
            Problem::bad_request(format!("{place}: {} has no field {name:?}", message.name()))
        })?;
    let key = field.json_name().to_owned();
    match (rest, field.kind()) {
        (Some(rest), Kind::Message(inner)) if !field.is_list() && !field.is_map() => {
            let entry = object
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(inner_object) = entry else {
                return Err(Problem::bad_request(format!(
                    "{place}: {dotted} is given twice"
                )));
            };
            set_field(inner_object, &inner, rest, value, place)
        }
        (Some(_), _) => Err(Problem::bad_request(format!(
            "{place}: {name} has no fields of its own"
        ))),
        (None, Kind::Message(_)) => Err(Problem::bad_request(format!(
            "{place}: {name} is a message; name one of its fields ({name}.field)"
        ))),
        (None, kind) => {
            let typed = match kind {
                Kind::Bool => match value {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        return Err(Problem::bad_request(format!(
                            "{place}: {name} is true or false"
                        )));
                    }
                },
                // The proto3 JSON mapping takes numbers as strings; enums by name.
                _ => Value::String(value.to_owned()),
            };
            if field.is_list() {
                let entry = object
                    .entry(key)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(values) = entry {
                    values.push(typed);
                }
            } else {
                object.insert(key, typed);
            }
            Ok(())
        }
    }
}

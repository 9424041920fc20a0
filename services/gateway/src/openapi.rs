//! `GET /openapi.json`: an OpenAPI 3.1 document made from the same descriptors the gateway
//! transcodes with, so it cannot drift from what is served. Every REST binding and every
//! Connect route of the services behind the gateway, the input routes, and a schema per
//! `xdr.v1` message in the proto3 JSON mapping (64-bit integers as strings, enums by name,
//! bytes as base64); the `.proto` comments are the descriptions.

use std::{collections::BTreeSet, sync::Arc};

use axum::{Json, Router, routing::get};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value, json};
use xdr_proto::{http::http_bindings, json::pool};

use crate::upstreams::Upstreams;

const PACKAGE: &str = "xdr.v1";

pub fn router(upstreams: &Upstreams) -> Router {
    let document = Arc::new(document(upstreams));
    Router::new().route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json(document.as_ref().clone()) }
        }),
    )
}

/// The document for the services `upstreams` reaches.
pub fn document(upstreams: &Upstreams) -> Value {
    let mut paths = Map::new();
    let mut used = BTreeSet::new();
    for binding in http_bindings() {
        let method = &binding.method;
        let service = method.parent_service().full_name().to_owned();
        if method.is_client_streaming() || upstreams.serving(&service).is_none() {
            continue;
        }
        let path_fields = binding.path_fields();
        let mut parameters: Vec<Value> = path_fields
            .iter()
            .map(|name| parameter(&method.input(), name, "path"))
            .collect();
        if binding.body != "*" {
            for field in method.input().fields() {
                if path_fields.contains(&field.name()) || field.name() == binding.body {
                    continue;
                }
                query_parameters(&field, "", &mut parameters);
            }
        }
        let mut operation = operation(method, &mut used, &format!("{}_rest", binding.verb));
        operation["parameters"] = Value::Array(parameters);
        if binding.body == "*" {
            operation["requestBody"] = request_body(&method.input(), &mut used);
        }
        let entry = paths
            .entry(binding.path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[binding.verb] = operation;
    }
    for service in pool().services() {
        if upstreams.serving(service.full_name()).is_none() {
            continue;
        }
        for method in service.methods() {
            if method.is_client_streaming() {
                continue;
            }
            let mut operation = operation(&method, &mut used, "connect");
            operation["requestBody"] = request_body(&method.input(), &mut used);
            paths.insert(
                format!("/{}/{}", service.full_name(), method.name()),
                json!({ "post": operation }),
            );
        }
    }
    for (path, summary) in [
        (
            "/input",
            "Events for the quickstart's collector `http-input`",
        ),
        (
            "/collectors/{id}/input",
            "Events for a collector that takes HTTP input",
        ),
    ] {
        paths.insert(path.to_owned(), input_operation(path, summary));
    }
    let mut schemas = Map::new();
    let mut pending: Vec<String> = used.into_iter().collect();
    let mut done = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let Some(message) = pool().get_message_by_name(&name) else {
            continue;
        };
        let mut refs = BTreeSet::new();
        schemas.insert(name, message_schema(&message, &mut refs));
        pending.extend(refs.into_iter().filter(|r| !done.contains(r)));
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "An error: the gRPC code as Connect names it, and why.",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "xdr-mesh gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "HTTP JSON for every RPC of the xdr mesh: resource paths from the protos' google.api.http options, and Connect's unary form (POST /xdr.v1.<Service>/<Method>). Bodies are the proto3 JSON mapping.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    })
}

fn operation(method: &MethodDescriptor, used: &mut BTreeSet<String>, kind: &str) -> Value {
    used.insert(method.input().full_name().to_owned());
    used.insert(method.output().full_name().to_owned());
    let (content, description) = if method.is_server_streaming() {
        (
            "application/x-ndjson",
            "One message a line; a failure after the first line is the last line, {\"error\": {code, message}}.",
        )
    } else {
        ("application/json", "The reply.")
    };
    json!({
        "operationId": format!("{}_{}_{kind}", method.parent_service().name(), method.name()),
        "tags": [method.parent_service().name()],
        "summary": comment(method.parent_file().file_descriptor_proto(), method.path())
            .unwrap_or_else(|| method.name().to_owned()),
        "responses": {
            "200": {
                "description": description,
                "content": {content: {"schema": reference(&method.output())}},
            },
            "default": error_response(),
        },
    })
}

fn error_response() -> Value {
    json!({
        "description": "An error, its HTTP status mapped from the gRPC code as grpc-gateway maps it.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

fn request_body(message: &MessageDescriptor, used: &mut BTreeSet<String>) -> Value {
    used.insert(message.full_name().to_owned());
    json!({
        "required": true,
        "content": {"application/json": {"schema": reference(message)}},
    })
}

fn input_operation(path: &str, summary: &str) -> Value {
    let mut parameters = Vec::new();
    if path.contains("{id}") {
        parameters.push(json!({
            "name": "id", "in": "path", "required": true,
            "description": "The collector's id, or its name in tenant Main.",
            "schema": {"type": "string"},
        }));
    }
    json!({"post": {
        "operationId": if parameters.is_empty() { "input" } else { "collectorInput" },
        "tags": ["Input"],
        "summary": summary,
        "description": "Events in the collector's delimiter (one JSON object, or NDJSON); gzip or deflate with Content-Encoding. No token: input authenticates the source.",
        "security": [],
        "parameters": parameters,
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        }},
        "responses": {
            "200": {
                "description": "What the collector accepted (durable) and refused.",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer"},
                        "refused": {"type": "integer"},
                        "ids": {"type": "array", "items": {"type": "string"}},
                        "errors": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"index": {"type": "integer"}, "reason": {"type": "string"}},
                        }},
                    },
                }}},
            },
            "default": error_response(),
        },
    }})
}

fn reference(message: &MessageDescriptor) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", message.full_name()) })
}

fn parameter(message: &MessageDescriptor, name: &str, place: &str) -> Value {
    let field = message.get_field_by_name(name);
    json!({
        "name": name,
        "in": place,
        "required": place == "path",
        "schema": field.as_ref().map_or(json!({"type": "string"}), |f| scalar_schema(f.kind())),
    })
}

/// The query parameters `field` stands for: itself when scalar, its fields (dotted) when a
/// message, one level deep.
fn query_parameters(field: &FieldDescriptor, prefix: &str, out: &mut Vec<Value>) {
    let name = format!("{prefix}{}", field.name());
    match field.kind() {
        Kind::Message(inner) if !field.is_map() && !field.is_list() && prefix.is_empty() => {
            for inner_field in inner.fields() {
                query_parameters(&inner_field, &format!("{name}."), out);
            }
        }
        Kind::Message(_) => {}
        kind => {
            let mut schema = scalar_schema(kind);
            if field.is_list() {
                schema = json!({"type": "array", "items": schema});
            }
            out.push(json!({
                "name": name,
                "in": "query",
                "required": false,
                "explode": true,
                "description": comment(field.parent_file().file_descriptor_proto(), field.path()).unwrap_or_default(),
                "schema": schema,
            }));
        }
    }
}

fn message_schema(message: &MessageDescriptor, refs: &mut BTreeSet<String>) -> Value {
    let mut properties = Map::new();
    for field in message.fields() {
        let mut schema = field_schema(&field, refs);
        if let Some(text) = comment(field.parent_file().file_descriptor_proto(), field.path()) {
            schema["description"] = Value::String(text);
        }
        properties.insert(field.json_name().to_owned(), schema);
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if let Some(text) = comment(
        message.parent_file().file_descriptor_proto(),
        message.path(),
    ) {
        schema["description"] = Value::String(text);
    }
    schema
}

fn field_schema(field: &FieldDescriptor, refs: &mut BTreeSet<String>) -> Value {
    let one = |kind: Kind, refs: &mut BTreeSet<String>| match kind {
        Kind::Message(inner) => {
            refs.insert(inner.full_name().to_owned());
            reference(&inner)
        }
        other => scalar_schema(other),
    };
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            unreachable!("a map field's kind is its entry message")
        };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": one(value.kind(), refs)});
    }
    let schema = one(field.kind(), refs);
    if field.is_list() {
        json!({"type": "array", "items": schema})
    } else {
        schema
    }
}

fn scalar_schema(kind: Kind) -> Value {
    match kind {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        // The proto3 JSON mapping writes 64-bit integers as strings (and takes both).
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": ["string", "integer"], "format": "int64"})
        }
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Enum(values) => json!({
            "type": "string",
            "enum": values.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
        }),
        Kind::Message(message) => reference(&message),
    }
}

/// The leading comment of the element at `path` in `file`, trimmed.
fn comment(file: &prost_reflect::prost_types::FileDescriptorProto, path: &[i32]) -> Option<String> {
    let location = file
        .source_code_info
        .as_ref()?
        .location
        .iter()
        .find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?.trim();
    (!text.is_empty() && file.package() == PACKAGE)
        .then(|| text.lines().map(str::trim).collect::<Vec<_>>().join(" "))
}

//! An event as the values of the schema's columns, and back: what every engine stores in its
//! own way. A field the schema names is its column (an integer column keeps integers, any
//! other value is its texts joined by `,`); the other fields are `Extra`, name → text.

use std::{borrow::Cow, collections::BTreeMap};

use xdr_filter::fields::texts_of;
use xdr_proto::pb::{EnrichmentStatus, Event, FieldValue, field_value};

use crate::search::schema::{COLUMNS, Column, ColumnType};

/// One column's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored<'e> {
    Null,
    Integer(i64),
    Text(Cow<'e, str>),
}

/// The value of `column` for `event`.
pub fn value_of<'e>(event: &'e Event, column: &Column) -> Stored<'e> {
    match column.name {
        "Id" => Stored::Text(Cow::Borrowed(&event.id)),
        "Timestamp" => Stored::Integer(event.timestamp_ms),
        "Tenant" => Stored::Text(Cow::Borrowed(&event.tenant)),
        "Collector" => Stored::Text(Cow::Borrowed(&event.collector)),
        "Raw" => Stored::Text(Cow::Borrowed(&event.raw)),
        "EnrichmentStatus" => match EnrichmentStatus::try_from(event.enrichment_status) {
            Ok(EnrichmentStatus::Unspecified) | Err(_) => Stored::Null,
            Ok(status) => Stored::Text(Cow::Borrowed(status_name(status))),
        },
        name => match event.fields.get(name) {
            None => Stored::Null,
            Some(value) => field_value(value, column.kind),
        },
    }
}

fn field_value(value: &FieldValue, kind: ColumnType) -> Stored<'_> {
    match (&value.kind, kind) {
        (Some(field_value::Kind::Integer(n)), ColumnType::Integer | ColumnType::Timestamp) => {
            Stored::Integer(*n)
        }
        (Some(field_value::Kind::TimestampMs(n)), _) => Stored::Integer(*n),
        (Some(field_value::Kind::Text(text)), _) => Stored::Text(Cow::Borrowed(text)),
        _ => Stored::Text(Cow::Owned(texts_of(value).join(","))),
    }
}

/// The fields of `event` outside the schema, by name, as text.
pub fn extra_of(event: &Event) -> BTreeMap<&str, String> {
    event
        .fields
        .iter()
        .filter(|(name, _)| !COLUMNS.iter().any(|c| c.name == name.as_str()))
        .map(|(name, value)| (name.as_str(), texts_of(value).join(",")))
        .collect()
}

/// Sets what column `name` holds on `event` read back from a store.
pub fn put(event: &mut Event, name: &str, value: Stored<'_>) {
    match (name, value) {
        (_, Stored::Null) => {}
        ("Id", Stored::Text(text)) => event.id = text.into_owned(),
        ("Timestamp", Stored::Integer(n)) => event.timestamp_ms = n,
        ("Tenant", Stored::Text(text)) => event.tenant = text.into_owned(),
        ("Collector", Stored::Text(text)) => event.collector = text.into_owned(),
        ("Raw", Stored::Text(text)) => event.raw = text.into_owned(),
        ("EnrichmentStatus", Stored::Text(text)) => {
            event.enrichment_status =
                EnrichmentStatus::from_str_name(&format!("ENRICHMENT_STATUS_{text}"))
                    .map_or(0, |s| s as i32);
        }
        (name, Stored::Integer(n)) => {
            event.fields.insert(
                name.to_owned(),
                FieldValue {
                    kind: Some(field_value::Kind::Integer(n)),
                },
            );
        }
        (name, Stored::Text(text)) => {
            event.fields.insert(
                name.to_owned(),
                FieldValue {
                    kind: Some(field_value::Kind::Text(text.into_owned())),
                },
            );
        }
    }
}

/// The status as the `EnrichmentStatus` column holds it.
pub fn status_name(status: EnrichmentStatus) -> &'static str {
    status
        .as_str_name()
        .trim_start_matches("ENRICHMENT_STATUS_")
}

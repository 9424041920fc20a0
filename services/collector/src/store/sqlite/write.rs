//! Writing events: each event one row of `events` (the schema's columns, the rest of its
//! fields as JSON in `Extra`), each TI match one row of `ti`.

use std::collections::BTreeMap;

use rusqlite::{Connection, params_from_iter, types::Value};
use xdr_filter::fields::texts_of;
use xdr_proto::pb::{EnrichmentStatus, Event, FieldValue, field_value};

use super::{EventStoreError, failure};
use crate::search::schema::{COLUMNS, ColumnType};

/// Inserts every batch of `batches` in `transaction`, then records `through` (the disk
/// buffer's sequence) when given; the first failure stops it.
pub(super) fn load(
    transaction: &Connection,
    batches: &[&[Event]],
    through: Option<u64>,
) -> Result<(), EventStoreError> {
    for events in batches {
        insert_events(transaction, events)?;
    }
    if let Some(through) = through {
        transaction
            .execute(
                "INSERT INTO meta (key, value) VALUES ('loaded_through', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [through as i64],
            )
            .map_err(failure)?;
    }
    Ok(())
}

/// Inserts `events` and their matches in `transaction`; an event whose id is stored already
/// is skipped, matches and all (a batch loaded again stores nothing twice).
fn insert_events(transaction: &Connection, events: &[Event]) -> Result<(), EventStoreError> {
    let names: Vec<String> = COLUMNS.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let marks = vec!["?"; COLUMNS.len() + 1].join(", ");
    let mut insert_event = transaction
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO events ({}, \"Extra\") VALUES ({marks})",
            names.join(", ")
        ))
        .map_err(failure)?;
    let mut insert_match = transaction
        .prepare_cached(
            "INSERT INTO ti (event, field, value, category, indicator, supplier, indicator_type, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(failure)?;
    for event in events {
        let inserted = insert_event
            .execute(params_from_iter(row_of(event)))
            .map_err(failure)?;
        if inserted == 0 {
            continue;
        }
        let rowid = transaction.last_insert_rowid();
        for found in &event.ti {
            let context =
                serde_json::to_string(&found.context).expect("a map of strings serializes");
            insert_match
                .execute(rusqlite::params![
                    rowid,
                    found.field,
                    found.value,
                    found.category,
                    found.matched_indicator,
                    found.supplier,
                    found.indicator_type,
                    context
                ])
                .map_err(failure)?;
        }
    }
    Ok(())
}

/// The values of `event`'s row: the schema's columns in order, then `Extra`.
fn row_of(event: &Event) -> Vec<Value> {
    let mut extra = BTreeMap::new();
    for (name, value) in &event.fields {
        if !COLUMNS.iter().any(|c| c.name == *name) {
            extra.insert(name.as_str(), texts_of(value).join(","));
        }
    }
    let mut values: Vec<Value> = COLUMNS
        .iter()
        .map(|column| match column.name {
            "Id" => Value::Text(event.id.clone()),
            "Timestamp" => Value::Integer(event.timestamp_ms),
            "Tenant" => Value::Text(event.tenant.clone()),
            "Collector" => Value::Text(event.collector.clone()),
            "Raw" => Value::Text(event.raw.clone()),
            "EnrichmentStatus" => match EnrichmentStatus::try_from(event.enrichment_status) {
                Ok(EnrichmentStatus::Unspecified) | Err(_) => Value::Null,
                Ok(status) => Value::Text(status_name(status).to_owned()),
            },
            name => match event.fields.get(name) {
                None => Value::Null,
                Some(value) => cell_value(value, column.kind),
            },
        })
        .collect();
    values.push(if extra.is_empty() {
        Value::Null
    } else {
        Value::Text(serde_json::to_string(&extra).expect("a map of strings serializes"))
    });
    values
}

fn cell_value(value: &FieldValue, kind: ColumnType) -> Value {
    match (&value.kind, kind) {
        (Some(field_value::Kind::Integer(n)), ColumnType::Integer | ColumnType::Timestamp) => {
            Value::Integer(*n)
        }
        (Some(field_value::Kind::TimestampMs(n)), _) => Value::Integer(*n),
        _ => Value::Text(texts_of(value).join(",")),
    }
}

/// The status as the `EnrichmentStatus` column holds it.
pub(super) fn status_name(status: EnrichmentStatus) -> &'static str {
    status
        .as_str_name()
        .trim_start_matches("ENRICHMENT_STATUS_")
}

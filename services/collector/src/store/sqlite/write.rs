//! Writing events: each event one row of the newest partition (the schema's columns, the
//! rest of its fields as JSON in `Extra`), each TI match one row of `ti`; deleting the
//! expired ones.

use rusqlite::{Connection, params_from_iter, types::Value};
use xdr_proto::pb::Event;

use super::{EventStoreError, failure, partitions};
use crate::store::columns::{self, Stored};

/// Inserts every batch of `batches` in `transaction`, then records `through` (the disk
/// buffer's sequence) when given; the first failure stops it.
pub(super) fn load(
    transaction: &Connection,
    newest: &mut partitions::Newest,
    batches: &[&[Event]],
    through: Option<u64>,
) -> Result<(), EventStoreError> {
    for events in batches {
        insert_events(transaction, newest, events)?;
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
fn insert_events(
    transaction: &Connection,
    newest: &mut partitions::Newest,
    events: &[Event],
) -> Result<(), EventStoreError> {
    let mut insert_id = transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO event_ids (\"Id\", \"Tenant\", event) VALUES (?, ?, ?)",
        )
        .map_err(failure)?;
    let mut insert_match = transaction
        .prepare_cached(
            "INSERT INTO ti (event, field, value, category, indicator, supplier, indicator_type, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(failure)?;
    for event in events {
        let rowid = newest.next_rowid(transaction).map_err(failure)?;
        if insert_id
            .execute(rusqlite::params![event.id, event.tenant, rowid])
            .map_err(failure)?
            == 0
        {
            continue;
        }
        let mut insert_event = transaction
            .prepare_cached(&newest.insert_sql)
            .map_err(failure)?;
        let row = std::iter::once(Value::Integer(rowid)).chain(row_of(event));
        insert_event
            .execute(params_from_iter(row))
            .map_err(failure)?;
        newest.inserted();
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

/// Deletes events older than `before`, their matches and their ids, oldest partition first:
/// a whole partition when all of it has expired (not the one being written), else up to
/// `chunk` of its oldest events. Answers how many; none when nothing expired is left.
pub(super) fn delete_oldest(
    transaction: &Connection,
    newest: &str,
    before: i64,
    chunk: i64,
) -> Result<u64, EventStoreError> {
    for table in partitions::names(transaction).map_err(failure)? {
        let latest: Option<i64> = transaction
            .query_row(
                &format!("SELECT max(\"Timestamp\") FROM {table}"),
                [],
                |row| row.get(0),
            )
            .map_err(failure)?;
        if table != newest && latest.is_none_or(|latest| latest < before) {
            let (first, last, events): (Option<i64>, Option<i64>, i64) = transaction
                .query_row(
                    &format!("SELECT min(rowid), max(rowid), count(*) FROM {table}"),
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .map_err(failure)?;
            transaction
                .execute(
                    "DELETE FROM ti WHERE event BETWEEN ?1 AND ?2",
                    rusqlite::params![first, last],
                )
                .map_err(failure)?;
            transaction
                .execute_batch(&format!(
                    "DELETE FROM event_ids WHERE (\"Id\", \"Tenant\") IN (SELECT \"Id\", \"Tenant\" FROM {table});
                     DROP TABLE {table};"
                ))
                .map_err(failure)?;
            transaction
                .execute("DELETE FROM partitions WHERE name = ?1", [&table])
                .map_err(failure)?;
            return Ok(events as u64);
        }
        let oldest = format!(
            "SELECT rowid FROM {table} WHERE \"Timestamp\" < ?1 ORDER BY \"Timestamp\" LIMIT ?2"
        );
        let params = rusqlite::params![before, chunk];
        transaction
            .execute(&format!("DELETE FROM ti WHERE event IN ({oldest})"), params)
            .map_err(failure)?;
        transaction
            .execute(
                &format!("DELETE FROM event_ids WHERE (\"Id\", \"Tenant\") IN (SELECT \"Id\", \"Tenant\" FROM {table} WHERE rowid IN ({oldest}))"),
                params,
            )
            .map_err(failure)?;
        let deleted = transaction
            .execute(
                &format!("DELETE FROM {table} WHERE rowid IN ({oldest})"),
                params,
            )
            .map_err(failure)?;
        if deleted > 0 {
            return Ok(deleted as u64);
        }
    }
    Ok(0)
}

/// The values of `event`'s row: the schema's columns in order, then `Extra`.
fn row_of(event: &Event) -> Vec<Value> {
    let (values, extra) = columns::values_of(event);
    let mut values: Vec<Value> = values
        .into_iter()
        .map(|value| match value {
            Stored::Null => Value::Null,
            Stored::Integer(n) => Value::Integer(n),
            Stored::Text(text) => Value::Text(text.into_owned()),
        })
        .collect();
    values.push(if extra.is_empty() {
        Value::Null
    } else {
        Value::Text(serde_json::to_string(&extra).expect("a map of strings serializes"))
    });
    values
}

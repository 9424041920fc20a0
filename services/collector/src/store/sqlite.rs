//! The embedded event store: SQLite in WAL mode under the collector's data directory. Events
//! are rows of `events` (the schema's columns, the rest of their fields as JSON in `Extra`),
//! their TI matches rows of `ti`. A batch is one transaction, committed with a full sync
//! before `insert` returns. Searches run on a connection of their own, with a time limit.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use rusqlite::{
    Connection, ErrorCode as SqliteCode, OpenFlags, functions::FunctionFlags, params_from_iter,
    types::Value,
};
use xdr_filter::fields::texts_of;
use xdr_mesh::{error::ErrorCode, store::StoreFailure};
use xdr_proto::pb::{EnrichmentStatus, Event, FieldValue, TiMatch, field_value};

use super::{Cell, EventStore, EventStoreError, Found};
use crate::search::{
    query::{Projection, Search},
    schema::{COLUMNS, ColumnType},
    sqlite::render,
};

/// Longest a search may run.
const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Largest compiled regular expression of `match()`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Largest answer a search builds, encoded: what a gRPC client takes by default.
const MAX_RESULT_BYTES: usize = 4 << 20;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn failure(error: rusqlite::Error) -> EventStoreError {
    failure_ref(&error)
}

fn failure_ref(error: &rusqlite::Error) -> EventStoreError {
    let code = match error.sqlite_error_code() {
        Some(SqliteCode::OperationInterrupted) => {
            return EventStoreError::TooSlow(SEARCH_TIME_LIMIT);
        }
        Some(SqliteCode::ConstraintViolation) => ErrorCode::AlreadyExists,
        Some(
            SqliteCode::DiskFull
            | SqliteCode::SystemIoFailure
            | SqliteCode::CannotOpen
            | SqliteCode::DatabaseBusy
            | SqliteCode::DatabaseLocked
            | SqliteCode::ReadOnly,
        ) => ErrorCode::Unavailable,
        Some(SqliteCode::DatabaseCorrupt | SqliteCode::NotADatabase) => ErrorCode::DataLoss,
        Some(SqliteCode::TooBig) => ErrorCode::ResourceExhausted,
        _ => ErrorCode::Internal,
    };
    EventStoreError::Store(StoreFailure::with_code(
        code,
        format!("event store: {error}"),
    ))
}

fn locked(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, EventStoreError> {
        let writer = Connection::open(path).map_err(failure)?;
        writer.execute_batch(&schema_sql()).map_err(failure)?;
        add_missing_columns(&writer).map_err(failure)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(failure)?;
        for connection in [&writer, &reader] {
            prepare(connection).map_err(failure)?;
        }
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }
}

/// Columns the schema gained since the store was made, added (empty for events before).
fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    let mut statement = connection.prepare("SELECT name FROM pragma_table_info('events')")?;
    let present: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for column in COLUMNS
        .iter()
        .filter(|c| !present.iter().any(|p| p == c.name))
    {
        let kind = match column.kind {
            ColumnType::Text => "TEXT",
            ColumnType::Integer | ColumnType::Timestamp => "INTEGER",
        };
        connection.execute_batch(&format!(
            "ALTER TABLE events ADD COLUMN \"{}\" {kind}",
            column.name
        ))?;
    }
    Ok(())
}

/// The tables and indexes, from the one schema.
fn schema_sql() -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ColumnType::Text => "TEXT",
                ColumnType::Integer | ColumnType::Timestamp => "INTEGER",
            };
            format!("\"{}\" {kind}", c.name)
        })
        .collect();
    format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS events (rowid INTEGER PRIMARY KEY, {}, \"Extra\" TEXT);
         CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (\"Id\");
         CREATE INDEX IF NOT EXISTS events_time ON events (\"Tenant\", \"Timestamp\");
         CREATE INDEX IF NOT EXISTS events_url ON events (\"RequestUrl\");
         CREATE INDEX IF NOT EXISTS events_source ON events (\"SourceAddress\");
         CREATE INDEX IF NOT EXISTS events_destination ON events (\"DestinationAddress\");
         CREATE INDEX IF NOT EXISTS events_hash ON events (\"FileHash\");
         CREATE TABLE IF NOT EXISTS ti (event INTEGER NOT NULL REFERENCES events (rowid),
             field TEXT, value TEXT, category TEXT, indicator TEXT, supplier TEXT,
             indicator_type INTEGER, context TEXT);
         CREATE INDEX IF NOT EXISTS ti_event ON ti (event);
         CREATE INDEX IF NOT EXISTS ti_category ON ti (category);",
        columns.join(", ")
    )
}

/// What every connection needs: KUMA's case-sensitive LIKE, a full sync per commit, and the
/// functions searches call.
fn prepare(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch(
        "PRAGMA case_sensitive_like = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
    )?;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    connection.create_scalar_function("xdr_in_subnet", 2, flags, |ctx| {
        // The network is a constant of the statement: parsed once, not per row.
        let network = ctx.get_or_create_aux(1, |value| {
            value
                .as_str()?
                .trim()
                .parse::<IpNet>()
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
        })?;
        let Ok(address) = ctx.get::<String>(0) else {
            return Ok(false);
        };
        Ok(address
            .trim()
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| network.contains(&a)))
    })?;
    connection.create_scalar_function("xdr_match", 2, flags, |ctx| {
        let pattern = ctx.get_or_create_aux(1, |value| {
            regex::RegexBuilder::new(value.as_str()?)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
        })?;
        Ok(ctx
            .get::<String>(0)
            .is_ok_and(|text| pattern.is_match(&text)))
    })?;
    Ok(())
}

/// Inserts `events` and their matches in `transaction`.
fn insert_events(transaction: &Connection, events: &[Event]) -> Result<(), EventStoreError> {
    let names: Vec<String> = COLUMNS.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let marks = vec!["?"; COLUMNS.len() + 1].join(", ");
    let mut insert_event = transaction
        .prepare_cached(&format!(
            "INSERT INTO events ({}, \"Extra\") VALUES ({marks})",
            names.join(", ")
        ))
        .map_err(failure)?;
    let mut insert_match = transaction
        .prepare_cached(
            "INSERT INTO ti (event, field, value, category, indicator, supplier, indicator_type, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(failure)?;
    for event in events {
        insert_event
            .execute(params_from_iter(row_of(event)))
            .map_err(failure)?;
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

fn clone_error(error: &EventStoreError) -> EventStoreError {
    use xdr_mesh::error::ServiceError;
    EventStoreError::Store(StoreFailure::with_code(error.code(), error))
}

impl EventStore for SqliteStore {
    fn insert_batches(&self, batches: &[&[Event]]) -> Vec<Result<(), EventStoreError>> {
        let mut writer = locked(&self.writer);
        let commit = match writer.transaction() {
            Ok(commit) => commit,
            Err(error) => return batches.iter().map(|_| Err(failure_ref(&error))).collect(),
        };
        // Each batch in a savepoint of its own: one that fails (an id stored before) is
        // undone alone, and the rest share one commit — one fsync for them all.
        let mut outcomes = Vec::with_capacity(batches.len());
        for events in batches {
            let outcome = (|| {
                commit.execute_batch("SAVEPOINT batch").map_err(failure)?;
                match insert_events(&commit, events) {
                    Ok(()) => commit.execute_batch("RELEASE batch").map_err(failure),
                    Err(error) => {
                        commit
                            .execute_batch("ROLLBACK TO batch; RELEASE batch")
                            .map_err(failure)?;
                        Err(error)
                    }
                }
            })();
            outcomes.push(outcome);
        }
        if let Err(error) = commit.commit() {
            let error = failure_ref(&error);
            return outcomes
                .into_iter()
                .map(|_| Err(clone_error(&error)))
                .collect();
        }
        outcomes
    }

    fn delete_older_than(&self, timestamp_ms: i64) -> Result<u64, EventStoreError> {
        let mut writer = locked(&self.writer);
        let delete = writer.transaction().map_err(failure)?;
        delete
            .execute(
                "DELETE FROM ti WHERE event IN (SELECT rowid FROM events WHERE \"Timestamp\" < ?1)",
                [timestamp_ms],
            )
            .map_err(failure)?;
        let deleted = delete
            .execute(
                "DELETE FROM events WHERE \"Timestamp\" < ?1",
                [timestamp_ms],
            )
            .map_err(failure)?;
        delete.commit().map_err(failure)?;
        Ok(deleted as u64)
    }

    fn search(&self, search: &Search) -> Result<Found, EventStoreError> {
        let mut reader = locked(&self.reader);
        let deadline = Instant::now() + SEARCH_TIME_LIMIT;
        // Checked every 10,000 virtual-machine steps: past the deadline the statement stops.
        reader
            .progress_handler(10_000, Some(move || Instant::now() > deadline))
            .map_err(failure)?;
        let result = run(&reader, search);
        reader
            .progress_handler(0, None::<fn() -> bool>)
            .map_err(failure)?;
        result
    }
}

fn run(connection: &Connection, search: &Search) -> Result<Found, EventStoreError> {
    let rendered = render(search);
    let mut statement = connection.prepare(&rendered.sql).map_err(failure)?;
    let mut rows = statement
        .query(params_from_iter(rendered.params.iter()))
        .map_err(failure)?;
    // What the answer holds so far, bounded whatever the rows hold.
    let mut bytes = 0;
    let mut count = |size: usize| {
        bytes += size;
        if bytes > MAX_RESULT_BYTES {
            Err(EventStoreError::TooLarge(MAX_RESULT_BYTES))
        } else {
            Ok(())
        }
    };
    match &search.select {
        Projection::Events => {
            let mut events = Vec::new();
            let mut rowids = Vec::new();
            while let Some(row) = rows.next().map_err(failure)? {
                rowids.push(row.get::<_, i64>(0).map_err(failure)?);
                let event = event_of(row).map_err(failure)?;
                count(prost::Message::encoded_len(&event))?;
                events.push(event);
            }
            drop(rows);
            attach_matches(connection, &rowids, &mut events, &mut count)?;
            Ok(Found::Events(events))
        }
        Projection::Items(items) => {
            let columns = items.iter().map(|(_, name)| name.clone()).collect();
            let mut found = Vec::new();
            while let Some(row) = rows.next().map_err(failure)? {
                let mut cells = Vec::with_capacity(items.len());
                for i in 0..items.len() {
                    let cell = match row.get::<_, Value>(i).map_err(failure)? {
                        Value::Null => Cell::Null,
                        Value::Integer(n) => Cell::Integer(n),
                        Value::Real(n) => Cell::Number(n),
                        Value::Text(text) => Cell::Text(text),
                        Value::Blob(bytes) => Cell::Text(String::from_utf8_lossy(&bytes).into()),
                    };
                    count(match &cell {
                        Cell::Text(text) => text.len() + 4,
                        _ => 10,
                    })?;
                    cells.push(cell);
                }
                found.push(cells);
            }
            Ok(Found::Rows {
                columns,
                rows: found,
            })
        }
    }
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

/// An event read back from its row (rowid first, then the schema's columns).
fn event_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let mut event = Event::default();
    for (i, column) in COLUMNS.iter().enumerate() {
        let value: Value = row.get(i + 1)?;
        match (column.name, value) {
            (_, Value::Null) => {}
            ("Id", Value::Text(text)) => event.id = text,
            ("Timestamp", Value::Integer(n)) => event.timestamp_ms = n,
            ("Tenant", Value::Text(text)) => event.tenant = text,
            ("Collector", Value::Text(text)) => event.collector = text,
            ("Raw", Value::Text(text)) => event.raw = text,
            ("EnrichmentStatus", Value::Text(text)) => {
                event.enrichment_status =
                    EnrichmentStatus::from_str_name(&format!("ENRICHMENT_STATUS_{text}"))
                        .map_or(0, |s| s as i32);
            }
            (name, Value::Integer(n)) => {
                event.fields.insert(
                    name.to_owned(),
                    FieldValue {
                        kind: Some(field_value::Kind::Integer(n)),
                    },
                );
            }
            (name, Value::Text(text)) => {
                event.fields.insert(
                    name.to_owned(),
                    FieldValue {
                        kind: Some(field_value::Kind::Text(text)),
                    },
                );
            }
            _ => {}
        }
    }
    // Fields outside the schema, kept as text in `Extra`.
    if let Value::Text(extra) = row.get(COLUMNS.len() + 1)?
        && let Ok(extra) = serde_json::from_str::<BTreeMap<String, String>>(&extra)
    {
        for (name, text) in extra {
            event.fields.insert(
                name,
                FieldValue {
                    kind: Some(field_value::Kind::Text(text)),
                },
            );
        }
    }
    Ok(event)
}

/// The status as the `EnrichmentStatus` column holds it.
fn status_name(status: EnrichmentStatus) -> &'static str {
    status
        .as_str_name()
        .trim_start_matches("ENRICHMENT_STATUS_")
}

/// Reads the TI matches of the events at `rowids` into them.
fn attach_matches(
    connection: &Connection,
    rowids: &[i64],
    events: &mut [Event],
    count: &mut impl FnMut(usize) -> Result<(), EventStoreError>,
) -> Result<(), EventStoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT field, value, category, indicator, supplier, indicator_type, context FROM ti WHERE event = ? ORDER BY rowid",
        )
        .map_err(failure)?;
    for (rowid, event) in rowids.iter().zip(events.iter_mut()) {
        let matches = statement.query_map([rowid], |row| {
            let context: Option<String> = row.get(6)?;
            Ok(TiMatch {
                field: row.get(0)?,
                value: row.get(1)?,
                category: row.get(2)?,
                matched_indicator: row.get(3)?,
                supplier: row.get(4)?,
                indicator_type: row.get(5)?,
                context: context
                    .and_then(|c| serde_json::from_str(&c).ok())
                    .unwrap_or_default(),
            })
        });
        event.ti = matches
            .and_then(|found| found.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(failure)?;
        count(event.ti.iter().map(prost::Message::encoded_len).sum())?;
    }
    Ok(())
}

#[cfg(test)]
mod constructs;
#[cfg(test)]
mod tests;

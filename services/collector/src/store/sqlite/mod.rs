//! The embedded event store: SQLite in WAL mode under the collector's data directory. Events
//! are rows of `events` (the schema's columns, the rest of their fields as JSON in `Extra`),
//! their TI matches rows of `ti`. Batches loaded together are one transaction, committed
//! with a full sync before `load` returns, with the disk buffer's sequence they reach
//! (`write.rs`). Searches run on a
//! connection of their own, with a time limit (`read.rs`).

mod grouped;
mod maintenance;
mod read;
mod write;

use std::{
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use rusqlite::{
    Connection, ErrorCode as SqliteCode, OpenFlags, OptionalExtension, functions::FunctionFlags,
};
use xdr_mesh::{error::ErrorCode, store::StoreFailure};
use xdr_proto::pb::Event;

use super::{EventStore, EventStoreError, Found};
use crate::search::{
    query::Search,
    schema::{COLUMNS, ColumnType},
};

/// Longest a search may run.
const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Events deleted by retention in one transaction.
const RETENTION_CHUNK: i64 = 5_000;
/// Largest compiled regular expression of `match()`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Stops the checkpoint and statistics thread when the store goes.
    _maintenance: maintenance::Maintenance,
}

fn failure(error: rusqlite::Error) -> EventStoreError {
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
        // Checkpoints mostly run on a thread of their own (`maintenance.rs`); the writer's
        // own, past 64 MiB of WAL (4096 pages of 16 KiB), copies what is left and lets the WAL start over (under a
        // steady stream of commits a checkpoint elsewhere never catches up with the last
        // frame). Savepoints journal in memory (a search's sorting keeps to temporary
        // files: a large GROUP BY must not hold its groups in memory).
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 4096; PRAGMA temp_store = MEMORY;")
            .map_err(failure)?;
        let maintenance = maintenance::start(path).map_err(failure)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            _maintenance: maintenance,
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

/// The tables and indexes, from the one schema. Every search is within one tenant, so the
/// indexes for equality on the common fields lead with it and end with the time (the seed's
/// `WHERE RequestUrl = … ORDER BY Timestamp DESC` reads exactly its rows, in order); they
/// leave out events without the field. Time alone is indexed without the tenant: most
/// events belong to a few tenants, and a tenant-led time index made SQLite read a whole
/// tenant through it, row by row, where a scan is several times faster (a `GROUP BY` over
/// ten million events: 14 s against 8.7 s); retention deletes by time through it. 16 KiB pages: a third faster to load than 4 KiB at
/// millions of events (`xdr-bench collector`; a new store only).
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
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS events (rowid INTEGER PRIMARY KEY, {}, \"Extra\" TEXT);
         CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (\"Id\");
         DROP INDEX IF EXISTS events_time;
         CREATE INDEX IF NOT EXISTS events_by_time ON events (\"Timestamp\");
         DROP INDEX IF EXISTS events_url;
         DROP INDEX IF EXISTS events_tenant_url;
         DROP INDEX IF EXISTS events_source;
         DROP INDEX IF EXISTS events_tenant_source;
         DROP INDEX IF EXISTS events_destination;
         DROP INDEX IF EXISTS events_tenant_destination;
         DROP INDEX IF EXISTS events_hash;
         DROP INDEX IF EXISTS events_tenant_hash;
         CREATE INDEX IF NOT EXISTS events_by_url
             ON events (\"Tenant\", \"RequestUrl\", \"Timestamp\") WHERE \"RequestUrl\" IS NOT NULL;
         CREATE INDEX IF NOT EXISTS events_by_source
             ON events (\"Tenant\", \"SourceAddress\", \"Timestamp\") WHERE \"SourceAddress\" IS NOT NULL;
         CREATE INDEX IF NOT EXISTS events_by_destination
             ON events (\"Tenant\", \"DestinationAddress\", \"Timestamp\") WHERE \"DestinationAddress\" IS NOT NULL;
         CREATE INDEX IF NOT EXISTS events_by_hash
             ON events (\"Tenant\", \"FileHash\", \"Timestamp\") WHERE \"FileHash\" IS NOT NULL;
         CREATE TABLE IF NOT EXISTS ti (event INTEGER NOT NULL REFERENCES events (rowid),
             field TEXT, value TEXT, category TEXT, indicator TEXT, supplier TEXT,
             indicator_type INTEGER, context TEXT);
         CREATE INDEX IF NOT EXISTS ti_event ON ti (event);
         CREATE INDEX IF NOT EXISTS ti_category ON ti (category);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        columns.join(", ")
    )
}

/// What every connection needs: KUMA's case-sensitive LIKE, a full sync per commit, and the
/// functions searches call.
fn prepare(connection: &Connection) -> rusqlite::Result<()> {
    // A large page cache keeps the indexes' hot pages in memory (a small one spills pages
    // to the WAL mid-transaction and reads them back); memory-mapped reads save a system call
    // per page.
    connection.execute_batch(
        "PRAGMA case_sensitive_like = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -262144; PRAGMA mmap_size = 4294967296;",
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

impl EventStore for SqliteStore {
    fn load(&self, batches: &[&[Event]], through: Option<u64>) -> Result<(), EventStoreError> {
        let mut writer = locked(&self.writer);
        let commit = writer.transaction().map_err(failure)?;
        write::load(&commit, batches, through)?;
        commit.commit().map_err(failure)
    }

    fn loaded_through(&self) -> Result<u64, EventStoreError> {
        let writer = locked(&self.writer);
        let through: Option<i64> = writer
            .query_row(
                "SELECT value FROM meta WHERE key = 'loaded_through'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(failure)?;
        Ok(through.unwrap_or(0) as u64)
    }

    fn delete_older_than(&self, timestamp_ms: i64) -> Result<u64, EventStoreError> {
        // In transactions of a few thousand events, the oldest first, the writer free in
        // between: the loader's next transaction waits one chunk, not the whole deletion.
        let mut deleted = 0;
        loop {
            let mut writer = locked(&self.writer);
            let delete = writer.transaction().map_err(failure)?;
            let oldest =
                "SELECT rowid FROM events WHERE \"Timestamp\" < ?1 ORDER BY \"Timestamp\" LIMIT ?2";
            let params = rusqlite::params![timestamp_ms, RETENTION_CHUNK];
            delete
                .execute(&format!("DELETE FROM ti WHERE event IN ({oldest})"), params)
                .map_err(failure)?;
            let chunk = delete
                .execute(
                    &format!("DELETE FROM events WHERE rowid IN ({oldest})"),
                    params,
                )
                .map_err(failure)?;
            delete.commit().map_err(failure)?;
            deleted += chunk as u64;
            if (chunk as i64) < RETENTION_CHUNK {
                return Ok(deleted);
            }
        }
    }

    fn search_pieces(
        &self,
        search: &Search,
        piece_bytes: usize,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        let mut reader = locked(&self.reader);
        let deadline = Instant::now() + SEARCH_TIME_LIMIT;
        // Checked every 10,000 virtual-machine steps: past the deadline the statement stops
        // (the time a slow reader of the pieces takes counts too).
        reader
            .progress_handler(10_000, Some(move || Instant::now() > deadline))
            .map_err(failure)?;
        let result = read::run_pieces(
            &reader,
            search,
            piece_bytes,
            sink,
            read::GroupBy::Hashed(grouped::Limits::SEARCH),
        );
        reader
            .progress_handler(0, None::<fn() -> bool>)
            .map_err(failure)?;
        result
    }
}

#[cfg(test)]
mod constructs;
#[cfg(test)]
mod grouped_tests;
#[cfg(test)]
mod tests;

//! The embedded event store: SQLite in WAL mode under the collector's data directory. Events
//! are rows of `events` (the schema's columns, the rest of their fields as JSON in `Extra`),
//! their TI matches rows of `ti`. Batches loaded together are one transaction, committed
//! with a full sync before `load` returns, with the disk buffer's sequence they reach
//! (`write.rs`). Searches run on a
//! connection of their own, with a time limit (`read.rs`).

mod aggregates;
mod grouped;
mod maintenance;
mod partitions;
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
use crate::search::query::Search;

/// Longest a search may run.
const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Events deleted by retention in one transaction.
const RETENTION_CHUNK: i64 = 5_000;
/// Largest compiled regular expression of `match()`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub struct SqliteStore {
    writer: Mutex<Writing>,
    /// Searches run on the first; a GROUP BY over several partitions scans half of them on
    /// the second when no other search holds it.
    readers: [Mutex<Connection>; 2],
    /// Stops the checkpoint and statistics thread when the store goes.
    _maintenance: maintenance::Maintenance,
}

/// The writer's connection and where it inserts.
struct Writing {
    connection: Connection,
    newest: partitions::Newest,
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

fn locked<T>(connection: &Mutex<T>) -> MutexGuard<'_, T> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, EventStoreError> {
        Self::open_with(path, partitions::PARTITION_EVENTS)
    }

    /// Opens (or creates) the store at `path`, starting a partition every
    /// `partition_events` events.
    pub(crate) fn open_with(path: &Path, partition_events: u64) -> Result<Self, EventStoreError> {
        let writer = Connection::open(path).map_err(failure)?;
        // Before the schema: the upkeep thread of a store just closed (or `PRAGMA optimize`
        // of one opening) may hold a lock for a moment; without a timeout the migration fails
        // at once with "database is locked".
        writer
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(failure)?;
        writer.execute_batch(schema_sql()).map_err(failure)?;
        partitions::ensure(&writer).map_err(failure)?;
        let open_reader = || {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            prepare(&reader)?;
            Ok(Mutex::new(reader))
        };
        let readers = [
            open_reader().map_err(failure)?,
            open_reader().map_err(failure)?,
        ];
        prepare(&writer).map_err(failure)?;
        // Checkpoints mostly run on a thread of their own (`maintenance.rs`); the writer's
        // own, past 64 MiB of WAL (4096 pages of 16 KiB), copies what is left and lets the
        // WAL start over (under a steady stream of commits a checkpoint elsewhere never
        // catches up with the last frame). Savepoints journal in memory (a search's sorting
        // keeps to temporary files: a large GROUP BY must not hold its groups in memory).
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 4096; PRAGMA temp_store = MEMORY;")
            .map_err(failure)?;
        let newest = partitions::Newest::load(&writer, partition_events).map_err(failure)?;
        let maintenance = maintenance::start(path).map_err(failure)?;
        Ok(SqliteStore {
            writer: Mutex::new(Writing {
                connection: writer,
                newest,
            }),
            readers,
            _maintenance: maintenance,
        })
    }
}

/// The store's tables and indexes: the partitions (`partitions.rs`), each event's TI
/// matches, and the loader's position. 16 KiB pages: a third faster to load than 4 KiB at
/// millions of events (`xdr-bench collector`; a new store only).
fn schema_sql() -> &'static str {
    "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         DROP INDEX IF EXISTS events_time;
         DROP INDEX IF EXISTS events_url;
         DROP INDEX IF EXISTS events_tenant_url;
         DROP INDEX IF EXISTS events_source;
         DROP INDEX IF EXISTS events_tenant_source;
         DROP INDEX IF EXISTS events_destination;
         DROP INDEX IF EXISTS events_tenant_destination;
         DROP INDEX IF EXISTS events_hash;
         DROP INDEX IF EXISTS events_tenant_hash;
         CREATE TABLE IF NOT EXISTS ti (event INTEGER NOT NULL,
             field TEXT, value TEXT, category TEXT, indicator TEXT, supplier TEXT,
             indicator_type INTEGER, context TEXT);
         CREATE INDEX IF NOT EXISTS ti_event ON ti (event);
         CREATE INDEX IF NOT EXISTS ti_category ON ti (category);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
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
        let Writing { connection, newest } = &mut *writer;
        let commit = connection.transaction().map_err(failure)?;
        let loaded = write::load(&commit, newest, batches, through)
            .and_then(|()| commit.commit().map_err(failure));
        if loaded.is_err() {
            // Rolled back: what was counted in the newest partition, or a partition started,
            // is not there.
            newest.reload(connection).map_err(failure)?;
        }
        loaded
    }

    fn loaded_through(&self) -> Result<u64, EventStoreError> {
        let writer = locked(&self.writer);
        let through: Option<i64> = writer
            .connection
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
        // A transaction at a time, the writer free in between: the loader's next transaction
        // waits one chunk, not the whole deletion.
        let mut deleted = 0;
        loop {
            let mut writer = locked(&self.writer);
            let Writing { connection, newest } = &mut *writer;
            let delete = connection.transaction().map_err(failure)?;
            let chunk = write::delete_oldest(&delete, &newest.name, timestamp_ms, RETENTION_CHUNK)?;
            delete.commit().map_err(failure)?;
            if chunk == 0 {
                return Ok(deleted);
            }
            deleted += chunk;
        }
    }

    fn search_pieces(
        &self,
        search: &Search,
        piece_bytes: usize,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        let deadline = Instant::now() + SEARCH_TIME_LIMIT;
        let mut reader = locked(&self.readers[0]);
        let reader = Snapshot::begin(&mut reader, deadline)?;
        let mut helper = self.readers[1].try_lock().ok();
        let mut helper = match helper.as_deref_mut() {
            Some(helper) => Snapshot::begin(helper, deadline).ok(),
            None => None,
        };
        let tables = partitions::names(reader.connection).map_err(failure)?;
        read::run_pieces(
            read::Readers {
                first: reader.connection,
                second: helper.as_mut().map(|h| &mut *h.connection),
            },
            search,
            &tables,
            piece_bytes,
            sink,
            read::GroupBy::Hashed(grouped::Limits::SEARCH),
        )
    }
}

/// A search's read transaction on a reader: one snapshot for the partition list and the
/// search (a partition retention drops meanwhile is still there for it), and a deadline —
/// checked every 10,000 virtual-machine steps, past it the statement stops (the time a slow
/// reader of the pieces takes counts too). Both end when this goes.
struct Snapshot<'c> {
    connection: &'c mut Connection,
}

impl<'c> Snapshot<'c> {
    fn begin(connection: &'c mut Connection, deadline: Instant) -> Result<Self, EventStoreError> {
        connection
            .progress_handler(10_000, Some(move || Instant::now() > deadline))
            .map_err(failure)?;
        let snapshot = Snapshot { connection };
        snapshot
            .connection
            .execute_batch("BEGIN")
            .map_err(failure)?;
        Ok(snapshot)
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.connection.execute_batch("ROLLBACK");
        let _ = self.connection.progress_handler(0, None::<fn() -> bool>);
    }
}

#[cfg(test)]
mod constructs;
#[cfg(test)]
mod grouped_tests;
#[cfg(test)]
mod tests;

//! Where accepted events are kept and searched: one trait, so the scale-out engine
//! (ClickHouse) can follow the embedded default (SQLite). Batches reach the store from the
//! collector's disk buffer (`crate::buffer`), loaded in large transactions.

mod clickhouse;
pub(crate) mod columns;
#[doc(hidden)]
pub mod known_answers;
mod sqlite;

pub use clickhouse::{ClickHouseStore, Target as ClickHouseTarget, TargetError};
pub use sqlite::SqliteStore;

use xdr_mesh::{
    error::{ErrorCode, ServiceError},
    store::StoreFailure,
};
use xdr_proto::pb::Event;

use crate::search::query::Search;

/// What a search answers.
#[derive(Debug, PartialEq)]
pub enum Found {
    /// `SELECT *`: whole events, with their TI matches.
    Events(Vec<Event>),
    /// Any other projection: its column names, then rows of values.
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<Cell>>,
    },
}

/// One value of a result row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Number(f64),
    Text(String),
}

/// The largest answer `search` gives whole, encoded.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error(transparent)]
    Store(#[from] StoreFailure),
    #[error("the search ran past its time limit of {0:?}: narrow it")]
    TooSlow(std::time::Duration),
    #[error(
        "the search answers more than {0} bytes: add a LIMIT, name fewer columns, or use SearchEventsStream"
    )]
    TooLarge(usize),
}

impl ServiceError for EventStoreError {
    fn code(&self) -> ErrorCode {
        match self {
            EventStoreError::Store(failure) => failure.code(),
            EventStoreError::TooSlow(_) => ErrorCode::DeadlineExceeded,
            EventStoreError::TooLarge(_) => ErrorCode::ResourceExhausted,
        }
    }
}

/// How the loader groups buffered batches into one `load` for a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Events in one load at most.
    pub max_events: usize,
    /// While a group holds fewer than `few_events`, the loader waits up to `linger` for more
    /// (unless a search is waiting for what was acknowledged).
    pub few_events: usize,
    pub linger: std::time::Duration,
}

impl Default for Grouping {
    /// An indexed embedded store: large transactions, a short wait.
    fn default() -> Self {
        Grouping {
            max_events: 50_000,
            few_events: 5_000,
            linger: std::time::Duration::from_millis(10),
        }
    }
}

pub trait EventStore: Send + Sync {
    /// How the loader should group batches for this store.
    fn grouping(&self) -> Grouping {
        Grouping::default()
    }

    /// Stores `batches` (events and their TI matches) in one transaction, durable before it
    /// returns; an event whose id the store holds already is skipped (batches loaded again
    /// after a crash store nothing twice). `through`, when given, is recorded with them: the
    /// disk buffer's sequence the store now holds.
    fn load(&self, batches: &[&[Event]], through: Option<u64>) -> Result<(), EventStoreError>;

    /// The disk buffer's sequence the store holds (0: none yet).
    fn loaded_through(&self) -> Result<u64, EventStoreError>;

    /// Stores `events` durably, all or none (outside the disk buffer: tests, benchmarks).
    fn insert(&self, events: &[Event]) -> Result<(), EventStoreError> {
        self.load(&[events], None)
    }

    /// Deletes the events older than `timestamp_ms` (retention); how many.
    fn delete_older_than(&self, timestamp_ms: i64) -> Result<u64, EventStoreError>;
    /// Runs a checked search, handing `sink` its answer in pieces: a piece goes once it holds
    /// more than `piece_bytes` (encoded), the last (flagged `true`, possibly empty) at the end.
    /// An error from `sink` stops the search and is its outcome.
    fn search_pieces(
        &self,
        search: &Search,
        piece_bytes: usize,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError>;

    /// Runs a checked search; its whole answer, refused past [`MAX_ANSWER_BYTES`] (what a
    /// gRPC client takes in one message by default) rather than built.
    fn search(&self, search: &Search) -> Result<Found, EventStoreError> {
        let mut whole = None;
        self.search_pieces(search, MAX_ANSWER_BYTES, &mut |piece, last| {
            if !last {
                return Err(EventStoreError::TooLarge(MAX_ANSWER_BYTES));
            }
            whole = Some(piece);
            Ok(())
        })?;
        Ok(whole.expect("the last piece always comes"))
    }
}

//! Where accepted events are kept and searched: one trait, so the scale-out engine
//! (ClickHouse) can follow the embedded default (SQLite). An event batch is durable when
//! `insert` (or `insert_batches`) returns.

mod sqlite;

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

pub trait EventStore: Send + Sync {
    /// Keeps each batch of `batches` (its events and their TI matches) durably, all of a batch
    /// or none of it, every batch on its own: one batch failing (an id stored before) fails
    /// only itself. Batches written together share one sync to disk (group commit).
    fn insert_batches(&self, batches: &[&[Event]]) -> Vec<Result<(), EventStoreError>>;

    /// Keeps `events` durably; all or none.
    fn insert(&self, events: &[Event]) -> Result<(), EventStoreError> {
        self.insert_batches(&[events])
            .pop()
            .expect("one outcome per batch")
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

//! The scale-out event store: events in ClickHouse, KUMA's own store, over its HTTP interface
//! — one server, or the shards of a cluster, searched through a `Distributed` table. Batches
//! come from the collector's disk buffer as for the embedded store; a load sends each shard
//! a share into its own tables, is done only once every shard holds its share, and the
//! buffer's sequence it reaches is then kept in a file beside the buffer.
//!
//! ClickHouse has no unique keys, so an event is kept from being stored twice the way the
//! buffer could store it twice: when the last insert may have landed without the store
//! knowing (after a start, or an insert that failed), the ids of the events loaded next are
//! looked up first, within their tenants and time span, and the ones found are left out.
//! An id a caller sends again much later, outside a replay, is stored again (the embedded
//! store keeps every id unique).

mod answer;
mod bodies;
mod first_events;
mod http;
mod load;
mod lookup;
mod native;
mod retention;
mod rows;
mod schema;
mod target;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use xdr_mesh::{error::ErrorCode, store::StoreFailure};
use xdr_proto::pb::Event;

pub use self::target::{Target, TargetError};
use self::{
    answer::{Answer, Lines},
    http::{ClickHouseError, Http},
};
use super::{EventStore, EventStoreError, Found, Grouping};
use crate::search::{
    clickhouse::{Narrowing, quoted, render},
    lookup::lookup as lookup_of,
    query::{Projection, Search},
};

/// Longest a search may run (ClickHouse stops it; the answer is read within a little more).
const SEARCH_TIME_LIMIT: Duration = Duration::from_secs(10);
/// How often a search is sent when a shard's connection fails before any answer.
const SEARCH_TRIES: u32 = 2;
const SEARCH_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest any other statement may take: an insert of the loader's largest group, schema.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Ids looked up in one statement (ClickHouse reads at most 256 KiB of query text).
const IDS_PER_LOOKUP: usize = 2_000;
/// Room for a `Native` block's header: each column's name and type (about 1.4 KiB).
const BLOCK_HEADER_ROOM: usize = 8 << 10;
/// The file beside the disk buffer that holds the sequence ClickHouse holds.
const LOADED_THROUGH_FILE: &str = "clickhouse-loaded-through";
/// The most bytes of insert bodies kept for later inserts (a load's bodies together are
/// about 100 MiB in the bench, each with a quarter to spare, however many servers share
/// it), and of the kept event block.
const MOST_SPARE_BYTES: usize = 128 << 20;

pub struct ClickHouseStore {
    target: Target,
    http: Http,
    /// Runs the HTTP exchanges: the store's callers are blocking threads (the loader, search
    /// tasks), not tasks of the service's runtime.
    runtime: Option<Runtime>,
    /// The tables are made (at open, or at the first statement after ClickHouse came back).
    ready: AtomicBool,
    /// The last insert may have landed unbeknown: the next one looks its ids up first.
    uncertain: AtomicBool,
    /// The host tried first; moves on when one fails.
    preferred: AtomicUsize,
    loaded_through: PathBuf,
    nullable: Vec<bool>,
    /// Bodies of earlier inserts, emptied, for the next (`load`).
    spare_bodies: bodies::SpareBodies,
    spare_block: bodies::SpareBlock,
}

pub(crate) fn store_error(error: ClickHouseError) -> EventStoreError {
    let code = match &error {
        ClickHouseError::Refused { code: 159, .. } => {
            return EventStoreError::TooSlow(SEARCH_TIME_LIMIT);
        }
        error if error.is_transient() => ErrorCode::Unavailable,
        // What a query ClickHouse cannot run says: types that do not compare, a regular
        // expression that does not compile, and the like.
        ClickHouseError::Refused {
            code: 6 | 36 | 42 | 43 | 44 | 47 | 53 | 62 | 70 | 184 | 215 | 386 | 427,
            ..
        } => ErrorCode::InvalidArgument,
        _ => ErrorCode::Internal,
    };
    EventStoreError::Store(StoreFailure::with_code(
        code,
        format!("event store: {error}"),
    ))
}

impl ClickHouseStore {
    /// The store at `target`, keeping its position in `state_dir`. The tables are made now
    /// when ClickHouse answers, else before the first statement that reaches it.
    pub fn open(target: Target, state_dir: &Path) -> Result<Self, EventStoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("clickhouse-io")
            .enable_all()
            .build()
            .map_err(|e| {
                EventStoreError::Store(StoreFailure::with_code(
                    ErrorCode::Internal,
                    format!("event store: starting its I/O thread: {e}"),
                ))
            })?;
        std::fs::create_dir_all(state_dir).map_err(|e| io_failure("making its folder", &e))?;
        let store = ClickHouseStore {
            http: Http::new(&target.user, &target.password, STATEMENT_TIMEOUT),
            target,
            runtime: Some(runtime),
            ready: AtomicBool::new(false),
            uncertain: AtomicBool::new(true),
            preferred: AtomicUsize::new(0),
            loaded_through: state_dir.join(LOADED_THROUGH_FILE),
            nullable: rows::nullable_columns(),
            spare_bodies: bodies::SpareBodies::new(MOST_SPARE_BYTES),
            spare_block: bodies::SpareBlock::new(MOST_SPARE_BYTES),
        };
        if let Err(error) = store.block_on(store.ensure_ready()) {
            tracing::warn!(%error, target = ?store.target, "ClickHouse is not ready; events wait in the disk buffer until it is");
        }
        Ok(store)
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
            .block_on(future)
    }

    /// The hosts in the order to try them.
    fn hosts(&self) -> impl Iterator<Item = &str> {
        let first = self.preferred.load(Ordering::Relaxed);
        let hosts = &self.target.hosts;
        (0..hosts.len()).map(move |i| hosts[(first + i) % hosts.len()].as_str())
    }

    /// Runs `sql` on `host`; the answer's text.
    async fn execute(
        &self,
        host: &str,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<String, ClickHouseError> {
        self.http
            .text(host, settings, Bytes::from(sql.to_owned()))
            .await
    }

    /// Runs `sql` on the first host that answers.
    async fn execute_anywhere(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<String, ClickHouseError> {
        let mut last = None;
        for (i, host) in self.hosts().enumerate() {
            match self.execute(host, sql, settings).await {
                Err(error @ ClickHouseError::Unreachable { .. }) => {
                    self.preferred.fetch_add(i + 1, Ordering::Relaxed);
                    last = Some(error);
                }
                answer => return answer,
            }
        }
        Err(last.expect("a target has a host"))
    }

    /// Makes the database and the tables on every host when absent, and the columns the
    /// schema gained.
    async fn ensure_ready(&self) -> Result<(), ClickHouseError> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let target = &self.target;
        let local = target.local_table();
        for host in &target.hosts {
            self.execute(
                host,
                &format!("CREATE DATABASE IF NOT EXISTS {}", target.database),
                &[],
            )
            .await?;
            self.execute(host, &schema::create_local(&local), &[])
                .await?;
            let present = self
                .execute(
                    host,
                    &format!(
                        "SELECT name FROM system.columns WHERE database = {} AND table = {} FORMAT JSONEachRow",
                        quoted(&target.database),
                        quoted(local.rsplit('.').next().unwrap_or_default())
                    ),
                    &[],
                )
                .await?;
            let present: Vec<String> = (json_rows(&present)?.iter())
                .map(|row| text_of(row, "name"))
                .collect();
            for alter in schema::missing_columns(&local, &present) {
                self.execute(host, &alter, &[]).await?;
            }
            self.ensure_lookup(host).await?;
            if let Some(cluster) = &target.cluster {
                self.execute(
                    host,
                    &schema::create_distributed(&target.table(), &local, cluster, &target.database),
                    &[],
                )
                .await?;
            }
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn search_answer(
        &self,
        search: &Search,
        piece_bytes: usize,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        self.ensure_ready().await.map_err(store_error)?;
        let lookup_table = self.target.lookup_table();
        let sql = render(
            search,
            &self.target.table(),
            Some(Narrowing::Lookup(&lookup_table)),
        );
        let limit = SEARCH_TIME_LIMIT.as_secs().to_string();
        let settings = [
            // Read-only whatever the statement says, however the checker erred.
            ("readonly", "2"),
            ("max_execution_time", limit.as_str()),
            ("output_format_json_quote_64bit_integers", "0"),
            // A search narrowed by a lookup reads a few rows in each of a few hundred granules
            // of every column: a 1 MiB read buffer per seek made the seed's SELECT over 15 M
            // events 345 ms, 64 KiB 300 ms; scans and GROUP BY took the same either way.
            ("max_read_buffer_size", "65536"),
            // A search names a looked-up value twice (its filter and its lookup), each
            // literal escaped up to four times its length: room for the longest search.
            ("max_query_size", "1048576"),
        ];
        let deadline = tokio::time::Instant::now() + SEARCH_TIME_LIMIT + Duration::from_secs(5);
        let too_slow = |_| EventStoreError::TooSlow(SEARCH_TIME_LIMIT);
        if let Some(lookup) = lookup_of(search)
            && let Some((descending, count)) = lookup.first
            && count <= first_events::MOST_FIRST
            && search.select == Projection::Events
        {
            let read = self.first_events(
                search,
                &lookup,
                (descending, count),
                &settings,
                piece_bytes,
                sink,
            );
            if tokio::time::timeout_at(deadline, read)
                .await
                .map_err(too_slow)??
            {
                return Ok(());
            }
        }
        let host = self.hosts().next().expect("a target has a host").to_owned();
        let sql = Bytes::from(sql);
        let mut tries = 0;
        let mut body = loop {
            tries += 1;
            let sent =
                tokio::time::timeout_at(deadline, self.http.send(&host, &settings, sql.clone()))
                    .await
                    .map_err(too_slow)?;
            match sent {
                // Nothing was answered yet: sent once more, a while later. A connection between
                // shards reset under load failed a search that the next one answered.
                Err(error) if error.is_shard_connection_failure() && tries < SEARCH_TRIES => {
                    tracing::debug!(%error, "a search is sent again");
                    tokio::time::sleep(SEARCH_RETRY_PAUSE).await;
                }
                sent => {
                    break sent.map_err(|error| {
                        if matches!(error, ClickHouseError::Unreachable { .. }) {
                            self.preferred.fetch_add(1, Ordering::Relaxed);
                        }
                        store_error(error)
                    })?;
                }
            }
        };
        let columns = match &search.select {
            Projection::Events => None,
            Projection::Items(items) => Some(items.iter().map(|(_, name)| name.clone()).collect()),
        };
        let (mut lines, mut answer) = (Lines::default(), Answer::new(columns, piece_bytes));
        while let Some(frame) = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(too_slow)?
        {
            let frame = frame.map_err(|e| {
                store_error(ClickHouseError::Protocol(format!(
                    "reading the answer: {e}"
                )))
            })?;
            if let Ok(data) = frame.into_data() {
                for line in lines.push(&data).map_err(store_error)? {
                    answer.take(&line, sink)?;
                }
            }
        }
        answer.take(&lines.rest(), sink)?;
        answer.finish(sink)
    }
}

impl Drop for ClickHouseStore {
    fn drop(&mut self) {
        // A store may be dropped on a task of the service's runtime, where a runtime cannot
        // be waited for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl EventStore for ClickHouseStore {
    /// Few large inserts: every insert makes a part on each shard, and parts are merged in
    /// the background — at a few thousand events an insert the shards spent most of their
    /// time merging and compressing (`perf` during `xdr-bench collector`). ClickHouse's
    /// advice is about one insert a second; a group is kept to a share of the ingest
    /// budget (100,000 decoded events are about 70 MiB of its 256). The events wait in the
    /// disk buffer meanwhile, acknowledged, and a search that waits for them cuts the wait
    /// short.
    fn grouping(&self) -> Grouping {
        Grouping {
            max_events: 100_000,
            few_events: 100_000,
            linger: Duration::from_millis(500),
        }
    }

    fn load(&self, batches: &[&[Event]], through: Option<u64>) -> Result<(), EventStoreError> {
        let events: Vec<&Event> = batches.iter().flat_map(|batch| batch.iter()).collect();
        if !events.is_empty() {
            self.block_on(self.insert(&events)).map_err(|error| {
                // The loader retries what is unavailable and skips what is refused: only
                // rows ClickHouse cannot read are refused for good, anything else waits in
                // the disk buffer for ClickHouse to take it.
                let refused_for_good = matches!(
                    error,
                    ClickHouseError::Refused {
                        code: 6 | 27 | 33 | 117 | 131,
                        ..
                    }
                );
                if refused_for_good {
                    return store_error(error);
                }
                EventStoreError::Store(StoreFailure::with_code(
                    ErrorCode::Unavailable,
                    format!("event store: {error}"),
                ))
            })?;
        }
        match through {
            Some(through) => self.record_loaded_through(through),
            None => Ok(()),
        }
    }

    fn loaded_through(&self) -> Result<u64, EventStoreError> {
        match std::fs::read_to_string(&self.loaded_through) {
            Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_failure("reading what it holds", &e)),
        }
    }

    fn delete_older_than(&self, timestamp_ms: i64) -> Result<u64, EventStoreError> {
        // Whole days only: a day's partition goes once all of it is past the retention.
        self.block_on(async {
            self.ensure_ready().await?;
            self.drop_days_before(timestamp_ms).await
        })
        .map_err(store_error)
    }

    fn search_pieces(
        &self,
        search: &Search,
        piece_bytes: usize,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        self.block_on(self.search_answer(search, piece_bytes, sink))
    }
}

/// The rows of a `FORMAT JSONEachRow` answer read whole (the store's own small statements).
fn json_rows(
    answer: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ClickHouseError> {
    (answer.lines())
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|_| ClickHouseError::Protocol("a row of the answer is not JSON".into()))
        })
        .collect()
}

/// Column `name` of `row` as text (a number ClickHouse quotes or not).
fn text_of(row: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    match row.get(name) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn io_failure(doing: &str, error: &std::io::Error) -> EventStoreError {
    EventStoreError::Store(StoreFailure::with_code(
        ErrorCode::Unavailable,
        format!("event store: {doing}: {error}"),
    ))
}

#[cfg(test)]
mod search_retry_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::schema::COLUMNS;

    #[test]
    fn the_schema_has_a_column_for_every_search_column() {
        let columns = schema::columns();
        for column in COLUMNS {
            assert!(columns.iter().any(|(name, _)| name == column.name));
        }
        assert_eq!(rows::nullable_columns().len(), COLUMNS.len());
    }
}

//! Reading a search's answer: the checked search rendered for SQLite and run, its rows
//! handed on in pieces of about a given size — whole events with their TI matches for
//! `SELECT *`, typed cells otherwise.

use std::collections::BTreeMap;

use prost::Message;
use rusqlite::{Connection, Rows, Statement, params_from_iter, types::Value};
use xdr_proto::pb::{Event, TiMatch};

use super::{
    EventStoreError, failure,
    grouped::{self, Outcome},
};
use crate::{
    search::{
        grouped::Grouping,
        query::{Projection, Search},
        schema::COLUMNS,
        sqlite::render,
    },
    store::{
        Cell, Found,
        columns::{self, Stored},
    },
};

/// Where a search runs: its reader, and a second one (on the same snapshot or a later one)
/// that may share the work.
pub(super) struct Readers<'c> {
    pub first: &'c Connection,
    pub second: Option<&'c mut Connection>,
}

/// Who groups the rows of a GROUP BY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GroupBy {
    /// A hash table of ours when the search allows it and its groups fit ([`grouped`]),
    /// else SQLite.
    Hashed(grouped::Limits),
    /// SQLite's GROUP BY always (it sorts every row).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the hashed answers are checked against it")
    )]
    Engine,
}

/// Runs `search` over the partition tables `tables` on `readers`, handing `sink` its answer
/// in pieces: a piece goes as soon as it holds more than `piece_bytes` (encoded), and the
/// last (`true`), possibly empty, at the end. An error from `sink` stops the search.
pub(super) fn run_pieces(
    readers: Readers<'_>,
    search: &Search,
    tables: &[String],
    piece_bytes: usize,
    sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    group_by: GroupBy,
) -> Result<(), EventStoreError> {
    let connection = readers.first;
    if let GroupBy::Hashed(limits) = group_by
        && let Some(grouping) = Grouping::of(search)
        && let Outcome::Answered = grouped::run(
            readers,
            search,
            &grouping,
            tables,
            limits,
            piece_bytes,
            sink,
        )?
    {
        return Ok(());
    }
    let rendered = render(search, tables);
    let mut statement = connection.prepare(&rendered.sql).map_err(failure)?;
    let mut rows = statement
        .query(params_from_iter(rendered.params.iter()))
        .map_err(failure)?;
    match &search.select {
        Projection::Events => {
            let mut matches = connection
                .prepare_cached(
                    "SELECT field, value, category, indicator, supplier, indicator_type, context FROM ti WHERE event = ? ORDER BY rowid",
                )
                .map_err(failure)?;
            let (mut events, mut bytes) = (Vec::new(), 0);
            while let Some(row) = rows.next().map_err(failure)? {
                let rowid: i64 = row.get(0).map_err(failure)?;
                let mut event = event_of(row).map_err(failure)?;
                event.ti = matches_of(&mut matches, rowid)?;
                bytes += event.encoded_len();
                events.push(event);
                if bytes > piece_bytes {
                    sink(Found::Events(std::mem::take(&mut events)), false)?;
                    bytes = 0;
                }
            }
            sink(Found::Events(events), true)
        }
        Projection::Items(items) => {
            let columns = items.iter().map(|(_, name)| name.clone()).collect();
            send_rows(&mut rows, columns, piece_bytes, sink)
        }
    }
}

/// Hands `sink` the typed cells of `rows`, in pieces of about `piece_bytes`.
pub(super) fn send_rows(
    rows: &mut Rows<'_>,
    columns: Vec<String>,
    piece_bytes: usize,
    sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
) -> Result<(), EventStoreError> {
    let (mut found, mut bytes) = (Vec::new(), 0);
    while let Some(row) = rows.next().map_err(failure)? {
        let mut cells = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let cell = match row.get::<_, Value>(i).map_err(failure)? {
                Value::Null => Cell::Null,
                Value::Integer(n) => Cell::Integer(n),
                Value::Real(n) => Cell::Number(n),
                Value::Text(text) => Cell::Text(text),
                Value::Blob(bytes) => Cell::Text(String::from_utf8_lossy(&bytes).into()),
            };
            bytes += match &cell {
                Cell::Text(text) => text.len() + 4,
                _ => 10,
            };
            cells.push(cell);
        }
        found.push(cells);
        if bytes > piece_bytes {
            let rows = std::mem::take(&mut found);
            sink(
                Found::Rows {
                    columns: columns.clone(),
                    rows,
                },
                false,
            )?;
            bytes = 0;
        }
    }
    sink(
        Found::Rows {
            columns,
            rows: found,
        },
        true,
    )
}

/// An event read back from its row (rowid first, then the schema's columns).
fn event_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let mut event = Event::default();
    for (i, column) in COLUMNS.iter().enumerate() {
        let value = match row.get::<_, Value>(i + 1)? {
            Value::Integer(n) => Stored::Integer(n),
            Value::Text(text) => Stored::Text(text.into()),
            _ => Stored::Null,
        };
        columns::put(&mut event, column.name, value);
    }
    // Fields outside the schema, kept as text in `Extra`.
    if let Value::Text(extra) = row.get(COLUMNS.len() + 1)?
        && let Ok(extra) = serde_json::from_str::<BTreeMap<String, String>>(&extra)
    {
        for (name, text) in extra {
            columns::put(&mut event, &name, Stored::Text(text.into()));
        }
    }
    Ok(event)
}

/// The TI matches of the event at `rowid`, in the order they were stored.
fn matches_of(statement: &mut Statement<'_>, rowid: i64) -> Result<Vec<TiMatch>, EventStoreError> {
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
    matches
        .and_then(|found| found.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(failure)
}

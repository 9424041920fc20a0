//! GROUP BY searches aggregated in a hash table ([`Grouping`]): SQLite scans the keys and
//! the aggregates' arguments of the selected events, the groups are kept here (SQLite's own
//! GROUP BY sorts every row first: 7 of the 8.7 s a `count() … GROUP BY` took over ten million
//! events), then written to a temporary table that the projection, HAVING, ORDER BY and
//! LIMIT run on. Each group's aggregates are `aggregates.rs`'s, computing what SQLite's do.

use std::collections::HashMap;

use rusqlite::{
    Connection, params_from_iter,
    types::{Value, ValueRef},
};

use super::{
    EventStoreError,
    aggregates::Accumulator,
    failure, partitions,
    read::{Readers, send_rows},
};
use crate::{
    search::{
        grouped::{Grouping, aggregate_parts},
        query::{Aggregate, Projection, Search},
        sqlite::{GROUPS_TABLE, render_group_scan, render_over_groups},
    },
    store::Found,
};

/// What a scan may hold in groups; past it SQLite's GROUP BY (which spills to disk)
/// answers instead. A search scanning on two threads holds up to twice this before merging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    pub groups: usize,
    /// Bytes of groups: keys, accumulators, min/max values.
    pub bytes: usize,
}

impl Limits {
    pub(super) const SEARCH: Limits = Limits {
        groups: 250_000,
        bytes: 64 << 20,
    };
}

pub(super) enum Outcome {
    Answered,
    /// Too many groups to hold: nothing was handed to the sink.
    TooManyGroups,
}

/// Answers `search` through `grouping`, handing `sink` its rows as `read::run_pieces` does.
pub(super) fn run(
    readers: Readers<'_>,
    search: &Search,
    grouping: &Grouping,
    tables: &[String],
    limits: Limits,
    piece_bytes: usize,
    sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
) -> Result<Outcome, EventStoreError> {
    let connection = readers.first;
    let Some(groups) = aggregate(connection, readers.second, search, grouping, tables, limits)?
    else {
        return Ok(Outcome::TooManyGroups);
    };
    let table = GroupsTable::create(connection, grouping)?;
    table.fill(groups)?;
    let rendered = render_over_groups(search, grouping);
    let mut statement = connection.prepare(&rendered.sql).map_err(failure)?;
    let mut rows = statement
        .query(params_from_iter(rendered.params.iter()))
        .map_err(failure)?;
    let columns = match &search.select {
        Projection::Items(items) => items.iter().map(|(_, name)| name.clone()).collect(),
        Projection::Events => Vec::new(),
    };
    send_rows(&mut rows, columns, piece_bytes, sink)?;
    Ok(Outcome::Answered)
}

/// One group: its keys as first seen, then an accumulator per aggregate.
struct Group {
    keys: Vec<Value>,
    accumulators: Vec<Accumulator>,
}

/// Groups found, by encoded key.
#[derive(Default)]
struct Groups {
    index: HashMap<Box<[u8]>, usize>,
    list: Vec<Group>,
    /// Bytes of keys and of min/max values held.
    held: usize,
}

impl Groups {
    /// Adds `other`'s groups to these; false past the limits.
    fn merge(&mut self, other: Groups, limits: Limits) -> bool {
        let mut theirs: Vec<Option<Group>> = other.list.into_iter().map(Some).collect();
        for (key, i) in other.index {
            let group = theirs[i].take().expect("each group has one key");
            match self.index.get(&key) {
                Some(&mine) => {
                    for (a, b) in self.list[mine]
                        .accumulators
                        .iter_mut()
                        .zip(group.accumulators)
                    {
                        a.merge(b);
                    }
                }
                None if self.list.len() == limits.groups => return false,
                None => {
                    self.list.push(group);
                    self.index.insert(key, self.list.len() - 1);
                }
            }
        }
        self.held += other.held;
        self.held <= limits.bytes
    }
}

/// Scans the selected events of `tables` into groups; `None` past the limits. With a
/// `helper` connection, half of the partitions are scanned on a second thread and the two
/// halves' groups merged (twice as fast on an idle second core).
fn aggregate(
    connection: &Connection,
    helper: Option<&mut Connection>,
    search: &Search,
    grouping: &Grouping,
    tables: &[String],
    limits: Limits,
) -> Result<Option<Vec<Group>>, EventStoreError> {
    let (Some(helper), true) = (helper, tables.len() > 1) else {
        return Ok(scan(connection, search, grouping, tables, limits)?.map(|g| g.list));
    };
    let (mine, theirs) = tables.split_at(tables.len() / 2);
    let (mine, theirs) = std::thread::scope(|scope| {
        let theirs = scope.spawn(move || {
            // The helper's snapshot may be later than the list's: a partition retention
            // dropped in between held only expired events.
            let present = partitions::names(helper).map_err(failure)?;
            let theirs: Vec<String> = theirs
                .iter()
                .filter(|t| present.contains(t))
                .cloned()
                .collect();
            scan(helper, search, grouping, &theirs, limits)
        });
        let mine = scan(connection, search, grouping, mine, limits);
        (
            mine,
            theirs.join().expect("a partition scan does not panic"),
        )
    });
    let (Some(mut mine), Some(theirs)) = (mine?, theirs?) else {
        return Ok(None);
    };
    Ok(mine.merge(theirs, limits).then_some(mine.list))
}

/// Scans the selected events of `tables` into groups on `connection`; `None` past the limits.
fn scan(
    connection: &Connection,
    search: &Search,
    grouping: &Grouping,
    tables: &[String],
    limits: Limits,
) -> Result<Option<Groups>, EventStoreError> {
    if tables.is_empty() {
        return Ok(Some(Groups::default()));
    }
    let scan = render_group_scan(search, grouping, tables);
    let mut statement = connection.prepare(&scan.sql).map_err(failure)?;
    let mut rows = statement
        .query(params_from_iter(scan.params.iter()))
        .map_err(failure)?;
    // Where each aggregate's argument is in the scanned row.
    let mut next_column = grouping.keys.len();
    let parts: Vec<(Aggregate, Option<usize>)> = grouping
        .aggregates
        .iter()
        .filter_map(aggregate_parts)
        .map(|(function, arg)| {
            let column = arg.map(|_| {
                next_column += 1;
                next_column - 1
            });
            (function, column)
        })
        .collect();
    let mut groups = Groups::default();
    let mut key = Vec::new();
    while let Some(row) = rows.next().map_err(failure)? {
        key.clear();
        for i in 0..grouping.keys.len() {
            encode_key(row.get_ref(i).map_err(failure)?, &mut key);
        }
        let group = match groups.index.get(key.as_slice()) {
            Some(&group) => group,
            None => {
                // The key twice (encoded, and its values), the accumulators and the map.
                groups.held += 2 * key.len() + 160;
                if groups.list.len() == limits.groups || groups.held > limits.bytes {
                    return Ok(None);
                }
                let keys = (0..grouping.keys.len())
                    .map(|i| row.get::<_, Value>(i))
                    .collect::<Result<_, _>>()
                    .map_err(failure)?;
                let accumulators = parts.iter().map(|(f, _)| Accumulator::new(*f)).collect();
                groups.list.push(Group { keys, accumulators });
                groups
                    .index
                    .insert(key.as_slice().into(), groups.list.len() - 1);
                groups.list.len() - 1
            }
        };
        for (accumulator, (_, column)) in groups.list[group].accumulators.iter_mut().zip(&parts) {
            let value = match column {
                Some(i) => Some(row.get_ref(*i).map_err(failure)?),
                None => None,
            };
            groups.held += accumulator.add(value);
        }
        if groups.held > limits.bytes {
            return Ok(None);
        }
    }
    Ok(Some(groups))
}

/// Appends `value` to `key` so that values SQLite's GROUP BY puts in one group (an integer
/// and a real of the same number among them) encode the same.
fn encode_key(value: ValueRef<'_>, key: &mut Vec<u8>) {
    match value {
        ValueRef::Null => key.push(0),
        ValueRef::Integer(n) => {
            key.push(1);
            key.extend_from_slice(&n.to_le_bytes());
        }
        ValueRef::Real(r) if r.fract() == 0.0 && r.abs() < 9.2e18 => {
            key.push(1);
            key.extend_from_slice(&(r as i64).to_le_bytes());
        }
        ValueRef::Real(r) => {
            key.push(2);
            key.extend_from_slice(&r.to_bits().to_le_bytes());
        }
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            key.push(if matches!(value, ValueRef::Text(_)) {
                3
            } else {
                4
            });
            key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            key.extend_from_slice(bytes);
        }
    }
}

/// The temporary table of groups, dropped when this goes.
struct GroupsTable<'c> {
    connection: &'c Connection,
    width: usize,
}

impl<'c> GroupsTable<'c> {
    fn create(connection: &'c Connection, grouping: &Grouping) -> Result<Self, EventStoreError> {
        let columns: Vec<String> = (0..grouping.keys.len())
            .map(|i| format!("k{i}"))
            .chain((0..grouping.aggregates.len()).map(|i| format!("a{i}")))
            .collect();
        // Columns without a type keep each value as it is.
        connection
            .execute_batch(&format!(
                "DROP TABLE IF EXISTS {GROUPS_TABLE}; CREATE TABLE {GROUPS_TABLE} ({});",
                columns.join(", ")
            ))
            .map_err(failure)?;
        Ok(GroupsTable {
            connection,
            width: columns.len(),
        })
    }

    fn fill(&self, groups: Vec<Group>) -> Result<(), EventStoreError> {
        let marks = vec!["?"; self.width].join(", ");
        let mut insert = self
            .connection
            .prepare(&format!("INSERT INTO {GROUPS_TABLE} VALUES ({marks})"))
            .map_err(failure)?;
        for group in groups {
            let mut row = group.keys;
            for accumulator in group.accumulators {
                row.push(accumulator.finish()?);
            }
            insert.execute(params_from_iter(row)).map_err(failure)?;
        }
        Ok(())
    }
}

impl Drop for GroupsTable<'_> {
    fn drop(&mut self) {
        let _ = self
            .connection
            .execute_batch(&format!("DROP TABLE IF EXISTS {GROUPS_TABLE}"));
    }
}

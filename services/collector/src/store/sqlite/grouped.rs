//! GROUP BY searches aggregated in a hash table ([`Grouping`]): SQLite scans the keys and
//! the aggregates' arguments of the selected events, the groups are kept here (SQLite's own
//! GROUP BY sorts every row first: 7 of the 8.7 s a `count() … GROUP BY` took over ten million
//! events), then written to a temporary table that the projection, HAVING, ORDER BY and
//! LIMIT run on. The aggregates compute what SQLite's do, value types included.

use std::{cmp::Ordering, collections::HashMap};

use rusqlite::{
    Connection, params_from_iter,
    types::{Value, ValueRef},
};

use super::{
    EventStoreError, failure, partitions,
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

/// What a search may hold in groups; past it SQLite's GROUP BY (which spills to disk)
/// answers instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    pub groups: usize,
    /// Bytes of keys and of min/max values.
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
                groups.held += key.len() + 64;
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

/// One aggregate of one group.
enum Accumulator {
    /// `count()` / `count(x)`: rows, or values that are not NULL.
    Count(i64),
    Sum(Sum),
    Avg(Sum),
    Min(Option<Value>),
    Max(Option<Value>),
}

impl Accumulator {
    fn new(function: Aggregate) -> Self {
        match function {
            Aggregate::Count => Accumulator::Count(0),
            Aggregate::Sum => Accumulator::Sum(Sum::default()),
            Aggregate::Avg => Accumulator::Avg(Sum::default()),
            Aggregate::Min => Accumulator::Min(None),
            Aggregate::Max => Accumulator::Max(None),
        }
    }

    /// Adds a row's argument (`None`: `count()`, which has none); answers the bytes of a
    /// value it now holds.
    fn add(&mut self, value: Option<ValueRef<'_>>) -> usize {
        let value = match value {
            None => {
                if let Accumulator::Count(n) = self {
                    *n += 1;
                }
                return 0;
            }
            Some(ValueRef::Null) => return 0,
            Some(value) => value,
        };
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::Sum(sum) | Accumulator::Avg(sum) => sum.add(value),
            Accumulator::Min(best) => return keep_if(best, value, Ordering::Less),
            Accumulator::Max(best) => return keep_if(best, value, Ordering::Greater),
        }
        0
    }

    /// Adds what `other` (the same aggregate over other rows) holds.
    fn merge(&mut self, other: Accumulator) {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::Sum(a), Accumulator::Sum(b))
            | (Accumulator::Avg(a), Accumulator::Avg(b)) => a.merge(b),
            (Accumulator::Min(best), Accumulator::Min(Some(b))) => {
                keep_if(best, ValueRef::from(&b), Ordering::Less);
            }
            (Accumulator::Max(best), Accumulator::Max(Some(b))) => {
                keep_if(best, ValueRef::from(&b), Ordering::Greater);
            }
            _ => {}
        }
    }

    fn finish(self) -> Result<Value, EventStoreError> {
        Ok(match self {
            Accumulator::Count(n) => Value::Integer(n),
            Accumulator::Sum(sum) => sum.total()?,
            Accumulator::Avg(sum) => sum.average(),
            Accumulator::Min(best) | Accumulator::Max(best) => best.unwrap_or(Value::Null),
        })
    }
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

/// Keeps `value` when `best` is empty or `value` compares `wanted` to it; answers the bytes
/// of text it now holds.
fn keep_if(best: &mut Option<Value>, value: ValueRef<'_>, wanted: Ordering) -> usize {
    if best
        .as_ref()
        .is_some_and(|b| compare(value, ValueRef::from(b)) != wanted)
    {
        return 0;
    }
    *best = Some(owned(value));
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.len(),
        _ => 0,
    }
}

/// SQLite's `sum()`: exact over integers, compensated (Kahan–Babuška–Neumaier) once a value
/// is not an integer or the integers overflow.
#[derive(Default)]
struct Sum {
    count: i64,
    integer: i64,
    approximate: bool,
    overflowed: bool,
    real: f64,
    error: f64,
}

/// Integers from 2^52 on are added in two parts, as SQLite does, to keep their low bits.
const EXACT_IN_DOUBLE: i64 = 4_503_599_627_370_496;

impl Sum {
    fn add(&mut self, value: ValueRef<'_>) {
        self.count += 1;
        match (numeric(value), self.approximate) {
            (Numeric::Integer(n), false) => match self.integer.checked_add(n) {
                Some(total) => self.integer = total,
                None => {
                    self.overflowed = true;
                    self.start_approximate();
                    self.add_integer(n);
                }
            },
            (Numeric::Integer(n), true) => self.add_integer(n),
            (Numeric::Real(r), approximate) => {
                if approximate {
                    self.overflowed = false;
                } else {
                    self.start_approximate();
                }
                self.add_real(r);
            }
        }
    }

    /// Adds what `other` summed over other rows.
    fn merge(&mut self, other: Sum) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        self.count += other.count;
        match (self.approximate, other.approximate) {
            (false, false) => match self.integer.checked_add(other.integer) {
                Some(total) => self.integer = total,
                None => {
                    self.overflowed = true;
                    self.start_approximate();
                    self.add_integer(other.integer);
                }
            },
            (true, false) => self.add_integer(other.integer),
            (approximate, true) => {
                if !approximate {
                    self.start_approximate();
                }
                self.add_real(other.real);
                self.error += other.error;
                self.overflowed |= other.overflowed;
            }
        }
    }

    fn start_approximate(&mut self) {
        self.approximate = true;
        let n = self.integer;
        if n <= -EXACT_IN_DOUBLE || n >= EXACT_IN_DOUBLE {
            let small = n % 16384;
            self.real = (n - small) as f64;
            self.error = small as f64;
        } else {
            self.real = n as f64;
            self.error = 0.0;
        }
    }

    fn add_integer(&mut self, n: i64) {
        if n <= -EXACT_IN_DOUBLE || n >= EXACT_IN_DOUBLE {
            let small = n % 16384;
            self.add_real((n - small) as f64);
            self.add_real(small as f64);
        } else {
            self.add_real(n as f64);
        }
    }

    fn add_real(&mut self, r: f64) {
        let s = self.real;
        let t = s + r;
        if s.abs() > r.abs() {
            self.error += (s - t) + r;
        } else {
            self.error += (r - t) + s;
        }
        self.real = t;
    }

    fn approximate_total(&self) -> f64 {
        if self.error.is_infinite() {
            self.real
        } else {
            self.real + self.error
        }
    }

    fn total(&self) -> Result<Value, EventStoreError> {
        if self.count == 0 {
            return Ok(Value::Null);
        }
        if !self.approximate {
            return Ok(Value::Integer(self.integer));
        }
        if self.overflowed {
            return Err(EventStoreError::Store(
                xdr_mesh::store::StoreFailure::with_code(
                    xdr_mesh::error::ErrorCode::InvalidArgument,
                    "event store: integer overflow in sum()".to_owned(),
                ),
            ));
        }
        Ok(Value::Real(self.approximate_total()))
    }

    fn average(&self) -> Value {
        if self.count == 0 {
            return Value::Null;
        }
        let total = if self.approximate {
            self.approximate_total()
        } else {
            self.integer as f64
        };
        Value::Real(total / self.count as f64)
    }
}

enum Numeric {
    Integer(i64),
    Real(f64),
}

/// A value as `sum()` reads it: text that is a whole integer is that integer, other text
/// the number its longest numeric prefix is (0 without one).
fn numeric(value: ValueRef<'_>) -> Numeric {
    match value {
        ValueRef::Integer(n) => Numeric::Integer(n),
        ValueRef::Real(r) => Numeric::Real(r),
        ValueRef::Null | ValueRef::Blob(_) => Numeric::Real(0.0),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            if let Ok(n) = text.parse::<i64>() {
                return Numeric::Integer(n);
            }
            let prefix = text
                .char_indices()
                .take_while(|(_, c)| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                .map(|(i, c)| i + c.len_utf8())
                .last()
                .unwrap_or(0);
            let number = (1..=prefix)
                .rev()
                .find_map(|end| text[..end].parse::<f64>().ok())
                .unwrap_or(0.0);
            Numeric::Real(number)
        }
    }
}

/// SQLite's order of values: NULL, then numbers (integers and reals by value), then text
/// (bytewise), then blobs.
fn compare(a: ValueRef<'_>, b: ValueRef<'_>) -> Ordering {
    fn class(value: ValueRef<'_>) -> u8 {
        match value {
            ValueRef::Null => 0,
            ValueRef::Integer(_) | ValueRef::Real(_) => 1,
            ValueRef::Text(_) => 2,
            ValueRef::Blob(_) => 3,
        }
    }
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(&y),
        (ValueRef::Integer(x), ValueRef::Real(y)) => {
            (x as f64).partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (ValueRef::Real(x), ValueRef::Integer(y)) => {
            x.partial_cmp(&(y as f64)).unwrap_or(Ordering::Equal)
        }
        (ValueRef::Real(x), ValueRef::Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

//! SQLite's aggregates over one group's rows, as the hashed GROUP BY (`grouped.rs`) keeps
//! them: the same values and value types SQLite's `count`, `sum`, `avg`, `min` and `max`
//! answer, and how two halves of a group's rows combine.

use std::cmp::Ordering;

use rusqlite::types::{Value, ValueRef};

use super::EventStoreError;
use crate::search::query::Aggregate;

/// One aggregate of one group.
pub(super) enum Accumulator {
    /// `count()` / `count(x)`: rows, or values that are not NULL.
    Count(i64),
    Sum(Sum),
    Avg(Sum),
    Min(Option<Value>),
    Max(Option<Value>),
}

impl Accumulator {
    pub(super) fn new(function: Aggregate) -> Self {
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
    pub(super) fn add(&mut self, value: Option<ValueRef<'_>>) -> usize {
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
    pub(super) fn merge(&mut self, other: Accumulator) {
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

    pub(super) fn finish(self) -> Result<Value, EventStoreError> {
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
pub(super) struct Sum {
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

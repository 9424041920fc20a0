//! Reading a search's answer: ClickHouse's `JSONEachRow` lines as whole events (`SELECT *`,
//! the columns `search::clickhouse::render` names) or typed cells (`c0`, `c1`, …), handed on
//! in pieces of about a given size, as the embedded store does.

use prost::Message;
use serde_json::{Map, Value};
use xdr_proto::pb::{Event, TiMatch};

use super::{
    http::{ClickHouseError, refusal},
    rows::BESIDE_PACKED,
    schema::PACKED_ROW,
};
use crate::{
    search::schema::COLUMNS,
    store::{
        Cell, EventStoreError, Found,
        columns::{self, Stored},
    },
};

/// The longest line (one row) read: an event holds at most 16 MiB, and its matches.
const MAX_LINE_BYTES: usize = 40 << 20;

/// Splits a body that arrives in pieces into its lines.
#[derive(Default)]
pub struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Takes `data`, answering the lines it completes.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, ClickHouseError> {
        self.pending.extend_from_slice(data);
        let (mut lines, mut start) = (Vec::new(), 0);
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n') {
            lines.push(self.pending[start..start + end].to_vec());
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE_BYTES {
            return Err(ClickHouseError::Protocol(format!(
                "a row of the answer is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        Ok(lines)
    }

    /// What is left after the last newline (an error ClickHouse wrote at the end, say).
    pub fn rest(self) -> Vec<u8> {
        self.pending
    }
}

/// The rows of an answer, gathered into pieces.
pub struct Answer {
    /// None: `SELECT *`; else the projection's names.
    columns: Option<Vec<String>>,
    events: Vec<Event>,
    rows: Vec<Vec<Cell>>,
    bytes: usize,
    piece_bytes: usize,
}

impl Answer {
    pub fn new(columns: Option<Vec<String>>, piece_bytes: usize) -> Self {
        Answer {
            columns,
            events: Vec::new(),
            rows: Vec::new(),
            bytes: 0,
            piece_bytes,
        }
    }

    /// Takes one line of the answer; hands `sink` a piece when one is full.
    pub fn take(
        &mut self,
        line: &[u8],
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        match row_of(line)? {
            Some(row) => self.take_row(row, sink),
            None => Ok(()),
        }
    }

    /// Takes one row of the answer, read by [`row_of`]; hands `sink` a piece when one is full.
    pub fn take_row(
        &mut self,
        row: Map<String, Value>,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        match &self.columns {
            None => {
                let event = event_of(&row);
                self.bytes += event.encoded_len();
                self.events.push(event);
            }
            Some(columns) => {
                let cells: Vec<Cell> = (0..columns.len())
                    .map(|i| cell_of(row.get(&format!("c{i}"))))
                    .collect();
                self.bytes += cells
                    .iter()
                    .map(|c| match c {
                        Cell::Text(text) => text.len() + 4,
                        _ => 10,
                    })
                    .sum::<usize>();
                self.rows.push(cells);
            }
        }
        if self.bytes > self.piece_bytes {
            self.bytes = 0;
            sink(self.piece(), false)?;
        }
        Ok(())
    }

    /// Hands `sink` the last piece.
    pub fn finish(
        mut self,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<(), EventStoreError> {
        let last = self.piece();
        sink(last, true)
    }

    fn piece(&mut self) -> Found {
        match &self.columns {
            None => Found::Events(std::mem::take(&mut self.events)),
            Some(columns) => Found::Rows {
                columns: columns.clone(),
                rows: std::mem::take(&mut self.rows),
            },
        }
    }
}

/// One line of a `JSONEachRow` answer as its row (`None`: a blank line). A line that is not
/// a row is the error ClickHouse wrote into the answer, after the rows sent so far.
pub fn row_of(line: &[u8]) -> Result<Option<Map<String, Value>>, EventStoreError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(line).map(Some).map_err(|_| {
        let text = String::from_utf8_lossy(line);
        super::store_error(
            refusal(&text).unwrap_or_else(|| {
                ClickHouseError::Protocol("a row of the answer is not JSON".into())
            }),
        )
    })
}

/// A row of a packed row and the columns beside it (`rows::BESIDE_PACKED`) as the row of
/// every column; `None` when its packed row is empty (an event stored before packed rows).
pub fn unpacked(
    mut row: Map<String, Value>,
) -> Result<Option<Map<String, Value>>, EventStoreError> {
    let packed = match row.remove(PACKED_ROW) {
        Some(Value::String(packed)) if !packed.is_empty() => packed,
        _ => return Ok(None),
    };
    let mut whole: Map<String, Value> = serde_json::from_str(&packed).map_err(|_| {
        super::store_error(ClickHouseError::Protocol(
            "a packed row of the answer is not a JSON object".into(),
        ))
    })?;
    for name in BESIDE_PACKED {
        if let Some(value) = row.remove(name) {
            whole.insert(name.to_owned(), value);
        }
    }
    // A packed row holds each match's context as a JSON object (`rows`), the column as its
    // text; rows packed before hold the text.
    if let Some(Value::Array(contexts)) = whole.get_mut("TI.context") {
        for context in contexts.iter_mut().filter(|c| !c.is_string()) {
            *context = Value::String(context.to_string());
        }
    }
    Ok(Some(whole))
}

fn cell_of(value: Option<&Value>) -> Cell {
    match value {
        None | Some(Value::Null) => Cell::Null,
        Some(Value::Bool(b)) => Cell::Integer(i64::from(*b)),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(n), _) => Cell::Integer(n),
            (None, Some(n)) => Cell::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
            _ => Cell::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Some(Value::String(text)) => Cell::Text(text.clone()),
        Some(other) => Cell::Text(other.to_string()),
    }
}

/// An event read back from its row.
pub(super) fn event_of(row: &Map<String, Value>) -> Event {
    let mut event = Event::default();
    for column in COLUMNS {
        let value = match row.get(column.name) {
            Some(Value::Number(n)) => n.as_i64().map_or(Stored::Null, Stored::Integer),
            Some(Value::String(text)) => Stored::Text(text.as_str().into()),
            _ => Stored::Null,
        };
        columns::put(&mut event, column.name, value);
    }
    let texts = |name: &str| -> Vec<&str> {
        match row.get(name) {
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().unwrap_or("")).collect(),
            _ => Vec::new(),
        }
    };
    for (key, value) in texts("Extra.key").into_iter().zip(texts("Extra.value")) {
        columns::put(&mut event, key, Stored::Text(value.into()));
    }
    let types: Vec<i32> = match row.get("TI.indicator_type") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0))
            .collect(),
        _ => Vec::new(),
    };
    let (fields, values, categories, indicators, suppliers, contexts) = (
        texts("TI.field"),
        texts("TI.value"),
        texts("TI.category"),
        texts("TI.indicator"),
        texts("TI.supplier"),
        texts("TI.context"),
    );
    event.ti = (0..fields.len())
        .map(|i| TiMatch {
            field: fields[i].to_owned(),
            value: values.get(i).copied().unwrap_or_default().to_owned(),
            category: categories.get(i).copied().unwrap_or_default().to_owned(),
            matched_indicator: indicators.get(i).copied().unwrap_or_default().to_owned(),
            supplier: suppliers.get(i).copied().unwrap_or_default().to_owned(),
            indicator_type: types.get(i).copied().unwrap_or_default(),
            context: contexts
                .get(i)
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_pieces_and_bounded() {
        let mut lines = Lines::default();
        assert!(lines.push(b"{\"a\"").unwrap().is_empty());
        assert_eq!(
            lines.push(b":1}\n{\"b\":2}\n{").unwrap(),
            [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(lines.rest(), b"{");
        let mut lines = Lines::default();
        assert!(lines.push(&vec![b'x'; MAX_LINE_BYTES + 1]).is_err());
    }
}

//! Events as ClickHouse `RowBinary`, in the order of `schema::columns()`: lengths as LEB128
//! varints, integers little-endian, a nullable value a flag byte (1: NULL) before it, an array
//! its length before its elements. Binary rows need no escaping and are the cheapest input
//! for ClickHouse to parse.

use xdr_proto::pb::{Event, TiMatch};

use crate::{
    search::schema::{COLUMNS, ColumnType},
    store::columns::{self, Stored},
};

/// Appends `event` as one row to `out`.
pub fn encode(event: &Event, nullable: &[bool], out: &mut Vec<u8>) {
    for (column, nullable) in COLUMNS.iter().zip(nullable) {
        match (columns::value_of(event, column), nullable) {
            (Stored::Null, true) => out.push(1),
            (value, nullable) => {
                if *nullable {
                    out.push(0);
                }
                match (value, column.kind) {
                    (Stored::Integer(n), ColumnType::Integer | ColumnType::Timestamp) => {
                        out.extend_from_slice(&n.to_le_bytes())
                    }
                    (Stored::Text(text), ColumnType::Text) => string(out, &text),
                    (Stored::Integer(n), ColumnType::Text) => string(out, &n.to_string()),
                    // A column that holds a value always (Id, Timestamp, …) or an integer
                    // column given text: the schema's columns never meet these.
                    (_, ColumnType::Text) => string(out, ""),
                    (_, ColumnType::Integer | ColumnType::Timestamp) => {
                        out.extend_from_slice(&0_i64.to_le_bytes())
                    }
                }
            }
        }
    }
    let extra = columns::extra_of(event);
    varint(out, extra.len() as u64);
    extra.keys().for_each(|key| string(out, key));
    varint(out, extra.len() as u64);
    extra.values().for_each(|value| string(out, value));
    let matches = &event.ti;
    let texts: [fn(&TiMatch) -> &str; 5] = [
        |m| &m.field,
        |m| &m.value,
        |m| &m.category,
        |m| &m.matched_indicator,
        |m| &m.supplier,
    ];
    for text in texts {
        varint(out, matches.len() as u64);
        matches.iter().for_each(|m| string(out, text(m)));
    }
    varint(out, matches.len() as u64);
    for found in matches {
        out.extend_from_slice(&found.indicator_type.to_le_bytes());
    }
    varint(out, matches.len() as u64);
    for found in matches {
        let context = serde_json::to_string(&found.context).expect("a map of strings serializes");
        string(out, &context);
    }
}

/// Whether each column of [`COLUMNS`] is `Nullable`, as `schema::columns()` declares them.
pub fn nullable_columns() -> Vec<bool> {
    super::schema::columns()
        .iter()
        .take(COLUMNS.len())
        .map(|(_, kind)| kind.starts_with("Nullable"))
        .collect()
}

fn string(out: &mut Vec<u8>, text: &str) {
    varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_leb128() {
        let mut out = Vec::new();
        varint(&mut out, 0);
        varint(&mut out, 127);
        varint(&mut out, 128);
        varint(&mut out, 300);
        assert_eq!(out, [0, 127, 0x80, 1, 0xAC, 2]);
    }
}

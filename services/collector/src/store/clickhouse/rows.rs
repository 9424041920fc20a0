//! Events as ClickHouse `RowBinary`, in the order of `schema::columns()`: lengths as LEB128
//! varints, integers little-endian, a nullable value a flag byte (1: NULL) before it, an array
//! its length before its elements. Binary rows need no escaping and are the cheapest input
//! for ClickHouse to parse.

use std::{borrow::Cow, collections::BTreeMap, io::Write, sync::LazyLock};

use xdr_proto::pb::{Event, TiMatch};

use crate::{
    search::{
        lookup::LOOKUP_FIELDS,
        schema::{COLUMNS, ColumnType},
    },
    store::columns::{self, Stored},
};

/// Appends `event` as one row to `out`, and its lookup rows to `lookups`; `scratch` holds
/// its packed row meanwhile (one buffer for every row of an insert, not an allocation a row).
pub fn encode<'e>(
    event: &'e Event,
    nullable: &[bool],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
    lookups: &mut LookupRows<'e>,
) {
    let row = Row::of(event, nullable);
    lookups.add(&row);
    for (held, nullable) in row.held.iter().zip(nullable) {
        match held {
            None => out.push(1),
            Some(held) => {
                if *nullable {
                    out.push(0);
                }
                match held {
                    Held::Integer(n) => out.extend_from_slice(&n.to_le_bytes()),
                    Held::Text(text) => string(out, text),
                }
            }
        }
    }
    varint(out, row.extra.len() as u64);
    row.extra.keys().for_each(|key| string(out, key));
    varint(out, row.extra.len() as u64);
    row.extra.values().for_each(|value| string(out, value));
    let matches = &event.ti;
    for (_, text) in MATCH_TEXTS {
        varint(out, matches.len() as u64);
        matches.iter().for_each(|m| string(out, text(m)));
    }
    varint(out, matches.len() as u64);
    for found in matches {
        out.extend_from_slice(&found.indicator_type.to_le_bytes());
    }
    varint(out, matches.len() as u64);
    row.contexts.iter().for_each(|context| string(out, context));
    scratch.clear();
    row.pack(scratch);
    varint(out, scratch.len() as u64);
    out.extend_from_slice(scratch);
}

/// The columns read beside each packed row, so left out of it: the two a search by time
/// reads anyway (its filter), and the raw event, the largest, which would be written twice
/// (and escaped) in the packed row. Half the bytes of a packed row went to them.
pub const BESIDE_PACKED: [&str; 3] = ["Tenant", "Timestamp", "Raw"];

/// Whether each column of [`COLUMNS`] is in the packed row (not [`BESIDE_PACKED`]): known
/// once, not looked for in every event's row.
static IN_PACKED_ROW: LazyLock<Vec<bool>> = LazyLock::new(|| {
    (COLUMNS.iter())
        .map(|column| !BESIDE_PACKED.contains(&column.name))
        .collect()
});

/// The texts of a match with a column each, in the order of `schema::columns()`.
const MATCH_TEXTS: [(&str, MatchText); 5] = [
    ("TI.field", |m| &m.field),
    ("TI.value", |m| &m.value),
    ("TI.category", |m| &m.category),
    ("TI.indicator", |m| &m.matched_indicator),
    ("TI.supplier", |m| &m.supplier),
];

type MatchText = fn(&TiMatch) -> &str;

/// What an event's row holds, worked out once for both of its forms.
struct Row<'e> {
    event: &'e Event,
    /// Each column of [`COLUMNS`] (`None`: NULL).
    held: Vec<Option<Held<'e>>>,
    extra: BTreeMap<&'e str, String>,
    /// Each match's context as its column holds it: a JSON object.
    contexts: Vec<String>,
}

/// A value as its column holds it. The binary row and the packed row are both made from
/// it, so an event reads back alike from its columns or from its packed row.
enum Held<'e> {
    Integer(i64),
    Text(Cow<'e, str>),
}

impl<'e> Row<'e> {
    fn of(event: &'e Event, nullable: &[bool]) -> Self {
        let (values, extra) = columns::values_of(event);
        let held = (values.into_iter().zip(COLUMNS).zip(nullable))
            .map(|((value, column), nullable)| {
                match (value, column.kind) {
                    (Stored::Null, _) if *nullable => None,
                    (Stored::Integer(n), ColumnType::Integer | ColumnType::Timestamp) => {
                        Some(Held::Integer(n))
                    }
                    (Stored::Text(text), ColumnType::Text) => Some(Held::Text(text)),
                    (Stored::Integer(n), ColumnType::Text) => {
                        Some(Held::Text(Cow::Owned(n.to_string())))
                    }
                    // A column that holds a value always (Id, Timestamp, …) or an integer
                    // column given text: the schema's columns never meet these.
                    (_, ColumnType::Text) => Some(Held::Text(Cow::Borrowed(""))),
                    (_, ColumnType::Integer | ColumnType::Timestamp) => Some(Held::Integer(0)),
                }
            })
            .collect();
        let contexts = (event.ti.iter())
            .map(|found| {
                serde_json::to_string(&found.context).expect("a map of strings serializes")
            })
            .collect();
        Row {
            event,
            held,
            extra,
            contexts,
        }
    }

    /// Appends the packed row: the line a `SELECT *` answers for the event in `JSONEachRow`,
    /// less its NULLs, its empty arrays and the columns read beside it ([`BESIDE_PACKED`];
    /// `answer::unpacked` puts those back). A search fetching a few events by time reads
    /// these four columns instead of some 70 column files of each granule (`first_events`).
    fn pack(&self, out: &mut Vec<u8>) {
        let mut separator = b'{';
        let mut key = |out: &mut Vec<u8>, name: &str| {
            out.push(separator);
            separator = b',';
            json_string(out, name);
            out.push(b':');
        };
        let packed_columns = (COLUMNS.iter().zip(&self.held).zip(IN_PACKED_ROW.iter()))
            .filter_map(|(column_held, packed)| packed.then_some(column_held));
        for (column, held) in packed_columns {
            match held {
                None => {}
                Some(Held::Integer(n)) => {
                    key(out, column.name);
                    let _ = write!(out, "{n}");
                }
                Some(Held::Text(text)) => {
                    key(out, column.name);
                    json_string(out, text);
                }
            }
        }
        let mut array = |out: &mut Vec<u8>, name: &str, items: &mut dyn Iterator<Item = &str>| {
            if let Some(first) = items.next() {
                key(out, name);
                out.push(b'[');
                json_string(out, first);
                for item in items {
                    out.push(b',');
                    json_string(out, item);
                }
                out.push(b']');
            }
        };
        array(out, "Extra.key", &mut self.extra.keys().copied());
        array(
            out,
            "Extra.value",
            &mut self.extra.values().map(String::as_str),
        );
        let matches = &self.event.ti;
        for (name, text) in MATCH_TEXTS {
            array(out, name, &mut matches.iter().map(text));
        }
        array(
            out,
            "TI.context",
            &mut self.contexts.iter().map(String::as_str),
        );
        if !matches.is_empty() {
            key(out, "TI.indicator_type");
            for (i, found) in matches.iter().enumerate() {
                out.push(if i == 0 { b'[' } else { b',' });
                let _ = write!(out, "{}", found.indicator_type);
            }
            out.push(b']');
        }
        if separator == b'{' {
            out.push(b'{');
        }
        out.push(b'}');
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("a string writes to memory");
}

/// The lookup rows of the events encoded so far — (`Tenant`, `Field`, `Value`, `Timestamp`)
/// for each of [`LOOKUP_FIELDS`] an event holds — taken from their rows as they are encoded:
/// looking each field up again in every event cost as much as sorting the rows.
#[derive(Default)]
pub struct LookupRows<'e> {
    /// By tenant (a load mostly holds one), then each field's values and times, the fields
    /// in [`LOOKUP_COLUMNS`]' order.
    by_tenant: BTreeMap<&'e str, Vec<ValuesAt<'e>>>,
}

/// A lookup field's values in a load, each with its event's time.
type ValuesAt<'e> = Vec<(Cow<'e, str>, i64)>;

/// The lookup fields in the order of their names (the lookup table's key order), with
/// their column's place in [`COLUMNS`].
static LOOKUP_COLUMNS: LazyLock<Vec<(&'static str, usize)>> = LazyLock::new(|| {
    let mut fields: Vec<_> = (LOOKUP_FIELDS.iter())
        .filter_map(|name| Some((*name, COLUMNS.iter().position(|c| c.name == *name)?)))
        .collect();
    fields.sort_unstable();
    fields
});

impl<'e> LookupRows<'e> {
    fn add(&mut self, row: &Row<'e>) {
        let fields = (self.by_tenant.entry(&row.event.tenant))
            .or_insert_with(|| vec![Vec::new(); LOOKUP_COLUMNS.len()]);
        for ((_, column), values) in LOOKUP_COLUMNS.iter().zip(fields) {
            let value = match &row.held[*column] {
                None => continue,
                Some(Held::Text(text)) => text.clone(),
                Some(Held::Integer(n)) => Cow::Owned(n.to_string()),
            };
            values.push((value, row.event.timestamp_ms));
        }
    }

    /// Appends the rows in the lookup table's key order, each once. Sorted here: ClickHouse
    /// 18.16 sorts a block of random strings at about 1 µs a row, more than writing the
    /// event; a sorted block it only checks. Each field's values of a tenant are sorted
    /// alone, so a comparison reads only the values: sorting whole rows compared the
    /// tenants and the fields' names as well, a tenth of the collector's CPU in `perf`
    /// during `xdr-bench collector`.
    pub fn encode(self, out: &mut Vec<u8>) {
        for (tenant, fields) in self.by_tenant {
            for ((name, _), mut values) in LOOKUP_COLUMNS.iter().zip(fields) {
                values.sort_unstable();
                values.dedup();
                for (value, timestamp) in values {
                    string(out, tenant);
                    string(out, name);
                    string(out, &value);
                    out.extend_from_slice(&timestamp.to_le_bytes());
                }
            }
        }
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
    fn lookup_rows_are_sorted_by_key_once_each_and_only_for_values_held() {
        use xdr_proto::pb::{FieldValue, field_value::Kind};
        let event = |id: &str, at: i64, fields: &[(&str, &str)]| Event {
            id: id.into(),
            tenant: "Main".into(),
            timestamp_ms: at,
            fields: (fields.iter())
                .map(|(name, value)| {
                    let value = FieldValue {
                        kind: Some(Kind::Text((*value).into())),
                    };
                    ((*name).to_owned(), value)
                })
                .collect(),
            ..Default::default()
        };
        let events = [
            event(
                "e1",
                1,
                &[("RequestUrl", "b"), ("SourceAddress", "1"), ("Name", "x")],
            ),
            event("e2", 2, &[("RequestUrl", "a")]),
            // The same value at the same time: one row is enough to find both.
            event("e3", 2, &[("RequestUrl", "a")]),
            Event {
                tenant: "Another".into(),
                ..event(
                    "e4",
                    3,
                    &[
                        ("SourceAddress", "2"),
                        ("RequestUrl", "c"),
                        ("DestinationAddress", "d"),
                    ],
                )
            },
        ];
        let (nullable, mut rows, mut scratch) = (nullable_columns(), Vec::new(), Vec::new());
        let mut lookups = LookupRows::default();
        for event in &events {
            encode(event, &nullable, &mut scratch, &mut rows, &mut lookups);
        }
        let mut out = Vec::new();
        lookups.encode(&mut out);
        let mut expected = Vec::new();
        for (tenant, field, value, at) in [
            ("Another", "DestinationAddress", "d", 3_i64),
            ("Another", "RequestUrl", "c", 3),
            ("Another", "SourceAddress", "2", 3),
            ("Main", "RequestUrl", "a", 2),
            ("Main", "RequestUrl", "b", 1),
            ("Main", "SourceAddress", "1", 1),
        ] {
            for text in [tenant, field, value] {
                string(&mut expected, text);
            }
            expected.extend_from_slice(&at.to_le_bytes());
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn a_packed_row_reads_back_as_the_event_its_columns_hold() {
        let nullable = nullable_columns();
        let event = crate::store::known_answers::rich_event();
        let mut packed = Vec::new();
        Row::of(&event, &nullable).pack(&mut packed);
        assert!(
            !packed.contains(&b'\n') && !packed.contains(&b'\t'),
            "one line as it is held"
        );
        assert_eq!(read_back(&event, packed), event);

        // An event with nothing but what every event holds.
        let bare = Event::default();
        let mut packed = Vec::new();
        Row::of(&bare, &nullable).pack(&mut packed);
        assert_eq!(read_back(&bare, packed), bare);
    }

    /// `event` read back from its packed row and the columns beside it, as a search by time
    /// answers them.
    fn read_back(event: &Event, packed: Vec<u8>) -> Event {
        let beside = serde_json::json!({
            "Tenant": event.tenant,
            "Timestamp": event.timestamp_ms,
            "Raw": event.raw,
            "PackedRow": String::from_utf8(packed).unwrap(),
        });
        let line = serde_json::to_vec(&beside).unwrap();
        let row = super::super::answer::row_of(&line).unwrap().unwrap();
        let row = super::super::answer::unpacked(row).unwrap().unwrap();
        super::super::answer::event_of(&row)
    }

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

//! A load's events as one ClickHouse `Native` block (`native`), its columns in the order of
//! `schema::columns()`, and their lookup rows as another.

use std::{borrow::Cow, collections::BTreeMap, io::Write, sync::LazyLock};

use xdr_proto::pb::{Event, TiMatch};

use super::{
    native::{self, Column},
    schema::LOOKUP_TABLE_COLUMNS,
};
use crate::{
    search::{
        lookup::LOOKUP_FIELDS,
        schema::{COLUMNS, ColumnType},
    },
    store::columns::{self, Stored},
};

/// Every column of the events table with its type's name, in the order of a block's.
static BLOCK_COLUMNS: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(super::schema::columns);

/// The events of a load, column by column, as they are added. Kept from load to load: its
/// columns keep their room (fresh buffers for a block of tens of megabytes were the kernel
/// faulting in and zeroing their pages each time).
pub struct EventBlock {
    columns: Vec<Column>,
    rows: usize,
    /// Each event's packed row while it is made.
    scratch: Vec<u8>,
}

impl EventBlock {
    pub fn new() -> Self {
        EventBlock {
            columns: BLOCK_COLUMNS.iter().map(|_| Column::default()).collect(),
            rows: 0,
            scratch: Vec::new(),
        }
    }

    pub fn clear(&mut self) {
        self.columns.iter_mut().for_each(Column::clear);
        self.rows = 0;
    }

    /// The bytes its columns hold room for.
    pub fn capacity(&self) -> usize {
        self.columns.iter().map(Column::capacity).sum::<usize>() + self.scratch.capacity()
    }

    /// The bytes of the block's values so far, less its header.
    pub fn len(&self) -> usize {
        self.columns.iter().map(Column::len).sum()
    }

    /// Adds `event` as a row, and its lookup rows to `lookups`.
    pub fn push<'e>(&mut self, event: &'e Event, nullable: &[bool], lookups: &mut LookupRows<'e>) {
        let row = Row::of(event, nullable);
        lookups.add(&row);
        let (scalars, arrays) = self.columns.split_at_mut(COLUMNS.len());
        let values = row.held.iter().zip(nullable).zip(COLUMNS);
        for (((held, nullable), schema), column) in values.zip(scalars) {
            if *nullable {
                column.null_flag(held.is_none());
            }
            match (held, schema.kind) {
                (Some(Held::Integer(n)), _) => column.int64(*n),
                (Some(Held::Text(text)), _) => column.text(text),
                // A NULL row holds its type's default.
                (None, ColumnType::Text) => column.text(""),
                (None, ColumnType::Integer | ColumnType::Timestamp) => column.int64(0),
            }
        }
        let [
            extra_keys,
            extra_values,
            field,
            value,
            category,
            indicator,
            supplier,
            indicator_type,
            context,
            packed,
        ] = arrays
        else {
            unreachable!("the schema's columns after its scalar ones are these ten")
        };
        extra_keys.texts(row.extra.keys().copied());
        extra_values.texts(row.extra.values().map(String::as_str));
        let matches = &event.ti;
        for (column, (_, text)) in [field, value, category, indicator, supplier]
            .into_iter()
            .zip(MATCH_TEXTS)
        {
            column.texts(matches.iter().map(text));
        }
        indicator_type.int32s(matches.iter().map(|m| m.indicator_type));
        context.texts(row.contexts.iter().map(String::as_str));
        self.scratch.clear();
        row.pack(&mut self.scratch);
        packed.bytes(&self.scratch);
        self.rows += 1;
    }

    /// Appends the block to `out`, the body of an `INSERT … FORMAT Native`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        native::write_block(out, self.rows, &BLOCK_COLUMNS, &self.columns);
    }
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
            let mut items = items.peekable();
            if items.peek().is_some() {
                key(out, name);
                json_array(out, items, json_string);
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
        // Each context as the JSON object it is, not as a string: that escaped every quote
        // of it (`answer::unpacked` makes them strings again).
        if !self.contexts.is_empty() {
            key(out, "TI.context");
            json_array(out, &self.contexts, |out, context| {
                out.extend_from_slice(context.as_bytes());
            });
        }
        if !matches.is_empty() {
            key(out, "TI.indicator_type");
            json_array(out, matches, |out, found| {
                let _ = write!(out, "{}", found.indicator_type);
            });
        }
        if separator == b'{' {
            out.push(b'{');
        }
        out.push(b'}');
    }
}

/// Appends `items` as a JSON array (at least one), each written by `write`.
fn json_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    for (i, item) in items.into_iter().enumerate() {
        out.push(if i == 0 { b'[' } else { b',' });
        write(out, item);
    }
    out.push(b']');
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
    /// The bytes of the rows' columns if none repeats another: the room their block needs,
    /// less its header.
    most_bytes: usize,
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
        for ((name, column), values) in LOOKUP_COLUMNS.iter().zip(fields) {
            let value = match &row.held[*column] {
                None => continue,
                Some(Held::Text(text)) => text.clone(),
                Some(Held::Integer(n)) => Cow::Owned(n.to_string()),
            };
            self.most_bytes += [row.event.tenant.as_str(), name, &value]
                .map(native::string_len)
                .iter()
                .sum::<usize>()
                + std::mem::size_of::<i64>();
            values.push((value, row.event.timestamp_ms));
        }
    }

    /// At most the bytes [`Self::encode`] appends, less the block's header.
    pub fn most_bytes(&self) -> usize {
        self.most_bytes
    }

    /// Appends the rows as a `Native` block of the lookup table's columns, in its key order,
    /// each once. Sorted here: ClickHouse 18.16 sorts a block of random strings at about
    /// 1 µs a row, more than writing the event; a sorted block it only checks. Each field's
    /// values of a tenant are sorted alone, so a comparison reads only the values: sorting
    /// whole rows compared the tenants and the fields' names as well, a tenth of the
    /// collector's CPU in `perf` during `xdr-bench collector`.
    pub fn encode(self, out: &mut Vec<u8>) {
        let mut columns: [Column; 4] = Default::default();
        let mut rows = 0;
        for (tenant, fields) in self.by_tenant {
            for ((name, _), values) in LOOKUP_COLUMNS.iter().zip(fields) {
                let mut last = None;
                for at in in_key_order(&values) {
                    let (value, timestamp) = &values[at];
                    if last
                        .replace(at)
                        .is_some_and(|last| values[last] == values[at])
                    {
                        continue;
                    }
                    let [tenants, names, texts, times] = &mut columns;
                    tenants.text(tenant);
                    names.text(name);
                    texts.text(value);
                    times.int64(*timestamp);
                    rows += 1;
                }
            }
        }
        if rows > 0 {
            native::write_block(out, rows, &LOOKUP_TABLE_COLUMNS, &columns);
        }
    }
}

/// The places of `values` in the lookup table's order: by the value's bytes, then the time.
/// The first 16 bytes of each value are compared beside its place, and the values only
/// when those are equal: comparing the values alone read each from wherever its event lies,
/// and the sort was a sixth of the loader thread in `perf` during `xdr-bench collector`.
fn in_key_order(values: &[(Cow<'_, str>, i64)]) -> Vec<usize> {
    let mut keyed: Vec<(u128, usize)> = (values.iter().enumerate())
        .map(|(at, (value, _))| (leading_bytes(value), at))
        .collect();
    keyed.sort_unstable_by(|a, b| (a.0.cmp(&b.0)).then_with(|| values[a.1].cmp(&values[b.1])));
    keyed.into_iter().map(|(_, at)| at).collect()
}

/// The first 16 bytes of `value`, zeros after its end, as a number that orders as they do.
fn leading_bytes(value: &str) -> u128 {
    let mut leading = [0; 16];
    let n = value.len().min(16);
    leading[..n].copy_from_slice(&value.as_bytes()[..n]);
    u128::from_be_bytes(leading)
}

/// Whether each column of [`COLUMNS`] is `Nullable`, as `schema::columns()` declares them.
pub fn nullable_columns() -> Vec<bool> {
    super::schema::columns()
        .iter()
        .take(COLUMNS.len())
        .map(|(_, kind)| kind.starts_with("Nullable"))
        .collect()
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
        let (nullable, mut block) = (nullable_columns(), EventBlock::new());
        let mut lookups = LookupRows::default();
        for event in &events {
            block.push(event, &nullable, &mut lookups);
        }
        let most = lookups.most_bytes();
        let mut out = Vec::new();
        lookups.encode(&mut out);
        let mut expected: [Column; 4] = Default::default();
        for (tenant, field, value, at) in [
            ("Another", "DestinationAddress", "d", 3_i64),
            ("Another", "RequestUrl", "c", 3),
            ("Another", "SourceAddress", "2", 3),
            ("Main", "RequestUrl", "a", 2),
            ("Main", "RequestUrl", "b", 1),
            ("Main", "SourceAddress", "1", 1),
        ] {
            for (column, text) in expected.iter_mut().zip([tenant, field, value]) {
                column.text(text);
            }
            expected[3].int64(at);
        }
        let mut block_of_expected = Vec::new();
        native::write_block(&mut block_of_expected, 6, &LOOKUP_TABLE_COLUMNS, &expected);
        assert_eq!(out, block_of_expected);
        // The room taken for them: every row's columns, the repeated one's ("Main",
        // "RequestUrl", "a", 2) too.
        let written: usize = expected.iter().map(Column::len).sum();
        assert_eq!(most, written + (5 + 11 + 2 + 8));

        let mut none = Vec::new();
        LookupRows::default().encode(&mut none);
        assert!(none.is_empty(), "no rows, no block");
    }

    /// The sort agrees with sorting the values themselves: values longer and shorter than
    /// the 16 bytes compared first, sharing them, ending in zero bytes, at several times.
    #[test]
    fn lookup_values_sort_as_their_bytes_then_their_times() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        let stems = [
            "",
            "a",
            "a\0",
            "http://h132308.",
            "http://h132308.site8",
            "\u{e9}",
        ];
        let values: Vec<(Cow<str>, i64)> = (0..5_000)
            .map(|_| {
                let mut value = stems[next(stems.len() as u64) as usize].to_owned();
                for _ in 0..next(4) {
                    value.push(['\0', 'b', 'z', '\u{7f}'][next(4) as usize]);
                }
                (Cow::Owned(value), next(3) as i64)
            })
            .collect();
        let mut expected = values.clone();
        expected.sort_unstable();
        let ordered: Vec<_> = in_key_order(&values)
            .into_iter()
            .map(|at| values[at].clone())
            .collect();
        assert_eq!(ordered, expected);
    }

    /// A block holds a row per event and a column of each of the table's, every column
    /// with a value (or a NULL flag and a value) per row.
    #[test]
    fn an_event_block_holds_every_column_of_every_event() {
        let nullable = nullable_columns();
        let mut block = EventBlock::new();
        let (rich, bare) = (crate::store::known_answers::rich_event(), Event::default());
        let mut lookups = LookupRows::default();
        block.push(&rich, &nullable, &mut lookups);
        block.push(&bare, &nullable, &mut lookups);
        let mut out = Vec::new();
        block.write_to(&mut out);
        let mut header = Vec::new();
        native::varint(&mut header, BLOCK_COLUMNS.len() as u64);
        native::varint(&mut header, 2);
        assert!(out.starts_with(&header));
        for ((name, kind), (column, nullable)) in BLOCK_COLUMNS
            .iter()
            .zip(block.columns.iter().zip(&nullable))
        {
            if *nullable {
                assert_eq!(column.nulls.len(), 2, "{name}");
            }
            if kind.starts_with("Array") {
                assert_eq!(column.ends.len(), 2 * 8, "{name}");
            } else if !*nullable {
                assert!(column.nulls.is_empty() && column.ends.is_empty(), "{name}");
            }
        }
        // Emptied for the next load, its room kept.
        let room = block.columns[0].values.capacity();
        block.clear();
        assert_eq!((block.len(), block.rows), (0, 0));
        assert_eq!(block.columns[0].values.capacity(), room);
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
        assert_eq!(read_back(&event, packed.clone()), event);
        // A `SELECT *` shows each context as the text its column holds, whichever it reads.
        let row = unpacked_row(&event, packed);
        let contexts: Vec<String> = (event.ti.iter())
            .map(|m| serde_json::to_string(&m.context).unwrap())
            .collect();
        assert!(!contexts.is_empty());
        assert_eq!(row["TI.context"], serde_json::json!(contexts));

        // Rows packed before contexts were objects hold them as strings.
        let mut old =
            serde_json::from_str::<serde_json::Value>(row_text(&event, &nullable).as_str())
                .unwrap();
        old["TI.context"] = serde_json::json!(contexts);
        let row = unpacked_row(&event, old.to_string().into_bytes());
        assert_eq!(row["TI.context"], serde_json::json!(contexts));

        // An event with nothing but what every event holds.
        let bare = Event::default();
        let mut packed = Vec::new();
        Row::of(&bare, &nullable).pack(&mut packed);
        assert_eq!(read_back(&bare, packed), bare);
    }

    fn row_text(event: &Event, nullable: &[bool]) -> String {
        let mut packed = Vec::new();
        Row::of(event, nullable).pack(&mut packed);
        String::from_utf8(packed).unwrap()
    }

    /// `event` read back from its packed row and the columns beside it, as a search by time
    /// answers them.
    fn read_back(event: &Event, packed: Vec<u8>) -> Event {
        super::super::answer::event_of(&unpacked_row(event, packed))
    }

    /// The row of every column a search by time makes of `packed` and the columns beside it.
    fn unpacked_row(event: &Event, packed: Vec<u8>) -> serde_json::Map<String, serde_json::Value> {
        let beside = serde_json::json!({
            "Tenant": event.tenant,
            "Timestamp": event.timestamp_ms,
            "Raw": event.raw,
            "PackedRow": String::from_utf8(packed).unwrap(),
        });
        let line = serde_json::to_vec(&beside).unwrap();
        let row = super::super::answer::row_of(&line).unwrap().unwrap();
        super::super::answer::unpacked(row).unwrap().unwrap()
    }
}

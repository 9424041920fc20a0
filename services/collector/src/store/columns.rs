//! An event as the values of the schema's columns, and back: what every engine stores in its
//! own way. A field the schema names is its column (an integer column keeps integers, any
//! other value is its texts joined by `,`); the other fields are `Extra`, name → text.

use std::{borrow::Cow, collections::BTreeMap, sync::LazyLock};

use rustc_hash::FxHashMap;

use xdr_filter::fields::texts_of;
use xdr_proto::pb::{EnrichmentStatus, Event, FieldValue, field_value};

use crate::search::schema::{COLUMNS, ColumnType};

/// One column's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored<'e> {
    Null,
    Integer(i64),
    Text(Cow<'e, str>),
}

/// How a column not taken from the event's fields is read from the event.
type OwnValue = for<'e> fn(&'e Event) -> Stored<'e>;

/// The columns taken from the event itself, not from its fields.
const NOT_FIELDS: [(&str, OwnValue); 6] = [
    ("Id", |event| Stored::Text(Cow::Borrowed(&event.id))),
    ("Timestamp", |event| Stored::Integer(event.timestamp_ms)),
    ("Tenant", |event| Stored::Text(Cow::Borrowed(&event.tenant))),
    ("Collector", |event| {
        Stored::Text(Cow::Borrowed(&event.collector))
    }),
    ("Raw", |event| Stored::Text(Cow::Borrowed(&event.raw))),
    (
        "EnrichmentStatus",
        |event| match EnrichmentStatus::try_from(event.enrichment_status) {
            Ok(EnrichmentStatus::Unspecified) | Err(_) => Stored::Null,
            Ok(status) => Stored::Text(Cow::Borrowed(status_name(status))),
        },
    ),
];

fn field_value(value: &FieldValue, kind: ColumnType) -> Stored<'_> {
    match (&value.kind, kind) {
        (Some(field_value::Kind::Integer(n)), ColumnType::Integer | ColumnType::Timestamp) => {
            Stored::Integer(*n)
        }
        (Some(field_value::Kind::TimestampMs(n)), _) => Stored::Integer(*n),
        (Some(field_value::Kind::Text(text)), _) => Stored::Text(Cow::Borrowed(text)),
        _ => Stored::Text(Cow::Owned(texts_of(value).join(","))),
    }
}

/// Every column's value for `event`, in the order of [`COLUMNS`] (`Null` where it holds
/// none), and its fields outside them by name, as text (`Extra`): in one pass over its
/// fields. A store writes every event once; a map lookup per column and a scan of the
/// columns per field were a tenth of the ClickHouse loader's time.
pub fn values_of(event: &Event) -> (Vec<Stored<'_>>, BTreeMap<&str, String>) {
    let mut values = vec![Stored::Null; COLUMNS.len()];
    let mut extra = BTreeMap::new();
    for &(i, value_of) in &COLUMN_INDEX.not_fields {
        values[i] = value_of(event);
    }
    for (name, value) in &event.fields {
        match COLUMN_INDEX.by_name.get(name.as_str()) {
            Some(Some(i)) => values[*i] = field_value(value, COLUMNS[*i].kind),
            // A field named as a column not taken from the fields (`Id`, …) is not kept.
            Some(None) => {}
            None => {
                extra.insert(name.as_str(), texts_of(value).join(","));
            }
        }
    }
    (values, extra)
}

/// Where each column is in [`COLUMNS`].
struct ColumnIndex {
    /// Every column by name: its place when an event's field holds it, else `None`. Fx, not
    /// SipHash: hashing each field's name was a tenth of the ClickHouse loader's time, and a
    /// table of fixed names cannot be flooded by the names an event brings.
    by_name: FxHashMap<&'static str, Option<usize>>,
    /// The columns not taken from the event's fields: each one's place and how it is read.
    not_fields: Vec<(usize, OwnValue)>,
}

static COLUMN_INDEX: LazyLock<ColumnIndex> = LazyLock::new(|| {
    let mut index = ColumnIndex {
        by_name: FxHashMap::default(),
        not_fields: Vec::new(),
    };
    for (i, column) in COLUMNS.iter().enumerate() {
        let own = NOT_FIELDS.iter().find(|(name, _)| *name == column.name);
        index
            .by_name
            .insert(column.name, own.is_none().then_some(i));
        if let Some((_, value_of)) = own {
            index.not_fields.push((i, *value_of));
        }
    }
    index
});

/// Sets what column `name` holds on `event` read back from a store.
pub fn put(event: &mut Event, name: &str, value: Stored<'_>) {
    match (name, value) {
        (_, Stored::Null) => {}
        ("Id", Stored::Text(text)) => event.id = text.into_owned(),
        ("Timestamp", Stored::Integer(n)) => event.timestamp_ms = n,
        ("Tenant", Stored::Text(text)) => event.tenant = text.into_owned(),
        ("Collector", Stored::Text(text)) => event.collector = text.into_owned(),
        ("Raw", Stored::Text(text)) => event.raw = text.into_owned(),
        ("EnrichmentStatus", Stored::Text(text)) => {
            event.enrichment_status =
                EnrichmentStatus::from_str_name(&format!("ENRICHMENT_STATUS_{text}"))
                    .map_or(0, |s| s as i32);
        }
        (name, Stored::Integer(n)) => {
            event.fields.insert(
                name.to_owned(),
                FieldValue {
                    kind: Some(field_value::Kind::Integer(n)),
                },
            );
        }
        (name, Stored::Text(text)) => {
            event.fields.insert(
                name.to_owned(),
                FieldValue {
                    kind: Some(field_value::Kind::Text(text.into_owned())),
                },
            );
        }
    }
}

/// The status as the `EnrichmentStatus` column holds it.
pub fn status_name(status: EnrichmentStatus) -> &'static str {
    status
        .as_str_name()
        .trim_start_matches("ENRICHMENT_STATUS_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::schema::Column;

    /// The value of `column` for `event`, looked up alone.
    fn value_of<'e>(event: &'e Event, column: &Column) -> Stored<'e> {
        match NOT_FIELDS.iter().find(|(name, _)| *name == column.name) {
            Some((_, value_of)) => value_of(event),
            None => match event.fields.get(column.name) {
                None => Stored::Null,
                Some(value) => field_value(value, column.kind),
            },
        }
    }

    #[test]
    fn values_of_answers_what_value_of_answers_and_the_other_fields() {
        let text = |t: &str| FieldValue {
            kind: Some(field_value::Kind::Text(t.into())),
        };
        let mut event = Event {
            id: "e1".into(),
            timestamp_ms: 7,
            tenant: "Main".into(),
            collector: "c".into(),
            raw: "{}".into(),
            enrichment_status: EnrichmentStatus::TimedOut as i32,
            ..Default::default()
        };
        // A field named as every column (those taken from the event itself are not kept
        // from its fields), and two outside them.
        for (i, column) in COLUMNS.iter().enumerate() {
            event
                .fields
                .insert(column.name.into(), text(&format!("v{i}")));
        }
        event.fields.insert("Custom".into(), text("x"));
        event.fields.insert(
            "Ports".into(),
            FieldValue {
                kind: Some(field_value::Kind::Integer(8080)),
            },
        );
        let (values, extra) = values_of(&event);
        let one_by_one: Vec<Stored> = COLUMNS.iter().map(|c| value_of(&event, c)).collect();
        assert_eq!(values, one_by_one);
        assert_eq!(
            extra,
            BTreeMap::from([("Custom", "x".to_owned()), ("Ports", "8080".to_owned())])
        );
        assert_eq!(values[0], Stored::Text("e1".into()));
    }
}

//! Reading an event's fields by their KUMA names, as the texts filters compare and rules look
//! up: one accessor for every place that reads a field.

use std::borrow::Cow;

use xdr_proto::pb::{Event, FieldValue, field_value};

/// A field value as the texts it compares as (a list gives each of its values); text is
/// borrowed, not copied: this runs for every event.
pub fn texts_of(value: &FieldValue) -> Vec<Cow<'_, str>> {
    match &value.kind {
        None => Vec::new(),
        Some(field_value::Kind::Text(text)) => vec![Cow::Borrowed(text)],
        Some(field_value::Kind::Integer(n)) => vec![Cow::Owned(n.to_string())],
        Some(field_value::Kind::Number(n)) => vec![Cow::Owned(n.to_string())],
        Some(field_value::Kind::Flag(flag)) => vec![Cow::Owned(flag.to_string())],
        Some(field_value::Kind::TimestampMs(ms)) => vec![Cow::Owned(ms.to_string())],
        Some(field_value::Kind::List(list)) => list
            .values
            .iter()
            .map(|v| Cow::Borrowed(v.as_str()))
            .collect(),
    }
}

/// The values of event field `name`; `Timestamp` is the event's own time.
pub fn field_texts<'e>(event: &'e Event, name: &str) -> Vec<Cow<'e, str>> {
    match event.fields.get(name) {
        Some(value) => texts_of(value),
        None if name == "Timestamp" => vec![Cow::Owned(event.timestamp_ms.to_string())],
        None => Vec::new(),
    }
}

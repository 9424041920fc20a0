//! Raw input into events' fields: a request's bytes split by the collector's delimiter, each
//! piece parsed by its normalizer (JSON objects, KUMA's `json` method) — mapped fields typed,
//! the rest kept or dropped, the raw event kept unless told not to. A piece that cannot be
//! an event is refused with its reason; the others go on.

use std::collections::BTreeMap;

use serde_json::Value;
use xdr_mesh::quote::quoted;
use xdr_proto::pb::{
    CollectorConfig, Delimiter, FieldType, FieldValue, StringList, field_value::Kind,
};

use crate::{
    collectors::{DEFAULT_MAX_EVENT_BYTES, is_field_name},
    search::schema::{self, ColumnType},
};

/// The event field that carries the event's time instead of a field of its own.
const TIMESTAMP: &str = "Timestamp";

/// What a piece of raw input became.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub fields: BTreeMap<String, FieldValue>,
    /// From a mapped `Timestamp`; 0 when none.
    pub timestamp_ms: i64,
    pub raw: String,
}

struct Row {
    path: Vec<String>,
    field: String,
    kind: FieldType,
}

/// One collector's parsing, built from its configuration.
pub struct Normalizer {
    rows: Vec<Row>,
    keep_unmapped: bool,
    keep_raw: bool,
    delimiter: u8,
    pub max_event_bytes: usize,
}

impl Normalizer {
    pub fn of(config: &CollectorConfig) -> Self {
        let normalizer = config.normalizer.clone().unwrap_or_default();
        let rows = (normalizer.mapping.iter())
            .map(|row| {
                let field = if row.field.is_empty() {
                    row.source.clone()
                } else {
                    row.field.clone()
                };
                let kind = match FieldType::try_from(row.r#type).unwrap_or_default() {
                    FieldType::Unspecified => match schema::column(&field).map(|c| c.kind) {
                        Some(ColumnType::Integer) => FieldType::Integer,
                        Some(ColumnType::Timestamp) => FieldType::Timestamp,
                        Some(ColumnType::Text) | None => FieldType::Text,
                    },
                    kind => kind,
                };
                Row {
                    path: row.source.split('.').map(str::to_owned).collect(),
                    field,
                    kind,
                }
            })
            .collect();
        let delimiter = match Delimiter::try_from(config.delimiter).unwrap_or_default() {
            Delimiter::Newline => b'\n',
            Delimiter::Tab => b'\t',
            Delimiter::Nul => b'\0',
        };
        let max_event_bytes = match config.max_event_bytes {
            0 => DEFAULT_MAX_EVENT_BYTES,
            n => n,
        };
        Normalizer {
            rows,
            keep_unmapped: normalizer.keep_unmapped,
            keep_raw: !normalizer.drop_raw,
            delimiter,
            max_event_bytes: usize::try_from(max_event_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The events in `raw`: its non-empty pieces between delimiters (a carriage return
    /// before a line feed dropped), as the gateway counts them.
    pub fn split<'a>(&self, raw: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        xdr_mesh::lines::events_in(raw, self.delimiter)
    }

    /// One piece of raw input as an event's fields, or why it cannot be one.
    pub fn parse(&self, piece: &[u8]) -> Result<Parsed, String> {
        if piece.len() > self.max_event_bytes {
            return Err(format!(
                "{} bytes; the collector takes events of at most {}",
                piece.len(),
                self.max_event_bytes
            ));
        }
        let text = std::str::from_utf8(piece).map_err(|e| format!("not UTF-8: {e}"))?;
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(object) = value else {
            return Err("not a JSON object".to_owned());
        };
        let mut parsed = Parsed::default();
        for row in &self.rows {
            let Some(found) = at_path(&object, &row.path) else {
                continue;
            };
            if found.is_null() {
                continue;
            }
            let value = typed(found, row.kind).map_err(|why| format!("{}: {why}", row.field))?;
            if row.field == TIMESTAMP {
                if let Some(Kind::TimestampMs(ms)) = value.kind {
                    parsed.timestamp_ms = ms;
                }
            } else {
                parsed.fields.insert(row.field.clone(), value);
            }
        }
        if self.keep_unmapped {
            for (name, value) in &object {
                let mapped = self.rows.iter().any(|r| r.path[0] == *name);
                if mapped || value.is_null() || parsed.fields.contains_key(name) {
                    continue;
                }
                if !is_field_name(name) {
                    return Err(format!(
                        "field {}: not a field name (letters, digits, `_`)",
                        quoted(name)
                    ));
                }
                parsed.fields.insert(name.clone(), as_is(value));
            }
        }
        if self.keep_raw {
            parsed.raw = text.to_owned();
        }
        Ok(parsed)
    }
}

fn at_path<'a>(object: &'a serde_json::Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(object.get(first)?, |value, step| {
        value.as_object()?.get(step)
    })
}

fn text(value: String) -> FieldValue {
    FieldValue {
        kind: Some(Kind::Text(value)),
    }
}

/// `value` as a field of type `kind`, or why it is not one.
fn typed(value: &Value, kind: FieldType) -> Result<FieldValue, String> {
    let wrong = || format!("{} is not {}", shown(value), article(kind));
    let kind = match kind {
        FieldType::Text | FieldType::Unspecified => match value {
            Value::String(s) => Kind::Text(s.clone()),
            Value::Number(_) | Value::Bool(_) => Kind::Text(value.to_string()),
            Value::Array(items) => Kind::List(StringList {
                values: items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(_) | Value::Bool(_) => Ok(item.to_string()),
                        _ => Err(wrong()),
                    })
                    .collect::<Result<_, _>>()?,
            }),
            _ => return Err(wrong()),
        },
        FieldType::Integer => Kind::Integer(match value {
            Value::Number(n) => n.as_i64().ok_or_else(wrong)?,
            Value::String(s) => s.trim().parse().map_err(|_| wrong())?,
            _ => return Err(wrong()),
        }),
        FieldType::Number => Kind::Number(match value {
            Value::Number(n) => n.as_f64().ok_or_else(wrong)?,
            Value::String(s) => (s.trim().parse::<f64>().ok())
                .filter(|n| n.is_finite())
                .ok_or_else(wrong)?,
            _ => return Err(wrong()),
        }),
        FieldType::Flag => Kind::Flag(match value {
            Value::Bool(b) => *b,
            Value::String(s) if s == "true" => true,
            Value::String(s) if s == "false" => false,
            _ => return Err(wrong()),
        }),
        FieldType::Timestamp => Kind::TimestampMs(match value {
            Value::Number(n) => n.as_i64().ok_or_else(wrong)?,
            Value::String(s) => {
                let time = humantime::parse_rfc3339_weak(s.trim()).map_err(|_| wrong())?;
                let since = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| wrong())?;
                i64::try_from(since.as_millis()).map_err(|_| wrong())?
            }
            _ => return Err(wrong()),
        }),
    };
    Ok(FieldValue { kind: Some(kind) })
}

/// An unmapped value kept as the JSON gave it: nested values as their JSON text.
fn as_is(value: &Value) -> FieldValue {
    match value {
        Value::String(s) => text(s.clone()),
        Value::Bool(b) => FieldValue {
            kind: Some(Kind::Flag(*b)),
        },
        Value::Number(n) => FieldValue {
            kind: Some(match n.as_i64() {
                Some(i) => Kind::Integer(i),
                None => Kind::Number(n.as_f64().unwrap_or(f64::NAN)),
            }),
        },
        other => text(other.to_string()),
    }
}

fn article(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Integer => "an integer",
        FieldType::Number => "a number",
        FieldType::Flag => "true or false",
        FieldType::Timestamp => "a time (milliseconds or RFC 3339)",
        FieldType::Text | FieldType::Unspecified => "text",
    }
}

/// A value as an error shows it: short, whatever it was.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    quoted(&text).to_string()
}

#[cfg(test)]
mod tests {
    use xdr_proto::pb::{FieldMap, Normalizer as Config};

    use super::*;

    fn normalizer(mapping: &[(&str, &str, FieldType)], keep_unmapped: bool) -> Normalizer {
        Normalizer::of(&CollectorConfig {
            normalizer: Some(Config {
                mapping: mapping
                    .iter()
                    .map(|(source, field, kind)| FieldMap {
                        source: (*source).into(),
                        field: (*field).into(),
                        r#type: *kind as i32,
                    })
                    .collect(),
                keep_unmapped,
                ..Default::default()
            }),
            max_event_bytes: 100,
            ..Default::default()
        })
    }

    #[test]
    fn the_seeds_event_maps_its_request_url() {
        let seed = normalizer(
            &[("RequestUrl", "RequestUrl", FieldType::Unspecified)],
            false,
        );
        let raw = br#"{"RequestUrl":"http://fakess123bn.nu","other":1}"#;
        let parsed = seed.parse(raw).unwrap();
        assert_eq!(
            parsed.fields,
            BTreeMap::from([(
                "RequestUrl".to_owned(),
                text("http://fakess123bn.nu".into())
            )])
        );
        assert_eq!(parsed.raw.as_bytes(), raw);
    }

    #[test]
    fn nested_paths_types_time_and_unmapped_fields() {
        let n = normalizer(
            &[
                ("src.ip", "SourceAddress", FieldType::Unspecified),
                ("src.port", "SourcePort", FieldType::Unspecified),
                ("when", "Timestamp", FieldType::Unspecified),
            ],
            true,
        );
        let parsed = n
            .parse(br#"{"src":{"ip":"192.0.2.1","port":"443"},"when":"2026-01-02T03:04:05Z","x":true}"#)
            .unwrap();
        assert_eq!(parsed.fields["SourceAddress"], text("192.0.2.1".into()));
        assert_eq!(parsed.fields["SourcePort"].kind, Some(Kind::Integer(443)));
        assert_eq!(parsed.fields["x"].kind, Some(Kind::Flag(true)));
        assert!(!parsed.fields.contains_key("src"), "mapped from, not kept");
        assert_eq!(parsed.timestamp_ms, 1_767_323_045_000);
    }

    #[test]
    fn refusals_say_why() {
        let n = normalizer(&[("port", "SourcePort", FieldType::Unspecified)], false);
        let cases: [(&[u8], &str); 5] = [
            (b"{not json", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (
                br#"{"port":"https"}"#,
                "SourcePort: `\"https\"` is not an integer",
            ),
            (b"\xff\xfe", "not UTF-8"),
            (&[b' '; 101], "101 bytes"),
        ];
        for (raw, why) in cases {
            let refused = n.parse(raw).unwrap_err();
            assert!(refused.contains(why), "{refused:?} should say {why:?}");
        }
    }

    #[test]
    fn pieces_split_on_the_delimiter_without_empty_ones() {
        let n = normalizer(&[], false);
        let pieces: Vec<&[u8]> = n.split(b"{\"a\":1}\r\n\n{\"b\":2}\n").collect();
        assert_eq!(pieces, vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]);
    }
}

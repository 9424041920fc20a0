//! What a collector must be before it is saved. Every refusal names its field.

use xdr_mesh::{
    caller::SHARED_TENANT,
    error::{Invalid, invalid},
    quote::quoted,
};
use xdr_proto::pb::{CollectorConfig, Destination, DestinationKind, FieldType, Transport};

use crate::search::schema::{self, ColumnType};

/// The default largest event (KUMA's).
pub const DEFAULT_MAX_EVENT_BYTES: u64 = 4 << 20;
/// The largest a collector may be told to take: a request carries events whole.
pub const MAX_EVENT_BYTES: u64 = 16 << 20;
/// Linked rules at most: each costs every event a pass of its filter.
pub const MAX_LINKED_RULES: usize = 64;
const MAX_NAME_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 4000;
const MAX_MAPPING_ROWS: usize = 512;
const MAX_PATH_BYTES: usize = 256;

/// Event fields a mapping may not write: the collector sets them.
const RESERVED_FIELDS: &[&str] = &[
    "Id",
    "Tenant",
    "Collector",
    "Raw",
    "Extra",
    "EnrichmentStatus",
];

/// `config` checked, with its defaults written in (transport, event size, destinations).
pub fn validated(mut config: CollectorConfig) -> Result<CollectorConfig, Invalid> {
    let name_chars = config.name.chars().count();
    if name_chars == 0 || name_chars > MAX_NAME_CHARS || config.name.trim() != config.name {
        return Err(invalid(
            "name",
            format!("1 to {MAX_NAME_CHARS} characters, no spaces around"),
        ));
    }
    let tenant_chars = config.tenant.chars().count();
    if tenant_chars == 0
        || tenant_chars > MAX_NAME_CHARS
        || config.tenant.chars().any(char::is_control)
    {
        return Err(invalid(
            "tenant",
            format!("1 to {MAX_NAME_CHARS} characters, none of them control characters"),
        ));
    }
    if config.tenant == SHARED_TENANT {
        return Err(invalid("tenant", "events never belong to Shared"));
    }
    if config.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("more than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let digest = &config.input_token_sha256;
    if !digest.is_empty()
        && (digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(invalid(
            "input_token_sha256",
            "the SHA-256 of the input token: 64 lower-case hex digits",
        ));
    }
    if config.transport == Transport::Unspecified as i32 {
        config.transport = Transport::Grpc as i32;
    }
    if Transport::try_from(config.transport).is_err() {
        return Err(invalid(
            "transport",
            format!("unknown: {}", config.transport),
        ));
    }
    match config.max_event_bytes {
        0 => config.max_event_bytes = DEFAULT_MAX_EVENT_BYTES,
        n if n > MAX_EVENT_BYTES => {
            return Err(invalid(
                "max_event_bytes",
                format!("{n}; at most {MAX_EVENT_BYTES}"),
            ));
        }
        _ => {}
    }
    if xdr_proto::pb::Delimiter::try_from(config.delimiter).is_err() {
        return Err(invalid(
            "delimiter",
            format!("unknown: {}", config.delimiter),
        ));
    }
    let normalizer = config.normalizer.get_or_insert_default();
    if xdr_proto::pb::NormalizerKind::try_from(normalizer.kind).is_err() {
        return Err(invalid(
            "normalizer.kind",
            format!("unknown: {}", normalizer.kind),
        ));
    }
    if normalizer.mapping.len() > MAX_MAPPING_ROWS {
        return Err(invalid(
            "normalizer.mapping",
            format!(
                "{} rows; at most {MAX_MAPPING_ROWS}",
                normalizer.mapping.len()
            ),
        ));
    }
    for (i, row) in normalizer.mapping.iter_mut().enumerate() {
        let at = |what: &str| format!("normalizer.mapping[{i}].{what}");
        if row.source.is_empty() || row.source.len() > MAX_PATH_BYTES {
            return Err(invalid(
                at("source"),
                format!("1 to {MAX_PATH_BYTES} bytes"),
            ));
        }
        if row.source.split('.').any(str::is_empty) {
            return Err(invalid(at("source"), "an empty step in the path"));
        }
        if row.field.is_empty() {
            row.field = row.source.clone();
        }
        if !is_field_name(&row.field) {
            return Err(invalid(
                at("field"),
                format!(
                    "{}: letters, digits and `_`, starting with a letter, at most {MAX_NAME_CHARS}",
                    quoted(&row.field)
                ),
            ));
        }
        if RESERVED_FIELDS.contains(&row.field.as_str()) {
            return Err(invalid(
                at("field"),
                format!("{} is set by the collector", row.field),
            ));
        }
        let Ok(kind) = FieldType::try_from(row.r#type) else {
            return Err(invalid(at("type"), format!("unknown: {}", row.r#type)));
        };
        // A schema column holds one type: a mapping may not store another in it.
        if let Some(column) = schema::column(&row.field) {
            let fits = matches!(
                (column.kind, kind),
                (_, FieldType::Unspecified)
                    | (ColumnType::Text, FieldType::Text)
                    | (ColumnType::Integer, FieldType::Integer)
                    | (ColumnType::Timestamp, FieldType::Timestamp)
            );
            if !fits {
                return Err(invalid(
                    at("type"),
                    format!("{} is a {:?} column", row.field, column.kind),
                ));
            }
        }
    }
    if config.rule_ids.len() > MAX_LINKED_RULES {
        return Err(invalid(
            "rule_ids",
            format!(
                "{} rules; at most {MAX_LINKED_RULES}",
                config.rule_ids.len()
            ),
        ));
    }
    for (i, id) in config.rule_ids.iter().enumerate() {
        if id.is_empty() || id.len() > 64 {
            return Err(invalid(format!("rule_ids[{i}]"), "not a rule id"));
        }
        if config.rule_ids[..i].contains(id) {
            return Err(invalid(format!("rule_ids[{i}]"), "linked twice"));
        }
    }
    if config.destinations.is_empty() {
        config.destinations.push(Destination {
            kind: DestinationKind::Storage as i32,
            filter: None,
        });
    }
    for (i, destination) in config.destinations.iter().enumerate() {
        let field = |name: &str| format!("destinations[{i}].{name}");
        match DestinationKind::try_from(destination.kind) {
            Ok(DestinationKind::Storage) if destination.filter.is_some() => {
                return Err(invalid(
                    field("filter"),
                    "the event store takes every event",
                ));
            }
            Ok(DestinationKind::Storage) => {}
            Ok(DestinationKind::Alerts) => {
                crate::alerts::compile(destination, &config.tenant).map_err(|e| {
                    // The compiler names its fields from `filter` on.
                    invalid(field(&e.field), e.reason)
                })?;
            }
            _ => {
                return Err(invalid(
                    field("kind"),
                    "DESTINATION_KIND_STORAGE (the event store) or DESTINATION_KIND_ALERTS (the playbook service)",
                ));
            }
        }
        if config.destinations[..i]
            .iter()
            .any(|d| d.kind == destination.kind)
        {
            return Err(invalid(field("kind"), "named twice"));
        }
    }
    Ok(config)
}

/// Whether `name` can be an event field: what a search may name as a column or in `Extra`.
pub fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_CHARS
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use xdr_proto::pb::{FieldMap, Normalizer};

    use super::*;

    fn collector() -> CollectorConfig {
        CollectorConfig {
            name: "http-input".into(),
            tenant: "Main".into(),
            normalizer: Some(Normalizer {
                mapping: vec![FieldMap {
                    source: "RequestUrl".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_written_in() {
        let saved = validated(collector()).unwrap();
        assert_eq!(saved.transport, Transport::Grpc as i32);
        assert_eq!(saved.max_event_bytes, DEFAULT_MAX_EVENT_BYTES);
        assert_eq!(saved.normalizer.unwrap().mapping[0].field, "RequestUrl");
        assert_eq!(saved.destinations.len(), 1);
    }

    #[test]
    fn each_refusal_names_its_field() {
        type Change = fn(&mut CollectorConfig);
        let cases: Vec<(Change, &str)> = vec![
            (|c| c.name.clear(), "name"),
            (|c| c.name = "x".repeat(129), "name"),
            (|c| c.tenant = "Shared".into(), "tenant"),
            (|c| c.tenant = "t".repeat(129), "tenant"),
            (|c| c.max_event_bytes = 1 << 30, "max_event_bytes"),
            (
                |c| c.input_token_sha256 = "secret".into(),
                "input_token_sha256",
            ),
            (
                |c| c.input_token_sha256 = "A".repeat(64),
                "input_token_sha256",
            ),
            (
                |c| c.normalizer.as_mut().unwrap().mapping[0].field = "Id".into(),
                "normalizer.mapping[0].field",
            ),
            (
                |c| c.normalizer.as_mut().unwrap().mapping[0].source = "a..b".into(),
                "normalizer.mapping[0].source",
            ),
            (
                |c| {
                    let row = &mut c.normalizer.as_mut().unwrap().mapping[0];
                    row.field = "SourcePort".into();
                    row.r#type = FieldType::Text as i32;
                },
                "normalizer.mapping[0].type",
            ),
            (|c| c.rule_ids = vec!["a".into(), "a".into()], "rule_ids[1]"),
            (
                |c| {
                    c.destinations = vec![Destination {
                        kind: 7,
                        filter: None,
                    }]
                },
                "destinations[0].kind",
            ),
            (
                |c| {
                    c.destinations = vec![Destination {
                        kind: DestinationKind::Alerts as i32,
                        filter: Some(xdr_proto::pb::FilterNode {
                            node: Some(xdr_proto::pb::filter_node::Node::FilterId("saved".into())),
                        }),
                    }]
                },
                "destinations[0].filter.filter_id",
            ),
        ];
        for (change, field) in cases {
            let mut config = collector();
            change(&mut config);
            let refused = validated(config).unwrap_err();
            assert_eq!(refused.field, field, "{refused}");
        }
    }
}

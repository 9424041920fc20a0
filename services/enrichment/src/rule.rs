//! Enrichment rules as the seed's KUMA form has them, checked and completed with defaults
//! before they are stored: what a rule says is what the stream does.

use std::{num::NonZeroU32, time::Duration};

use xdr_mesh::quote::quoted;
use xdr_proto::pb::{EnrichmentRule, IndicatorType, SourceKind, enrichment_rule::Filter};

pub use xdr_mesh::{
    caller::SHARED_TENANT,
    error::{Invalid, invalid},
};
pub const DEFAULT_RPS: u32 = 1000;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;
const MAX_NAME_CHARS: usize = 128;
const MAX_DESCRIPTION_CHARS: usize = 4000;
/// A rule waits this long at most, whatever it asks: an event is never held for hours.
const MAX_TIMEOUT_SECONDS: u32 = 3600;

/// Connections one rule's source keeps, at most: each is a task and a socket.
const MAX_CONNECTIONS: u32 = 64;
/// Mapping rows of one rule, at most.
const MAX_MAPPING_ROWS: usize = 64;
/// Characters of an event field name or a tenant name, at most.
const MAX_FIELD_CHARS: usize = 128;

/// A name of 1..=128 Unicode characters, not blank.
pub fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err(invalid(field, "empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(invalid(
            field,
            format!("{chars} characters; at most {MAX_NAME_CHARS}"),
        ));
    }
    Ok(())
}

pub fn check_description(description: &str) -> Result<(), Invalid> {
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("{chars} characters; at most {MAX_DESCRIPTION_CHARS}"),
        ));
    }
    Ok(())
}

/// The tenant a resource belongs to: `Shared` when none is given.
pub fn tenant_or_shared(tenant: &str) -> Result<String, Invalid> {
    let tenant = tenant.trim();
    if tenant.is_empty() {
        return Ok(SHARED_TENANT.to_owned());
    }
    check_short_text("tenant", tenant)?;
    Ok(tenant.to_owned())
}

/// A tenant or field name: at most 128 characters, none of them control characters.
fn check_short_text(field: &str, text: &str) -> Result<(), Invalid> {
    let chars = text.chars().count();
    if chars > MAX_FIELD_CHARS {
        return Err(invalid(
            field,
            format!("{chars} characters; at most {MAX_FIELD_CHARS}"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "holds a control character"));
    }
    Ok(())
}

/// `rule` checked, with every default filled in (tenant, source kind, connections, RPS,
/// timeout), as it will be stored and shown.
pub fn checked(mut rule: EnrichmentRule, vcpus: u32) -> Result<EnrichmentRule, Invalid> {
    check_name("name", &rule.name)?;
    rule.name = rule.name.trim().to_owned();
    rule.tenant = tenant_or_shared(&rule.tenant)?;
    check_description(&rule.description)?;
    let kind = SourceKind::try_from(rule.source_kind)
        .map_err(|_| invalid("source_kind", format!("unknown kind {}", rule.source_kind)))?;
    let kind = match kind {
        SourceKind::Unspecified => SourceKind::Threatintel,
        kind => kind,
    };
    rule.source_kind = kind as i32;
    rule.server_url = rule.server_url.trim().to_owned();
    if kind == SourceKind::Cybertrace {
        check_host_port(&rule.server_url)?;
    } else if !rule.server_url.is_empty() {
        check_host_port(rule.server_url.trim_start_matches("https://"))?;
    }
    if rule.connections == 0 {
        rule.connections = vcpus.clamp(1, MAX_CONNECTIONS);
    }
    if rule.connections > MAX_CONNECTIONS {
        return Err(invalid(
            "connections",
            format!("{}; at most {MAX_CONNECTIONS}", rule.connections),
        ));
    }
    if rule.rps == 0 {
        rule.rps = DEFAULT_RPS;
    }
    if rule.timeout_seconds == 0 {
        rule.timeout_seconds = DEFAULT_TIMEOUT_SECONDS;
    }
    if rule.timeout_seconds > MAX_TIMEOUT_SECONDS {
        return Err(invalid(
            "timeout_seconds",
            format!("{} s; at most {MAX_TIMEOUT_SECONDS}", rule.timeout_seconds),
        ));
    }
    if rule.mapping.is_empty() {
        return Err(invalid(
            "mapping",
            "at least one row (event field → ip, url, domain or hash)",
        ));
    }
    if rule.mapping.len() > MAX_MAPPING_ROWS {
        return Err(invalid(
            "mapping",
            format!("{} rows; at most {MAX_MAPPING_ROWS}", rule.mapping.len()),
        ));
    }
    for (i, row) in rule.mapping.iter_mut().enumerate() {
        row.field = row.field.trim().to_owned();
        if row.field.is_empty() {
            return Err(invalid(format!("mapping[{i}].field"), "empty"));
        }
        check_short_text(&format!("mapping[{i}].field"), &row.field)?;
        match IndicatorType::try_from(row.indicator_type) {
            Ok(IndicatorType::Unspecified) | Err(_) => {
                return Err(invalid(
                    format!("mapping[{i}].indicator_type"),
                    "ip, url, domain or hash",
                ));
            }
            Ok(_) => {}
        }
    }
    if let Some(Filter::FilterId(id)) = &rule.filter
        && id.trim().is_empty()
    {
        return Err(invalid("filter_id", "empty"));
    }
    Ok(rule)
}

fn check_host_port(url: &str) -> Result<(), Invalid> {
    let bad = |reason: &str| invalid("server_url", format!("{}: {reason}", quoted(url)));
    let (host, port) = url.rsplit_once(':').ok_or_else(|| bad("not host:port"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    Ok(())
}

/// A rule as streams apply it: its checked settings typed once, when it becomes active, so
/// the hot path never reads the protobuf rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub name: String,
    /// `Shared`: every tenant's events.
    pub tenant: String,
    pub debug: bool,
    pub source: SourceSpec,
    /// Values sent to the source per second, at most (one second's worth at once).
    pub rps: NonZeroU32,
    /// How long an event waits for this rule's answers.
    pub timeout: Duration,
    pub mapping: Vec<MappingRow>,
}

/// Where a rule looks values up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceSpec {
    pub kind: SourceKind,
    /// `host:port`; none: the ThreatIntel service the enrichment service was started with.
    pub target: Option<String>,
    pub connections: NonZeroU32,
}

/// One mapping row: an event field and the kind its values are looked up as.
#[derive(Clone, Debug)]
pub struct MappingRow {
    pub field: String,
    pub kind: IndicatorType,
}

impl Rule {
    /// `rule`, checked when it was saved ([`checked`]), typed.
    pub fn of(rule: &EnrichmentRule) -> Self {
        let kind = match SourceKind::try_from(rule.source_kind) {
            Ok(SourceKind::Cybertrace) => SourceKind::Cybertrace,
            _ => SourceKind::Threatintel,
        };
        Rule {
            id: rule.id.clone(),
            name: rule.name.clone(),
            tenant: rule.tenant.clone(),
            debug: rule.debug,
            source: SourceSpec {
                kind,
                target: (!rule.server_url.is_empty()).then(|| rule.server_url.clone()),
                connections: NonZeroU32::new(rule.connections).unwrap_or(NonZeroU32::MIN),
            },
            rps: NonZeroU32::new(rule.rps).unwrap_or(NonZeroU32::MIN),
            timeout: Duration::from_secs(u64::from(rule.timeout_seconds.max(1))),
            mapping: rule
                .mapping
                .iter()
                .map(|row| MappingRow {
                    field: row.field.clone(),
                    kind: IndicatorType::try_from(row.indicator_type)
                        .unwrap_or(IndicatorType::Unspecified),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_rule() -> EnrichmentRule {
        EnrichmentRule {
            name: "Test CT enrichment".into(),
            mapping: vec![xdr_proto::pb::FieldMapping {
                field: "RequestUrl".into(),
                indicator_type: IndicatorType::Url as i32,
            }],
            debug: true,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let rule = checked(seed_rule(), 2).unwrap();
        assert_eq!(rule.tenant, "Shared");
        assert_eq!(rule.source_kind, SourceKind::Threatintel as i32);
        assert_eq!(
            (rule.connections, rule.rps, rule.timeout_seconds),
            (2, 1000, 30)
        );
    }

    #[test]
    fn a_source_keeps_a_bounded_number_of_connections() {
        let many = EnrichmentRule {
            connections: u32::MAX,
            ..seed_rule()
        };
        let refused = checked(many, 2).unwrap_err();
        assert_eq!(refused.field, "connections");
        assert_eq!(
            checked(seed_rule(), 1000).unwrap().connections,
            MAX_CONNECTIONS
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field_of = |rule: EnrichmentRule| checked(rule, 2).unwrap_err().field;
        assert_eq!(
            field_of(EnrichmentRule {
                name: " ".into(),
                ..seed_rule()
            }),
            "name"
        );
        assert_eq!(
            field_of(EnrichmentRule {
                name: "é".repeat(129),
                ..seed_rule()
            }),
            "name"
        );
        assert!(
            checked(
                EnrichmentRule {
                    name: "é".repeat(128),
                    ..seed_rule()
                },
                2
            )
            .is_ok()
        );
        assert_eq!(
            field_of(EnrichmentRule {
                mapping: vec![],
                ..seed_rule()
            }),
            "mapping"
        );
        assert_eq!(
            field_of(EnrichmentRule {
                mapping: vec![xdr_proto::pb::FieldMapping {
                    field: "RequestUrl".into(),
                    indicator_type: 0
                }],
                ..seed_rule()
            }),
            "mapping[0].indicator_type"
        );
        assert_eq!(
            field_of(EnrichmentRule {
                description: "x".repeat(4001),
                ..seed_rule()
            }),
            "description"
        );
        assert_eq!(
            field_of(EnrichmentRule {
                source_kind: SourceKind::Cybertrace as i32,
                server_url: "cybertrace.local".into(),
                ..seed_rule()
            }),
            "server_url"
        );
        assert_eq!(
            field_of(EnrichmentRule {
                timeout_seconds: 100_000,
                ..seed_rule()
            }),
            "timeout_seconds"
        );
    }
}

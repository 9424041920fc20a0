//! Between protobuf messages and the index's types, with the checks that name the field.

use tonic::Status;
use xdr_mesh::quote::quoted;
use xdr_proto::{pb, wire::TiMatchParts};

use crate::{
    feeds::FeedReport,
    index::{
        FALSE_POSITIVE, INTERNAL_TI, Indicator, IndicatorKey, IndicatorKind, Match, Supplier,
        parse_indicator,
    },
    remote::{
        PollStatus,
        config::{MispEntry, SourceEntry, TaxiiEntry},
    },
};

pub fn kind_from_pb(kind: pb::IndicatorType) -> Option<IndicatorKind> {
    match kind {
        pb::IndicatorType::Unspecified => None,
        pb::IndicatorType::Ip => Some(IndicatorKind::Ip),
        pb::IndicatorType::Url => Some(IndicatorKind::Url),
        pb::IndicatorType::Domain => Some(IndicatorKind::Domain),
        pb::IndicatorType::Hash => Some(IndicatorKind::Hash),
    }
}

pub fn kind_to_pb(kind: IndicatorKind) -> pb::IndicatorType {
    match kind {
        IndicatorKind::Ip => pb::IndicatorType::Ip,
        IndicatorKind::Url => pb::IndicatorType::Url,
        IndicatorKind::Domain => pb::IndicatorType::Domain,
        IndicatorKind::Hash => pb::IndicatorType::Hash,
    }
}

pub fn match_to_pb(value: &str, found: &Match<'_>) -> pb::TiMatch {
    pb::TiMatch {
        field: String::new(),
        value: value.to_owned(),
        indicator_type: kind_to_pb(found.kind) as i32,
        category: found.category.to_owned(),
        matched_indicator: found.matched.to_owned(),
        supplier: found.supplier.to_owned(),
        context: found
            .context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// `found`, the match of the looked-up `value`, as the parts its `TiMatch` is encoded from.
pub fn match_parts<'a>(
    value: &'a str,
    found: &'a Match<'a>,
) -> TiMatchParts<'a, impl Iterator<Item = (&'a str, &'a str)> + use<'a>> {
    TiMatchParts {
        value,
        indicator_type: kind_to_pb(found.kind) as i32,
        category: found.category,
        matched_indicator: found.matched,
        supplier: found.supplier,
        context: found.context.iter(),
    }
}

pub fn indicator_to_pb(indicator: Indicator) -> pb::Indicator {
    pb::Indicator {
        r#type: indicator
            .kind
            .map_or(pb::IndicatorType::Unspecified, kind_to_pb) as i32,
        value: indicator.value,
        category: indicator.category,
        supplier: indicator.supplier,
        context: indicator.context.into_iter().collect(),
        tags: indicator.tags,
        first_seen_ms: 0,
        last_seen_ms: indicator.last_seen_ms,
        expires_at_ms: indicator.expires_at_ms,
        exact: indicator.exact,
    }
}

pub fn supplier_to_pb(supplier: &Supplier) -> pb::Supplier {
    pb::Supplier {
        name: supplier.name.clone(),
        confidence: supplier.confidence.into(),
        retention_minutes: supplier.retention_minutes,
        description: supplier.description.clone(),
        source: None,
    }
}

/// Runtime indicators go to the built-in suppliers; feed suppliers are owned by their files.
pub fn runtime_supplier(field: &str, supplier: &str) -> Result<String, Status> {
    match supplier {
        "" => Ok(INTERNAL_TI.to_owned()),
        INTERNAL_TI | FALSE_POSITIVE => Ok(supplier.to_owned()),
        other => Err(Status::invalid_argument(format!(
            "{field}: {} is fed from files; indicators added at run time go to {INTERNAL_TI} or {FALSE_POSITIVE}",
            quoted(other)
        ))),
    }
}

/// An analyst's indicator, checked; errors name `indicators[i].<field>`.
pub fn runtime_indicator(
    i: usize,
    pb: pb::Indicator,
    now_ms: i64,
) -> Result<(IndicatorKey, Indicator), Status> {
    let field = |name: &str| format!("indicators[{i}].{name}");
    let supplier = runtime_supplier(&field("supplier"), &pb.supplier)?;
    let kind = kind_from_pb(pb.r#type());
    let key = parse_indicator(&pb.value, kind)
        .map_err(|e| Status::invalid_argument(format!("{}: {e}", field("value"))))?;
    let category = match (pb.category.trim(), supplier.as_str()) {
        ("", FALSE_POSITIVE) => FALSE_POSITIVE.to_owned(),
        ("", _) => key.internal_ti_category(),
        (category, _) if category.chars().count() > 128 => {
            return Err(Status::invalid_argument(format!(
                "{}: longer than 128 characters",
                field("category")
            )));
        }
        (category, _) => category.to_owned(),
    };
    let indicator = Indicator {
        value: pb.value,
        kind,
        category,
        supplier,
        context: pb.context.into_iter().collect(),
        tags: pb.tags,
        last_seen_ms: if pb.last_seen_ms == 0 {
            now_ms
        } else {
            pb.last_seen_ms
        },
        expires_at_ms: pb.expires_at_ms,
        exact: pb.exact,
    };
    Ok((key, indicator))
}

/// A supplier's settings from UpsertSupplier, checked.
pub fn supplier_from_pb(supplier: Option<pb::Supplier>) -> Result<Supplier, Status> {
    let supplier = supplier.ok_or_else(|| Status::invalid_argument("supplier: required"))?;
    let name = supplier.name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(Status::invalid_argument(
            "supplier.name: 1 to 128 characters",
        ));
    }
    let confidence = u8::try_from(supplier.confidence)
        .ok()
        .filter(|c| *c <= 100)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "supplier.confidence: {} is not within 0..=100",
                supplier.confidence
            ))
        })?;
    if supplier.description.chars().count() > 4000 {
        return Err(Status::invalid_argument(
            "supplier.description: longer than 4000 characters",
        ));
    }
    Ok(Supplier {
        name: name.to_owned(),
        confidence,
        retention_minutes: supplier.retention_minutes,
        description: supplier.description,
    })
}

/// Counts by reason, as `CountByKey`s.
pub fn counts_to_pb(counts: &std::collections::BTreeMap<&'static str, u64>) -> Vec<pb::CountByKey> {
    counts
        .iter()
        .map(|(key, count)| pb::CountByKey {
            key: (*key).to_owned(),
            count: *count,
        })
        .collect()
}

/// Each supplier's source and how it fared: the feeds of the last reload, with the polls of
/// remote suppliers (one that never fetched anything has no feed yet).
pub fn supplier_statuses(
    reports: &[FeedReport],
    polls: &std::collections::BTreeMap<String, PollStatus>,
) -> Vec<pb::SupplierStatus> {
    let mut statuses: Vec<pb::SupplierStatus> = reports
        .iter()
        .filter(|report| !report.supplier.is_empty())
        .map(|report| {
            let poll = polls.get(&report.supplier);
            let kind = match poll {
                Some(poll) => poll.kind,
                None if report.file.ends_with(".stix.json") => "stix",
                None if report.file.ends_with(".misp") => "misp",
                None if report.file.ends_with(".csv") => "csv",
                None => "json",
            };
            pb::SupplierStatus {
                name: report.supplier.clone(),
                kind: kind.to_owned(),
                source: poll.map_or_else(|| report.file.clone(), |p| p.source.clone()),
                records: report.indicators,
                skipped: report.skipped.count,
                skipped_by_reason: counts_to_pb(&report.skipped.by_reason),
                last_poll_ms: poll.map_or(0, |p| p.last_poll_ms),
                last_success_ms: poll.map_or(0, |p| p.last_success_ms),
                // A poll's failure is the newer news: a feed that failed to load says so
                // when its poll went well.
                last_error: (poll.and_then(|p| p.last_error.clone()))
                    .or_else(|| report.error.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    for (name, poll) in polls {
        if !statuses.iter().any(|status| &status.name == name) {
            statuses.push(pb::SupplierStatus {
                name: name.clone(),
                kind: poll.kind.to_owned(),
                source: poll.source.clone(),
                last_poll_ms: poll.last_poll_ms,
                last_success_ms: poll.last_success_ms,
                last_error: poll.last_error.clone().unwrap_or_default(),
                ..Default::default()
            });
        }
    }
    statuses
}

/// The remote source UpsertSupplier asks `supplier` to poll (`None`: kind `none`, stop
/// polling it), its settings as given; they are checked when the source is built.
pub fn source_from_pb(
    supplier: &str,
    source: pb::RemoteSourceSettings,
) -> Result<Option<SourceEntry>, Status> {
    let optional = |text: String| (!text.is_empty()).then_some(text);
    let poll_interval = optional(source.poll_interval);
    let (credentials, ca) = (optional(source.credentials), optional(source.ca));
    Ok(Some(match source.kind.as_str() {
        "taxii" => SourceEntry::Taxii(TaxiiEntry {
            supplier: supplier.to_owned(),
            api_root: source.url,
            collection: source.collection,
            credentials,
            ca,
            poll_interval,
        }),
        "misp" => SourceEntry::Misp(MispEntry {
            supplier: supplier.to_owned(),
            url: source.url,
            credentials,
            ca,
            poll_interval,
        }),
        "none" => return Ok(None),
        other => {
            return Err(Status::invalid_argument(format!(
                "supplier.source.kind: {} is none of taxii, misp, none",
                quoted(other)
            )));
        }
    }))
}

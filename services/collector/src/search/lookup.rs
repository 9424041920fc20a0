//! Searches that name the values they look for. Most searches an analyst runs pivot on an
//! indicator — the seed's `WHERE RequestUrl = '…' ORDER BY Timestamp DESC LIMIT 250` — and
//! an engine that keeps its events in time order (ClickHouse) would read a field of every
//! event of the tenant to find them. Such an engine keeps a lookup table of
//! ([`LOOKUP_FIELDS`] value → time) instead and narrows the search to the times it finds
//! there; this module says when a search can be narrowed so and how far.

use super::{
    query::{Comparison, Expr, Projection, Search},
    schema::Column,
};

/// The fields events are looked up by: the indicators' fields (URL, addresses, file hash).
/// The embedded store indexes the same ones.
pub const LOOKUP_FIELDS: &[&str] = &[
    "RequestUrl",
    "SourceAddress",
    "DestinationAddress",
    "FileHash",
];

/// What a search's lookup reads: the times of the tenant's events whose `field` holds one of
/// `values`.
#[derive(Debug, PartialEq)]
pub struct Lookup<'a> {
    pub tenant: &'a str,
    pub field: &'static str,
    pub values: Vec<&'a str>,
    /// `Some((descending, count))` when the search answers only the first `count` of those
    /// events in time order and nothing else filters them: the lookup need find no more
    /// times than that.
    pub first: Option<(bool, u64)>,
}

/// The lookup that narrows `search`, when its filter is a conjunction holding the tenant's
/// equality and an equality (or `IN` list) of a lookup field with text literals. Other
/// conjuncts stay in the search; the lookup only leaves out events that cannot match.
pub fn lookup(search: &Search) -> Option<Lookup<'_>> {
    let mut conjuncts = Vec::new();
    flatten(search.filter.as_ref()?, &mut conjuncts);
    let tenant = conjuncts
        .iter()
        .find_map(|c| equality(c).filter(|(column, _)| column.name == "Tenant"))
        .and_then(|(_, values)| match values[..] {
            [tenant] => Some(tenant),
            _ => None,
        })?;
    let (field, values) = conjuncts
        .iter()
        .find_map(|c| equality(c).filter(|(column, _)| LOOKUP_FIELDS.contains(&column.name)))?;
    // The tenant's equality and the field's: the lookup finds exactly the events the
    // search filters to, so only the order and the limit are left to apply.
    let nothing_else = conjuncts.len() == 2;
    let plain_rows = search.group_by.is_empty()
        && search.having.is_none()
        && match &search.select {
            Projection::Events => true,
            Projection::Items(items) => items.iter().all(|(expr, _)| !aggregates(expr)),
        };
    let first = match &search.order_by[..] {
        [order] if nothing_else && plain_rows && is_timestamp(&order.expr) => {
            Some((order.descending, search.offset.saturating_add(search.limit)))
        }
        _ => None,
    };
    Some(Lookup {
        tenant,
        field: field.name,
        values,
        first,
    })
}

fn flatten<'a>(expr: &'a Expr, into: &mut Vec<&'a Expr>) {
    match expr {
        Expr::And(left, right) => {
            flatten(left, into);
            flatten(right, into);
        }
        other => into.push(other),
    }
}

/// `column = 'text'` (either way round) or `column IN ('text', …)`: the column and the texts.
fn equality(expr: &Expr) -> Option<(Column, Vec<&str>)> {
    match expr {
        Expr::Compare(left, Comparison::Eq, right) => match (&**left, &**right) {
            (Expr::Column(column), Expr::Text(text)) | (Expr::Text(text), Expr::Column(column)) => {
                Some((*column, vec![text.as_str()]))
            }
            _ => None,
        },
        Expr::In {
            expr,
            list,
            negated: false,
        } => match &**expr {
            Expr::Column(column) => {
                let texts = list
                    .iter()
                    .map(|item| match item {
                        Expr::Text(text) => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((*column, texts))
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_timestamp(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(column) if column.name == "Timestamp")
}

fn aggregates(expr: &Expr) -> bool {
    match expr {
        Expr::Aggregate { .. } => true,
        Expr::Compare(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => aggregates(a) || aggregates(b),
        Expr::Not(a) | Expr::IsNull { expr: a, .. } => aggregates(a),
        Expr::In { expr, list, .. } => aggregates(expr) || list.iter().any(aggregates),
        Expr::Between {
            expr, low, high, ..
        } => aggregates(expr) || aggregates(low) || aggregates(high),
        Expr::Like { expr, pattern, .. } => aggregates(expr) || aggregates(pattern),
        Expr::Call(_, args) => args.iter().any(aggregates),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::check::check;

    /// The field, the values and how many first times.
    type Found = (String, Vec<String>, Option<(bool, u64)>);

    fn lookup_of(sql: &str) -> Option<Found> {
        let search = check(sql).unwrap().within_tenant("Main");
        lookup(&search).map(|l| {
            assert_eq!(l.tenant, "Main");
            (
                l.field.to_owned(),
                l.values.iter().map(|v| v.to_string()).collect(),
                l.first,
            )
        })
    }

    #[test]
    fn the_seeds_select_needs_only_its_first_times() {
        let seed = "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250";
        assert_eq!(
            lookup_of(seed),
            Some((
                "RequestUrl".into(),
                vec!["http://fakess123bn.nu".into()],
                Some((true, 250))
            ))
        );
        assert_eq!(
            lookup_of(
                "SELECT Id FROM events WHERE SourceAddress IN ('a', 'b') ORDER BY Timestamp LIMIT 5 OFFSET 10"
            ),
            Some((
                "SourceAddress".into(),
                vec!["a".into(), "b".into()],
                Some((false, 15))
            ))
        );
    }

    #[test]
    fn other_conjuncts_keep_every_time_of_the_value() {
        for sql in [
            "SELECT * FROM events WHERE 'x' = FileHash AND Name = 'y' ORDER BY Timestamp DESC LIMIT 5",
            "SELECT * FROM events WHERE FileHash = 'x' ORDER BY Id LIMIT 5",
            "SELECT count() FROM events WHERE FileHash = 'x'",
            "SELECT Name, count() FROM events WHERE FileHash = 'x' GROUP BY Name ORDER BY Timestamp",
        ] {
            let (field, values, first) = lookup_of(sql).unwrap();
            assert_eq!(
                (field.as_str(), values, first),
                ("FileHash", vec!["x".to_owned()], None),
                "{sql}"
            );
        }
    }

    #[test]
    fn searches_that_do_not_name_a_value_are_not_narrowed() {
        for sql in [
            "SELECT * FROM events",
            "SELECT * FROM events WHERE RequestUrl = 'a' OR Name = 'b'",
            "SELECT * FROM events WHERE RequestUrl != 'a'",
            "SELECT * FROM events WHERE RequestUrl NOT IN ('a')",
            "SELECT * FROM events WHERE NOT (RequestUrl = 'a')",
            "SELECT * FROM events WHERE Name = 'a'",
            "SELECT * FROM events WHERE lower(RequestUrl) = 'a'",
            "SELECT * FROM events WHERE RequestUrl LIKE 'a%'",
        ] {
            assert_eq!(lookup_of(sql), None, "{sql}");
        }
        // Without the tenant's restriction (never so in the service) there is nothing to
        // look up within.
        let search = check("SELECT * FROM events WHERE RequestUrl = 'a'").unwrap();
        assert_eq!(lookup(&search), None);
    }
}

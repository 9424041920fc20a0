//! GROUP BY searches an engine may aggregate in a hash table of its own: SQLite groups by
//! sorting every row (seconds per ten million events), while the groups of a typical
//! search are few. The plan names what the engine scans for each row — the group keys and
//! the arguments of the aggregates — and what the answer is then computed from.

use super::query::{Aggregate, Expr, Projection, Search};

/// The group keys and the aggregates of a search, each once, aliases written out.
#[derive(Debug, PartialEq)]
pub struct Grouping {
    pub keys: Vec<Expr>,
    /// Every `Expr::Aggregate` the projection, HAVING and ORDER BY use.
    pub aggregates: Vec<Expr>,
}

impl Grouping {
    /// The plan for `search`, or `None` when the engine's own GROUP BY must answer it: no
    /// GROUP BY, `count(DISTINCT …)` (a set per group), TI columns in a key or an aggregate,
    /// or a column read outside the keys and the aggregates (SQLite answers it from any row
    /// of the group).
    pub fn of(search: &Search) -> Option<Grouping> {
        if search.group_by.is_empty() {
            return None;
        }
        let aliases: &[(Expr, String)] = match &search.select {
            Projection::Items(items) => items,
            Projection::Events => return None,
        };
        let resolve = |expr: &Expr| written_out(expr, aliases);
        let keys: Vec<Expr> = search.group_by.iter().map(resolve).collect();
        let answer: Vec<Expr> = aliases
            .iter()
            .map(|(expr, _)| expr.clone())
            .chain(search.having.iter().map(resolve))
            .chain(search.order_by.iter().map(|o| resolve(&o.expr)))
            .collect();
        let mut aggregates = Vec::new();
        for expr in &answer {
            collect_aggregates(expr, &mut aggregates);
        }
        let scanned_simply = |expr: &Expr| !mentions(expr, &|e| matches!(e, Expr::Ti(_)));
        let eligible = keys
            .iter()
            .all(|k| scanned_simply(k) && !mentions(k, &|e| matches!(e, Expr::Aggregate { .. })))
            && aggregates.iter().all(|a| match a {
                Expr::Aggregate { distinct, arg, .. } => {
                    !distinct
                        && arg.as_deref().is_none_or(|arg| {
                            scanned_simply(arg)
                                && !mentions(arg, &|e| matches!(e, Expr::Aggregate { .. }))
                        })
                }
                _ => false,
            });
        let grouping = Grouping { keys, aggregates };
        (eligible && answer.iter().all(|e| grouping.covers(e))).then_some(grouping)
    }

    /// The key `expr` is, if it is one.
    pub fn key_of(&self, expr: &Expr) -> Option<usize> {
        self.keys.iter().position(|k| k == expr)
    }

    /// The aggregate `expr` is, if it is one.
    pub fn aggregate_of(&self, expr: &Expr) -> Option<usize> {
        self.aggregates.iter().position(|a| a == expr)
    }

    /// Whether `expr` can be computed from the keys and the aggregates alone.
    fn covers(&self, expr: &Expr) -> bool {
        if self.key_of(expr).is_some() || self.aggregate_of(expr).is_some() {
            return true;
        }
        match expr {
            Expr::Column(_) | Expr::Ti(_) | Expr::Extra(_) | Expr::Alias(_) => false,
            Expr::Aggregate { .. } => false,
            Expr::Text(_) | Expr::Integer(_) | Expr::Float(_) | Expr::Null => true,
            other => children(other).into_iter().all(|e| self.covers(e)),
        }
    }
}

/// What an aggregate computes.
pub fn aggregate_parts(expr: &Expr) -> Option<(Aggregate, Option<&Expr>)> {
    match expr {
        Expr::Aggregate { function, arg, .. } => Some((*function, arg.as_deref())),
        _ => None,
    }
}

/// `expr` with every alias replaced by the expression it names.
fn written_out(expr: &Expr, aliases: &[(Expr, String)]) -> Expr {
    if let Expr::Alias(name) = expr {
        return aliases
            .iter()
            .find(|(_, n)| n == name)
            .map_or(Expr::Null, |(e, _)| e.clone());
    }
    let mut out = expr.clone();
    for child in children_mut(&mut out) {
        *child = written_out(child, aliases);
    }
    out
}

fn collect_aggregates(expr: &Expr, found: &mut Vec<Expr>) {
    if matches!(expr, Expr::Aggregate { .. }) {
        if !found.contains(expr) {
            found.push(expr.clone());
        }
        return;
    }
    for child in children(expr) {
        collect_aggregates(child, found);
    }
}

/// Whether `expr` or any expression within it is one `is` picks.
pub fn mentions(expr: &Expr, is: &dyn Fn(&Expr) -> bool) -> bool {
    is(expr) || children(expr).into_iter().any(|e| mentions(e, is))
}

fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Compare(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => vec![a, b],
        Expr::Not(a) | Expr::IsNull { expr: a, .. } => vec![a],
        Expr::In { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
        Expr::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        Expr::Like { expr, pattern, .. } => vec![expr, pattern],
        Expr::Call(_, args) => args.iter().collect(),
        Expr::Aggregate { arg, .. } => arg.iter().map(|a| &**a).collect(),
        Expr::Column(_)
        | Expr::Ti(_)
        | Expr::Extra(_)
        | Expr::Alias(_)
        | Expr::Text(_)
        | Expr::Integer(_)
        | Expr::Float(_)
        | Expr::Null => Vec::new(),
    }
}

fn children_mut(expr: &mut Expr) -> Vec<&mut Expr> {
    match expr {
        Expr::Compare(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => vec![a, b],
        Expr::Not(a) | Expr::IsNull { expr: a, .. } => vec![a],
        Expr::In { expr, list, .. } => std::iter::once(&mut **expr).chain(list).collect(),
        Expr::Between {
            expr, low, high, ..
        } => vec![expr, low, high],
        Expr::Like { expr, pattern, .. } => vec![expr, pattern],
        Expr::Call(_, args) => args.iter_mut().collect(),
        Expr::Aggregate { arg, .. } => arg.iter_mut().map(|a| &mut **a).collect(),
        Expr::Column(_)
        | Expr::Ti(_)
        | Expr::Extra(_)
        | Expr::Alias(_)
        | Expr::Text(_)
        | Expr::Integer(_)
        | Expr::Float(_)
        | Expr::Null => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::check::check;

    fn plan(sql: &str) -> Option<Grouping> {
        Grouping::of(&check(sql).unwrap().within_tenant("Main"))
    }

    #[test]
    fn keys_and_aggregates_are_named_once_with_aliases_written_out() {
        let grouping = plan(
            "SELECT toStartOfHour(Timestamp) AS h, count() AS n, max(DestinationPort) FROM events GROUP BY h HAVING count() > 1 ORDER BY n DESC",
        )
        .expect("a plain GROUP BY is hashed");
        assert_eq!(grouping.keys.len(), 1);
        assert!(matches!(grouping.keys[0], Expr::Call(..)), "{grouping:?}");
        assert_eq!(grouping.aggregates.len(), 2, "{grouping:?}");
    }

    #[test]
    fn what_only_the_engine_can_answer_stays_with_it() {
        for sql in [
            "SELECT count() FROM events",
            "SELECT Name, count(DISTINCT SourceAddress) FROM events GROUP BY Name",
            "SELECT Name, Message, count() FROM events GROUP BY Name",
            "SELECT Name, count() AS n FROM events GROUP BY Name ORDER BY Timestamp",
        ] {
            assert_eq!(plan(sql), None, "{sql}");
        }
    }
}

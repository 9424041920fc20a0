//! A checked [`Search`] as SQLite SQL: names come from the schema (never from the query text),
//! every literal is a bound parameter, and a predicate on `TI.*` holds when any of the event's
//! matches satisfies it. The event store's tables are `events` and `ti` (one row per match).

use rusqlite::types::Value;

use super::{
    grouped::{Grouping, mentions},
    query::{Aggregate, Comparison, Expr, Function, Projection, Search},
    schema::COLUMNS,
};

/// SQL text and the values of its `?` parameters, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Rendered {
    pub sql: String,
    pub params: Vec<Value>,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// `search` as one statement over the partition tables `tables` (oldest first). `SELECT *`
/// answers `events.rowid` first, then every schema column and `Extra`; the event store reads
/// the matches of those rows itself.
pub fn render(search: &Search, tables: &[String]) -> Rendered {
    let first_rows_each = tables.len() > 1
        && search.group_by.is_empty()
        && !search.order_by.is_empty()
        && !aggregates(search);
    if first_rows_each {
        let rendered = render_with(search, tables, true);
        // The WHERE is written once per partition: past SQLite's bound on parameters (a
        // long IN list over many partitions) it is written once, over all of them.
        if rendered.params.len() <= MAX_PARAMETERS {
            return rendered;
        }
    }
    render_with(search, tables, false)
}

/// SQLite's bound on a statement's parameters (`SQLITE_MAX_VARIABLE_NUMBER`).
const MAX_PARAMETERS: usize = 32_766;

fn render_with(search: &Search, tables: &[String], first_rows_each: bool) -> Rendered {
    let mut out = Rendered::default();
    let aliases = search.aliases();
    let mut writer = Writer {
        out: &mut out,
        aliases: &aliases,
        groups: None,
    };
    writer.push("SELECT ");
    match &search.select {
        Projection::Events => {
            writer.push("events.rowid");
            for column in COLUMNS {
                writer.push(&format!(", events.\"{}\"", column.name));
            }
            writer.push(", events.\"Extra\"");
        }
        Projection::Items(items) => writer.items(items),
    }
    if first_rows_each {
        // Each partition answers its own first rows in the order, through its indexes;
        // the order and the limit are then taken over those (SQLite would otherwise sort
        // every selected row of every partition for `ORDER BY Timestamp DESC LIMIT 10`).
        writer.push(" FROM (");
        let first_rows = search
            .limit
            .saturating_add(search.offset)
            .min(i64::MAX as u64);
        for (i, table) in tables.iter().enumerate() {
            if i > 0 {
                writer.push(" UNION ALL ");
            }
            writer.push(&format!("SELECT * FROM (SELECT * FROM {table} AS events"));
            writer.filter(search);
            writer.push(" ORDER BY ");
            writer.orders(search);
            writer.push(" LIMIT ");
            writer.param(Value::Integer(first_rows as i64));
            writer.push(")");
        }
        writer.push(") AS events ORDER BY ");
        writer.orders(search);
        writer.limit(search);
        return out;
    }
    writer.from(tables);
    writer.filter(search);
    if !search.group_by.is_empty() {
        writer.push(" GROUP BY ");
        writer.list(&search.group_by);
    }
    if let Some(having) = &search.having {
        writer.push(" HAVING ");
        writer.expr(having);
    }
    if !search.order_by.is_empty() {
        writer.push(" ORDER BY ");
        writer.orders(search);
    }
    writer.limit(search);
    out
}

/// The table [`render_over_groups`] reads: one row per group, the keys as `k0, k1, …`, then
/// the aggregates as `a0, a1, …` (the order of [`Grouping`]).
pub const GROUPS_TABLE: &str = "temp.xdr_groups";

/// The rows a hashed GROUP BY aggregates: the keys of each event `search` selects, then the
/// argument of each aggregate that has one, in the order of `grouping`.
pub fn render_group_scan(search: &Search, grouping: &Grouping, tables: &[String]) -> Rendered {
    let mut out = Rendered::default();
    let mut writer = Writer {
        out: &mut out,
        aliases: &[],
        groups: None,
    };
    writer.push("SELECT ");
    let arguments = grouping.aggregates.iter().filter_map(|a| match a {
        Expr::Aggregate { arg, .. } => arg.as_deref(),
        _ => None,
    });
    for (i, expr) in grouping.keys.iter().chain(arguments).enumerate() {
        if i > 0 {
            writer.push(", ");
        }
        writer.expr(expr);
    }
    writer.from(tables);
    writer.filter(search);
    out
}

/// The answer of a hashed GROUP BY, from [`GROUPS_TABLE`]: the projection, HAVING, ORDER BY
/// (the keys when the search names no order, as SQLite's own GROUP BY answers), LIMIT.
pub fn render_over_groups(search: &Search, grouping: &Grouping) -> Rendered {
    let mut out = Rendered::default();
    let aliases = search.aliases();
    let mut writer = Writer {
        out: &mut out,
        aliases: &aliases,
        groups: Some(grouping),
    };
    writer.push("SELECT ");
    if let Projection::Items(items) = &search.select {
        writer.items(items);
    }
    writer.push(&format!(" FROM {GROUPS_TABLE}"));
    if let Some(having) = &search.having {
        writer.push(" WHERE ");
        writer.expr(having);
    }
    writer.push(" ORDER BY ");
    if search.order_by.is_empty() {
        let keys: Vec<String> = (0..grouping.keys.len()).map(|i| format!("k{i}")).collect();
        writer.push(&keys.join(", "));
    } else {
        writer.orders(search);
    }
    writer.limit(search);
    out
}

struct Writer<'a> {
    out: &'a mut Rendered,
    aliases: &'a [(String, Expr)],
    /// Rendering over [`GROUPS_TABLE`]: keys and aggregates are its columns.
    groups: Option<&'a Grouping>,
}

impl Writer<'_> {
    fn push(&mut self, sql: &str) {
        self.out.sql.push_str(sql);
    }

    fn param(&mut self, value: Value) {
        self.out.params.push(value);
        self.out.sql.push('?');
    }

    /// The events of every partition as one table, `events` (SQLite moves the WHERE into
    /// each partition's part, where its indexes answer it).
    fn from(&mut self, tables: &[String]) {
        match tables {
            [table] => self.push(&format!(" FROM {table} AS events")),
            tables => {
                let parts: Vec<String> = tables
                    .iter()
                    .map(|t| format!("SELECT * FROM {t}"))
                    .collect();
                self.push(&format!(" FROM ({}) AS events", parts.join(" UNION ALL ")));
            }
        }
    }

    fn filter(&mut self, search: &Search) {
        if let Some(filter) = &search.filter {
            self.push(" WHERE ");
            self.expr(filter);
        }
    }

    fn orders(&mut self, search: &Search) {
        for (i, order) in search.order_by.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.expr(&order.expr);
            self.push(if order.descending { " DESC" } else { " ASC" });
        }
    }

    fn limit(&mut self, search: &Search) {
        self.push(" LIMIT ");
        self.param(Value::Integer(search.limit as i64));
        self.push(" OFFSET ");
        self.param(Value::Integer(search.offset.min(i64::MAX as u64) as i64));
    }

    /// The projection's expressions, without their names.
    fn items(&mut self, items: &[(Expr, String)]) {
        for (i, (expr, _)) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.expr(expr);
        }
    }

    fn list(&mut self, exprs: &[Expr]) {
        for (i, expr) in exprs.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.expr(expr);
        }
    }

    fn expr(&mut self, expr: &Expr) {
        if let Some(groups) = self.groups {
            if let Some(i) = groups.key_of(expr) {
                return self.push(&format!("k{i}"));
            }
            if let Some(i) = groups.aggregate_of(expr) {
                return self.push(&format!("a{i}"));
            }
        }
        // A predicate on a TI column holds when one of the event's matches satisfies it.
        if expr.is_predicate() && mentions_ti(expr) {
            self.push("EXISTS (SELECT 1 FROM ti WHERE ti.event = events.rowid AND ");
            self.term(expr);
            self.push(")");
        } else {
            self.term(expr);
        }
    }

    fn term(&mut self, expr: &Expr) {
        match expr {
            Expr::Column(column) => self.push(&format!("events.\"{}\"", column.name)),
            Expr::Ti(name) => self.push(&format!("ti.\"{name}\"")),
            Expr::Extra(key) => {
                self.push("json_extract(events.\"Extra\", ");
                // The key is letters, digits and `_` (checked): a JSON path of one member.
                self.param(Value::Text(format!("$.\"{key}\"")));
                self.push(")");
            }
            Expr::Alias(name) => {
                let aliased = self
                    .aliases
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, e)| e.clone());
                match aliased {
                    Some(aliased) => self.expr(&aliased),
                    None => self.push("NULL"),
                }
            }
            Expr::Text(text) => self.param(Value::Text(text.clone())),
            Expr::Integer(n) => self.param(Value::Integer(*n)),
            Expr::Float(n) => self.param(Value::Real(*n)),
            Expr::Null => self.push("NULL"),
            Expr::Compare(left, Comparison::Eq, right) if self.finds_by_id(left, right) => {
                let value = if matches!(**left, Expr::Text(_)) {
                    left
                } else {
                    right
                };
                self.push("events.rowid IN (SELECT event FROM event_ids WHERE \"Id\" = ");
                self.expr(value);
                self.push(")");
            }
            Expr::In {
                expr,
                list,
                negated: false,
            } if self.finds_by_id(expr, &Expr::Text(String::new()))
                && list.iter().all(|e| matches!(e, Expr::Text(_))) =>
            {
                self.push("events.rowid IN (SELECT event FROM event_ids WHERE \"Id\" IN (");
                self.list(list);
                self.push("))");
            }
            Expr::Compare(left, op, right) => {
                self.push("(");
                self.expr(left);
                self.push(match op {
                    Comparison::Eq => " = ",
                    Comparison::NotEq => " <> ",
                    Comparison::Lt => " < ",
                    Comparison::LtEq => " <= ",
                    Comparison::Gt => " > ",
                    Comparison::GtEq => " >= ",
                });
                self.expr(right);
                self.push(")");
            }
            Expr::And(left, right) => self.binary(left, " AND ", right),
            Expr::Or(left, right) => self.binary(left, " OR ", right),
            Expr::Not(inner) => {
                self.push("(NOT ");
                self.expr(inner);
                self.push(")");
            }
            Expr::In {
                expr,
                list,
                negated,
            } => {
                self.push("(");
                self.expr(expr);
                self.push(if *negated { " NOT IN (" } else { " IN (" });
                self.list(list);
                self.push("))");
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                self.push("(");
                self.expr(expr);
                self.push(if *negated {
                    " NOT BETWEEN "
                } else {
                    " BETWEEN "
                });
                self.expr(low);
                self.push(" AND ");
                self.expr(high);
                self.push(")");
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                // The store's connections run with case_sensitive_like: LIKE is KUMA's
                // case-sensitive LIKE, and ILIKE compares both sides lower-cased.
                self.push("(");
                if *case_insensitive {
                    self.push("lower(");
                    self.expr(expr);
                    self.push(")");
                } else {
                    self.expr(expr);
                }
                self.push(if *negated { " NOT LIKE " } else { " LIKE " });
                if *case_insensitive {
                    self.push("lower(");
                    self.expr(pattern);
                    self.push(")");
                } else {
                    self.expr(pattern);
                }
                self.push(")");
            }
            Expr::IsNull { expr, negated } => {
                self.push("(");
                self.expr(expr);
                self.push(if *negated {
                    " IS NOT NULL)"
                } else {
                    " IS NULL)"
                });
            }
            Expr::Call(function, args) => self.call(*function, args),
            Expr::Aggregate {
                function,
                arg,
                distinct,
            } => {
                self.push(match function {
                    Aggregate::Count => "count(",
                    Aggregate::Min => "min(",
                    Aggregate::Max => "max(",
                    Aggregate::Sum => "sum(",
                    Aggregate::Avg => "avg(",
                });
                if *distinct {
                    self.push("DISTINCT ");
                }
                match arg {
                    Some(arg) => self.expr(arg),
                    None => self.push("*"),
                }
                self.push(")");
            }
        }
    }

    /// Whether `a` and `b` are the `Id` column and a text: the event store finds events by
    /// id through its id set (`event_ids`), the partitions have no index of their own on it.
    fn finds_by_id(&self, a: &Expr, b: &Expr) -> bool {
        let is_id = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "Id");
        let is_text = |e: &Expr| matches!(e, Expr::Text(_));
        self.groups.is_none() && ((is_id(a) && is_text(b)) || (is_text(a) && is_id(b)))
    }

    fn binary(&mut self, left: &Expr, op: &str, right: &Expr) {
        self.push("(");
        self.expr(left);
        self.push(op);
        self.expr(right);
        self.push(")");
    }

    fn call(&mut self, function: Function, args: &[Expr]) {
        match function {
            Function::InSubnet => self.named("xdr_in_subnet", args),
            Function::Match => self.named("xdr_match", args),
            Function::Lower => self.named("lower", args),
            Function::ToStartOfHour | Function::ToStartOfDay => {
                let unit = if function == Function::ToStartOfHour {
                    HOUR_MS
                } else {
                    DAY_MS
                };
                self.push("((");
                self.list(args);
                self.push(&format!(" / {unit}) * {unit})"));
            }
        }
    }

    fn named(&mut self, name: &str, args: &[Expr]) {
        self.push(name);
        self.push("(");
        self.list(args);
        self.push(")");
    }
}

/// Whether the answer aggregates the events (`count()` and the like in the projection,
/// HAVING or ORDER BY).
fn aggregates(search: &Search) -> bool {
    let is_aggregate = |e: &Expr| matches!(e, Expr::Aggregate { .. });
    let items = match &search.select {
        Projection::Items(items) => items.iter().any(|(e, _)| mentions(e, &is_aggregate)),
        Projection::Events => false,
    };
    items
        || search
            .having
            .as_ref()
            .is_some_and(|e| mentions(e, &is_aggregate))
        || search
            .order_by
            .iter()
            .any(|o| mentions(&o.expr, &is_aggregate))
}

fn mentions_ti(expr: &Expr) -> bool {
    match expr {
        Expr::Ti(_) => true,
        Expr::Compare(a, _, b) => mentions_ti(a) || mentions_ti(b),
        Expr::In { expr, .. } | Expr::IsNull { expr, .. } => mentions_ti(expr),
        Expr::Between { expr, .. } => mentions_ti(expr),
        Expr::Like { expr, pattern, .. } => mentions_ti(expr) || mentions_ti(pattern),
        Expr::Call(_, args) => args.iter().any(mentions_ti),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::check::check;

    fn rendered(sql: &str) -> Rendered {
        render(
            &check(sql).unwrap().within_tenant("Main"),
            &["events".to_owned()],
        )
    }

    #[test]
    fn the_seed_select_binds_every_value() {
        let out = rendered(
            "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250",
        );
        assert!(
            out.sql.starts_with("SELECT events.rowid, events.\"Id\", "),
            "{}",
            out.sql
        );
        assert!(
            out.sql.ends_with(
                " FROM events AS events WHERE ((events.\"Tenant\" = ?) AND (events.\"RequestUrl\" = ?)) ORDER BY events.\"Timestamp\" DESC LIMIT ? OFFSET ?"
            ),
            "{}",
            out.sql
        );
        assert_eq!(
            out.params,
            [
                Value::Text("Main".into()),
                Value::Text("http://fakess123bn.nu".into()),
                Value::Integer(250),
                Value::Integer(0)
            ]
        );
    }

    #[test]
    fn an_event_is_found_by_id_through_the_id_set() {
        let out = rendered("SELECT * FROM events WHERE Id = 'e1' OR Id IN ('e2', 'e3')");
        assert!(
            out.sql.contains(
                "events.rowid IN (SELECT event FROM event_ids WHERE \"Id\" = ?) OR events.rowid IN (SELECT event FROM event_ids WHERE \"Id\" IN (?, ?))"
            ),
            "{}",
            out.sql
        );
    }

    #[test]
    fn ti_predicates_ask_any_match_and_no_text_reaches_the_sql() {
        let out = rendered(
            "SELECT Name AS n, count() AS c FROM events WHERE TI.category = 'x'' OR 1=1 --' AND Extra['f'] = 'y' GROUP BY Name HAVING c > 1 ORDER BY c DESC",
        );
        assert!(
            out.sql.contains(
                "EXISTS (SELECT 1 FROM ti WHERE ti.event = events.rowid AND (ti.\"category\" = ?))"
            ),
            "{}",
            out.sql
        );
        assert!(
            out.sql.contains("json_extract(events.\"Extra\", ?)"),
            "{}",
            out.sql
        );
        assert!(
            out.sql
                .contains("HAVING (count(*) > ?) ORDER BY count(*) DESC"),
            "{}",
            out.sql
        );
        assert!(
            !out.sql.contains("OR 1=1") && !out.sql.contains('\''),
            "{}",
            out.sql
        );
        assert!(out.params.contains(&Value::Text("x' OR 1=1 --".into())));
        assert!(out.params.contains(&Value::Text("$.\"f\"".into())));
    }
}

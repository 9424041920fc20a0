//! A checked [`Search`] as ClickHouse SQL. ClickHouse 18.16 has no query parameters, so every
//! literal is written by one function, [`quoted`], and every name comes from the schema, never
//! from the query text. The rows answer as SQLite's do (`store::sqlite`): NULLs sort first
//! ascending and last descending, a predicate on `TI.*` holds when any of the event's matches
//! satisfies it (the matches are `Nested` columns, one array per `TI.<name>`), and a literal
//! compared with a column takes the column's type, as SQLite's column affinity has it.

use std::fmt::Write;

use ipnet::IpNet;

use super::{
    lookup::{self, Lookup},
    query::{Aggregate, Comparison, Expr, Function, Projection, Search},
    schema::{COLUMNS, ColumnType},
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The columns a `SELECT *` reads, in order: the schema's, then `Extra` and the matches.
pub const EVENT_ARRAYS: &[&str] = &[
    "Extra.key",
    "Extra.value",
    "TI.field",
    "TI.value",
    "TI.category",
    "TI.indicator",
    "TI.supplier",
    "TI.indicator_type",
    "TI.context",
];

/// `search` as one statement over `table`, answering `FORMAT JSONEachRow`. A `SELECT *`
/// names every column of [`COLUMNS`] then [`EVENT_ARRAYS`]; a projection names its items
/// `c0`, `c1`, … (the answer's own names are the search's), of the events `narrowing` leaves.
pub fn render(search: &Search, table: &str, narrowing: Option<Narrowing>) -> String {
    let aliases = search.aliases();
    let mut writer = Writer {
        sql: String::new(),
        aliases: &aliases,
    };
    writer.push("SELECT ");
    match &search.select {
        Projection::Events => {
            let names: Vec<String> = COLUMNS
                .iter()
                .map(|c| c.name)
                .chain(EVENT_ARRAYS.iter().copied())
                .map(identifier)
                .collect();
            writer.push(&names.join(", "));
        }
        Projection::Items(items) => {
            for (i, (expr, _)) in items.iter().enumerate() {
                if i > 0 {
                    writer.push(", ");
                }
                writer.expr(expr);
                let _ = write!(writer.sql, " AS c{i}");
            }
        }
    }
    let table: Vec<String> = table.split('.').map(identifier).collect();
    let _ = write!(writer.sql, " FROM {}", table.join("."));
    if let Some(filter) = &search.filter {
        writer.push(" WHERE ");
        writer.expr(filter);
        match narrowing {
            Some(Narrowing::Lookup(table)) => {
                if let Some(lookup) = lookup::lookup(search) {
                    writer.push(" AND ");
                    writer.times_of(&lookup, table);
                }
            }
            Some(Narrowing::Times(times)) => {
                let times: Vec<String> = times.iter().map(i64::to_string).collect();
                let _ = write!(writer.sql, " AND (`Timestamp` IN ({}))", times.join(", "));
            }
            None => {}
        }
    }
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
        for (i, order) in search.order_by.iter().enumerate() {
            if i > 0 {
                writer.push(", ");
            }
            writer.expr(&order.expr);
            // SQLite's order of NULLs (ClickHouse puts them last either way).
            writer.push(if order.descending {
                " DESC NULLS LAST"
            } else {
                " ASC NULLS FIRST"
            });
        }
    }
    // `LIMIT offset, count`: the form 18.16 and current versions both take.
    let _ = write!(
        writer.sql,
        " LIMIT {}, {} FORMAT JSONEachRow",
        search.offset, search.limit
    );
    writer.sql
}

/// Which events a search reads, before its own filter.
#[derive(Clone, Copy)]
pub enum Narrowing<'a> {
    /// Those at the times this table finds for the value the search names: the table of
    /// (`Tenant`, `Field`, `Value`, `Timestamp`) rows the store keeps for [`LOOKUP_FIELDS`]
    /// on each server, beside that server's events.
    ///
    /// [`LOOKUP_FIELDS`]: super::lookup::LOOKUP_FIELDS
    Lookup(&'a str),
    /// Those at these times (never empty).
    Times(&'a [i64]),
}

/// `text` as a ClickHouse string literal: quotes and backslashes escaped, control bytes as
/// `\xHH`. The one way a value from a search reaches ClickHouse's SQL.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A schema name, back-quoted (names hold letters, digits, `_` and `.` only: the schema's).
pub fn identifier(name: &str) -> String {
    debug_assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
        "{name}"
    );
    format!("`{name}`")
}

struct Writer<'a> {
    sql: String,
    aliases: &'a [(String, Expr)],
}

impl Writer<'_> {
    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// `Timestamp` among the times `lookup` finds in `table`. The events keep their time
    /// order on every shard (`ORDER BY (Tenant, Timestamp)`), so the set of times selects the
    /// few granules that hold them. Each shard runs the lookup on its own table, which holds
    /// the rows of its own events: its first N times are enough for its share of the first
    /// N events. (A `GLOBAL IN`, run once and sent to every shard, is a table there that
    /// 18.16 does not use its index for: every event was read.)
    fn times_of(&mut self, lookup: &Lookup, table: &str) {
        let table: Vec<String> = table.split('.').map(identifier).collect();
        let values: Vec<String> = lookup.values.iter().map(|v| quoted(v)).collect();
        let _ = write!(
            self.sql,
            "(`Timestamp` IN (SELECT DISTINCT `Timestamp` FROM {} WHERE `Tenant` = {} \
             AND `Field` = {} AND `Value` IN ({})",
            table.join("."),
            quoted(lookup.tenant),
            quoted(lookup.field),
            values.join(", ")
        );
        if let Some((descending, count)) = lookup.first {
            let order = if descending { "DESC" } else { "ASC" };
            let _ = write!(self.sql, " ORDER BY `Timestamp` {order} LIMIT {count}");
        }
        self.push("))");
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
        // A predicate on TI columns holds when one of the event's matches satisfies it: the
        // lambda's parameters are the match's columns it names.
        if expr.is_predicate() {
            let mut named = Vec::new();
            ti_columns(expr, &mut named);
            if !named.is_empty() {
                let parameters: Vec<String> = named.iter().map(|n| format!("ti_{n}")).collect();
                let arrays: Vec<String> = named
                    .iter()
                    .map(|n| identifier(&format!("TI.{n}")))
                    .collect();
                let _ = write!(self.sql, "arrayExists(({}) -> ", parameters.join(", "));
                self.term(expr);
                let _ = write!(self.sql, ", {})", arrays.join(", "));
                return;
            }
        }
        self.term(expr);
    }

    fn term(&mut self, expr: &Expr) {
        match expr {
            Expr::Column(column) => self.push(&identifier(column.name)),
            Expr::Ti(name) => {
                let _ = write!(self.sql, "ti_{name}");
            }
            Expr::Extra(key) => {
                let key = quoted(key);
                let _ = write!(
                    self.sql,
                    "if(has(`Extra.key`, {key}), `Extra.value`[indexOf(`Extra.key`, {key})], NULL)"
                );
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
            Expr::Text(text) => self.push(&quoted(text)),
            Expr::Integer(n) => {
                let _ = write!(self.sql, "{n}");
            }
            Expr::Float(n) => {
                let _ = write!(self.sql, "{n:?}");
            }
            Expr::Null => self.push("NULL"),
            Expr::Compare(left, op, right) => {
                let (left, right) = (
                    coerced(left, affinity(right)),
                    coerced(right, affinity(left)),
                );
                self.push("(");
                self.expr(&left);
                self.push(match op {
                    Comparison::Eq => " = ",
                    Comparison::NotEq => " != ",
                    Comparison::Lt => " < ",
                    Comparison::LtEq => " <= ",
                    Comparison::Gt => " > ",
                    Comparison::GtEq => " >= ",
                });
                self.expr(&right);
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
                let kind = affinity(expr);
                let list: Vec<Expr> = list.iter().map(|e| coerced(e, kind)).collect();
                self.push("(");
                self.expr(expr);
                self.push(if *negated { " NOT IN (" } else { " IN (" });
                self.list(&list);
                self.push("))");
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let kind = affinity(expr);
                self.push("(");
                if *negated {
                    self.push("NOT ");
                }
                self.push("(");
                self.expr(expr);
                self.push(" >= ");
                self.expr(&coerced(low, kind));
                self.push(" AND ");
                self.expr(expr);
                self.push(" <= ");
                self.expr(&coerced(high, kind));
                self.push("))");
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                // SQLite's LIKE has no escape character, ClickHouse's is `\`: a literal
                // pattern's backslashes are doubled to mean themselves.
                let pattern = match &**pattern {
                    Expr::Text(text) => Expr::Text(text.replace('\\', "\\\\")),
                    other => other.clone(),
                };
                self.push("(");
                self.folded(expr, *case_insensitive);
                self.push(if *negated { " NOT LIKE " } else { " LIKE " });
                self.folded(&pattern, *case_insensitive);
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
            } => self.aggregate(*function, arg.as_deref(), *distinct),
        }
    }

    /// `expr`, lower-cased when `fold` (ILIKE compares both sides lower-cased).
    fn folded(&mut self, expr: &Expr, fold: bool) {
        if fold {
            self.push("lower(");
            self.expr(expr);
            self.push(")");
        } else {
            self.expr(expr);
        }
    }

    fn aggregate(&mut self, function: Aggregate, arg: Option<&Expr>, distinct: bool) {
        match (function, arg) {
            (Aggregate::Count, None) => self.push("count()"),
            // A count over no rows is 0 in SQLite; ClickHouse 18.16 answers NULL for a
            // nullable argument.
            (Aggregate::Count, Some(arg)) => {
                self.push(if distinct {
                    "ifNull(count(DISTINCT "
                } else {
                    "ifNull(count("
                });
                self.expr(arg);
                self.push("), 0)");
            }
            (function, arg) => {
                self.push(match function {
                    Aggregate::Count => "count(",
                    Aggregate::Min => "min(",
                    Aggregate::Max => "max(",
                    Aggregate::Sum => "sum(",
                    Aggregate::Avg => "avg(",
                });
                if distinct {
                    self.push("DISTINCT ");
                }
                match arg {
                    Some(arg) => self.expr(arg),
                    None => self.push("NULL"),
                }
                self.push(")");
            }
        }
    }

    fn binary(&mut self, left: &Expr, op: &str, right: &Expr) {
        self.push("(");
        self.expr(left);
        self.push(op);
        self.expr(right);
        self.push(")");
    }

    fn call(&mut self, function: Function, args: &[Expr]) {
        match (function, args) {
            (Function::InSubnet, [address, Expr::Text(network)]) => {
                self.in_subnet(address, network)
            }
            (Function::Match, [text, pattern]) => {
                self.push("match(");
                self.expr(text);
                self.push(", ");
                self.expr(pattern);
                self.push(")");
            }
            (Function::Lower, [text]) => {
                self.push("lower(");
                self.expr(text);
                self.push(")");
            }
            (Function::ToStartOfHour | Function::ToStartOfDay, [time]) => {
                let unit = if function == Function::ToStartOfHour {
                    HOUR_MS
                } else {
                    DAY_MS
                };
                self.push("(intDiv(");
                self.expr(time);
                let _ = write!(self.sql, ", {unit}) * {unit})");
            }
            // The checker lets no other shape through.
            _ => self.push("NULL"),
        }
    }

    /// `inSubnet(address, 'cidr')` without `isIPAddressInRange` (18.16 lacks it): the
    /// address as a number (IPv4) or 16 bytes (IPv6) between the network's first and last,
    /// and a valid address of that family (the conversions answer 0 for anything else).
    fn in_subnet(&mut self, address: &Expr, network: &str) {
        let Ok(network) = network.trim().parse::<IpNet>() else {
            return self.push("0");
        };
        match network {
            IpNet::V4(net) => {
                let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
                self.push("((IPv4StringToNum(");
                self.expr(address);
                let _ = write!(
                    self.sql,
                    ") BETWEEN {first} AND {last}) AND (IPv4NumToString(IPv4StringToNum("
                );
                self.expr(address);
                self.push(")) = ");
                self.expr(address);
                self.push("))");
            }
            IpNet::V6(net) => {
                let bytes = |a: std::net::Ipv6Addr| {
                    let hex: String = a.octets().iter().map(|b| format!("{b:02X}")).collect();
                    format!("toFixedString(unhex('{hex}'), 16)")
                };
                self.push("((IPv6StringToNum(");
                self.expr(address);
                let _ = write!(
                    self.sql,
                    ") BETWEEN {} AND {}) AND (IPv6StringToNum(",
                    bytes(net.network()),
                    bytes(net.broadcast())
                );
                self.expr(address);
                self.push(&format!(
                    ") != {} OR ",
                    bytes(std::net::Ipv6Addr::UNSPECIFIED)
                ));
                self.expr(address);
                self.push(" = '::'))");
            }
        }
    }
}

/// The type a literal compared with `expr` takes: a column's, a TI column's or `Extra`'s
/// (text), a time function's (integer).
fn affinity(expr: &Expr) -> Option<ColumnType> {
    match expr {
        Expr::Column(column) => Some(column.kind),
        Expr::Ti(_) | Expr::Extra(_) | Expr::Call(Function::Lower, _) => Some(ColumnType::Text),
        Expr::Call(Function::ToStartOfHour | Function::ToStartOfDay, _) => {
            Some(ColumnType::Integer)
        }
        _ => None,
    }
}

/// `expr` as the type `kind` when it is a literal of another: SQLite converts a literal
/// to the affinity of the column it is compared with, ClickHouse refuses to compare a
/// string with a number.
fn coerced(expr: &Expr, kind: Option<ColumnType>) -> Expr {
    match (expr, kind) {
        (Expr::Integer(n), Some(ColumnType::Text)) => Expr::Text(n.to_string()),
        (Expr::Float(n), Some(ColumnType::Text)) => Expr::Text(n.to_string()),
        (Expr::Text(text), Some(ColumnType::Integer | ColumnType::Timestamp)) => {
            match text.trim().parse::<i64>() {
                Ok(n) => Expr::Integer(n),
                Err(_) => expr.clone(),
            }
        }
        _ => expr.clone(),
    }
}

/// The TI columns `expr` names, each once, in order.
fn ti_columns(expr: &Expr, named: &mut Vec<&'static str>) {
    if let Expr::Ti(name) = expr {
        if !named.contains(name) {
            named.push(name);
        }
        return;
    }
    let mut visit = |e: &Expr| ti_columns(e, named);
    match expr {
        Expr::Compare(a, _, b) => {
            visit(a);
            visit(b);
        }
        Expr::In { expr, list, .. } => {
            visit(expr);
            list.iter().for_each(visit);
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            visit(expr);
            visit(low);
            visit(high);
        }
        Expr::Like { expr, pattern, .. } => {
            visit(expr);
            visit(pattern);
        }
        Expr::IsNull { expr, .. } => visit(expr),
        Expr::Call(_, args) => args.iter().for_each(visit),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::check::check;

    fn rendered(sql: &str) -> String {
        render(&check(sql).unwrap().within_tenant("Main"), "events", None)
    }

    /// `sql` within tenant `Main`, over `xdr.events`, narrowed by its lookup.
    fn rendered_with_lookup(sql: &str) -> String {
        let search = check(sql).unwrap().within_tenant("Main");
        render(
            &search,
            "xdr.events",
            Some(Narrowing::Lookup("xdr.events_lookup")),
        )
    }

    #[test]
    fn the_seed_select_writes_its_values_as_literals() {
        let sql = rendered(
            "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250",
        );
        assert!(sql.starts_with("SELECT `Id`, `Timestamp`, "), "{sql}");
        assert!(
            sql.ends_with(
                " FROM `events` WHERE ((`Tenant` = 'Main') AND (`RequestUrl` = 'http://fakess123bn.nu')) ORDER BY `Timestamp` DESC NULLS LAST LIMIT 0, 250 FORMAT JSONEachRow"
            ),
            "{sql}"
        );
    }

    #[test]
    fn a_search_naming_a_value_reads_only_the_times_the_lookup_finds() {
        let sql = rendered_with_lookup(
            "SELECT * FROM `events` WHERE RequestUrl = 'http://fakess123bn.nu' ORDER BY Timestamp DESC LIMIT 250",
        );
        assert!(
            sql.contains(
                " WHERE ((`Tenant` = 'Main') AND (`RequestUrl` = 'http://fakess123bn.nu')) AND (`Timestamp` IN (SELECT DISTINCT `Timestamp` FROM `xdr`.`events_lookup` WHERE `Tenant` = 'Main' AND `Field` = 'RequestUrl' AND `Value` IN ('http://fakess123bn.nu') ORDER BY `Timestamp` DESC LIMIT 250)) ORDER BY"
            ),
            "{sql}"
        );
        let sql = rendered_with_lookup("SELECT * FROM events WHERE Name = 'x'");
        assert!(!sql.contains("events_lookup"), "{sql}");
        let search = check("SELECT * FROM events WHERE Name = 'x'")
            .unwrap()
            .within_tenant("Main");
        let sql = render(&search, "xdr.events_local", Some(Narrowing::Times(&[7, 9])));
        assert!(sql.contains(" AND (`Timestamp` IN (7, 9))"), "{sql}");
    }

    #[test]
    fn a_literal_cannot_end_its_quotes() {
        for attempt in [
            "x' OR 1=1 --",
            "x\\' OR 1=1 --",
            "x\\",
            "\0'; DROP TABLE events",
        ] {
            let literal = quoted(attempt);
            // Inside the quotes, every quote is escaped by a backslash that is itself not
            // escaped: no quote ends the literal before its last character.
            let inner = &literal[1..literal.len() - 1];
            let mut escaped = false;
            for c in inner.chars() {
                assert!(escaped || c != '\'', "{attempt:?} → {literal}");
                escaped = !escaped && c == '\\';
            }
            assert!(!escaped, "{attempt:?} → {literal} ends in an escape");
            assert!(!inner.contains('\0'));
        }
    }

    #[test]
    fn ti_predicates_ask_any_match_and_literals_take_the_column_type() {
        let sql = rendered(
            "SELECT Name AS n, count() AS c FROM events WHERE TI.category = 'x' AND SourcePort = '80' AND Name = 3 AND Extra['f'] = 'y' GROUP BY Name HAVING c > 1 ORDER BY c DESC",
        );
        for part in [
            "arrayExists((ti_category) -> (ti_category = 'x'), `TI.category`)",
            "(`SourcePort` = 80)",
            "(`Name` = '3')",
            "if(has(`Extra.key`, 'f'), `Extra.value`[indexOf(`Extra.key`, 'f')], NULL) = 'y'",
            "SELECT `Name` AS c0, count() AS c1 FROM",
            "HAVING (count() > 1) ORDER BY count() DESC NULLS LAST",
        ] {
            assert!(sql.contains(part), "{part} not in {sql}");
        }
    }

    #[test]
    fn subnets_are_number_ranges() {
        let sql = rendered("SELECT * FROM events WHERE inSubnet(SourceAddress, '10.0.0.0/8')");
        assert!(
            sql.contains("(IPv4StringToNum(`SourceAddress`) BETWEEN 167772160 AND 184549375)"),
            "{sql}"
        );
        let sql = rendered("SELECT * FROM events WHERE inSubnet(SourceAddress, '2001:db8::/32')");
        assert!(
            sql.contains("BETWEEN toFixedString(unhex('20010DB8000000000000000000000000'), 16) AND toFixedString(unhex('20010DB8FFFFFFFFFFFFFFFFFFFFFFFF'), 16)"),
            "{sql}"
        );
    }
}

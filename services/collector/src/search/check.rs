//! Reading KUMA's event search SQL (ClickHouse dialect) into a checked [`Search`]: exactly one
//! read-only `SELECT` on `events`, with the constructs KUMA's search offers and nothing else.
//! Everything the checker does not know is refused by name; nothing is passed through.

use sqlparser::{
    ast::{
        self, AccessExpr, BinaryOperator, DuplicateTreatment, FunctionArg, FunctionArgExpr,
        FunctionArguments, GroupByExpr, LimitClause, ObjectNamePart, OrderByKind, SelectItem,
        SetExpr, Statement, Subscript, TableFactor, UnaryOperator, Value,
    },
    dialect::ClickHouseDialect,
    parser::Parser,
};
use xdr_mesh::{
    error::{Invalid, invalid},
    quote::quoted,
};

use super::{
    query::{Aggregate, Comparison, Expr, Function, Order, Projection, Search},
    schema,
};

/// Longest query text taken.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// Rows a search answers when it names no `LIMIT`, and at most.
pub const DEFAULT_LIMIT: u64 = 250;
pub const MAX_LIMIT: u64 = 10_000;
/// Values in one `IN (...)` list, at most.
const MAX_IN_LIST: usize = 10_000;
/// Nesting of expressions, at most (the parser stops deeper input first).
const MAX_DEPTH: usize = 64;

fn refused(reason: impl Into<String>) -> Invalid {
    invalid("sql", reason)
}

/// `sql` checked: one `SELECT` on `events` made only of supported constructs.
pub fn check(sql: &str) -> Result<Search, Invalid> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(refused(format!(
            "{} bytes; at most {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    let statements = Parser::new(&ClickHouseDialect {})
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|e| refused(format!("does not parse: {}", short(&e.to_string()))))?;
    let [statement] = &statements[..] else {
        return Err(refused(format!(
            "{} statements; exactly one SELECT is taken",
            statements.len()
        )));
    };
    let Statement::Query(query) = statement else {
        return Err(refused("only SELECT is taken"));
    };
    Checker::default().query(query)
}

fn short(text: &str) -> String {
    quoted(text).to_string()
}

#[derive(Default)]
struct Checker {
    /// Output names of the projection, which ORDER BY and HAVING may use.
    aliases: Vec<String>,
}

impl Checker {
    fn query(mut self, query: &ast::Query) -> Result<Search, Invalid> {
        let plain = query.with.is_none()
            && query.fetch.is_none()
            && query.locks.is_empty()
            && query.for_clause.is_none()
            && query.settings.is_none()
            && query.format_clause.is_none()
            && query.pipe_operators.is_empty();
        if !plain {
            return Err(refused(
                "WITH, SETTINGS, FORMAT, FETCH and FOR are not taken",
            ));
        }
        let SetExpr::Select(select) = &*query.body else {
            return Err(refused("one SELECT, without UNION, subqueries or VALUES"));
        };
        self.from(select)?;
        let plain_select = select.distinct.is_none()
            && select.top.is_none()
            && select.into.is_none()
            && select.exclude.is_none()
            && select.select_modifiers.is_none()
            && select.optimizer_hints.is_empty()
            && select.lateral_views.is_empty()
            && select.prewhere.is_none()
            && select.connect_by.is_empty()
            && select.cluster_by.is_empty()
            && select.distribute_by.is_empty()
            && select.sort_by.is_empty()
            && select.named_window.is_empty()
            && select.qualify.is_none();
        if !plain_select {
            return Err(refused(
                "DISTINCT, TOP, INTO, PREWHERE, WINDOW and QUALIFY are not taken",
            ));
        }
        let projection = self.projection(&select.projection)?;
        let filter = select
            .selection
            .as_ref()
            .map(|e| self.expr(e))
            .transpose()?;
        let group_by = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs
                .iter()
                .map(|e| self.expr(e))
                .collect::<Result<_, _>>()?,
            _ => return Err(refused("GROUP BY ALL and its modifiers are not taken")),
        };
        let having = select.having.as_ref().map(|e| self.expr(e)).transpose()?;
        let order_by = match &query.order_by {
            None => Vec::new(),
            Some(order) if order.interpolate.is_none() => match &order.kind {
                OrderByKind::Expressions(exprs) => exprs
                    .iter()
                    .map(|o| self.order(o))
                    .collect::<Result<_, _>>()?,
                OrderByKind::All(_) => return Err(refused("ORDER BY ALL is not taken")),
            },
            Some(_) => return Err(refused("INTERPOLATE is not taken")),
        };
        let (limit, offset) = self.limit(query.limit_clause.as_ref())?;
        Ok(Search {
            select: projection,
            filter,
            group_by,
            having,
            order_by,
            limit,
            offset,
        })
    }

    fn from(&self, select: &ast::Select) -> Result<(), Invalid> {
        let [table] = &select.from[..] else {
            return Err(refused("FROM names one table: `events`"));
        };
        if !table.joins.is_empty() {
            return Err(refused("JOIN is not taken"));
        }
        let TableFactor::Table { name, .. } = &table.relation else {
            return Err(refused("FROM names one table: `events`"));
        };
        let is_events =
            matches!(&name.0[..], [ObjectNamePart::Identifier(id)] if id.value == "events");
        // Anything after the name (an alias, FINAL, SAMPLE, hints) shows in its text.
        let bare = table.relation.to_string().trim_matches('`') == "events";
        if !is_events || !bare {
            return Err(refused(format!(
                "the table {} is not searchable: FROM `events` only",
                short(&table.relation.to_string())
            )));
        }
        Ok(())
    }

    fn projection(&mut self, items: &[SelectItem]) -> Result<Projection, Invalid> {
        if let [item @ SelectItem::Wildcard(_)] = items {
            // Wildcard modifiers (EXCEPT, REPLACE, ...) show in its text.
            if item.to_string().trim() != "*" {
                return Err(refused("only a bare * is taken"));
            }
            return Ok(Projection::Events);
        }
        let mut selected = Vec::with_capacity(items.len());
        for item in items {
            let (expr, name) = match item {
                SelectItem::UnnamedExpr(expr) => (self.expr(expr)?, expr.to_string()),
                SelectItem::ExprWithAlias { expr, alias } => {
                    (self.expr(expr)?, alias.value.clone())
                }
                SelectItem::Wildcard(_) => {
                    return Err(refused("* is taken alone, not with other columns"));
                }
                _ => return Err(refused("qualified wildcards are not taken")),
            };
            if matches!(expr, Expr::Ti(_)) {
                return Err(refused(
                    "TI columns are searched in WHERE; SELECT * answers every match",
                ));
            }
            selected.push((expr, name));
        }
        self.aliases = selected.iter().map(|(_, name)| name.clone()).collect();
        Ok(Projection::Items(selected))
    }

    fn order(&self, order: &ast::OrderByExpr) -> Result<Order, Invalid> {
        if order.with_fill.is_some() || order.options.nulls_first.is_some() {
            return Err(refused("WITH FILL and NULLS FIRST/LAST are not taken"));
        }
        let descending = match &order.options.sort {
            None | Some(ast::OrderBySort::Asc) => false,
            Some(ast::OrderBySort::Desc) => true,
            Some(_) => return Err(refused("ORDER BY takes ASC or DESC")),
        };
        Ok(Order {
            expr: self.expr(&order.expr)?,
            descending,
        })
    }

    fn limit(&self, clause: Option<&LimitClause>) -> Result<(u64, u64), Invalid> {
        let number = |what: &str, expr: &ast::Expr| match expr {
            ast::Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n
                    .parse::<u64>()
                    .map_err(|_| refused(format!("{what}: {} is not a count", short(n)))),
                _ => Err(refused(format!("{what} takes a number"))),
            },
            _ => Err(refused(format!("{what} takes a number"))),
        };
        let (limit, offset) = match clause {
            None => (DEFAULT_LIMIT, 0),
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(refused("LIMIT BY is not taken"));
                }
                let limit = limit
                    .as_ref()
                    .map(|l| number("LIMIT", l))
                    .transpose()?
                    .unwrap_or(DEFAULT_LIMIT);
                let offset = offset
                    .as_ref()
                    .map(|o| number("OFFSET", &o.value))
                    .transpose()?
                    .unwrap_or(0);
                (limit, offset)
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                (number("LIMIT", limit)?, number("OFFSET", offset)?)
            }
        };
        if limit > MAX_LIMIT {
            return Err(refused(format!("LIMIT {limit}; at most {MAX_LIMIT}")));
        }
        Ok((limit, offset))
    }

    fn expr(&self, expr: &ast::Expr) -> Result<Expr, Invalid> {
        use ast::Expr as E;
        let boxed = |e: &ast::Expr| self.expr(e).map(Box::new);
        Ok(match expr {
            E::Identifier(ident) => self.name(&ident.value)?,
            E::CompoundIdentifier(parts) => match &parts[..] {
                [table, column] if table.value == "TI" => Expr::Ti(
                    schema::ti_column(&column.value)
                        .ok_or_else(|| refused(format!("no column TI.{}", short(&column.value))))?,
                ),
                [table, column] if table.value == "events" => self.name(&column.value)?,
                _ => return Err(refused(format!("no column {}", short(&expr.to_string())))),
            },
            E::CompoundFieldAccess { root, access_chain } => {
                let key = match (&**root, &access_chain[..]) {
                    (E::Identifier(id), [AccessExpr::Subscript(Subscript::Index { index })])
                        if id.value == "Extra" =>
                    {
                        text(index)
                    }
                    _ => None,
                };
                let key = key.ok_or_else(|| refused("only Extra['name'] is taken"))?;
                if key.is_empty()
                    || key.len() > 128
                    || !key.chars().all(|c| c.is_alphanumeric() || c == '_')
                {
                    return Err(refused(format!(
                        "Extra[{}]: a field name is letters, digits and _",
                        short(&key)
                    )));
                }
                Expr::Extra(key)
            }
            E::Value(value) => literal(&value.value)?,
            E::Nested(inner) => self.expr(inner)?,
            E::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => Expr::Not(boxed(expr)?),
                UnaryOperator::Minus => match self.expr(expr)? {
                    Expr::Integer(n) => Expr::Integer(-n),
                    Expr::Float(n) => Expr::Float(-n),
                    _ => return Err(refused("- is taken before a number only")),
                },
                _ => return Err(refused(format!("the operator {op} is not taken"))),
            },
            E::BinaryOp { left, op, right } => {
                let (left, right) = (boxed(left)?, boxed(right)?);
                let compare = |c| Expr::Compare(left.clone(), c, right.clone());
                match op {
                    BinaryOperator::And => Expr::And(left, right),
                    BinaryOperator::Or => Expr::Or(left, right),
                    BinaryOperator::Eq => compare(Comparison::Eq),
                    BinaryOperator::NotEq => compare(Comparison::NotEq),
                    BinaryOperator::Lt => compare(Comparison::Lt),
                    BinaryOperator::LtEq => compare(Comparison::LtEq),
                    BinaryOperator::Gt => compare(Comparison::Gt),
                    BinaryOperator::GtEq => compare(Comparison::GtEq),
                    _ => return Err(refused(format!("the operator {op} is not taken"))),
                }
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                if list.len() > MAX_IN_LIST {
                    return Err(refused(format!(
                        "IN with {} values; at most {MAX_IN_LIST}",
                        list.len()
                    )));
                }
                Expr::In {
                    expr: boxed(expr)?,
                    list: list
                        .iter()
                        .map(|e| self.constant(e))
                        .collect::<Result<_, _>>()?,
                    negated: *negated,
                }
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => Expr::Between {
                expr: boxed(expr)?,
                low: Box::new(self.constant(low)?),
                high: Box::new(self.constant(high)?),
                negated: *negated,
            },
            E::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => self.like(expr, pattern, *negated, false)?,
            E::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char: None,
            } => self.like(expr, pattern, *negated, true)?,
            E::IsNull(expr) => Expr::IsNull {
                expr: boxed(expr)?,
                negated: false,
            },
            E::IsNotNull(expr) => Expr::IsNull {
                expr: boxed(expr)?,
                negated: true,
            },
            E::Function(function) => self.function(function)?,
            E::InSubquery { .. } | E::Exists { .. } | E::Subquery(_) => {
                return Err(refused("subqueries are not taken"));
            }
            other => {
                return Err(refused(format!(
                    "{} is not taken",
                    short(&other.to_string())
                )));
            }
        })
    }

    /// A value a list or a range may hold: a literal.
    fn constant(&self, expr: &ast::Expr) -> Result<Expr, Invalid> {
        match self.expr(expr)? {
            literal @ (Expr::Text(_) | Expr::Integer(_) | Expr::Float(_)) => Ok(literal),
            _ => Err(refused(format!(
                "{} is not a value (IN and BETWEEN take literals)",
                short(&expr.to_string())
            ))),
        }
    }

    fn like(
        &self,
        expr: &ast::Expr,
        pattern: &ast::Expr,
        negated: bool,
        case_insensitive: bool,
    ) -> Result<Expr, Invalid> {
        let pattern = self.expr(pattern)?;
        if !matches!(pattern, Expr::Text(_)) {
            return Err(refused("LIKE takes a quoted pattern"));
        }
        Ok(Expr::Like {
            expr: Box::new(self.expr(expr)?),
            pattern: Box::new(pattern),
            negated,
            case_insensitive,
        })
    }

    /// A column, or an alias of the projection.
    fn name(&self, name: &str) -> Result<Expr, Invalid> {
        if let Some(column) = schema::column(name) {
            return Ok(Expr::Column(column));
        }
        if self.aliases.iter().any(|a| a == name) {
            return Ok(Expr::Alias(name.to_owned()));
        }
        Err(refused(format!("no column {}", short(name))))
    }

    fn function(&self, function: &ast::Function) -> Result<Expr, Invalid> {
        let name = match &function.name.0[..] {
            [ObjectNamePart::Identifier(id)] if id.quote_style.is_none() => id.value.clone(),
            _ => return Err(refused("a function is named by one word")),
        };
        let plain = !function.uses_odbc_syntax
            && matches!(function.parameters, FunctionArguments::None)
            && function.within_group.is_empty()
            && function.filter.is_none()
            && function.null_treatment.is_none()
            && function.over.is_none();
        let list = match &function.args {
            FunctionArguments::List(list) if plain && list.clauses.is_empty() => list,
            FunctionArguments::None if plain => {
                return Err(refused(format!("{} needs its arguments", short(&name))));
            }
            _ => return Err(refused(format!("{} is called plainly only", short(&name)))),
        };
        let distinct = match list.duplicate_treatment {
            None | Some(DuplicateTreatment::All) => false,
            Some(DuplicateTreatment::Distinct) => true,
        };
        let args = list
            .args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.expr(e),
                _ => Err(refused(format!(
                    "{}: arguments are plain expressions",
                    short(&name)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let aggregate = match name.as_str() {
            "count" => Some(Aggregate::Count),
            "min" => Some(Aggregate::Min),
            "max" => Some(Aggregate::Max),
            "sum" => Some(Aggregate::Sum),
            "avg" => Some(Aggregate::Avg),
            _ => None,
        };
        if let Some(aggregate) = aggregate {
            let arg = match (aggregate, args.len()) {
                (Aggregate::Count, 0) if !distinct => None,
                (_, 1) => Some(Box::new(args.into_iter().next().expect("one argument"))),
                _ => return Err(refused(format!("{name}() takes one argument"))),
            };
            return Ok(Expr::Aggregate {
                function: aggregate,
                arg,
                distinct,
            });
        }
        if distinct {
            return Err(refused(format!("{name}: DISTINCT is for aggregates")));
        }
        let (function, arity) = match name.as_str() {
            "inSubnet" => (Function::InSubnet, 2),
            "match" => (Function::Match, 2),
            "lower" => (Function::Lower, 1),
            "toStartOfHour" => (Function::ToStartOfHour, 1),
            "toStartOfDay" => (Function::ToStartOfDay, 1),
            _ => return Err(refused(format!("no function {}", short(&name)))),
        };
        if args.len() != arity {
            return Err(refused(format!("{name} takes {arity} argument(s)")));
        }
        if matches!(function, Function::InSubnet | Function::Match)
            && !matches!(args[1], Expr::Text(_))
        {
            return Err(refused(format!(
                "{name}: the second argument is a quoted text"
            )));
        }
        // The network is checked here, not when an engine meets it on the first row.
        if function == Function::InSubnet
            && let Expr::Text(network) = &args[1]
            && network.trim().parse::<ipnet::IpNet>().is_err()
        {
            return Err(refused(format!(
                "inSubnet: {} is not a network (CIDR, e.g. '10.0.0.0/8')",
                short(network)
            )));
        }
        Ok(Expr::Call(function, args))
    }
}

/// A literal's value: quoted text, an integer, a number, NULL.
fn literal(value: &Value) -> Result<Expr, Invalid> {
    Ok(match value {
        Value::SingleQuotedString(text) => Expr::Text(text.clone()),
        Value::Number(n, _) => match n.parse::<i64>() {
            Ok(n) => Expr::Integer(n),
            Err(_) => Expr::Float(
                n.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| refused(format!("{} is not a number", short(n))))?,
            ),
        },
        Value::Null => Expr::Null,
        other => {
            return Err(refused(format!(
                "the literal {} is not taken (quote text with ')",
                short(&other.to_string())
            )));
        }
    })
}

/// The text of a quoted literal, if `expr` is one.
fn text(expr: &ast::Expr) -> Option<String> {
    match expr {
        ast::Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests;

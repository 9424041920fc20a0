//! A search as the service runs it: the checked tree of one read-only `SELECT` on the events,
//! every name resolved against the schema and every literal a value (never SQL text). Engines
//! render it with the literals bound as parameters.

use super::schema::Column;

/// What a search answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    pub select: Projection,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub order_by: Vec<Order>,
    pub limit: u64,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Projection {
    /// `SELECT *`: one row per event, its columns and its TI matches.
    Events,
    /// The listed expressions, each with its output name.
    Items(Vec<(Expr, String)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub expr: Expr,
    pub descending: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Column(Column),
    /// `TI.<name>`: true for a predicate when any of the event's matches satisfies it.
    Ti(&'static str),
    /// `Extra['name']`: a mapped field outside the schema.
    Extra(String),
    /// A name given by an alias of the projection (in ORDER BY, HAVING).
    Alias(String),
    Text(String),
    Integer(i64),
    Float(f64),
    Null,
    Compare(Box<Expr>, Comparison, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Call(Function, Vec<Expr>),
    Aggregate {
        function: Aggregate,
        /// None: `count()`.
        arg: Option<Box<Expr>>,
        distinct: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// The functions a search may call, KUMA's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `inSubnet(field, 'cidr')`
    InSubnet,
    /// `match(field, 're2')`
    Match,
    Lower,
    ToStartOfHour,
    ToStartOfDay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Min,
    Max,
    Sum,
    Avg,
}

impl Expr {
    /// Whether it is true or false of a row (a comparison or a test), not a value.
    pub fn is_predicate(&self) -> bool {
        matches!(
            self,
            Expr::Compare(..)
                | Expr::In { .. }
                | Expr::Between { .. }
                | Expr::Like { .. }
                | Expr::IsNull { .. }
                | Expr::Call(Function::InSubnet | Function::Match, _)
        )
    }
}

impl Search {
    /// The projection's names and the expressions they stand for.
    pub fn aliases(&self) -> Vec<(String, Expr)> {
        match &self.select {
            Projection::Events => Vec::new(),
            Projection::Items(items) => items.iter().map(|(e, n)| (n.clone(), e.clone())).collect(),
        }
    }

    /// The event whose id is `id` (built as a tree: the id is never SQL text).
    pub fn event_by_id(id: &str) -> Self {
        Search {
            select: Projection::Events,
            filter: Some(Expr::Compare(
                Box::new(Expr::Column(
                    super::schema::column("Id").expect("the schema has Id"),
                )),
                Comparison::Eq,
                Box::new(Expr::Text(id.to_owned())),
            )),
            group_by: Vec::new(),
            having: None,
            order_by: Vec::new(),
            limit: 1,
            offset: 0,
        }
    }

    /// The search restricted to `tenant`'s events: a node of the tree, not text added to
    /// the query.
    pub fn within_tenant(mut self, tenant: &str) -> Self {
        let tenant = Expr::Compare(
            Box::new(Expr::Column(
                super::schema::column("Tenant").expect("the schema has Tenant"),
            )),
            Comparison::Eq,
            Box::new(Expr::Text(tenant.to_owned())),
        );
        self.filter = Some(match self.filter.take() {
            Some(filter) => Expr::And(Box::new(tenant), Box::new(filter)),
            None => tenant,
        });
        self
    }
}

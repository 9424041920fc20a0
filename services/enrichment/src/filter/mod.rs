//! Filters: KUMA's conditions and groups, compiled once when a rule or filter is saved
//! (regular expressions built, networks parsed, saved filters inlined) and then evaluated per
//! event without parsing anything again.

mod eval;

pub use eval::field_texts;

use ipnet::IpNet;
use regex::Regex;
use xdr_proto::pb::{self, Operator, filter_group, filter_node, operand};

use crate::rule::{Invalid, invalid};

/// A filter ready to evaluate.
#[derive(Debug, Clone)]
pub enum Compiled {
    Condition(Condition),
    And(Vec<Compiled>),
    Or(Vec<Compiled>),
    Not(Box<Compiled>),
}

#[derive(Debug, Clone)]
pub struct Condition {
    left: Operand,
    test: Test,
    right: Vec<Operand>,
    ignore_case: bool,
    /// "If not".
    negate: bool,
}

#[derive(Debug, Clone)]
enum Operand {
    Field(String),
    /// Constants and lists, as text (numbers compare as numbers when both sides are).
    Values(Vec<String>),
}

#[derive(Debug, Clone)]
enum Test {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    /// Networks given as constants, parsed once; field operands are parsed per event.
    InSubnet(Vec<IpNet>),
    Contains,
    StartsWith,
    EndsWith,
    Match(Regex),
    HasBit,
    TiDetect,
    Intersect,
}

/// Saved filters by id, as a compile needs them: `None` for an unknown id.
pub trait SavedFilters {
    fn saved(&self, id: &str) -> Option<pb::Filter>;
}

/// Compiles `node` for a resource of `tenant`; saved filters it names are inlined, and one
/// that names itself, directly or not, is refused.
pub fn compile(
    node: &pb::FilterNode,
    tenant: &str,
    saved: &dyn SavedFilters,
) -> Result<Compiled, Invalid> {
    Compiler {
        tenant,
        saved,
        path: Vec::new(),
    }
    .node(node, "filter")
}

struct Compiler<'a> {
    tenant: &'a str,
    saved: &'a dyn SavedFilters,
    /// Ids of the saved filters being inlined, outermost first.
    path: Vec<String>,
}

impl Compiler<'_> {
    fn node(&mut self, node: &pb::FilterNode, at: &str) -> Result<Compiled, Invalid> {
        match &node.node {
            None => Err(invalid(at, "empty: a condition, a group or a saved filter")),
            Some(filter_node::Node::Condition(condition)) => Ok(Compiled::Condition(condition_of(
                condition,
                &format!("{at}.condition"),
            )?)),
            Some(filter_node::Node::Group(group)) => self.group(group, &format!("{at}.group")),
            Some(filter_node::Node::FilterId(id)) => self.saved(id, &format!("{at}.filter_id")),
        }
    }

    fn group(&mut self, group: &pb::FilterGroup, at: &str) -> Result<Compiled, Invalid> {
        let op = filter_group::Op::try_from(group.op).unwrap_or(filter_group::Op::Unspecified);
        if group.children.is_empty() {
            return Err(invalid(format!("{at}.children"), "empty"));
        }
        let children = group
            .children
            .iter()
            .enumerate()
            .map(|(i, child)| self.node(child, &format!("{at}.children[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        match op {
            filter_group::Op::And => Ok(Compiled::And(children)),
            filter_group::Op::Or => Ok(Compiled::Or(children)),
            filter_group::Op::Not => match <[Compiled; 1]>::try_from(children) {
                Ok([child]) => Ok(Compiled::Not(Box::new(child))),
                Err(_) => Err(invalid(
                    format!("{at}.children"),
                    "NOT takes exactly one child (group several with AND or OR)",
                )),
            },
            filter_group::Op::Unspecified => Err(invalid(format!("{at}.op"), "AND, OR or NOT")),
        }
    }

    fn saved(&mut self, id: &str, at: &str) -> Result<Compiled, Invalid> {
        if let Some(start) = self.path.iter().position(|p| p == id) {
            let mut cycle = self.path[start..].to_vec();
            cycle.push(id.to_owned());
            return Err(invalid(
                at,
                format!(
                    "saved filters refer to each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            ));
        }
        let filter = self
            .saved
            .saved(id)
            .ok_or_else(|| invalid(at, format!("no saved filter `{id}`")))?;
        if filter.tenant != crate::rule::SHARED_TENANT && filter.tenant != self.tenant {
            return Err(invalid(
                at,
                format!("saved filter `{id}` belongs to tenant {}", filter.tenant),
            ));
        }
        let root = filter
            .root
            .as_ref()
            .ok_or_else(|| invalid(at, format!("saved filter `{id}` is empty")))?;
        self.path.push(id.to_owned());
        let compiled = self.node(root, &format!("{at}({id})"));
        self.path.pop();
        compiled
    }
}

fn condition_of(condition: &pb::Condition, at: &str) -> Result<Condition, Invalid> {
    let operator = Operator::try_from(condition.operator).unwrap_or(Operator::Unspecified);
    let right_at = |i: usize| format!("{at}.right[{i}]");
    let right = condition
        .right
        .iter()
        .enumerate()
        .map(|(i, operand)| operand_of(operand, &right_at(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let left = match (&condition.left, operator) {
        // TIDetect reads the event's matches; a left operand is optional.
        (None, Operator::TiDetect) => Operand::Values(Vec::new()),
        (None, _) => return Err(invalid(format!("{at}.left"), "empty")),
        (Some(left), _) => operand_of(left, &format!("{at}.left"))?,
    };
    let needs_right = !matches!(operator, Operator::TiDetect);
    if needs_right && right.is_empty() {
        return Err(invalid(format!("{at}.right"), "empty"));
    }
    let constants = |i: usize| match right.get(i) {
        Some(Operand::Values(values)) => Ok(values.clone()),
        _ => Err(invalid(right_at(i), "must be a constant")),
    };
    let test = match operator {
        Operator::Unspecified => return Err(invalid(format!("{at}.operator"), "empty")),
        Operator::Eq => Test::Eq,
        Operator::Lt => Test::Lt,
        Operator::Le => Test::Le,
        Operator::Gt => Test::Gt,
        Operator::Ge => Test::Ge,
        Operator::Contains => Test::Contains,
        Operator::StartsWith => Test::StartsWith,
        Operator::EndsWith => Test::EndsWith,
        Operator::HasBit => Test::HasBit,
        Operator::TiDetect => Test::TiDetect,
        Operator::Intersect => Test::Intersect,
        Operator::InSubnet => {
            let mut networks = Vec::new();
            for (i, operand) in right.iter().enumerate() {
                if let Operand::Values(values) = operand {
                    for value in values {
                        networks.push(parse_network(value).map_err(|reason| {
                            invalid(right_at(i), format!("`{value}`: {reason}"))
                        })?);
                    }
                }
            }
            Test::InSubnet(networks)
        }
        Operator::Match => {
            let patterns = constants(0)?;
            let [pattern] = &patterns[..] else {
                return Err(invalid(right_at(0), "one regular expression"));
            };
            let regex = regex::RegexBuilder::new(pattern)
                .case_insensitive(condition.ignore_case)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| invalid(right_at(0), format!("not an RE2 expression: {e}")))?;
            Test::Match(regex)
        }
        Operator::HasVulnerability
        | Operator::InActiveList
        | Operator::InDictionary
        | Operator::InCategory
        | Operator::InActiveDirectoryGroup
        | Operator::InContextTable => {
            return Err(invalid(
                format!("{at}.operator"),
                format!(
                    "{} reads resources (active lists, dictionaries, ...) that this service does not hold yet",
                    operator.as_str_name()
                ),
            ));
        }
    };
    Ok(Condition {
        left,
        test,
        right,
        // The seed: "do not match case" is ignored for the resource and subnet operators.
        ignore_case: condition.ignore_case && !matches!(operator, Operator::InSubnet),
        negate: condition.negate,
    })
}

fn operand_of(operand: &pb::Operand, at: &str) -> Result<Operand, Invalid> {
    match &operand.kind {
        None => Err(invalid(at, "empty")),
        Some(operand::Kind::Field(field)) if field.trim().is_empty() => {
            Err(invalid(format!("{at}.field"), "empty"))
        }
        Some(operand::Kind::Field(field)) => Ok(Operand::Field(field.trim().to_owned())),
        Some(operand::Kind::Constant(value)) => Ok(Operand::Values(eval::texts_of(value))),
        Some(operand::Kind::List(list)) => Ok(Operand::Values(list.values.clone())),
        Some(operand::Kind::ResourceId(_)) => Err(invalid(
            format!("{at}.resource_id"),
            "resources (active lists, dictionaries, ...) are not held by this service yet",
        )),
    }
}

/// A network (`10.0.0.0/8`) or an address as its own /32 or /128.
fn parse_network(text: &str) -> Result<IpNet, &'static str> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not an IP network")
}

#[cfg(test)]
mod tests;

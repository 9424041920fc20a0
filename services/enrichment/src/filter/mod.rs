//! Filters: KUMA's conditions and groups, compiled once when a rule or filter is saved
//! (regular expressions built, networks parsed, saved filters inlined) and then evaluated per
//! event without parsing anything again.

mod eval;

pub use eval::field_texts;

use ipnet::IpNet;
use regex::Regex;
use xdr_proto::pb::{self, Operator, ResourceKind, filter_group, filter_node, operand};

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
    /// A resource by id, read when the condition is evaluated (its entries change).
    Resource(String),
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
    /// The resource operators: whether the key is an entry of resource `id`.
    InResource {
        id: String,
        kind: ResourceKind,
    },
}

/// Saved filters and resources by id, as a compile needs them: `None` for an unknown id.
pub trait Definitions {
    fn saved(&self, id: &str) -> Option<pb::Filter>;
    /// A resource's kind and tenant.
    fn resource(&self, id: &str) -> Option<(ResourceKind, String)>;
}

/// Compiles `node` for a resource of `tenant`; saved filters it names are inlined, and one
/// that names itself, directly or not, is refused.
pub fn compile(
    node: &pb::FilterNode,
    tenant: &str,
    saved: &dyn Definitions,
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
    saved: &'a dyn Definitions,
    /// Ids of the saved filters being inlined, outermost first.
    path: Vec<String>,
}

impl Compiler<'_> {
    fn node(&mut self, node: &pb::FilterNode, at: &str) -> Result<Compiled, Invalid> {
        match &node.node {
            None => Err(invalid(at, "empty: a condition, a group or a saved filter")),
            Some(filter_node::Node::Condition(condition)) => Ok(Compiled::Condition(
                self.condition(condition, &format!("{at}.condition"))?,
            )),
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
        if !self.visible(&filter.tenant) {
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

    fn visible(&self, tenant: &str) -> bool {
        tenant == crate::rule::SHARED_TENANT || tenant == self.tenant
    }

    /// The resource a resource operator names among `right`, checked for kind and tenant.
    fn resource(&self, operator: Operator, right: &[Operand], at: &str) -> Result<Test, Invalid> {
        let wanted = match operator {
            Operator::InActiveList => ResourceKind::ActiveList,
            Operator::InDictionary => ResourceKind::Dictionary,
            Operator::InContextTable => ResourceKind::ContextTable,
            Operator::InCategory => ResourceKind::AssetCategory,
            Operator::InActiveDirectoryGroup => ResourceKind::AdGroup,
            _ => ResourceKind::Vulnerabilities,
        };
        let named = right
            .iter()
            .enumerate()
            .find_map(|(i, operand)| match operand {
                Operand::Resource(id) => Some((i, id)),
                _ => None,
            });
        let Some((i, id)) = named else {
            return Err(invalid(
                format!("{at}.right"),
                format!("{} needs a resource_id", operator.as_str_name()),
            ));
        };
        let place = format!("{at}.right[{i}].resource_id");
        let (kind, tenant) = self
            .saved
            .resource(id)
            .ok_or_else(|| invalid(&place, format!("no resource `{id}`")))?;
        if kind != wanted {
            return Err(invalid(
                &place,
                format!(
                    "`{id}` is a {}, {} reads a {}",
                    kind.as_str_name(),
                    operator.as_str_name(),
                    wanted.as_str_name()
                ),
            ));
        }
        if !self.visible(&tenant) {
            return Err(invalid(
                &place,
                format!("resource `{id}` belongs to tenant {tenant}"),
            ));
        }
        Ok(Test::InResource {
            id: id.clone(),
            kind,
        })
    }

    fn condition(&self, condition: &pb::Condition, at: &str) -> Result<Condition, Invalid> {
        condition_of(condition, at, |operator, right| {
            self.resource(operator, right, at)
        })
    }
}

fn condition_of(
    condition: &pb::Condition,
    at: &str,
    resource: impl Fn(Operator, &[Operand]) -> Result<Test, Invalid>,
) -> Result<Condition, Invalid> {
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
        | Operator::InContextTable => resource(operator, &right)?,
    };
    if !matches!(test, Test::InResource { .. })
        && let Some(i) = right.iter().position(|o| matches!(o, Operand::Resource(_)))
    {
        return Err(invalid(
            format!("{}.resource_id", right_at(i)),
            "only the resource operators read a resource",
        ));
    }
    Ok(Condition {
        left,
        test,
        right,
        // The seed: "do not match case" is ignored for inSubnet, inActiveList, inCategory and
        // inActiveDirectoryGroup.
        ignore_case: condition.ignore_case
            && !matches!(
                operator,
                Operator::InSubnet
                    | Operator::InActiveList
                    | Operator::InCategory
                    | Operator::InActiveDirectoryGroup
            ),
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
        Some(operand::Kind::Constant(value)) => Ok(Operand::Values(
            eval::texts_of(value)
                .into_iter()
                .map(std::borrow::Cow::into_owned)
                .collect(),
        )),
        Some(operand::Kind::List(list)) => Ok(Operand::Values(list.values.clone())),
        Some(operand::Kind::ResourceId(id)) if id.trim().is_empty() => {
            Err(invalid(format!("{at}.resource_id"), "empty"))
        }
        Some(operand::Kind::ResourceId(id)) => Ok(Operand::Resource(id.trim().to_owned())),
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

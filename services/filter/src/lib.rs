//! Filters: KUMA's conditions and groups, compiled once when a rule or filter is saved
//! (regular expressions built, networks parsed, saved filters resolved) and then evaluated per
//! event without parsing anything again.
//!
//! A saved filter is compiled once per compile however often it is referred to, and shared.
//! What a filter may cost is bounded where it is saved: its nesting (groups and saved filters
//! within each other) and its size as evaluated — every condition and constant counted once per
//! place it is reached from, so sharing cannot hide a filter that doubles at each level.

mod eval;
pub mod fields;
pub mod resources;

pub use fields::field_texts;

use std::{collections::HashMap, sync::Arc};

use ipnet::IpNet;
use regex::Regex;
use xdr_mesh::quote::quoted;
use xdr_proto::pb::{self, Operator, ResourceKind, filter_group, filter_node, operand};

use xdr_mesh::{
    caller::SHARED_TENANT,
    error::{Invalid, invalid},
};

/// Groups and saved filters within each other, at most.
pub const MAX_DEPTH: usize = 32;
/// Conditions and constant values a filter expands to, at most: what one event may cost.
pub const MAX_TERMS: usize = 10_000;

/// A filter ready to evaluate.
#[derive(Debug, Clone)]
pub enum Compiled {
    Condition(Condition),
    And(Vec<Compiled>),
    Or(Vec<Compiled>),
    Not(Box<Compiled>),
    /// A saved filter, compiled once and shared by every place that names it.
    Saved(Arc<Compiled>),
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

/// Compiles `node` for a resource of `tenant`; saved filters it names are resolved, and one
/// that names itself, directly or not, is refused.
pub fn compile(
    node: &pb::FilterNode,
    tenant: &str,
    saved: &dyn Definitions,
) -> Result<Compiled, Invalid> {
    Compiler::new(saved).compile(node, tenant)
}

/// How deep a compiled node nests and how many terms it expands to.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    height: usize,
    terms: usize,
}

/// Compiles filters against one set of definitions; a saved filter is compiled once for all
/// the compiles of one compiler (per tenant that uses it: visibility depends on the tenant).
pub struct Compiler<'a> {
    saved: &'a dyn Definitions,
    tenant: String,
    /// Ids of the saved filters being resolved, outermost first.
    path: Vec<String>,
    done: HashMap<(String, String), (Arc<Compiled>, Size)>,
}

impl<'a> Compiler<'a> {
    pub fn new(saved: &'a dyn Definitions) -> Self {
        Compiler {
            saved,
            tenant: String::new(),
            path: Vec::new(),
            done: HashMap::new(),
        }
    }

    /// Compiles `node` for a resource of `tenant`.
    pub fn compile(&mut self, node: &pb::FilterNode, tenant: &str) -> Result<Compiled, Invalid> {
        self.tenant = tenant.to_owned();
        self.path.clear();
        Ok(self.node(node, "filter", 1)?.0)
    }

    fn node(
        &mut self,
        node: &pb::FilterNode,
        at: &str,
        depth: usize,
    ) -> Result<(Compiled, Size), Invalid> {
        if depth > MAX_DEPTH {
            return Err(too_deep(at));
        }
        match &node.node {
            None => Err(invalid(at, "empty: a condition, a group or a saved filter")),
            Some(filter_node::Node::Condition(condition)) => {
                let at = format!("{at}.condition");
                let condition = self.condition(condition, &at)?;
                let size = Size {
                    height: 1,
                    terms: condition.terms(),
                };
                if size.terms > MAX_TERMS {
                    return Err(too_large(&at));
                }
                Ok((Compiled::Condition(condition), size))
            }
            Some(filter_node::Node::Group(group)) => {
                self.group(group, &format!("{at}.group"), depth)
            }
            Some(filter_node::Node::FilterId(id)) => {
                self.saved(id, &format!("{at}.filter_id"), depth)
            }
        }
    }

    fn group(
        &mut self,
        group: &pb::FilterGroup,
        at: &str,
        depth: usize,
    ) -> Result<(Compiled, Size), Invalid> {
        let op = filter_group::Op::try_from(group.op).unwrap_or(filter_group::Op::Unspecified);
        if group.children.is_empty() {
            return Err(invalid(format!("{at}.children"), "empty"));
        }
        let mut children = Vec::with_capacity(group.children.len());
        let mut size = Size::default();
        for (i, child) in group.children.iter().enumerate() {
            let at = format!("{at}.children[{i}]");
            let (child, child_size) = self.node(child, &at, depth + 1)?;
            size.height = size.height.max(child_size.height + 1);
            size.terms += child_size.terms;
            if size.terms > MAX_TERMS {
                return Err(too_large(&at));
            }
            children.push(child);
        }
        let compiled = match op {
            filter_group::Op::And => Compiled::And(children),
            filter_group::Op::Or => Compiled::Or(children),
            filter_group::Op::Not => match <[Compiled; 1]>::try_from(children) {
                Ok([child]) => Compiled::Not(Box::new(child)),
                Err(_) => {
                    return Err(invalid(
                        format!("{at}.children"),
                        "NOT takes exactly one child (group several with AND or OR)",
                    ));
                }
            },
            filter_group::Op::Unspecified => {
                return Err(invalid(format!("{at}.op"), "AND, OR or NOT"));
            }
        };
        Ok((compiled, size))
    }

    fn saved(&mut self, id: &str, at: &str, depth: usize) -> Result<(Compiled, Size), Invalid> {
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
        let key = (self.tenant.clone(), id.to_owned());
        if let Some((compiled, size)) = self.done.get(&key) {
            // The node at `depth` is the reference; its deepest node lies height - 1 below.
            if depth + size.height - 1 > MAX_DEPTH {
                return Err(too_deep(at));
            }
            return Ok((Compiled::Saved(compiled.clone()), *size));
        }
        let filter = self
            .saved
            .saved(id)
            .ok_or_else(|| invalid(at, format!("no saved filter {}", quoted(id))))?;
        if !self.visible(&filter.tenant) {
            return Err(invalid(
                at,
                format!(
                    "saved filter {} belongs to tenant {}",
                    quoted(id),
                    quoted(&filter.tenant)
                ),
            ));
        }
        let root = filter
            .root
            .as_ref()
            .ok_or_else(|| invalid(at, format!("saved filter {} is empty", quoted(id))))?;
        self.path.push(id.to_owned());
        let compiled = self.node(root, &format!("{at}({id})"), depth + 1);
        self.path.pop();
        let (compiled, mut size) = compiled?;
        size.height += 1;
        let compiled = Arc::new(compiled);
        self.done.insert(key, (compiled.clone(), size));
        Ok((Compiled::Saved(compiled), size))
    }

    fn visible(&self, tenant: &str) -> bool {
        tenant == SHARED_TENANT || tenant == self.tenant
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
            .ok_or_else(|| invalid(&place, format!("no resource {}", quoted(id))))?;
        if kind != wanted {
            return Err(invalid(
                &place,
                format!(
                    "{} is a {}, {} reads a {}",
                    quoted(id),
                    kind.as_str_name(),
                    operator.as_str_name(),
                    wanted.as_str_name()
                ),
            ));
        }
        if !self.visible(&tenant) {
            return Err(invalid(
                &place,
                format!(
                    "resource {} belongs to tenant {}",
                    quoted(id),
                    quoted(&tenant)
                ),
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
                            invalid(right_at(i), format!("{}: {reason}", quoted(value)))
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

/// The error of a filter nested past [`MAX_DEPTH`].
fn too_deep(at: &str) -> Invalid {
    invalid(
        at,
        format!("nested deeper than {MAX_DEPTH} levels of groups and saved filters"),
    )
}

/// The error of a filter that expands past [`MAX_TERMS`].
fn too_large(at: &str) -> Invalid {
    invalid(
        at,
        format!(
            "the filter expands to more than {MAX_TERMS} conditions and values (a saved filter counts at every place it is used)"
        ),
    )
}

impl Condition {
    /// What evaluating this condition costs: itself and each constant it compares with.
    fn terms(&self) -> usize {
        let values: usize = self
            .right
            .iter()
            .map(|operand| match operand {
                Operand::Values(values) => values.len(),
                _ => 1,
            })
            .sum();
        1 + values
    }
}

fn operand_of(operand: &pb::Operand, at: &str) -> Result<Operand, Invalid> {
    match &operand.kind {
        None => Err(invalid(at, "empty")),
        Some(operand::Kind::Field(field)) if field.trim().is_empty() => {
            Err(invalid(format!("{at}.field"), "empty"))
        }
        Some(operand::Kind::Field(field)) => Ok(Operand::Field(field.trim().to_owned())),
        Some(operand::Kind::Constant(value)) => Ok(Operand::Values(
            fields::texts_of(value)
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

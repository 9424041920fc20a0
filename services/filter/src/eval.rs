//! Evaluating a compiled filter against one event. A condition on a field the event lacks is
//! false (and true under "If not"), as in KUMA.

use std::{borrow::Cow, net::IpAddr};

use xdr_proto::pb::{Event, ResourceKind};

use super::{Compiled, Condition, Operand, Test, parse_network};
use crate::{fields::field_texts, resources::Resources};

impl Compiled {
    pub fn matches(&self, event: &Event, resources: &Resources) -> bool {
        match self {
            Compiled::Condition(condition) => condition.matches(event, resources),
            Compiled::And(children) => children.iter().all(|c| c.matches(event, resources)),
            Compiled::Or(children) => children.iter().any(|c| c.matches(event, resources)),
            Compiled::Not(child) => !child.matches(event, resources),
            Compiled::Saved(filter) => filter.matches(event, resources),
        }
    }
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn integer(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| i64::from_str_radix(text.strip_prefix("0x")?, 16).ok())
}

impl Condition {
    fn values<'a>(&'a self, operand: &'a Operand, event: &'a Event) -> Vec<Cow<'a, str>> {
        match operand {
            Operand::Field(name) => field_texts(event, name),
            Operand::Values(values) => values.iter().map(|v| Cow::Borrowed(v.as_str())).collect(),
            Operand::Resource(_) => Vec::new(),
        }
    }

    /// Every value of the right operands, in order.
    fn right_values<'a>(&'a self, event: &'a Event) -> Vec<Cow<'a, str>> {
        self.right
            .iter()
            .flat_map(|operand| self.values(operand, event))
            .collect()
    }

    fn matches(&self, event: &Event, resources: &Resources) -> bool {
        self.test(event, resources) != self.negate
    }

    fn test(&self, event: &Event, resources: &Resources) -> bool {
        if let Test::TiDetect = self.test {
            let categories = self.right_values(event);
            return event
                .ti
                .iter()
                .any(|m| categories.is_empty() || categories.iter().any(|c| *c == m.category));
        }
        let left = self.values(&self.left, event);
        let right = self.right_values(event);
        // "Do not match case": each side lower-cased once, not once per pair.
        let fold = |texts: &[Cow<'_, str>]| -> Vec<String> {
            texts.iter().map(|t| t.to_lowercase()).collect()
        };
        let (folded_left, folded_right) = if self.ignore_case {
            (fold(&left), fold(&right))
        } else {
            (Vec::new(), Vec::new())
        };
        let (text_left, text_right): (Vec<&str>, Vec<&str>) = if self.ignore_case {
            (
                folded_left.iter().map(String::as_str).collect(),
                folded_right.iter().map(String::as_str).collect(),
            )
        } else {
            (
                left.iter().map(|t| t.as_ref()).collect(),
                right.iter().map(|t| t.as_ref()).collect(),
            )
        };
        let any_pair = |test: &dyn Fn(&str, &str) -> bool| {
            text_left
                .iter()
                .any(|l| text_right.iter().any(|r| test(l, r)))
        };
        let compare = |test: &dyn Fn(f64, f64) -> bool| {
            left.iter().any(|l| {
                right
                    .iter()
                    .any(|r| matches!((number(l), number(r)), (Some(l), Some(r)) if test(l, r)))
            })
        };
        match &self.test {
            Test::Eq => any_pair(&|l, r| match (number(l), number(r)) {
                (Some(l), Some(r)) => l == r,
                _ => l == r,
            }),
            Test::Lt => compare(&|l, r| l < r),
            Test::Le => compare(&|l, r| l <= r),
            Test::Gt => compare(&|l, r| l > r),
            Test::Ge => compare(&|l, r| l >= r),
            Test::Contains => any_pair(&|l, r| l.contains(r)),
            Test::StartsWith => any_pair(&|l, r| l.starts_with(r)),
            Test::EndsWith => any_pair(&|l, r| l.ends_with(r)),
            Test::Match(regex) => left.iter().any(|l| regex.is_match(l)),
            Test::InSubnet(constant_networks) => {
                let field_networks: Vec<_> = self
                    .right
                    .iter()
                    .filter(|operand| matches!(operand, Operand::Field(_)))
                    .flat_map(|operand| self.values(operand, event))
                    .filter_map(|text| parse_network(&text).ok())
                    .collect();
                left.iter()
                    .filter_map(|l| l.trim().parse::<IpAddr>().ok())
                    .any(|ip| {
                        constant_networks
                            .iter()
                            .chain(&field_networks)
                            .any(|net| net.contains(&ip))
                    })
            }
            Test::HasBit => {
                let bits: Option<Vec<i64>> = right.iter().map(|r| integer(r)).collect();
                let Some(bits) = bits.filter(|b| b.iter().all(|&b| (0..64).contains(&b))) else {
                    return false;
                };
                left.iter()
                    .filter_map(|l| integer(l))
                    .any(|value| bits.iter().all(|&bit| value & (1 << bit) != 0))
            }
            Test::Intersect => any_pair(&|l, r| l == r),
            Test::InResource { id, kind } => {
                let Some(entries) = resources.get(id) else {
                    return false;
                };
                match kind {
                    // The key is the selected fields' values joined: the left field's, then
                    // those of any fields among the right operands.
                    ResourceKind::Dictionary => {
                        let mut key = left.first().map(|t| t.to_string()).unwrap_or_default();
                        for operand in &self.right {
                            if let Operand::Field(name) = operand {
                                key.push_str(field_texts(event, name).first().map_or("", |v| v));
                            }
                        }
                        entries.by_key.contains_key(&key)
                    }
                    // Right constants, if any, name vulnerabilities the asset must have.
                    ResourceKind::Vulnerabilities => left.iter().any(|asset| {
                        entries.by_key.get(asset.as_ref()).is_some_and(|found| {
                            right.is_empty()
                                || right.iter().any(|id| found.contains_key(id.as_ref()))
                        })
                    }),
                    _ if self.ignore_case => folded_left
                        .iter()
                        .any(|l| entries.lowercase_keys.contains(l)),
                    _ => left.iter().any(|l| entries.by_key.contains_key(l.as_ref())),
                }
            }
            Test::TiDetect => unreachable!("answered above"),
        }
    }
}

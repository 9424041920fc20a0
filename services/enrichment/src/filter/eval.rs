//! Evaluating a compiled filter against one event. A condition on a field the event lacks is
//! false (and true under "If not"), as in KUMA.

use std::{borrow::Cow, net::IpAddr};

use xdr_proto::pb::{Event, FieldValue, ResourceKind, field_value};

use super::{Compiled, Condition, Operand, Test, parse_network};
use crate::resources::Resources;

/// A field value as the texts it compares as (a list gives each of its values).
pub fn texts_of(value: &FieldValue) -> Vec<String> {
    match &value.kind {
        None => Vec::new(),
        Some(field_value::Kind::Text(text)) => vec![text.clone()],
        Some(field_value::Kind::Integer(n)) => vec![n.to_string()],
        Some(field_value::Kind::Number(n)) => vec![n.to_string()],
        Some(field_value::Kind::Flag(flag)) => vec![flag.to_string()],
        Some(field_value::Kind::TimestampMs(ms)) => vec![ms.to_string()],
        Some(field_value::Kind::List(list)) => list.values.clone(),
    }
}

/// The values of event field `name`; `Timestamp` is the event's own time.
pub fn field_texts(event: &Event, name: &str) -> Vec<String> {
    match event.fields.get(name) {
        Some(value) => texts_of(value),
        None if name == "Timestamp" => vec![event.timestamp_ms.to_string()],
        None => Vec::new(),
    }
}

impl Compiled {
    pub fn matches(&self, event: &Event, resources: &Resources) -> bool {
        match self {
            Compiled::Condition(condition) => condition.matches(event, resources),
            Compiled::And(children) => children.iter().all(|c| c.matches(event, resources)),
            Compiled::Or(children) => children.iter().any(|c| c.matches(event, resources)),
            Compiled::Not(child) => !child.matches(event, resources),
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
    fn values<'e>(&'e self, operand: &'e Operand, event: &Event) -> Cow<'e, [String]> {
        match operand {
            Operand::Field(name) => Cow::Owned(field_texts(event, name)),
            Operand::Values(values) => Cow::Borrowed(values),
            Operand::Resource(_) => Cow::Borrowed(&[]),
        }
    }

    fn matches(&self, event: &Event, resources: &Resources) -> bool {
        self.test(event, resources) != self.negate
    }

    fn test(&self, event: &Event, resources: &Resources) -> bool {
        if let Test::TiDetect = self.test {
            let categories: Vec<String> = self
                .right
                .iter()
                .flat_map(|operand| self.values(operand, event).into_owned())
                .collect();
            return event
                .ti
                .iter()
                .any(|m| categories.is_empty() || categories.contains(&m.category));
        }
        let left = self.values(&self.left, event);
        let right: Vec<String> = self
            .right
            .iter()
            .flat_map(|operand| self.values(operand, event).into_owned())
            .collect();
        let fold = |text: &str| -> String {
            if self.ignore_case {
                text.to_lowercase()
            } else {
                text.to_owned()
            }
        };
        let any_pair = |test: &dyn Fn(&str, &str) -> bool| {
            left.iter()
                .any(|l| right.iter().any(|r| test(&fold(l), &fold(r))))
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
                    .flat_map(|operand| self.values(operand, event).into_owned())
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
            Test::Intersect => left
                .iter()
                .any(|l| right.iter().any(|r| fold(l) == fold(r))),
            Test::InResource { id, kind } => {
                let Some(entries) = resources.get(id) else {
                    return false;
                };
                match kind {
                    // The key is the selected fields' values joined: the left field's, then
                    // those of any fields among the right operands.
                    ResourceKind::Dictionary => {
                        let mut key = left.first().cloned().unwrap_or_default();
                        for operand in &self.right {
                            if let Operand::Field(name) = operand {
                                key.push_str(field_texts(event, name).first().map_or("", |v| v));
                            }
                        }
                        entries.by_key.contains_key(&key)
                    }
                    // Right constants, if any, name vulnerabilities the asset must have.
                    ResourceKind::Vulnerabilities => left.iter().any(|asset| {
                        entries.by_key.get(asset).is_some_and(|found| {
                            right.is_empty() || right.iter().any(|id| found.contains_key(id))
                        })
                    }),
                    _ if self.ignore_case => left.iter().any(|l| {
                        let l = l.to_lowercase();
                        entries.by_key.keys().any(|k| k.to_lowercase() == l)
                    }),
                    _ => left.iter().any(|l| entries.by_key.contains_key(l)),
                }
            }
            Test::TiDetect => unreachable!("answered above"),
        }
    }
}
